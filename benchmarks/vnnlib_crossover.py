"""Benchmark: where the VNN-LIB reader's arrays start to beat its general reader per command.

``robustc.compiler.vnnlib._SMALL_COMMAND`` sends a command of fewer tokens to the general
reader and a larger one to the block's arrays (``_build``). This script reads files of
``--commands`` assertions ``(assert (or (>= Y_i Y_j) ...))`` of k comparisons each (5
tokens a comparison; commands far apart in shape so that no run of assertions forms) with
the threshold forced to 0 (every command by the arrays) and to infinity (every command by
the general reader), best of ``--repeat`` reads each, and prints the milliseconds a
command on each side for k in ``--k``. Both sides must read the same property (checked).
Saves JSON.

    PYTHONPATH=. python benchmarks/vnnlib_crossover.py [--k 1 2 5 10 20 30 50 100]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def query(k: int, commands: int, outputs: int = 10) -> str:
    """A VNN-LIB text: 4 inputs in [0, 1], ``outputs`` outputs, ``commands`` assertions of
    ``k`` comparisons each (every other one a disjunction and a conjunction, so consecutive
    assertions differ in shape and stay single commands)."""
    lines = [f"(declare-const X_{i} Real)" for i in range(4)]
    lines += [f"(declare-const Y_{i} Real)" for i in range(outputs)]
    for i in range(4):
        lines += [f"(assert (>= X_{i} 0.0))", f"(assert (<= X_{i} 1.0))"]
    for c in range(commands):
        pairs = [((c + j) % outputs, (c + j + 1) % outputs) for j in range(k)]
        body = " ".join(f"(>= Y_{a} Y_{b})" for a, b in pairs)
        lines.append(f"(assert ({'or' if c % 2 else 'and'} {body}))")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 5, 10, 20, 30, 50, 100])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path,
                        default=ROOT / "benchmarks" / "results" / "vnnlib_crossover.json")
    args = parser.parse_args(argv)

    from robustc.compiler import vnnlib

    saved = vnnlib._SMALL_COMMAND
    rows = []
    print(f"{'k':>4} {'tokens':>6} {'arrays ms':>10} {'general ms':>11}  faster")
    try:
        for k in args.k:
            text = query(k, args.commands)
            best, props = {}, {}
            for side, threshold in (("arrays", 0), ("general", 10 ** 9)):
                vnnlib._SMALL_COMMAND = threshold
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    props[side] = vnnlib.parse_vnnlib(text, "crossover.vnnlib")
                    times.append(time.perf_counter() - t)
                best[side] = min(times) / args.commands * 1e3
            if repr(props["arrays"]) != repr(props["general"]):
                raise SystemExit(f"k={k}: the two readers disagree")
            tokens = 5 * k + 4
            faster = "arrays" if best["arrays"] < best["general"] else "general"
            rows.append({"k": k, "tokens": tokens, "arrays_ms": best["arrays"],
                         "general_ms": best["general"], "faster": faster})
            print(f"{k:4} {tokens:6} {best['arrays']:10.3f} {best['general']:11.3f}  {faster}",
                  flush=True)
    finally:
        vnnlib._SMALL_COMMAND = saved
    print(f"threshold in force: {saved} tokens")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"commands": args.commands, "repeat": args.repeat,
                                       "threshold": saved, "machine": platform.platform(),
                                       "rows": rows}, indent=1))
    print(f"saved {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
