"""Global correctness and robustness of the digit classifier over the ten digit generators.

For each digit d: the composed network compose(digits_softmax, gen_digit<d>) with noise
normal(0, 1); correctness (samples/s), and robust fraction bounds at two eps values
(witness-free fraction from the bounded searches = upper bound, verifier-proved fraction on
a random subsample = lower bound; local checks/s). Then the speed-up from 1 to 2 local
worker processes on one robustness task, measured in the same run.

    PYTHONPATH=. python benchmarks/global_robustness.py [--samples N] [--robust-samples N]

Prints a table and writes benchmarks/results/global_robustness.json.
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


def _spec_text(eps_values: list[float], args) -> str:
    lines = [f'network cls = onnx(external "{MODELS / "digits_softmax.onnx"}")',
             'labels digits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]',
             "decode cls as argmax over digits"]
    for d in range(10):
        lines += [f'network gen{d} = onnx(external "{MODELS / f"gen_digit{d}.onnx"}")',
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
            "verified": res.verified, "unknown": res.verify_unknown, "seconds": res.seconds}


def main() -> None:
    """Run the benchmark, print the table, save the JSON."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--samples", type=int, default=10000, help="correctness samples per digit")
    p.add_argument("--robust-samples", type=int, default=96, help="noises per robust check")
    p.add_argument("--verify-samples", type=int, default=8, help="verifier subsample")
    p.add_argument("--verify-timeout", type=float, default=60.0,
                   help="safety-net time limit per check (node limits end checks first)")
    p.add_argument("--eps", type=float, nargs=2, default=[0.1, 0.5])
    p.add_argument("--speedup-samples", type=int, default=192)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits_global.rspec"
        path.write_text(_spec_text(args.eps, args))
        tasks = {t.name: t for t in G.global_tasks(
            specs.load(path), seed=args.seed, verify_samples=args.verify_samples,
            verify_time_limit=args.verify_timeout)}
    results = {name: G.estimate(t) for name, t in tasks.items()}
    rows = [_row(r) for r in results.values()]
    pairs = [p for name, r in results.items() if name.startswith("robust")
             for p in G.save_pairs(tasks[name], r, ROOT / "benchmarks" / "results" / "global_pairs",
                                   limit=2)]
    speed = _speedup(tasks["robust8_1"], args)
    _print(rows, speed, args)
    print(f"{len(pairs)} PNG pairs G(z) | G(z') under benchmarks/results/global_pairs/")
    out = ROOT / "benchmarks" / "results" / "global_robustness.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows, "speedup": speed}, indent=1))
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


def _print(rows: list[dict], speed: dict, args) -> None:
    by = {r["name"]: r for r in rows}
    e0, e1 = args.eps
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
          f" local checks/s (searches on all, verifier on {args.verify_samples} per row)")
    print(f"speed-up 1 -> 2 warm workers ({speed['checks']} checks, {speed['verified']} verified): "
          f"{speed['s_1']:.1f} s -> {speed['s_2']:.1f} s = x{speed['speedup']:.2f}; "
          f"identical results: {speed['identical']}")


if __name__ == "__main__":
    main()
