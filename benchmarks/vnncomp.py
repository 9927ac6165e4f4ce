"""VNN-COMP suites against the ground truth: solved, wrong, unknown, median and total time.

Runs every instance of a suite's instances CSV (network, property, time limit) through the
robustc pipeline in this process, maps the verdicts to the competition's answers
(:mod:`robustc.verify.vnncomp`) and compares them to ``ground_truth/<suite>_expected.csv``. A
``sat`` answer always carries a counterexample replayed on onnxruntime. With ``--marabou``
and ``maraboupy`` installed, Marabou runs the same instances (one subprocess each, same time
limit, one worker) and the per-instance and total time ratios are printed. Marabou's queue
runs beside robustc's (``--parallel``, the default with ``--marabou``: one core each, so a
2-core machine finishes both in the time of the slower) or after each robustc instance
(``--no-parallel``).

    PYTHONPATH=. python benchmarks/vnncomp.py --suite acasxu [--only REGEX] [--limit N]

Prints a table and saves JSON under ``benchmarks/results/vnncomp_<suite>.json`` after every
instance; ``--resume`` keeps the answers already in that file and runs only the rest, so a
long suite can be run in pieces (the summary then covers every saved instance).
Time per instance includes loading the network and the VNN-LIB file (not Python start-up).
For the convolutional suites of 2021 the summary ends with each 2021 tool's right answers
on the same instances beside robustc's (:func:`tools_2021`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "benchmarks"
SUITES = {  # name: (benchmark folder, instances CSV, expected CSV)
    "test": ("vnncomp2021/benchmarks/test", "test_instances.csv", "test_expected.csv"),
    "acasxu": ("vnncomp2021/benchmarks/acasxu", "acasxu_instances.csv", "acasxu_expected.csv"),
    "mnist_fc2022": ("vnncomp2022_benchmarks/benchmarks/mnist_fc", "instances.csv",
                     "mnist_fc2022_expected.csv"),
    "mnistfc2021": ("vnncomp2021/benchmarks/mnistfc", "mnistfc_instances.csv",
                    "mnistfc2021_expected.csv"),
    # The convolutional suites of VNN-COMP 2021; expected answers from the 2021 votes
    # ("disputed" where tools disagreed: settled only by a replayed witness or a proof).
    "verivital": ("vnncomp2021/benchmarks/verivital", "verivital_instances.csv",
                  "cnn2021_expected.csv"),
    "oval21": ("vnncomp2021/benchmarks/oval21", "oval21_instances.csv", "cnn2021_expected.csv"),
    "cifar10_resnet": ("vnncomp2021/benchmarks/cifar10_resnet", "cifar10_resnet_instances.csv",
                       "cnn2021_expected.csv"),
}
DECIDED = ("sat", "unsat")


def instances(suite: str) -> list[dict]:
    """The suite's instances with absolute paths, time limit and expected answer (the rows
    read by :func:`robustc.verify.vnncomp.read_instances`, as ``robustc verify FILE.csv``)."""
    from robustc.verify.vnncomp import read_instances

    folder, inst_csv, exp_csv = SUITES[suite]
    expected, by_2021 = {}, {}
    with open(SHARED / "ground_truth" / exp_csv) as f:
        for row in csv.DictReader(f):
            key = (Path(row["onnx"]).name, Path(row["vnnlib"]).name)
            expected[key] = row["expected"]
            if "sat_by" in row:  # the 2021 tools' answers (the convolutional suites' file)
                by_2021[key] = {a: (row[f"{a}_by"] or "").split() for a in DECIDED}
    out = []
    for r in read_instances(SHARED / folder / inst_csv):
        key = (Path(r.onnx).name, Path(r.vnnlib).name)
        inst = {"onnx": r.onnx, "vnnlib": r.vnnlib, "timeout": r.timeout, "name": r.name,
                "expected": expected.get(key, "unknown")}
        if key in by_2021:
            inst["by_2021"] = by_2021[key]
        out.append(inst)
    return out


def tools_2021(rows: list[dict]) -> dict[str, int]:
    """How many of ``rows`` each VNN-COMP 2021 tool answered right, from the expected
    answers' ``sat_by`` / ``unsat_by`` columns: its answer is the expected one, or, on a
    ``disputed`` row, the one robustc settled (a replayed witness or a proof; a disputed
    row robustc left open counts for no tool). Empty where the file has no such columns.
    The tools ran in 2021 on their own hardware at the listed limits."""
    counts: dict[str, int] = {}
    for r in rows:
        by = r.get("by_2021")
        if not by:
            continue
        truth = r["expected"] if r["expected"] in DECIDED else \
            r.get("robustc", {}).get("answer") if r["expected"] == "disputed" else None
        for answer in DECIDED:
            for tool in by[answer]:
                counts[tool] = counts.get(tool, 0) + (answer == truth)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def run_robustc(inst: dict, threads: int) -> dict:
    """One instance through robustc (:func:`robustc.verify.vnncomp.run_instance`, what
    ``robustc verify FILE.csv`` runs per row); returns answer, time and the details."""
    from robustc.verify import VerifyOptions
    from robustc.verify.vnncomp import Instance, run_instance

    row = Instance(inst["onnx"], inst["vnnlib"], inst["timeout"], inst["name"])
    record = run_instance(row, VerifyOptions(threads=threads))
    return {"answer": record["answer"], "time_s": record["time_s"],
            "detail": record["detail"], "peak_rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    """The process's peak resident memory so far, MiB (the instances run in this process,
    so an instance's figure is the peak over it and every instance before it)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


MARABOU_SNIPPET = """
import sys, time
from maraboupy import Marabou
onnx, vnnlib, timeout = sys.argv[1], sys.argv[2], int(float(sys.argv[3]))
net = Marabou.read_onnx(onnx)
opts = Marabou.createOptions(timeoutInSeconds=timeout, verbosity=0, numWorkers=1)
code, _, _ = net.solve(verbose=False, options=opts, propertyFilename=vnnlib)
print("MARABOU_ANSWER", code)
"""


def run_marabou(inst: dict) -> dict:
    """One instance through Marabou in a subprocess (same time limit plus 10 s grace)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", MARABOU_SNIPPET, inst["onnx"],
                               inst["vnnlib"], str(inst["timeout"])], capture_output=True,
                              text=True, timeout=inst["timeout"] + 10)
        found = re.search(r"MARABOU_ANSWER (\S+)", proc.stdout)
        answer = found.group(1).lower() if found else "error"
    except subprocess.TimeoutExpired:
        answer = "timeout"
    return {"answer": answer if answer in DECIDED else "timeout" if "timeout" in answer
            else answer, "time_s": time.perf_counter() - start}


def marabou_available() -> bool:
    """Whether ``maraboupy`` can be imported (checked in a subprocess: it is heavy)."""
    proc = subprocess.run([sys.executable, "-c", "import maraboupy"], capture_output=True)
    return proc.returncode == 0


def score(rows: list[dict], key: str) -> dict:
    """Solved / wrong / unknown counts and median / total time of one tool's answers."""
    solved = [r for r in rows if r[key]["answer"] in DECIDED and r[key]["answer"] ==
              r["expected"]]
    wrong = [r for r in rows if r[key]["answer"] in DECIDED and r["expected"] in DECIDED
             and r[key]["answer"] != r["expected"]]
    times = [r[key]["time_s"] for r in rows]
    disputed = {r["name"]: r[key]["answer"] for r in rows
                if r["expected"] == "disputed" and r[key]["answer"] in DECIDED}
    return {"instances": len(rows), "solved": len(solved), "wrong": len(wrong),
            "wrong_instances": [r["name"] for r in wrong],
            "unknown": len(rows) - len(solved) - len(wrong) - len(disputed),
            "disputed_settled": disputed,
            "median_s": statistics.median(times) if times else 0.0,
            "total_s": sum(times),
            "worst_overshoot_s": max((r[key]["time_s"] - r["timeout"] for r in rows),
                                     default=0.0),
            "peak_rss_mb": max((r[key].get("peak_rss_mb", 0.0) for r in rows), default=0.0)}


def main(argv: list[str] | None = None) -> int:
    """Run a suite; prints a table; saves JSON; returns 1 when an answer is wrong."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=sorted(SUITES), default="test")
    p.add_argument("--only", help="regex on 'network/property' names")
    p.add_argument("--limit", type=int, help="first N matching instances")
    p.add_argument("--marabou", action="store_true", help="also run Marabou (maraboupy)")
    p.add_argument("--parallel", action=argparse.BooleanOptionalAction, default=True,
                   help="run Marabou's queue beside robustc's, one core each (default)")
    p.add_argument("--resume", action="store_true",
                   help="keep the answers already saved in the output file")
    p.add_argument("--threads", type=int, default=1, help="solver threads (default 1)")
    p.add_argument("--timeout-cap", type=float, metavar="S",
                   help="run each instance at min(its listed timeout, S): a quick look, not "
                        "the competition's setting (the JSON records both)")
    p.add_argument("--output", help="JSON path (default benchmarks/results/vnncomp_<suite>.json)")
    args = p.parse_args(argv)
    if not SHARED.is_dir():
        print(f"benchmarks folder {SHARED} is absent; nothing to run")
        return 0
    todo = [i for i in instances(args.suite) if not args.only or re.search(args.only, i["name"])]
    todo = todo[:args.limit] if args.limit else todo
    if args.timeout_cap:
        for inst in todo:
            inst["listed_timeout"] = inst["timeout"]
            inst["timeout"] = min(inst["timeout"], args.timeout_cap)
    marabou = args.marabou and marabou_available()
    if args.marabou and not marabou:
        print("maraboupy not installed: Marabou comparison skipped")
    out = Path(args.output or ROOT / "benchmarks" / "results" / f"vnncomp_{args.suite}.json")
    saved = {}
    if args.resume and out.is_file():
        saved = {r["name"]: r for r in json.loads(out.read_text())["instances"]}
    rows = [dict(inst, **{k: v for k, v in saved.get(inst["name"], {}).items()
                          if k in ("robustc", "marabou")}) for inst in todo]
    tools = ["robustc"] + (["marabou"] if marabou else [])
    print(f"{'instance':44} {'expected':8} {'tool':8} {'answer':8} {'time_s':>8}", flush=True)

    def save() -> dict:
        done = [r for r in rows if all(t in r for t in tools)]
        summary = {t: score(done, t) for t in tools}
        if any("by_2021" in r for r in done):
            summary["tools_2021"] = tools_2021(done)
        if marabou:
            summary["time_ratio_total"] = summary["robustc"]["total_s"] / max(
                summary["marabou"]["total_s"], 1e-9)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"suite": args.suite, "only": args.only, "limit": args.limit,
                                   "cpu_count": os.cpu_count(), "parallel": args.parallel,
                                   "summary": summary,
                                   "instances": [r for r in rows
                                                 if any(t in r for t in tools)]}, indent=1))
        return summary

    def finish(row: dict, tool: str, result: dict) -> None:
        row[tool] = result
        print(_line(row, tool), flush=True)
        save()

    pool = concurrent.futures.ThreadPoolExecutor(1) if marabou and args.parallel else None
    pending = []
    for row in rows:
        if marabou and "marabou" not in row and pool:
            pending.append((row, pool.submit(run_marabou, row)))
    for row in rows:
        if "robustc" not in row:
            finish(row, "robustc", run_robustc(row, args.threads))
        if marabou and "marabou" not in row and not pool:
            finish(row, "marabou", run_marabou(row))
        while pending and pending[0][1].done():
            finish(pending[0][0], "marabou", pending.pop(0)[1].result())
    for row, future in pending:
        finish(row, "marabou", future.result())
    if marabou:
        print(f"\n{'instance':44} {'expected':8} {'robustc':8} {'time_s':>8} {'marabou':8} "
              f"{'time_s':>8} {'ratio':>6}")
        for row in rows:
            r, m = row["robustc"], row["marabou"]
            print(f"{row['name'][:44]:44} {row['expected']:8} {r['answer']:8} "
                  f"{r['time_s']:8.2f} {m['answer']:8} {m['time_s']:8.2f} "
                  f"{r['time_s'] / max(m['time_s'], 1e-9):6.2f}")
    summary = save()
    _print_summary(summary)
    print(f"saved {out}")
    return 1 if summary["robustc"]["wrong"] else 0


def _line(row: dict, tool: str) -> str:
    r = row[tool]
    mark = " WRONG" if r["answer"] in DECIDED and row["expected"] in DECIDED and \
        r["answer"] != row["expected"] else ""
    return f"{row['name'][:44]:44} {row['expected']:8} {tool:8} {r['answer']:8} " \
        f"{r['time_s']:8.2f}{mark}"


def _print_summary(summary: dict) -> None:
    for tool in ("robustc", "marabou"):
        if tool in summary:
            s = summary[tool]
            print(f"{tool}: {s['solved']}/{s['instances']} solved, {s['wrong']} wrong, "
                  f"{s['unknown']} unknown/timeout; median {s['median_s']:.2f} s, total "
                  f"{s['total_s']:.1f} s; worst time over the limit "
                  f"{s.get('worst_overshoot_s', 0.0):+.2f} s; peak RSS "
                  f"{s.get('peak_rss_mb', 0.0):.0f} MiB")
            for name, answer in s.get("disputed_settled", {}).items():
                print(f"  disputed {name}: {answer} (replayed witness or proof)")
    if "time_ratio_total" in summary:
        print(f"total time ratio robustc/marabou: {summary['time_ratio_total']:.2f}")
    if summary.get("tools_2021"):
        s = summary["robustc"]
        print(f"\nright answers on these {s['instances']} instances (2021 tools: VNN-COMP 2021,"
              f" own hardware, listed limits; disputed rows as robustc settled them)")
        mine = s["solved"] + len(s.get("disputed_settled", {}))
        for tool, n in [("robustc (this run)", mine), *summary["tools_2021"].items()]:
            print(f"  {tool:20} {n:4d}")


if __name__ == "__main__":
    sys.exit(main())
