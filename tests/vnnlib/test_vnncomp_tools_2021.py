"""benchmarks/vnncomp.py's count of the VNN-COMP 2021 tools' right answers beside
robustc's: disputed rows count only as robustc settled them, and on the shared ground
truth the counts are the 2021 report's (alpha-beta-CROWN: 15 on oval21, 58 on
cifar10_resnet)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.conftest import shared_benchmarks

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("vnncomp_bench", ROOT / "benchmarks" / "vnncomp.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _row(expected, sat_by, unsat_by, robustc=None):
    row = {"expected": expected, "by_2021": {"sat": sat_by, "unsat": unsat_by}}
    if robustc:
        row["robustc"] = {"answer": robustc}
    return row


def test_disputed_rows_count_as_robustc_settled_them():
    rows = [_row("unsat", [], ["A", "B"]),
            _row("sat", ["B"], []),
            _row("disputed", ["A"], ["B"], robustc="unsat"),   # B right
            _row("disputed", ["A"], ["B"], robustc="timeout"),  # nobody counted
            _row("unsat", ["C"], ["A"]),                        # C wrong: listed with 0
            {"expected": "unsat"}]                              # no 2021 columns: skipped
    assert bench.tools_2021(rows) == {"B": 3, "A": 2, "C": 0}
    assert bench.tools_2021([{"expected": "sat"}]) == {}


def test_the_2021_counts_of_the_shared_ground_truth():
    shared_benchmarks()
    oval = bench.instances("oval21")
    assert len(oval) == 30 and all("by_2021" in r for r in oval)
    # oval21's 3 disputed rows: robustc settles them sat by replayed witnesses
    for r in oval:
        if r["expected"] == "disputed":
            r["robustc"] = {"answer": "sat"}
    assert bench.tools_2021(oval)["a-b-CROWN"] == 15
    assert bench.tools_2021(bench.instances("cifar10_resnet"))["a-b-CROWN"] == 58
    assert all("by_2021" not in r for r in bench.instances("acasxu"))
