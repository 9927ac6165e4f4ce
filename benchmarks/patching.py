"""AIGENT (patch -> adversarial input) vs FGSM and PGD on the fully connected digit
classifier and on one of Marabou's MNIST networks (ERAN's MNIST test images), and the
smallest patch per layer on ACAS Xu networks (AIGENT's Table III).

    PYTHONPATH=. python benchmarks/patching.py [--images 100] [--time-limit 3] [--eps 0.2]
        [--mnist mnist10x10 --mnist-images 30] [--output benchmarks/results/patching.json]

Every adversarial input is replayed on onnxruntime before it counts. Prints tables and
saves JSON under benchmarks/results/patching.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from robustc.analyses.patch.algorithms import aigent, solve_patch
from robustc.compiler import load_onnx, standard_passes
from robustc.ir import evaluate, logits
from robustc.ir.property import in_top_k, output_gt
from robustc.runtime.datasets import digits
from robustc.runtime.replay import run_onnx

ROOT = Path(__file__).resolve().parents[1]
FC = ROOT / "examples/models/fc_digits.onnx"
SHARED = ROOT / "../shared/benchmarks"
ACAS = SHARED / "vnncomp2021/benchmarks/acasxu"
MARABOU_MNIST = SHARED / "marabou/resources/nnet/mnist"
ERAN_MNIST = SHARED / "eran/data/mnist_test.csv"


def pielou(labels: list[int], k: int = 10) -> float:
    """Pielou evenness H / ln(k) of the label distribution (1 = all labels equally often)."""
    counts = np.bincount(np.asarray(labels, int), minlength=k).astype(float)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum() / np.log(k)) if len(p) else 0.0


def _metrics(name, x0s, advs, ok, labels, times, pixels: int = 64) -> dict:
    """Success rate and, over the successes, pixels changed (median, mean, max), L2, L-inf
    (medians); median time per image; Pielou score of the new labels."""
    d = [a - x for a, x, s in zip(advs, x0s, ok, strict=True) if s]
    n = [int(np.count_nonzero(np.abs(v) > 1e-6)) for v in d]
    return {"method": name, "success": float(np.mean(ok)), "count": int(np.sum(ok)),
            "pixels": float(np.median(n)) if n else None,
            "pixels_pct": float(np.median(n) / pixels * 100) if n else None,
            "pixels_mean": float(np.mean(n)) if n else None,
            "pixels_max": int(np.max(n)) if n else None,
            "pixels_le_3pct": float(np.mean([k <= 0.03 * pixels for k in n])) if n else None,
            "l2": float(np.median([np.linalg.norm(v) for v in d])) if d else None,
            "linf": float(np.median([np.abs(v).max() for v in d])) if d else None,
            "time_s": float(np.median(times)),
            "pielou": pielou([lab for lab, s in zip(labels, ok, strict=True) if s])}


def run_aigent(graph, xs, ys, time_limit: float, max_delta: float, relax: str = "marks",
               name: str = "aigent", onnx: Path = FC) -> dict:
    """AIGENT per image, the runner-up label as the target; every input replayed."""
    g, _ = logits(graph)
    advs, ok, labels, times, stages = [], [], [], [], Counter()
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if i % 10 == 0:
            print(f"  {name}: image {i}/{len(xs)}", file=sys.stderr, flush=True)
        z = evaluate(g, x).ravel()
        target = int(np.argsort(-z)[1])
        res = aigent(g, x, in_top_k(10, target, 1), max_delta=max_delta, time_limit=time_limit,
                     relax=relax)
        times.append(res.time_s)
        stages[res.status] += 1
        adv = res.x_adv if res.x_adv is not None else x
        _, out = run_onnx((str(onnx),), adv.astype(np.float32))
        lab = int(np.argmax(out))
        inside = bool(np.all(adv >= 0) and np.all(adv <= 1))
        advs.append(adv)
        ok.append(res.x_adv is not None and lab != y and inside)
        labels.append(lab)
    return {**_metrics(name, xs, advs, ok, labels, times, xs[0].size), "stages": dict(stages)}


def reach_diagnosis(graph, xs) -> dict:
    """Why point targets fail: for each image, the phase-fixed patch of the middle layer
    (AIGENT's first step) and whether its targets (the patched post-ReLU activations) are
    the image of *any* non-negative activation of the layer below, i.e. reachable by any
    patch of any earlier layer or any input (a scipy LP, independent of robustc's solvers:
    ``W a + b = c`` on the active targets, ``W a + b <= 0`` on the others, ``a >= 0``).
    """
    from scipy.optimize import linprog

    from robustc.analyses.patch.algorithms import patched
    from robustc.ir import cut

    g, _ = logits(graph)
    m = (len(g.layers()) - 1) // 2
    layer = g.layers()[m]
    W, b = np.asarray(layer.weight, float), np.asarray(layer.bias, float)
    found = reachable = 0
    for x in xs:
        z = evaluate(g, x).ravel()
        acts = evaluate(g, x, keep_all=True)
        phases = {r.name: np.asarray(acts[r.name]).ravel() > 0 for r in g.relus()}
        res = solve_patch(g, m, [x], in_top_k(10, int(np.argsort(-z)[1]), 1), norm="l1",
                          marks=True, phases=phases)
        if not res.found:
            continue
        found += 1
        c = evaluate(cut(patched(g, res), m), x).ravel()
        on = c > 0
        lp = linprog(np.zeros(W.shape[1]), A_eq=W[on], b_eq=c[on] - b[on],
                     A_ub=W[~on] if (~on).any() else None,
                     b_ub=-b[~on] if (~on).any() else None,
                     bounds=[(0, None)] * W.shape[1], method="highs")
        reachable += int(lp.status == 0)
    return {"layer": m, "images": len(xs), "middle_patch_found": found,
            "targets_reachable": reachable}


def run_l0_grid(graph, xs, ys, levels: int = 21) -> dict:
    """Reference L0 search: every single pixel, then every pair, set to each of ``levels``
    values in [0, 1]; the first label change found (fewest pixels, then grid order).

    An upper bound on the fewest pixels any attack needs; a 1-pixel find is the minimum.
    """
    g, _ = logits(graph)
    grid = np.linspace(0.0, 1.0, levels)
    pairs = list(itertools.combinations(range(64), 2))
    g2 = np.array(list(itertools.product(grid, grid)))
    advs, ok, labels, times = [], [], [], []
    for x, y in zip(xs, ys, strict=True):
        start, x0, adv = time.perf_counter(), x.ravel(), None
        cand = np.repeat(x0[None], 64 * levels, 0)
        for i in range(64):
            cand[i * levels:(i + 1) * levels, i] = grid
        adv = _first_change(g, cand, y)
        for c in range(0, len(pairs), 64) if adv is None else ():
            chunk = pairs[c:c + 64]
            cand = np.repeat(x0[None], len(chunk) * len(g2), 0)
            for j, (a, b) in enumerate(chunk):
                cand[j * len(g2):(j + 1) * len(g2), a] = g2[:, 0]
                cand[j * len(g2):(j + 1) * len(g2), b] = g2[:, 1]
            adv = _first_change(g, cand, y)
            if adv is not None:
                break
        times.append(time.perf_counter() - start)
        adv = x.copy() if adv is None else adv.reshape(x.shape)
        _, out = run_onnx((str(FC),), adv.astype(np.float32))
        lab = int(np.argmax(out))
        advs.append(adv)
        ok.append(lab != y)
        labels.append(lab)
    return _metrics("l0-grid", xs, advs, ok, labels, times)


def one_pixel_exact(graph, xs, ys) -> dict:
    """Exactly which images some single-pixel change (any value in [0, 1]) can flip.

    Along ``x + t e_i`` the network is piecewise linear; the scan walks its pieces (the
    points where a neuron's pre-activation crosses 0) and checks each piece's end points
    (margins are affine on a piece). No grid: an image it rejects needs >= 2 pixels for
    *any* attack, so at most ``possible`` of the images admit an attack within 3% of
    the 64 pixels (1 pixel; 2 pixels are 3.125%).
    """
    g, _ = logits(graph)
    dense = [(np.asarray(n.weight, float), np.asarray(n.bias, float)) for n in g.layers()]
    flips = [any(_pixel_flips(dense, x.ravel(), i, y) for i in range(x.size))
             for x, y in zip(xs, ys, strict=True)]
    return {"images": len(xs), "possible": int(sum(flips))}


def _pixel_flips(dense, x0: np.ndarray, i: int, y: int, eps: float = 1e-9) -> bool:
    """Whether setting pixel ``i`` to some value in [0, 1] changes the label ``y``
    (a ReLU network: every Dense layer but the last is followed by a ReLU)."""
    t = 0.0
    while t < 1.0:
        a, c = np.zeros_like(x0), x0.copy()
        a[i], c[i] = 1.0, 0.0
        nxt = 1.0
        for k, (W, b) in enumerate(dense):
            a, c = W @ a, W @ c + b
            if k == len(dense) - 1:
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                cross = np.where(a != 0, -c / a, np.inf)
            later = cross[cross > t + eps]
            nxt = min(nxt, later.min()) if len(later) else nxt
            on = a * (t + eps) + c > 0          # the phases just after t
            a, c = np.where(on, a, 0.0), np.where(on, c, 0.0)
        for s in (t, nxt):
            z = a * s + c
            if np.max(np.delete(z, y)) > z[y] + 1e-7:
                return True
        t = nxt
    return False


def _first_change(g, cand: np.ndarray, y: int) -> np.ndarray | None:
    """The first candidate whose label (IR interpreter) is not ``y``, if any."""
    out = evaluate(g, cand.reshape((len(cand),) + tuple(g.input.shape)), batched=True)
    lab = np.argmax(out.reshape(len(cand), -1), axis=1)
    hit = np.flatnonzero(lab != y)
    return cand[hit[0]] if len(hit) else None


def run_gradient(graph, xs, ys, eps: float, steps: int, name: str, onnx: Path = FC) -> dict:
    import torch

    from robustc.runtime.attacks.base import Victim
    from robustc.runtime.attacks.encodings import OneHot
    from robustc.runtime.attacks.pgd import PGD
    from robustc.runtime.torch_module import to_torch

    torch.set_num_threads(1)
    module = to_torch(graph, device="cpu", logits=True)
    n = xs[0].size
    victim = Victim(module, OneHot(10), torch.zeros(1, n), torch.ones(1, n))
    x0 = torch.tensor(np.stack(xs), dtype=torch.float32)
    target = np.eye(10, dtype=bool)[ys]
    attack = PGD(steps=steps, eps=eps, step_size=eps if steps == 1 else None)
    start = time.perf_counter()
    res = attack.run(victim, x0, torch.tensor(target), untargeted=True)
    per = (time.perf_counter() - start) / len(xs)
    advs = [a.astype(np.float64) for a in np.asarray(res.x_adv)]
    labels = [int(np.argmax(run_onnx((str(onnx),), a.astype(np.float32))[1])) for a in advs]
    ok = [lab != y for lab, y in zip(labels, ys, strict=True)]
    return _metrics(name, xs, advs, ok, labels, [per] * len(xs), n)


def mnist_section(name: str, images: int, time_limit: float, max_delta: float, eps: float
                  ) -> dict:
    """AIGENT, FGSM and PGD on one of Marabou's MNIST networks (``mnist10x10``: 784 pixels,
    10 hidden layers of 10 ReLUs, the kind of network the AIGENT paper used: 5-10 hidden
    layers of 10-50 neurons) with ERAN's MNIST test images, the first ``images`` that it
    classifies correctly. The ``.nnet`` file is converted to ONNX (in a temporary folder)
    and every adversarial input is replayed on that ONNX file (removed afterwards)."""
    import tempfile

    import onnx

    from robustc.compiler.nnet import nnet_to_onnx, read_nnet

    with tempfile.TemporaryDirectory(prefix="robustc-mnist-") as folder:
        path = Path(folder) / f"{name}.onnx"
        onnx.save(nnet_to_onnx(read_nnet(MARABOU_MNIST / f"{name}.nnet"), (1, 784)),
                  str(path))
        graph = standard_passes().run(load_onnx(str(path)))
        g, _ = logits(graph)
        xs, ys = [], []
        for row in np.loadtxt(ERAN_MNIST, delimiter=","):
            x = (row[1:] / 255.0).reshape(1, 784)
            if int(np.argmax(evaluate(g, x))) == int(row[0]):
                xs.append(x)
                ys.append(int(row[0]))
                if len(xs) == images:
                    break
        rows = [run_aigent(graph, xs, ys, time_limit, max_delta, onnx=path),
                run_aigent(graph, xs, ys, time_limit, max_delta, "region", "aigent-region",
                           onnx=path),
                run_gradient(graph, xs, ys, eps, 1, "fgsm", onnx=path),
                run_gradient(graph, xs, ys, eps, 40, "pgd", onnx=path)]
    return {"network": name, "images": len(xs), "rows": rows,
            "reach": reach_diagnosis(graph, xs)}


def acas_table(networks: list[str], time_limit: float) -> list[dict]:
    """Smallest L1 patch per layer making the runner-up advisory win: full MILP, with sign
    marks, and the phase-fixed LP, for one input per network: the centre of the input box
    of VNN-COMP's ACAS Xu property 3 (a point with no zero input, so every weight of the
    first layer can matter; at the all-zero input no first-layer patch changes anything)."""
    from robustc.compiler.vnnlib import load_vnnlib

    rows = []
    for name in networks:
        path = ACAS / f"ACASXU_run2a_{name}_batch_2000.onnx"
        graph, _ = logits(standard_passes().run(load_onnx(str(path))))
        box = load_vnnlib(ACAS / "prop_3.vnnlib", tuple(graph.input.shape), 5)[0].boxes[0]
        x = (box.lower + box.upper) / 2
        y = evaluate(graph, x).ravel()
        cur, target = np.argsort(y)[:2]          # advisory = argmin
        cond = output_gt(len(y), int(cur), int(target))
        for k in range(len(graph.layers())):
            row = {"network": name, "layer": k}
            acts = evaluate(graph, x, keep_all=True)
            phases = {r.name: np.asarray(acts[r.name]).ravel() > 0 for r in graph.relus()}
            for tag, marks, ph in (("full", False, None), ("marked", True, None),
                                   ("phases", True, phases)):
                res = solve_patch(graph, k, [x], cond, norm="l1", marks=marks,
                                  time_limit=time_limit, phases=ph)
                n = None if res.dw is None else int(np.count_nonzero(np.abs(res.dw) > 1e-9))
                row[tag] = {"n": n, "mod": res.objective, "optimal": res.optimal,
                            "status": res.status,
                            "time_s": res.time_s, "replayed": _acas_replay(graph, res, x,
                                                                           cond)}
            rows.append(row)
    return rows


def _acas_replay(graph, res, x, cond) -> bool | None:
    """Whether the patched IR satisfies the condition (the ONNX replay is in the tests)."""
    from robustc.analyses.patch.algorithms import patched
    from robustc.ir.property import holds

    if res.dw is None:
        return None
    return bool(holds(cond, evaluate(patched(graph, res), x).ravel()[None])[0])


def _opt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_fc(rows: list[dict]) -> None:
    print(f"{'method':13} {'success':>8} {'pixels':>7} {'pix%':>6} {'mean':>5} {'max':>4} "
          f"{'<=3%':>5} {'L2':>7} {'Linf':>6} {'time_s':>7} {'pielou':>7}")
    for r in rows:
        print(f"{r['method']:13} {r['success']:8.1%} {_opt(r['pixels'], '7.1f')} "
              f"{_opt(r['pixels_pct'], '6.2f')} {_opt(r['pixels_mean'], '5.1f')} "
              f"{_opt(r['pixels_max'], '4d')} {_opt(r['pixels_le_3pct'], '5.0%')} "
              f"{_opt(r['l2'], '7.3f')} {_opt(r['linf'], '6.3f')} "
              f"{r['time_s']:7.4f} {r['pielou']:7.3f}")
        if r.get("stages"):
            print(f"              outcomes: {r['stages']}")


def _print_acas(rows: list[dict]) -> None:
    print("smallest L1 patch per layer (n: weights changed; inf: proven infeasible; t/o: none "
          "found in the time limit; * proven optimal); full MILP, sign-marked MILP, "
          "phase-fixed LP (phases of the input)")
    print(f"{'net':5} {'layer':>5} | {'n':>5} {'mod(L1)':>10} {'t_full':>7} | "
          f"{'n':>5} {'mod(L1)':>10} {'t_mark':>7} {'speedup':>7} | {'n':>5} {'mod(L1)':>10} "
          f"{'t_ph':>6}")
    for r in rows:
        a, b, c = r["full"], r["marked"], r["phases"]
        print(f"{r['network']:5} {r['layer']:5} | {_n(a):>5} {_mod(a):>10} "
              f"{a['time_s']:7.2f} | {_n(b):>5} {_mod(b):>10} {b['time_s']:7.2f} "
              f"{a['time_s'] / max(b['time_s'], 1e-9):7.1f} | {_n(c):>5} {_mod(c):>10} "
              f"{c['time_s']:6.2f}")


def _mod(cell: dict) -> str:
    if cell["mod"] is None:
        return "inf" if cell["status"] == "infeasible" else "t/o"
    return f"{cell['mod']:.5g}" + ("*" if cell["optimal"] else "")


def _n(cell: dict) -> str:
    return "-" if cell["n"] is None else str(cell["n"])


def fc_section(args) -> tuple[list, dict, dict]:
    """AIGENT, FGSM, PGD and the L0 grid on fc_digits; the exact one-pixel scan; the
    reachability diagnosis."""
    graph = standard_passes().run(load_onnx(str(FC)))
    images, labels = digits("test")
    g, _ = logits(graph)
    xs, ys = [], []
    for img, lab in zip(images, labels, strict=True):
        x = img.reshape(1, 64).astype(np.float64)
        if int(np.argmax(evaluate(g, x))) == int(lab) and len(xs) < args.images:
            xs.append(x)
            ys.append(int(lab))
    rows = [run_aigent(graph, xs, ys, args.time_limit, args.max_delta),
            run_aigent(graph, xs, ys, args.time_limit, args.max_delta, "region",
                       "aigent-region"),
            run_gradient(graph, xs, ys, args.eps, 1, "fgsm"),
            run_gradient(graph, xs, ys, args.eps, 40, "pgd"),
            run_l0_grid(graph, xs, ys)]
    print(f"fc_digits, {len(xs)} correctly classified test images; FGSM/PGD eps={args.eps}; "
          f"AIGENT max_delta={args.max_delta}, {args.time_limit} s per solve; medians over "
          "successes (pixels also mean and max; <=3%: share of successes with at most 1 pixel)")
    _print_fc(rows)
    exact = one_pixel_exact(graph, xs, ys)
    print(f"exact single-pixel scan: {exact['possible']}/{exact['images']} images can be "
          "flipped by 1 pixel (<= 3% of 64); every other one needs >= 2 (3.125%) for any "
          "attack")
    reach = reach_diagnosis(graph, xs)
    print(f"AIGENT diagnosis: the phase-fixed patch of layer {reach['layer']} exists for "
          f"{reach['middle_patch_found']}/{reach['images']} images; its targets are reachable "
          f"from some activation of the layer below for {reach['targets_reachable']}")
    return rows, exact, reach


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=100, help="fc_digits images (0: skip)")
    ap.add_argument("--time-limit", type=float, default=3.0)
    ap.add_argument("--max-delta", type=float, default=1.0)
    ap.add_argument("--eps", type=float, default=0.2)
    ap.add_argument("--acas", default="1_1,2_1,3_3,4_5")
    ap.add_argument("--acas-time-limit", type=float, default=5.0)
    ap.add_argument("--mnist", default="mnist10x10",
                    help="Marabou MNIST network for the MNIST section ('' to skip)")
    ap.add_argument("--mnist-images", type=int, default=30)
    ap.add_argument("--output", default=str(ROOT / "benchmarks/results/patching.json"))
    args = ap.parse_args()
    rows, exact, reach = [], None, None
    if args.images > 0:
        rows, exact, reach = fc_section(args)
    acas = []
    if ACAS.exists() and args.acas:
        acas = acas_table(args.acas.split(","), args.acas_time_limit)
        _print_acas(acas)
    else:
        print(f"ACAS Xu skipped: {ACAS} not found" if args.acas else "ACAS Xu skipped")
    mnist = None
    if args.mnist and MARABOU_MNIST.exists() and ERAN_MNIST.exists():
        mnist = mnist_section(args.mnist, args.mnist_images, args.time_limit, args.max_delta,
                              args.eps)
        print(f"\n{mnist['network']} (Marabou's MNIST network), ERAN's MNIST test images: "
              f"{mnist['images']} correctly classified; <=3%: at most 23 of 784 pixels")
        _print_fc(mnist["rows"])
        reach = mnist["reach"]
        print(f"AIGENT diagnosis: the phase-fixed patch of layer {reach['layer']} exists for "
              f"{reach['middle_patch_found']}/{reach['images']} images; its targets are "
              f"reachable from some activation of the layer below for "
              f"{reach['targets_reachable']}")
    else:
        print(f"MNIST skipped: {MARABOU_MNIST} or {ERAN_MNIST} not found" if args.mnist
              else "MNIST skipped")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "fc": rows, "one_pixel_exact": exact,
                              "reach": reach, "acas": acas, "mnist": mnist},
                              indent=1,
                              default=float))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
