"""``verify --timeout T`` counts the command's start-up against the first property.

The clock is :data:`robustc.cli.main.STARTED` (set by each ``main()`` call); here it is set
as if the command had started 1,000 s ago, so the first property has no time left and the
second gets its whole limit from the end of the first. No wall-clock assert.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import robustc.cli.verify as verify_cli
from robustc.cli.main import build_parser

SPEC = Path(__file__).resolve().parents[2] / "examples" / "double_digits_verify.rspec"


def test_first_property_pays_for_the_start_up(monkeypatch, capsys):
    cli_main = importlib.import_module("robustc.cli.main")
    monkeypatch.setattr(cli_main, "STARTED", time.perf_counter() - 1000.0)
    args = build_parser().parse_args(["verify", str(SPEC), "--timeout", "60", "--threads", "1",
                                      "--json", "-p", "keep_seven", "-p", "labels_stable_pgd"])
    code = verify_cli.run(args)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in rows] == ["keep_seven", "labels_stable_pgd"]
    assert rows[0]["verdict"] == "unknown" and "time limit" in rows[0]["reason"]
    assert rows[1]["verdict"] == "not_robust"  # its 60 s start when the first one ends
    assert code == 1


def test_without_a_limit_nothing_changes(monkeypatch, capsys):
    cli_main = importlib.import_module("robustc.cli.main")
    monkeypatch.setattr(cli_main, "STARTED", time.perf_counter() - 1000.0)
    args = build_parser().parse_args(["verify", str(SPEC), "--threads", "1", "--json",
                                      "-p", "keep_seven"])
    assert verify_cli.run(args) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "robust"
