"""Input-split speed on a handful of ACAS Xu instances: time, verdict, parts, parts/s.

    PYTHONPATH=. python benchmarks/split_speed.py [--timeout S] [--batch N] [INST ...]

``INST`` is ``NET:PROP`` (``1_2:prop_1``); without any, a default handful. ``--batch 0``
uses the per-part search (``SplitOptions(batch=0)``). Every instance runs with
``VerifyOptions(threads=1)``; the answer is compared with the ground truth.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
ACAS = SHARED / "vnncomp2021" / "benchmarks" / "acasxu"
DEFAULT = ["1_2:prop_1", "1_1:prop_2", "3_3:prop_2", "1_1:prop_3", "1_9:prop_7",
           "2_9:prop_8", "1_1:prop_6"]


def expected(net: str, prop: str) -> str:
    with open(SHARED / "ground_truth" / "acasxu_expected.csv") as f:
        for row in csv.DictReader(f):
            if (row["onnx"].endswith(f"_{net}_batch_2000.onnx")
                    and row["vnnlib"] == f"{prop}.vnnlib"):
                return row["expected"]
    return "?"


def main(argv=None) -> int:
    from robustc.compiler.vnnlib import vnnlib_problems
    from robustc.verify import VerifyOptions, verify
    from robustc.verify.input_split.search import SplitOptions
    from robustc.verify.vnncomp import vnncomp_answer

    ap = argparse.ArgumentParser()
    ap.add_argument("instances", nargs="*")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--batch", type=int, default=None, help="SplitOptions.batch (0: per part)")
    ap.add_argument("--max-unstable", type=int, default=None,
                    help="SplitOptions.batch_max_unstable")
    args = ap.parse_args(argv)
    split = SplitOptions()
    if args.batch is not None:
        split = dataclasses.replace(split, batch=args.batch)
    if args.max_unstable is not None:
        split = dataclasses.replace(split, batch_max_unstable=args.max_unstable)
    for inst in args.instances or DEFAULT:
        net, prop = inst.split(":")
        onnx = ACAS / f"ACASXU_run2a_{net}_batch_2000.onnx"
        problems = vnnlib_problems(ACAS / f"{prop}.vnnlib", onnx)
        start, cpu = time.perf_counter(), time.process_time()
        results = []
        for p in problems:
            left = args.timeout - (time.perf_counter() - start)
            results.append(verify(p, VerifyOptions(threads=1, time_limit=max(left, 0.1),
                                                   split=split)))
            if results[-1].verdict != "robust":
                break
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        answer = vnncomp_answer(results, args.timeout)
        parts = sum(r.stats.get("split_parts", 0) for r in results)
        exact = sum(r.stats.get("split_exact", 0) for r in results)
        split_s = sum(r.stats.get("split_s", 0.0) for r in results)
        rate = parts / (split_s or took)
        print(f"{net} {prop}: {answer:7s} (expected {expected(net, prop):5s}) {took:7.1f} s  "
              f"parts {parts:7d}  exact {exact:4d}  split {split_s:6.1f} s  "
              f"{rate:7.0f} parts/s  cpu {cpu:6.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
