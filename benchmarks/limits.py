"""Benchmark: limits that must hold (issue 23): VNN-LIB loading time and peak memory against
file size, and how far ``robustc verify --timeout T`` runs past T.

Each measurement runs in a fresh child process (``python -c``), so its peak RSS
(``ru_maxrss`` of the child) is its own; the interpreter and imports are measured alone
first (``baseline``), and the time shown excludes the imports.

* ``vnnlib``: generated files read with :func:`robustc.compiler.vnnlib.read_vnnlib` and
  lowered with ``to_properties``, in seven shapes: ``box`` (``n`` inputs, two bounds each,
  one output constraint), ``vnncomp`` (the VNN-COMP CIFAR/ResNet files' layout: a
  comment, declarations, a blank line between the bounds of each input with 16-17 digit
  numbers, an output disjunction over ten labels), ``or2`` (ACAS Xu property 6's layout:
  one disjunction of two boxes over ``n`` inputs, each box one line), ``orN`` (a
  disjunction of boxes of 500 inputs, as many as the size needs, an output disjunction
  over ten labels), ``orNY`` (the same boxes, each with two output atoms in its
  conjunction: a case each, no shared output constraint), ``outputs`` (5 bounded inputs
  and a disjunction of ``n`` conjunctions over 10 outputs, each with a linear term
  ``(+ (* 2.0 Y_b) Y_c)``: read as arrays and lowered to an ``OrClauses`` condition;
  generated up to
  :data:`OUTPUTS_MAX_MB`) and ``asserts`` (5 bounded inputs and ``n`` separate top-level
  output assertions in runs of one shape, ``(assert C)``, ``(assert (or C C))`` or
  ``(assert (or (and C C) (and C)))``: each run read as arrays and lowered to an
  ``AndClauses`` / ``AndOfClauses``). Linear loading
  shows as a constant time and memory per MB; ``peak x`` is the peak RSS growth over the
  baseline divided by the file size.
* ``--timeout T`` (optional): every verify property of the example specs under
  ``robustc verify --timeout T``; the overshoot is the wall time of the whole command
  minus T (a negative value: it finished before the limit).
* ``--conv T [T ...]`` (optional): a generated 128x128 conv net (stride-1 convolutions of
  ``--channels`` channels, expensive to bound) and a robustness spec around a random
  image, under ``robustc verify --timeout T`` for each T: the overshoot and peak RSS of the
  whole command.
* ``--suites [SUITE ...]`` (optional; no names: all of :data:`ALL_SUITES`): per benchmark
  suite the worst time-limit overshoot and the peak RSS at ``--suite-timeout T`` (default
  20 s: a short limit stops more instances inside their heavy phases). A VNN-COMP suite of
  ``benchmarks/vnncomp.py`` runs as one child ``robustc verify SUITE.csv --timeout T
  --threads 1 --quiet --output LOG.jsonl`` (``OMP_NUM_THREADS=1``): ``--timeout`` caps
  each instance's listed limit (``min(listed, T)``; a large T keeps the listed ones), an
  instance's overshoot is its logged ``time_s`` (reading the ONNX and VNN-LIB files
  included, Python start-up not) minus its limit, the peak RSS is the child's
  ``ru_maxrss`` (``os.wait4``), and the answers are checked against the ground truth
  (``wrong``). ``examples`` (every example verify property) and ``dd64`` (the layered
  property of ``benchmarks/verify64.py`` on its first ``--dd64-images`` images, three
  64x64 networks each) run one whole ``robustc verify SPEC --timeout T --threads 1``
  command per property: the overshoot is the command's wall time, start-up included (the
  command's clock starts with its process), minus T. The load average before and after
  each suite is recorded; each suite's summary is saved as it ends.

    PYTHONPATH=. python benchmarks/limits.py [--mb 0.5 2 8] [--timeout 2] [--conv 30 60]
    PYTHONPATH=. python benchmarks/limits.py --mb --suites [SUITE ...] [--suite-timeout 20]

Prints a table and writes ``benchmarks/results/limits.json`` (merged: the parts not run
this time keep their saved figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
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
assert all(p.boxes[0].lower.size == q.n_inputs for p in props)
assert sum(len(p.boxes) for p in props) == int(sys.argv[2])  # the boxes written
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


def or2_file(path: Path, n: int) -> int:
    """Write a VNN-LIB file whose input set is one disjunction of two boxes over ``n``
    inputs (ACAS Xu property 6's layout, each box on one line); returns its size."""
    with path.open("w") as fh:
        fh.writelines(f"(declare-const X_{i} Real)\n" for i in range(n))
        fh.write("(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n\n(assert (or\n")
        for d in range(2):
            fh.write("    (and " + " ".join(f"(>= X_{i} {-(i + d) * 1e-6!r}) "
                                            f"(<= X_{i} {0.5 + i * 1e-6!r})"
                                            for i in range(n)) + ")\n")
        fh.write("))\n(assert (>= Y_1 Y_0))\n")
    return path.stat().st_size


#: Inputs of each box of the ``orN`` shape.
OR_WIDTH = 500


def orn_file(path: Path, n: int, outputs: bool = False) -> int:
    """Write a VNN-LIB file whose input set is a disjunction of ``n // OR_WIDTH`` boxes
    (at least one) over :data:`OR_WIDTH` inputs, one bound a line, and an output
    disjunction over ten labels (``outputs``: instead, two output atoms in each box's
    conjunction, so each box is its own case); returns its size."""
    rng = random.Random(0)
    with path.open("w") as fh:
        fh.writelines(f"(declare-const X_{i} Real)\n" for i in range(OR_WIDTH))
        fh.writelines(f"(declare-const Y_{j} Real)\n" for j in range(10))
        fh.write("\n(assert (or\n")
        for _ in range(max(1, n // OR_WIDTH)):
            fh.write("  (and\n")
            for i in range(OR_WIDTH):
                x = rng.uniform(-2, 2)
                fh.write(f"    (<= X_{i} {x + 0.015:.16g}) (>= X_{i} {x - 0.015:.16g})\n")
            if outputs:
                a, b = rng.sample(range(10), 2)
                fh.write(f"    (>= Y_{a} Y_{b}) (<= Y_{b} {rng.uniform(-1, 1)!r})\n")
            fh.write("  )\n")
        fh.write("))\n")
        if not outputs:
            fh.write("(assert (or\n" + "".join(f"    (and (>= Y_{j} Y_8))\n"
                                              for j in range(10) if j != 8) + "))\n")
    return path.stat().st_size


def outputs_file(path: Path, n: int) -> int:
    """Write a VNN-LIB file with 5 bounded inputs and a disjunction of ``n`` conjunctions
    over 10 outputs, each with a linear term; returns its size."""
    rng = random.Random(0)
    with path.open("w") as fh:
        fh.writelines(f"(declare-const X_{i} Real)\n" for i in range(5))
        fh.writelines(f"(declare-const Y_{j} Real)\n" for j in range(10))
        fh.writelines(f"(assert (>= X_{i} -1))\n(assert (<= X_{i} 1))\n" for i in range(5))
        fh.write("(assert (or\n")
        for _ in range(n):
            a, b, c = rng.sample(range(10), 3)
            fh.write(f"    (and (>= Y_{a} Y_{b}) (<= (+ (* 2.0 Y_{b}) Y_{c}) "
                     f"{rng.uniform(-1, 1)!r}))\n")
        fh.write("))\n")
    return path.stat().st_size


def asserts_file(path: Path, n: int) -> int:
    """Write a VNN-LIB file with 5 bounded inputs and ``n`` separate top-level output
    assertions over 10 outputs, in runs of 300 to 3,000 of one shape each: ``(assert C)``,
    ``(assert (or C C))`` or ``(assert (or (and C C) (and C)))``, each comparison ``C``
    with a linear term half of the time; returns its size."""
    rng = random.Random(0)

    def comparison(_) -> str:
        a, b, c = rng.sample(range(10), 3)
        return (f"(<= (+ (* 2.0 Y_{b}) Y_{c}) {rng.uniform(-1, 1)!r})" if rng.random() < 0.5
                else f"(>= Y_{a} Y_{b})")

    shapes = ["(assert C)", "(assert (or C C))", "(assert (or (and C C) (and C)))"]
    with path.open("w") as fh:
        fh.writelines(f"(declare-const X_{i} Real)\n" for i in range(5))
        fh.writelines(f"(declare-const Y_{j} Real)\n" for j in range(10))
        fh.writelines(f"(assert (>= X_{i} -1))\n(assert (<= X_{i} 1))\n" for i in range(5))
        done = 0
        while done < n:
            shape, k = rng.choice(shapes), min(n - done, rng.randint(300, 3000))
            fh.writelines(re.sub("C", comparison, shape) + "\n" for _ in range(k))
            done += k
    return path.stat().st_size


#: The largest ``outputs`` file generated, in MB (read as arrays since the array reader of
#: output clauses: no limit below the other shapes').
OUTPUTS_MAX_MB = None

#: Shape: (writer, the number of boxes of a file of n units, the largest size in MB).
SHAPES = {"box": (box_file, lambda n: 1, None), "vnncomp": (vnncomp_file, lambda n: 1, None),
          "or2": (or2_file, lambda n: 2, None),
          "orN": (orn_file, lambda n: max(1, n // OR_WIDTH), None),
          "orNY": (lambda path, n: orn_file(path, n, outputs=True),
                   lambda n: max(1, n // OR_WIDTH), None),
          "outputs": (outputs_file, lambda n: 1, OUTPUTS_MAX_MB),
          "asserts": (asserts_file, lambda n: 1, None)}


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
        for shape, (write, boxes, largest) in SHAPES.items():
            path = Path(tmp) / f"{shape}.vnnlib"
            per_input = write(path, 2000) / 2000  # bytes per input, about
            for mb in sizes_mb:
                if largest is not None and mb > largest:
                    continue
                n = max(1, int(mb * 1e6 / per_input))
                size = write(path, n)
                got = measure(LOAD, str(path), str(boxes(n)))
                extra = (got["rss_mib"] - base["rss_mib"]) * 2 ** 20
                rows.append({"case": f"{shape} {size / 1e6:.2f} MB", "mb": size / 1e6,
                             "s": got["s"], "cpu_s": got["cpu_s"], "rss_mib": got["rss_mib"],
                             "s_per_mb": got["s"] / (size / 1e6),
                             "extra_mib_per_mb": extra / 2 ** 20 / (size / 1e6),
                             "peak_x": extra / size})
    return rows


def timeout_rows(limit: float) -> list[dict]:
    """One row per example verify property: wall time of ``robustc verify --timeout`` (the
    ``examples`` suite of ``--suites``, in this mode's rows)."""
    summary = command_suite("examples", limit, example_commands())
    return [{"case": r["name"], "limit_s": limit, "s": r["time_s"],
             "overshoot_s": r["overshoot_s"], "verdict": r["answer"]} for r in summary["rows"]]


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


#: ``--suites`` with no names: the VNN-COMP suites of ``benchmarks/vnncomp.py`` (not its
#: ``test`` sample nor the 2021 MNIST-FC, which the 2022 one replaces), the example specs
#: and the 64x64 DOUBLE-MNIST networks of ``benchmarks/verify64.py``.
ALL_SUITES = ("acasxu", "mnist_fc2022", "verivital", "oval21", "cifar10_resnet", "examples",
              "dd64")


def run_child(cmd: list[str], cwd: Path = ROOT) -> dict:
    """Run ``cmd`` with one thread (``OMP_NUM_THREADS=1``, ``--threads 1`` is the caller's);
    returns its wall seconds (spawn to exit), exit code, stdout and peak RSS in MiB
    (``ru_maxrss`` of this child alone, read with ``os.wait4``)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                 text=True, start_new_session=True)  # no signal to our group
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        return {"s": wall, "rc": child.returncode, "out": out.read(),
                "rss_mib": usage.ru_maxrss / 1024}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def vnncomp_suite(name: str, limit: float) -> dict:
    """One VNN-COMP suite as ``robustc verify SUITE.csv --timeout T --threads 1 --quiet
    --output LOG.jsonl`` in one child process: per instance its ``time_s`` (loading the
    network and VNN-LIB file included) against its time limit (the listed one, capped by
    ``--timeout``), the answers against the ground truth, the child's peak RSS."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import vnncomp

    insts = vnncomp.instances(name)
    expected = {i["name"]: i["expected"] for i in insts}
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp, f"{name}.csv")
        table.write_text("".join(f"{i['onnx']},{i['vnnlib']},{i['timeout']:g}\n" for i in insts))
        log = Path(tmp, f"{name}.jsonl")
        before = _load()
        run = run_child([sys.executable, "-m", "robustc.cli", "verify", str(table), "--timeout",
                         f"{limit:g}", "--threads", "1", "--quiet", "--output", str(log)])
        after = _load()
        lines = log.read_text().splitlines() if log.is_file() else []
        records = [r for r in map(json.loads, filter(str.strip, lines)) if "name" in r]
    rows = [{"name": r["name"], "answer": r["answer"], "time_s": r["time_s"],
             "limit_s": r["timeout"], "overshoot_s": round(r["time_s"] - r["timeout"], 3),
             "expected": expected.get(r["name"], "unknown"), "detail": r["detail"][:160]}
            for r in records]
    wrong = [r["name"] for r in rows if r["answer"] in ("sat", "unsat")
             and r["expected"] in ("sat", "unsat") and r["answer"] != r["expected"]]
    return _suite_summary(name, limit, rows, run, before, after, len(insts),
                          decided=sum(r["answer"] in ("sat", "unsat") for r in rows),
                          wrong=wrong, errors=sum(r["answer"] == "error" for r in rows))


def _suite_summary(name: str, limit: float, rows: list[dict], run: dict, before: list[float],
                   after: list[float], listed: int, **counts) -> dict:
    worst = max(rows, key=lambda r: r["overshoot_s"], default=None)
    allowed = max(2.0, 0.05 * limit)
    return {"suite": name, "limit_s": limit, "instances": listed, "ran": len(rows), **counts,
            "unknown": len(rows) - counts["decided"] - counts.get("errors", 0),
            "worst_overshoot_s": worst["overshoot_s"] if worst else None,
            "worst_instance": worst["name"] if worst else None,
            "over_allowed": [r["name"] for r in rows if r["overshoot_s"] > allowed],
            "peak_rss_mib": round(run["rss_mib"], 1), "child_s": round(run["s"], 1),
            "child_rc": run["rc"], "child_tail": run["out"][-2000:] if run["rc"] not in (0, 1)
            else "", "load_before": before, "load_after": after, "rows": rows}


def command_suite(name: str, limit: float, commands: list[tuple[str, list[str], Path]]) -> dict:
    """Whole ``robustc verify SPEC -p P --timeout T`` commands, one child each: the
    overshoot is the command's wall time (Python start-up included: the command's clock
    starts with its process) minus T; peak RSS the largest child's."""
    before, rows, peak, runs = _load(), [], 0.0, []
    for case, args, cwd in commands:
        run = run_child([sys.executable, "-m", "robustc.cli", "verify", *args, "--timeout",
                         f"{limit:g}", "--threads", "1", "--json"], cwd=cwd)
        peak = max(peak, run["rss_mib"])
        runs.append(run)
        try:
            result = json.loads(run["out"].strip().splitlines()[-1])
        except (ValueError, IndexError):
            result = {"verdict": f"exit {run['rc']}", "reason": run["out"][-300:]}
        rows.append({"name": case, "answer": result.get("verdict", "?"),
                     "time_s": round(run["s"], 3), "limit_s": limit,
                     "overshoot_s": round(run["s"] - limit, 3),
                     "rss_mib": round(run["rss_mib"], 1),
                     "detail": str(result.get("reason", ""))[:160]})
    total = {"s": sum(r["s"] for r in runs), "rc": max((r["rc"] for r in runs), default=0),
             "rss_mib": peak, "out": ""}
    return _suite_summary(name, limit, rows, total, before, _load(), len(commands),
                          decided=sum(r["answer"] in ("robust", "not_robust") for r in rows),
                          errors=sum(r["answer"] not in ("robust", "not_robust", "unknown")
                                     for r in rows))


def example_commands() -> list[tuple[str, list[str], Path]]:
    """Every verify property of the example specs."""
    from robustc import specs
    from robustc.specs.ast import VerifyProperty

    return [(f"{spec.name}:{prop.name}", [str(spec), "-p", prop.name], ROOT)
            for spec in sorted(EXAMPLES.glob("*.rspec"))
            for prop in specs.parse(spec).properties if isinstance(prop, VerifyProperty)]


def dd64_commands(images: int, workdir: Path) -> list[tuple[str, list[str], Path]]:
    """The layered-neighbourhood property of ``benchmarks/verify64.py`` on its first
    ``images`` test images, for each of its three 64x64 networks (its specs, written under
    ``workdir``)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import verify64

    out = []
    for index in verify64.chosen_images(list(verify64.MODELS), images):
        item = verify64.write_specs(index, list(verify64.MODELS), workdir, list(verify64.EPS))
        out += [(f"{model}/img{index}", [str(spec)], spec.parent)
                for model, spec in item["specs"].items()]
    return out


def suite_rows(names: list[str], limit: float, images: int, save=None) -> list[dict]:
    """``--suites``: one summary per suite (see the module docstring), printed and passed
    to ``save`` as it ends."""
    out = []
    print(f"{'suite':<15} {'n':>4} {'decided':>7} {'unknown':>7} {'wrong':>5} {'worst over':>10}"
          f"  {'peak MiB':>8}  load before/after   worst instance", flush=True)
    for name in names:
        if name == "examples":
            summary = command_suite(name, limit, example_commands())
        elif name == "dd64":
            with tempfile.TemporaryDirectory() as tmp:
                summary = command_suite(name, limit, dd64_commands(images, Path(tmp)))
        else:
            summary = vnncomp_suite(name, limit)
        out.append(summary)
        if save is not None:
            save(summary)
        print(_suite_line(summary), flush=True)
        for r in summary["rows"]:
            if r["name"] in summary["over_allowed"]:
                print(f"    over: {r['name']}: {r['time_s']:.2f} s of {r['limit_s']:g} s, "
                      f"{r['answer']}: {r['detail']}", flush=True)
    return out


def _suite_line(s: dict) -> str:
    worst = "-" if s["worst_overshoot_s"] is None else f"{s['worst_overshoot_s']:+.2f} s"
    wrong = len(s["wrong"]) if "wrong" in s else "-"
    n = s["ran"] if s["ran"] == s["instances"] else f"{s['ran']}/{s['instances']}"  # cut short
    return (f"{s['suite']:<15} {n:>4} {s['decided']:>7} {s['unknown']:>7} {wrong:>5} "
            f"{worst:>10}  {s['peak_rss_mib']:>8.0f}  {s['load_before'][0]:>5.1f} / "
            f"{s['load_after'][0]:<5.1f}     {s['worst_instance']}")


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
    p.add_argument("--suites", nargs="*", choices=ALL_SUITES + ("test", "mnistfc2021"),
                   default=None, metavar="SUITE",
                   help="per benchmark suite, the worst overshoot of --suite-timeout and the "
                        f"peak RSS; no names: all of {', '.join(ALL_SUITES)}")
    p.add_argument("--suite-timeout", type=float, default=20.0, metavar="T",
                   help="--timeout of the --suites runs (default 20 s; it caps each VNN-COMP "
                        "instance's listed limit)")
    p.add_argument("--dd64-images", type=int, default=20, metavar="N",
                   help="test images of the dd64 suite (3 networks each; default 20)")
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
    saved = json.loads(out.read_text()) if out.is_file() else {}
    ran = {"vnnlib": rows, "timeout": limited, "conv": conv}  # kept from before when not run
    saved.update({"machine": platform.platform(), "python": platform.python_version(),
                  "cpu_count": os.cpu_count(), **{k: v for k, v in ran.items() if v}})

    def save(summary: dict) -> None:  # after each suite: a long sweep keeps what finished
        saved["suites"] = dict(saved.get("suites", {}), **{summary["suite"]: summary})
        write_json(out, saved)

    if args.suites is not None:
        suite_rows(list(args.suites or ALL_SUITES), args.suite_timeout, args.dd64_images, save)
        print(f"allowed: max(2 s, 5 %) = {max(2.0, 0.05 * args.suite_timeout):g} s over T")
    write_json(out, saved)
    print(f"-> {out}")


if __name__ == "__main__":
    main()
