"""Benchmark: glibc's mmap threshold against peak memory and speed, one VNN-COMP instance.

The figures behind ``robustc.files.limits.MMAP_THRESHOLD`` and ``docs/verify.md``
("Memory of the graph search"). Each setting runs the instance in a child process of its
own (the threshold is process-wide), through ``benchmarks/vnncomp.py``'s
``run_robustc`` at ``min(listed limit, --cap)``, one thread:

- ``default``: glibc's adaptive threshold throughout (the graph search's
  ``large_allocations_mapped`` made a no-op);
- ``scoped``: robustc as shipped (the threshold set around the graph search only);
- ``whole:SIZE``: the threshold ``SIZE`` (bytes, or ``4M``-style) for the whole run and
  the graph search's own setting off (what robustc first did; it slowed the input split).

Prints one row per setting (answer, seconds, peak RSS, domains the graph ReLU split
bounded, ``-`` where it did not run) and saves JSON. ``--parallel 2`` runs two settings
side by side, as the figures in the docs were taken.

    PYTHONPATH=. python benchmarks/malloc_threshold.py --suite cifar10_resnet \\
        --only resnet_4b/prop_1_ --cap 100 --parallel 2 default scoped whole:4M whole:1M
    PYTHONPATH=. python benchmarks/malloc_threshold.py --suite acasxu \\
        --only 4_2_batch_2000/prop_2 --parallel 2 default whole:4M
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import contextlib, json, sys
sys.path.insert(0, {bench!r}); sys.path.insert(0, {root!r})
from robustc.files import limits
from robustc.verify.relu_split import strategy
setting = {setting!r}
if setting != "scoped":  # the graph search's own setting off
    strategy.large_allocations_mapped = lambda *a: contextlib.nullcontext(False)
if setting.startswith("whole:"):
    assert limits._set_mmap_threshold(int(setting[6:])), "no mallopt (not glibc)"
import vnncomp
from robustc.verify import VerifyOptions
from robustc.verify.vnncomp import Instance, run_instance
inst = json.loads(sys.argv[1])
row = Instance(inst["onnx"], inst["vnnlib"], inst["timeout"], inst["name"])
record = run_instance(row, VerifyOptions(threads=1))
domains = [r.get("stats", {{}}).get("relu_split_domains") for r in record["results"]]
domains = [d for d in domains if d is not None]
print(json.dumps({{"answer": record["answer"], "time_s": record["time_s"],
                  "peak_rss_mb": vnncomp._peak_rss_mb(),
                  "domains": sum(domains) if domains else None}}))
"""


def _setting(text: str) -> str:
    if text in ("default", "scoped"):
        return text
    if text.startswith("whole:"):
        from robustc.files.limits import parse_size

        return f"whole:{parse_size(text[6:])}"
    raise argparse.ArgumentTypeError(f"expected default, scoped or whole:SIZE, got {text!r}")


def run_one(inst: dict, setting: str) -> dict:
    """``inst`` under ``setting`` in a child process; its record."""
    code = _CHILD.format(bench=str(ROOT / "benchmarks"), root=str(ROOT), setting=setting)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(inst)], capture_output=True,
                         text=True, env=env, check=False)
    if out.returncode != 0:
        return {"setting": setting, "error": out.stderr.strip().splitlines()[-1:]}
    return {"setting": setting, **json.loads(out.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", type=_setting,
                        help="default, scoped or whole:SIZE (e.g. whole:4M)")
    parser.add_argument("--suite", required=True)
    parser.add_argument("--only", required=True, help="regex on 'network/property' names")
    parser.add_argument("--cap", type=float, default=None, help="seconds (default: listed)")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--output", type=Path,
                        default=ROOT / "benchmarks" / "results" / "malloc_threshold.json")
    args = parser.parse_args(argv)

    import re

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import vnncomp

    found = [i for i in vnncomp.instances(args.suite) if re.search(args.only, i["name"])]
    if not found:
        parser.error(f"no {args.suite} instance matches {args.only!r}")
    inst = found[0]
    if args.cap is not None:
        inst["timeout"] = min(inst["timeout"], args.cap)
    print(f"{inst['name']} at {inst['timeout']:g} s")
    with concurrent.futures.ThreadPoolExecutor(max(1, args.parallel)) as pool:
        rows = list(pool.map(lambda s: run_one(inst, s), args.settings))
    print(f"{'setting':>16} {'answer':>8} {'seconds':>8} {'peak MiB':>9} {'domains':>8}")
    for r in rows:
        if "error" in r:
            print(f"{r['setting']:>16} error: {r['error']}")
            continue
        dom = "-" if r["domains"] is None else str(r["domains"])
        print(f"{r['setting']:>16} {r['answer']:>8} {r['time_s']:8.1f} "
              f"{r['peak_rss_mb']:9.0f} {dom:>8}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"instance": inst, "parallel": args.parallel,
                                       "machine": platform.platform(), "rows": rows},
                                      indent=1))
    print(f"saved {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
