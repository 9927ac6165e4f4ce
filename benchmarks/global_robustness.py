"""Global correctness and robustness of a digit classifier over ten digit generators.

For each digit d: the composed network compose(classifier, generator of d) with noise
normal(0, 1); correctness (samples/s), and robust fraction bounds at two eps values
(witness-free fraction from the bounded searches = upper bound, verifier-proved fraction on
a random subsample = lower bound; local checks/s). Then the speed-up from 1 to 2 local
worker processes on one robustness task, measured in the same run.

``--scale 8`` (default): digits_softmax over gen_digit<d> (8x8 images, latent size 4,
generators ending in Clip). ``--scale 28``: cls28 over gen28_digit<d> (28x28, latent size 32,
generators ending in Tanh and the rescale x0.5 + 0.5; examples/train/train_gen28.py); the
table also says what ran the forward passes, which searches ran and, when the verifier could
not run, why.

    PYTHONPATH=. python benchmarks/global_robustness.py [--scale 28] [--samples N] ...

Prints a table and writes benchmarks/results/global_robustness[_28].json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from robustc import specs
from robustc.analyses import global_robustness as G

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "examples" / "models"


SCALES = {8: ("digits_softmax", "gen_digit"), 28: ("cls28", "gen28_digit")}


def _spec_text(eps_values: list[float], args) -> str:
    cls, gen = SCALES[args.scale]
    lines = [f'network cls = onnx(external "{MODELS / f"{cls}.onnx"}")',
             'labels digits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]',
             "decode cls as argmax over digits"]
    for d in range(10):
        lines += [f'network gen{d} = onnx(external "{MODELS / f"{gen}{d}.onnx"}")',
                  f"network comp{d} = compose(cls, gen{d})",
                  f"global correct{d} on comp{d}:", "    noise normal(0, 1)",
                  f'    class "{d}"',
                  f"    correct(delta=0.05, confidence=0.99, samples={args.samples})"]
        for k, eps in enumerate(eps_values):
            lines += [f"global robust{d}_{k} on comp{d}:", "    noise normal(0, 1)",
                      f'    class "{d}"',
                      f"    robust(eps={eps}, delta=0.1, confidence=0.95, "
                      f"samples={args.robust_samples})"]
    return "\n".join(lines) + "\n"


def _row(res: G.GlobalResult) -> dict:
    return {"name": res.name, "label": res.label, "samples": res.samples,
            "correct": res.correct, "interval": res.interval, "verdict": res.verdict,
            "eps": res.eps, "no_witness": res.no_witness, "proved": res.proved,
            "verified": res.verified, "unknown": res.verify_unknown, "seconds": res.seconds,
            "forward": res.forward, "searches": list(res.searches),
            "verify_unavailable": res.verify_unavailable}


def main() -> None:
    """Run the benchmark, print the table, save the JSON."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--samples", type=int, default=10000, help="correctness samples per digit")
    p.add_argument("--robust-samples", type=int, default=96, help="noises per robust check")
    p.add_argument("--verify-samples", type=int, default=8, help="verifier subsample")
    p.add_argument("--verify-timeout", type=float, default=60.0,
                   help="safety-net time limit per check (node limits end checks first)")
    p.add_argument("--eps", type=float, nargs=2, default=None,
                   help="two eps values (default 0.1 0.5 at scale 8, 0.05 0.2 at scale 28)")
    p.add_argument("--speedup-samples", type=int, default=192, help="0: no speed-up run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=int, choices=sorted(SCALES), default=8)
    p.add_argument("--onnxruntime", action="store_true",
                   help="run as robustc does when it cannot compose the networks' IR: forward "
                        "passes on onnxruntime, black-box search only, no verifier")
    args = p.parse_args()
    args.eps = args.eps or ([0.1, 0.5] if args.scale == 8 else [0.05, 0.2])
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits_global.rspec"
        path.write_text(_spec_text(args.eps, args))
        tasks = {t.name: t for t in G.global_tasks(
            specs.load(path), seed=args.seed, verify_samples=args.verify_samples,
            verify_time_limit=args.verify_timeout)}
    if args.onnxruntime:
        tasks = {name: replace(t, graph=None, ir_reason="benchmark option --onnxruntime")
                 for name, t in tasks.items()}
    results = {name: G.estimate(t) for name, t in tasks.items()}
    rows = [_row(r) for r in results.values()]
    suffix = ("" if args.scale == 8 else f"_{args.scale}") + ("_ort" if args.onnxruntime else "")
    pair_dir = ROOT / "benchmarks" / "results" / f"global_pairs{suffix}"
    pairs = [p for name, r in results.items() if name.startswith("robust")
             for p in G.save_pairs(tasks[name], r, pair_dir, limit=2)]
    speed = _speedup(tasks["robust8_1"], args) if args.speedup_samples else None
    _print(rows, speed, args)
    print(f"{len(pairs)} PNG pairs G(z) | G(z') under {pair_dir.relative_to(ROOT)}/")
    out = ROOT / "benchmarks" / "results" / f"global_robustness{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    out.write_text(json.dumps({"args": vars(args), "device": device, "rows": rows,
                               "speedup": speed}, indent=1))
    print(f"\nsaved {out}")


def _speedup(task: G.GlobalTask, args) -> dict:
    """Local checks/s of one robustness task on 1 and on 2 worker processes (same run)."""
    task = replace(task, samples=args.speedup_samples, chunk_size=16,
                   verify_samples=args.speedup_samples // 8)
    out = {}
    for workers in (1, 2):
        ex = G.make_executor(workers)
        try:
            # warm-up: start the workers and import torch there, outside the timing
            G.estimate(replace(task, samples=16 * workers, verify_samples=0), ex)
            t = time.perf_counter()
            res = G.estimate(task, ex)
            out[workers] = {"seconds": time.perf_counter() - t, "json": _row(res)}
        finally:
            ex.close()
    same = out[1]["json"] | {"seconds": 0} == out[2]["json"] | {"seconds": 0}
    return {"checks": task.samples, "verified": task.verify_samples, "rows": out,
            "s_1": out[1]["seconds"], "s_2": out[2]["seconds"],
            "speedup": out[1]["seconds"] / out[2]["seconds"], "identical": same}


def _print(rows: list[dict], speed: dict | None, args) -> None:
    by = {r["name"]: r for r in rows}
    e0, e1 = args.eps
    first = by["robust0_0"]
    print(f"forward passes: {first['forward']}; searches: {', '.join(first['searches'])}"
          + (f"; verifier unavailable: {first['verify_unavailable']}"
             if first["verify_unavailable"] else ""))
    print(f"{'digit':>5} {'correct %':>10} {'99% CP interval':>17} {'verdict':>9} | "
          f"{'eps=' + str(e0) + ' robust in':>22} {'eps=' + str(e1) + ' robust in':>22}")
    for d in range(10):
        c = by[f"correct{d}"]
        cells = [f"[{r['interval'][0]:.3f}, {r['interval'][1]:.3f}] ({r['proved']}/"
                 f"{r['verified']})" for r in (by[f"robust{d}_0"], by[f"robust{d}_1"])]
        print(f"{d:>5} {100 * c['correct'] / c['samples']:>10.2f} "
              f"[{c['interval'][0]:.4f}, {c['interval'][1]:.4f}] {c['verdict']:>9} | "
              f"{cells[0]:>22} {cells[1]:>22}")
    corr = [r for r in rows if r["name"].startswith("correct")]
    rob = [r for r in rows if r["name"].startswith("robust")]
    rate = lambda rs: sum(r["samples"] for r in rs) / sum(r["seconds"] for r in rs)  # noqa: E731
    print(f"\ncorrectness: {rate(corr):.0f} samples/s; robustness: {rate(rob):.2f}"
          f" local checks/s (searches on all, "
          + ("no verifier)" if first["verify_unavailable"]
             else f"verifier on {args.verify_samples} per row)"))
    for k, eps in enumerate(args.eps):
        rs = [by[f"robust{d}_{k}"] for d in range(10)]
        proved, verified = sum(r["proved"] for r in rs), sum(r["verified"] for r in rs)
        unknown, free = sum(r["unknown"] for r in rs), sum(r["no_witness"] for r in rs)
        total = sum(r["samples"] for r in rs)
        print(f"eps={eps}: verified fraction {proved}/{verified} proved ({unknown} unknown); "
              f"witness-free {free}/{total}")
    if speed is None:
        return
    print(f"speed-up 1 -> 2 warm workers ({speed['checks']} checks, {speed['verified']} verified): "
          f"{speed['s_1']:.1f} s -> {speed['s_2']:.1f} s = x{speed['speedup']:.2f}; "
          f"identical results: {speed['identical']}")


if __name__ == "__main__":
    main()
