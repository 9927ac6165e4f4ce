"""Benchmark: limits that must hold (issue 23): VNN-LIB loading time and peak memory against
file size, and how far ``robustc verify --timeout T`` runs past T.

Each measurement runs in a fresh child process (``python -c``), so its peak RSS
(``ru_maxrss`` of the child) is its own; the interpreter and imports are measured alone
first (``baseline``), and the time shown excludes the imports.

* ``vnnlib``: generated files read with :func:`robustc.compiler.vnnlib.read_vnnlib` and
  lowered with ``to_properties``, in two shapes: ``box`` (``n`` inputs, two bounds each,
  one output constraint) and ``vnncomp`` (the VNN-COMP CIFAR/ResNet files' layout: a
  comment, declarations, a blank line between the bounds of each input with 16-17 digit
  numbers, an output disjunction over ten labels). Linear loading shows as a constant
  time and memory per MB; ``peak x`` is the peak RSS growth over the baseline divided by
  the file size.
* ``--timeout T`` (optional): every verify property of the example specs under
  ``robustc verify --timeout T``; the overshoot is the wall time of the whole command
  minus T (a negative value: it finished before the limit).
* ``--conv T [T ...]`` (optional): a generated 128x128 conv net (stride-1 convolutions of
  ``--channels`` channels, expensive to bound) and a robustness spec around a random
  image, under ``robustc verify --timeout T`` for each T: the overshoot and peak RSS of the
  whole command.

    PYTHONPATH=. python benchmarks/limits.py [--mb 0.5 2 8] [--timeout 2] [--conv 30 60]

Prints a table and writes ``benchmarks/results/limits.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

#: The child's measurement: import robustc's VNN-LIB module, run CODE, then print CODE's
#: wall and CPU seconds (the CPU time is about what an idle machine's wall time would be)
#: and the process's peak RSS in MiB.
CHILD = """
import json, resource, sys, time
import robustc.compiler.vnnlib
t, c = time.perf_counter(), time.process_time()
{code}
print(json.dumps({{"s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
LOAD = """
from robustc.compiler.vnnlib import read_vnnlib, to_properties
q = read_vnnlib(sys.argv[1])
props = to_properties(q, (1, q.n_inputs), q.n_outputs)
assert len(props) == 1 and props[0].boxes[0].lower.size == q.n_inputs
assert len(q.bounds) == 2 * q.n_inputs  # every bound read by the fast reader's arrays
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


def vnncomp_file(path: Path, n: int) -> int:
    """Write a VNN-LIB file laid out as the VNN-COMP CIFAR/ResNet ones (``n`` inputs, 10
    outputs, label 8 must stay the largest); returns its size in bytes."""
    rng = random.Random(0)
    with path.open("w") as fh:
        fh.write("; CIFAR10 property with label: 8.\n\n")
        fh.writelines(f"(declare-const X_{i} Real)\n" for i in range(n))
        fh.write("\n" + "".join(f"(declare-const Y_{j} Real)\n" for j in range(10)) +
                 "\n; Input constraints:\n")
        for i in range(n):
            x = rng.uniform(-2, 2)
            fh.write(f"(assert (<= X_{i} {x + 0.015:.16g}))\n(assert (>= X_{i} {x - 0.015:.16g}))"
                     f"\n\n")
        fh.write("\n; Output constraints:\n(assert (or\n" +
                 "".join(f"    (and (>= Y_{j} Y_8))\n" for j in range(10) if j != 8) + "))\n")
    return path.stat().st_size


SHAPES = {"box": (box_file, 2), "vnncomp": (vnncomp_file, 10)}  # writer, outputs


def measure(code: str, *args: str) -> dict:
    """Wall seconds and peak RSS (MiB) of ``code`` run in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", CHILD.format(code=code), *args], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def vnnlib_rows(sizes_mb: list[float]) -> list[dict]:
    """One row per file shape and size: bytes, load seconds, peak RSS, and per-MB
    figures."""
    base = measure(IMPORTS)
    rows = [{"case": "baseline (imports only)", "mb": 0.0, "s": base["s"],
             "rss_mib": base["rss_mib"]}]
    with tempfile.TemporaryDirectory() as tmp:
        for shape, (write, _) in SHAPES.items():
            path = Path(tmp) / f"{shape}.vnnlib"
            per_input = write(path, 1000) / 1000  # bytes per input, about
            for mb in sizes_mb:
                size = write(path, max(1, int(mb * 1e6 / per_input)))
                got = measure(LOAD, str(path))
                extra = (got["rss_mib"] - base["rss_mib"]) * 2 ** 20
                rows.append({"case": f"{shape} {size / 1e6:.2f} MB", "mb": size / 1e6,
                             "s": got["s"], "cpu_s": got["cpu_s"], "rss_mib": got["rss_mib"],
                             "s_per_mb": got["s"] / (size / 1e6),
                             "extra_mib_per_mb": extra / 2 ** 20 / (size / 1e6),
                             "peak_x": extra / size})
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


CONV_NET = """
import sys, warnings
import numpy as np, torch
torch.manual_seed(0)
c = int(sys.argv[1])
conv = [torch.nn.Conv2d(1, c, 3, 1, 1), torch.nn.ReLU(), torch.nn.Conv2d(c, c, 3, 1, 1),
        torch.nn.ReLU(), torch.nn.Conv2d(c, c, 3, 1, 1), torch.nn.ReLU(),
        torch.nn.Conv2d(c, 4, 4, 4, 0), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * 32 * 32, 10)]
net = torch.nn.Sequential(*conv)
x = torch.rand(1, 1, 128, 128)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.onnx.export(net, x, "conv128.onnx", dynamo=False, input_names=["x"],
                      output_names=["y"])
np.save("img.npy", x.numpy()[0])
print(int(net(x).argmax()))
"""
CONV_SPEC = """network n = onnx("conv128.onnx")
input x = npy("img.npy") in [0, 1]
labels classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
decode n as argmax over classes
verify ball on n:
    forall x' in linf(x, 0.0005):
        argmax == "{label}"
"""


#: ``python -c RUN_PEAK verify ...``: the robustc command, then its peak RSS (KiB, itself
#: or any child) on stderr.
RUN_PEAK = """
import resource, runpy, sys
sys.argv = ["robustc"] + sys.argv[1:]
try:
    runpy.run_module("robustc.cli", run_name="__main__")
finally:
    peak = max(resource.getrusage(who).ru_maxrss
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(f"peak_kib {peak}", file=sys.stderr)
"""


def conv_rows(limits: list[float], channels: int) -> list[dict]:
    """One row per time limit: wall time, overshoot and peak RSS of ``robustc verify
    --timeout T`` on the generated conv net (see the module docstring)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        label = subprocess.run([sys.executable, "-c", CONV_NET, str(channels)], cwd=tmp,
                               capture_output=True, text=True, check=True).stdout.split()[-1]
        Path(tmp, "conv128.rspec").write_text(CONV_SPEC.format(label=label))
        for limit in limits:
            start = time.perf_counter()
            child = subprocess.Popen([sys.executable, "-c", RUN_PEAK, "verify",
                                      "conv128.rspec", "--timeout", str(limit), "--json"],
                                     cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
            out, err = child.communicate()
            wall = time.perf_counter() - start
            result = json.loads(out.splitlines()[-1]) if out.strip() else {}
            peak = [int(w.split()[1]) for w in err.splitlines() if w.startswith("peak_kib ")]
            rows.append({"case": f"conv128 x{channels} channels", "limit_s": limit, "s": wall,
                         "overshoot_s": wall - limit,
                         "allowed_s": max(2.0, 0.05 * limit),
                         "rss_mib": peak[-1] / 1024 if peak else None,
                         "verdict": result.get("verdict", f"exit {child.returncode}"),
                         "reason": result.get("reason", "")})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, nargs="*", default=[0.5, 2.0, 8.0],
                   help="VNN-LIB file sizes to generate, in MB")
    p.add_argument("--timeout", type=float, default=None,
                   help="also run every example verify property under --timeout T")
    p.add_argument("--conv", type=float, nargs="*", default=[],
                   help="also run the generated 128x128 conv net under these --timeout values")
    p.add_argument("--channels", type=int, default=16,
                   help="channels of the conv net's stride-1 convolutions (default 16)")
    args = p.parse_args()
    rows = vnnlib_rows(args.mb) if args.mb else []
    print(f"{'case':<28} {'s':>7} {'cpu s':>7} {'peak MiB':>9} {'s/MB':>6} {'MiB/MB':>7} "
          f"{'peak x':>7}")
    nan = float("nan")
    for r in rows:
        print(f"{r['case']:<28} {r['s']:7.2f} {r.get('cpu_s', nan):7.2f} {r['rss_mib']:9.1f} "
              f"{r.get('s_per_mb', nan):6.2f} {r.get('extra_mib_per_mb', nan):7.1f} "
              f"{r.get('peak_x', nan):7.2f}")
    conv = conv_rows(args.conv, args.channels) if args.conv else []
    for r in conv:
        print(f"{r['case']}: --timeout {r['limit_s']:g}: {r['s']:.2f} s, over T "
              f"{r['overshoot_s']:.2f} s (allowed {r['allowed_s']:.1f} s), peak "
              f"{r['rss_mib'] or nan:.0f} MiB, {r['verdict']}: {r['reason']}")
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
                     "vnnlib": rows, "timeout": limited, "conv": conv})
    print(f"-> {out}")


if __name__ == "__main__":
    main()
