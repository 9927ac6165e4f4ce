"""``robustc verify --timeout`` counts the whole command, from the process start (issue 23,
item 4): starting Python and importing took 2.5 s under load before ``main`` ran, time the
limit did not see. :func:`robustc.cli.main.process_age` reads the process's age from
``/proc``; here it is checked against a clock read by the parent around the child's
start (no speed is asserted: only that the age lies between what the child slept and the
time since the parent launched it)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

cli_main = importlib.import_module("robustc.cli.main")  # the module, not its main()
SPEC = Path(__file__).resolve().parents[2] / "examples" / "double_digits_verify.rspec"

CHILD = """
import time
time.sleep(0.5)
from robustc.cli.main import process_age
print(process_age(), time.time())
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc")
def test_the_age_of_a_process_counts_from_its_start():
    launched = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         check=True).stdout.split()
    age, now = float(out[0]), float(out[1])
    assert 0.5 <= age <= now - launched + 0.02  # /proc counts in 10 ms ticks


def test_main_with_argv_counts_from_the_call(monkeypatch):
    """The API and the tests call main(argv): their clock starts at the call, not at the
    (long-running) process's start."""
    monkeypatch.setattr(cli_main, "process_age", lambda: 1000.0)
    before = time.perf_counter()
    assert cli_main.main(["check", str(SPEC)]) == 0
    assert cli_main.STARTED >= before
