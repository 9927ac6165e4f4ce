"""Benchmark: limits that must hold (issue 23): VNN-LIB loading time and peak memory against
file size, and how far ``robustc verify --timeout T`` runs past T.

Each measurement runs in a fresh child process (``python -c``), so its peak RSS
(``ru_maxrss`` of the child) is its own; the interpreter and imports are measured alone
first (``baseline``), and the time shown excludes the imports.

* ``vnnlib``: generated box files (``n`` inputs, two bounds each, one output constraint)
  read with :func:`robustc.compiler.vnnlib.read_vnnlib` and lowered with ``to_properties``.
  Linear loading shows as a constant time and memory per MB.
* ``--timeout T`` (optional): every verify property of the example specs under
  ``robustc verify --timeout T``; the overshoot is the wall time of the whole command
  minus T (a negative value: it finished before the limit).

    PYTHONPATH=. python benchmarks/limits.py [--mb 0.5 2 8] [--timeout 2]

Prints a table and writes ``benchmarks/results/limits.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

#: The child's measurement: import robustc's VNN-LIB module, run CODE, then print CODE's
#: wall seconds and the process's peak RSS in MiB.
CHILD = """
import json, resource, sys, time
import robustc.compiler.vnnlib
t = time.perf_counter()
{code}
print(json.dumps({{"s": time.perf_counter() - t,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
LOAD = """
from robustc.compiler.vnnlib import read_vnnlib, to_properties
q = read_vnnlib(sys.argv[1])
props = to_properties(q, (1, q.n_inputs), q.n_outputs)
assert len(props) == 1 and props[0].boxes[0].lower.size == q.n_inputs
"""
IMPORTS = "pass"


def box_file(path: Path, n: int) -> int:
    """Write a VNN-LIB file with ``n`` bounded inputs and one output constraint; returns
    its size in bytes."""
    with path.open("w") as fh:
        fh.writelines(f"(declare-const X_{i} Real)\n" for i in range(n))
        fh.write("(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n")
        fh.writelines(f"(assert (>= X_{i} {i * 1e-6!r}))\n(assert (<= X_{i} {0.5 + i * 1e-6!r}))\n"
                      for i in range(n))
        fh.write("(assert (>= Y_1 Y_0))\n")
    return path.stat().st_size


def measure(code: str, *args: str) -> dict:
    """Wall seconds and peak RSS (MiB) of ``code`` run in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", CHILD.format(code=code), *args], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def vnnlib_rows(sizes_mb: list[float]) -> list[dict]:
    """One row per file size: bytes, load seconds, peak RSS, and per-MB figures."""
    base = measure(IMPORTS)
    rows = [{"case": "baseline (imports only)", "mb": 0.0, "s": base["s"],
             "rss_mib": base["rss_mib"]}]
    per_input = 62  # bytes per input of box_file, about
    with tempfile.TemporaryDirectory() as tmp:
        for mb in sizes_mb:
            path = Path(tmp) / "box.vnnlib"
            size = box_file(path, max(1, int(mb * 1e6 / per_input)))
            got = measure(LOAD, str(path))
            rows.append({"case": f"vnnlib {size / 1e6:.2f} MB", "mb": size / 1e6, "s": got["s"],
                         "rss_mib": got["rss_mib"],
                         "s_per_mb": got["s"] / (size / 1e6),
                         "extra_mib_per_mb": (got["rss_mib"] - base["rss_mib"]) / (size / 1e6)})
    return rows


def timeout_rows(limit: float) -> list[dict]:
    """One row per example verify property: wall time of ``robustc verify --timeout``."""
    from robustc import specs
    from robustc.specs.ast import VerifyProperty

    rows = []
    for spec in sorted(EXAMPLES.glob("*.rspec")):
        for prop in specs.parse(spec).properties:
            if not isinstance(prop, VerifyProperty):
                continue
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "robustc.cli", "verify", str(spec),
                                   "-p", prop.name, "--timeout", str(limit), "--json"],
                                  cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - start
            verdict = json.loads(done.stdout.splitlines()[-1])["verdict"] if done.stdout \
                else f"exit {done.returncode}"
            rows.append({"case": f"{spec.name}:{prop.name}", "limit_s": limit, "s": wall,
                         "overshoot_s": wall - limit, "verdict": verdict})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, nargs="+", default=[0.5, 2.0, 8.0],
                   help="VNN-LIB file sizes to generate, in MB")
    p.add_argument("--timeout", type=float, default=None,
                   help="also run every example verify property under --timeout T")
    args = p.parse_args()
    rows = vnnlib_rows(args.mb)
    print(f"{'case':<28} {'s':>7} {'peak MiB':>9} {'s/MB':>6} {'MiB/MB':>7}")
    nan = float("nan")
    for r in rows:
        print(f"{r['case']:<28} {r['s']:7.2f} {r['rss_mib']:9.1f} "
              f"{r.get('s_per_mb', nan):6.2f} {r.get('extra_mib_per_mb', nan):7.1f}")
    limited = timeout_rows(args.timeout) if args.timeout else []
    if limited:
        print(f"\n{'property':<44} {'s':>7} {'over T':>7}  verdict")
        for r in limited:
            print(f"{r['case']:<44} {r['s']:7.2f} {r['overshoot_s']:7.2f}  {r['verdict']}")
        print(f"worst overshoot: {max(r['overshoot_s'] for r in limited):.2f} s "
              f"(T = {args.timeout:g} s)")
    from robustc.files import check_output_dir, write_json

    out = check_output_dir(ROOT / "benchmarks" / "results") / "limits.json"
    write_json(out, {"machine": platform.platform(), "python": platform.python_version(),
                     "vnnlib": rows, "timeout": limited})
    print(f"-> {out}")


if __name__ == "__main__":
    main()
