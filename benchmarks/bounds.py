"""Benchmark: unstable ReLUs and time of interval vs symbolic vs LP bounds.

Cases: the example networks under ``examples/models`` (L-inf boxes around the sample inputs
of ``examples/samples`` whose size matches the network input; generators get a box around
the origin), and ACAS Xu and MNIST-FC from VNN-COMP 2021 with the input boxes of their
``.vnnlib`` properties (only simple ``(assert (<= X_i c))`` / ``(>= X_i c)`` lines; a property
with a disjunction over inputs is skipped).

Prints one row per case and a summary of medians, checks that symbolic leaves strictly
fewer unstable ReLUs than interval wherever interval leaves any, and saves everything to
``benchmarks/results/bounds.json``. Times are medians over ``--repeats`` runs (LP once).

    PYTHONPATH=. python benchmarks/bounds.py [--quick] [--lp-time-limit 60]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VNNCOMP = ROOT.parent / "shared" / "benchmarks" / "vnncomp2021" / "benchmarks"
RESULTS = ROOT / "benchmarks" / "results" / "bounds.json"
EXAMPLE_EPS = (0.02, 0.05)
GENERATOR_RADIUS = 1.0  # box [-1, 1]^d around the origin for generator networks
ACAS_NETS = ("1_1", "2_1", "3_3", "4_5", "5_9")
ACAS_PROPS = ("prop_1", "prop_2", "prop_3", "prop_4")
MNIST_PROPS = ("prop_0_0.03", "prop_1_0.03", "prop_0_0.05", "prop_1_0.05")

_BOUND = re.compile(r"\(assert\s+\((<=|>=)\s+X_(\d+)\s+([-+0-9.eE]+)\s*\)\s*\)")


def parse_vnnlib_box(path: Path, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The input box of a VNN-LIB property, or None when its inputs are disjunctive."""
    text = path.read_text()
    if re.search(r"\(assert\s+\(or[^;]*X_", text):
        return None
    lo, hi = np.full(size, -np.inf), np.full(size, np.inf)
    for op, idx, value in _BOUND.findall(text):
        target = hi if op == "<=" else lo
        i = int(idx)
        target[i] = min(target[i], float(value)) if op == "<=" else max(target[i], float(value))
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return None
    return lo, hi


def load(path: Path):
    """The network after the standard passes, or None (with a message) when it cannot load."""
    from robustc.compiler import load_onnx, standard_passes
    from robustc.errors import Error

    try:
        return standard_passes().run(load_onnx(path))
    except Error as exc:  # e.g. a model being rewritten by a training script right now
        print(f"{path.name}: skipped ({exc})")
        return None


def example_cases(quick: bool):
    """(family, network, box name, graph, lower, upper) for the example networks."""
    models = sorted((ROOT / "examples" / "models").glob("*.onnx"))
    samples = sorted((ROOT / "examples" / "samples").glob("*.npy"))
    samples = [s for s in samples if "mask" not in s.name]
    if not models:
        print("examples/models has no .onnx files yet: skipping the example networks")
    for model in models[:3] if quick else models:
        graph = load(model)
        if graph is None:
            continue
        shape = graph.input.shape
        size = int(np.prod(shape))
        if model.stem.startswith("gen_"):
            zero = np.zeros(shape)
            yield "examples", model.stem, f"origin+-{GENERATOR_RADIUS}", graph, \
                zero - GENERATOR_RADIUS, zero + GENERATOR_RADIUS
            continue
        matching = [s for s in samples if np.load(s).size == size][:2 if quick else 3]
        if not matching:
            print(f"{model.name}: no sample of {size} values, skipped")
        for sample in matching:
            x = np.load(sample).reshape(shape).astype(np.float64)
            for eps in EXAMPLE_EPS[:1] if quick else EXAMPLE_EPS:
                lo, hi = x - eps, x + eps
                if x.min() >= 0.0 and x.max() <= 1.0:
                    lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
                yield "examples", model.stem, f"{sample.stem} eps={eps}", graph, lo, hi


def vnncomp_cases(quick: bool):
    """Cases from ACAS Xu and MNIST-FC (VNN-COMP 2021)."""
    if not VNNCOMP.is_dir():
        print(f"{VNNCOMP} is absent: skipping ACAS Xu and MNIST-FC")
        return
    acas = VNNCOMP / "acasxu"
    for net in ACAS_NETS[:2] if quick else ACAS_NETS:
        graph = load(acas / f"ACASXU_run2a_{net}_batch_2000.onnx")
        for prop in ACAS_PROPS:
            yield from _vnnlib_case("acasxu", f"acas_{net}", graph, acas / f"{prop}.vnnlib")
    mnist = VNNCOMP / "mnistfc"
    for net in ("256x2", "256x4") if quick else ("256x2", "256x4", "256x6"):
        graph = load(mnist / f"mnist-net_{net}.onnx")
        for prop in MNIST_PROPS[:2] if quick else MNIST_PROPS:
            yield from _vnnlib_case("mnistfc", f"mnist_{net}", graph, mnist / f"{prop}.vnnlib")


def _vnnlib_case(family, net, graph, path):
    if graph is None:
        return
    shape = graph.input.shape
    box = parse_vnnlib_box(path, int(np.prod(shape)))
    if box is None:
        print(f"{net} {path.stem}: disjunctive or unbounded input, skipped")
        return
    yield family, net, path.stem, graph, box[0].reshape(shape), box[1].reshape(shape)


def measure(graph, lo, hi, repeats: int, lp_time_limit: float) -> dict:
    """Unstable counts and median times of the three methods on one box."""
    from robustc.compiler.bounds import compute_bounds

    row = {}
    for method in ("interval", "symbolic", "lp"):
        runs = 1 if method == "lp" else repeats
        times, bounds = [], None
        for _ in range(runs):
            t = time.perf_counter()
            bounds = compute_bounds(graph, lo, hi, method, time_limit=lp_time_limit)
            times.append(time.perf_counter() - t)
        row[method] = {"unstable": bounds.num_unstable(), "time_s": float(np.median(times))}
        if method == "lp":
            row[method]["hit_time_limit"] = bool(times[0] >= lp_time_limit)
    row["relus"] = int(sum(graph[n].size for n in bounds.relu_inputs))
    return row


def print_row(r: dict) -> None:
    i, s, p = r["interval"], r["symbolic"], r["lp"]
    flag = "*" if p.get("hit_time_limit") else " "
    print(f"{r['network']:<16} {r['box']:<22} {r['relus']:>6} {i['unstable']:>8} "
          f"{s['unstable']:>8} {p['unstable']:>7}{flag} {i['time_s']:>9.4f} "
          f"{s['time_s']:>9.4f} {p['time_s']:>9.2f}", flush=True)


def summarise(rows: list[dict]) -> dict:
    """Medians per family, and the symbolic-vs-interval check."""
    summary = {}
    for family in sorted({r["family"] for r in rows}):
        sub = [r for r in rows if r["family"] == family]
        summary[family] = {
            f"median_{key}_{m}": float(np.median([r[m][key] for r in sub]))
            for m in ("interval", "symbolic", "lp") for key in ("unstable", "time_s")}
        summary[family]["cases"] = len(sub)
    failing = [f"{r['network']} {r['box']}" for r in rows
               if r["interval"]["unstable"] > 0
               and not r["symbolic"]["unstable"] < r["interval"]["unstable"]]
    return {"families": summary, "symbolic_strictly_fewer_failures": failing}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few cases of each family")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lp-time-limit", type=float, default=60.0)
    parser.add_argument("--families", default="examples,vnncomp",
                        help="comma-separated: examples, vnncomp")
    args = parser.parse_args(argv)
    families = args.families.split(",")
    print(f"{'network':<16} {'box':<22} {'relus':>6} {'int.unst':>8} {'sym.unst':>8} "
          f"{'lp.unst':>8} {'int.s':>9} {'sym.s':>9} {'lp.s':>9}")
    rows = []
    cases = [gen(args.quick) for name, gen in (("examples", example_cases),
                                               ("vnncomp", vnncomp_cases)) if name in families]
    for family, net, box, graph, lo, hi in (c for gen in cases for c in gen):
        row = {"family": family, "network": net, "box": box,
               **measure(graph, lo, hi, args.repeats, args.lp_time_limit)}
        rows.append(row)
        print_row(row)
    summary = summarise(rows)
    print("\n(* = LP stopped at the time limit; times in seconds, medians over repeats)")
    for family, s in summary["families"].items():
        print(f"{family:<10} cases={s['cases']:<3} median unstable interval/symbolic/lp = "
              f"{s['median_unstable_interval']:g}/{s['median_unstable_symbolic']:g}/"
              f"{s['median_unstable_lp']:g}; median time = {s['median_time_s_interval']:.4f}/"
              f"{s['median_time_s_symbolic']:.4f}/{s['median_time_s_lp']:.2f} s")
    bad = summary["symbolic_strictly_fewer_failures"]
    print("symbolic < interval wherever interval leaves unstable ReLUs:",
          "yes" if not bad else f"NO on {bad}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": platform.platform(), "python": sys.version,
                                   "args": vars(args), "rows": rows, "summary": summary},
                                  indent=1))
    print(f"saved {RESULTS.relative_to(ROOT)}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
