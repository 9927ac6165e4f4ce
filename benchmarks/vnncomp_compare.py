"""robustc's saved VNN-COMP answers next to the VNN-COMP 2022 tools' on the same instances.

Reads result files of ``benchmarks/vnncomp.py`` (one or more, e.g. a suite run in two
pieces) and the per-tool ``results.csv`` of VNN-COMP 2022 in
``../shared/benchmarks/vnncomp2022_results/<tool>/<benchmark>/``, and counts, per group of
instances (network and epsilon for MNIST-FC, property for ACAS Xu), how many each tool
answered correctly (its answer equals the ground truth; wrong answers and timeouts do not
count). The tools ran on their own hardware (alpha-beta-CROWN on a GPU), robustc on this
machine: the counts compare what was decided, the times are not comparable.

    PYTHONPATH=. python benchmarks/vnncomp_compare.py RESULT.json [MORE.json ...]

Prints a table and saves ``benchmarks/results/vnncomp_compare.json`` (``--output``).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "benchmarks"
RESULTS = SHARED / "vnncomp2022_results"
FOLDERS = {"mnist_fc2022": "mnist_fc", "acasxu": "acasxu"}


def group(name: str) -> str:
    """``mnist-net_256x4 eps 0.05`` or ``prop_3`` (ACAS Xu): how instances are counted."""
    net, prop = name.split("/")
    eps = re.search(r"_(0\.\d+)$", prop)
    return f"{net} eps {eps.group(1)}" if eps else prop


def key(onnx: str, vnnlib: str) -> str:
    return f"{Path(onnx).stem}/{Path(vnnlib).stem}"


def tool_answers(folder: str) -> dict[str, dict[str, str]]:
    """``{tool: {instance name: answer}}`` from the VNN-COMP 2022 results."""
    out = {}
    for path in sorted(RESULTS.glob(f"*/{folder}/results.csv")):
        with open(path) as f:
            out[path.parent.parent.name] = {key(row[1], row[2]): row[4].strip()
                                            for row in csv.reader(f) if len(row) > 4}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", help="JSON files written by benchmarks/vnncomp.py")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" /
                                           "vnncomp_compare.json"))
    args = p.parse_args(argv)
    if not RESULTS.is_dir():
        print(f"{RESULTS} is absent; nothing to compare")
        return 0
    rows, suite = {}, None
    for path in args.results:
        data = json.loads(Path(path).read_text())
        suite = suite or data["suite"]
        if data["suite"] != suite:
            raise SystemExit(f"{path}: suite {data['suite']!r}, expected {suite!r}")
        rows.update({r["name"]: r for r in data["instances"] if "robustc" in r})
    if suite not in FOLDERS:
        raise SystemExit(f"no VNN-COMP 2022 results for suite {suite!r}")
    names = list(rows)
    tools = {t: a for t, a in tool_answers(FOLDERS[suite]).items()
             if any(n in a for n in names)}  # tools that entered this benchmark
    groups = sorted({group(n) for n in names}, key=lambda g: [int(t) if t.isdigit() else t
                                                             for t in re.split(r"(\d+)", g)])
    table = []
    for g in groups + ["all"]:
        members = [n for n in names if g == "all" or group(n) == g]
        line = {"group": g, "instances": len(members),
                "robustc": sum(rows[n]["robustc"]["answer"] == rows[n]["expected"]
                               for n in members)}
        for tool, answers in tools.items():
            line[tool] = sum(answers.get(n) == rows[n]["expected"] for n in members)
        table.append(line)
    wrong = [n for n in names if rows[n]["robustc"]["answer"] in ("sat", "unsat")
             and rows[n]["expected"] in ("sat", "unsat")
             and rows[n]["robustc"]["answer"] != rows[n]["expected"]]
    times = [rows[n]["robustc"]["time_s"] for n in names]
    cols = ["group", "instances", "robustc"] + list(tools)
    print(" | ".join(cols))
    for line in table:
        print(" | ".join(str(line[c]) for c in cols))
    print(f"robustc wrong answers: {len(wrong)} {wrong}; median {statistics.median(times):.2f} s,"
          f" total {sum(times):.1f} s over {len(names)} instances")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"suite": suite, "results": args.results,
                                             "table": table, "wrong": wrong}, indent=1))
    print(f"saved {args.output}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
