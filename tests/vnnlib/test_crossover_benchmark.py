"""benchmarks/vnnlib_crossover.py on a small file: the arrays and the general reader read
the same property from commands below and above ``_SMALL_COMMAND`` tokens, the script
restores the threshold and writes its JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from robustc.compiler import vnnlib

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("vnnlib_crossover",
                                               ROOT / "benchmarks" / "vnnlib_crossover.py")
crossover = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(crossover)


def test_both_readers_agree_and_the_threshold_is_restored(tmp_path):
    out = tmp_path / "crossover.json"
    saved = vnnlib._SMALL_COMMAND
    assert crossover.main(["--k", "2", "40", "--commands", "12", "--repeat", "1",
                           "--output", str(out)]) == 0
    assert vnnlib._SMALL_COMMAND == saved
    rows = json.loads(out.read_text())["rows"]
    assert [r["tokens"] for r in rows] == [14, 204]  # one below, one above the threshold
    assert all(r["arrays_ms"] > 0 and r["general_ms"] > 0 for r in rows)


def test_the_query_is_one_command_per_assertion():
    """Consecutive assertions alternate ``or`` / ``and``: no run of one shape forms."""
    text = crossover.query(3, 4)
    asserts = [line for line in text.splitlines() if line.startswith("(assert (or")
               or line.startswith("(assert (and")]
    assert len(asserts) == 4 and asserts[0].startswith("(assert (and")
    assert asserts[1].startswith("(assert (or") and asserts[0].count("(>=") == 3
