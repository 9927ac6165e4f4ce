"""``--timeout`` counts lowering the VNN-LIB file to properties too, and the lowering stops
when it has passed (issue 23, item 4): a fake clock that jumps a day ahead a few polls after
the reading has ended makes the deadline pass inside the lowering, whatever the machine's
speed; the lowering stops at its next poll (the line it names is far from the end), and the
command or the row ends ``unknown``, naming the lowering. No wall-clock time is asserted."""

from __future__ import annotations

import time

import pytest

import robustc.compiler.vnnlib as V
from robustc.cli import main
from robustc.cli.common import EXIT_UNKNOWN
from robustc.verify import VerifyOptions
from robustc.verify.vnncomp import TIMEOUT, Instance, run_instance
from tests.cli.test_hardening import write_net
from tests.faults.test_read_deadline import JumpAfter, big_vnnlib, stopped_line


class Counting:
    """``time.perf_counter`` that counts its calls (the reader's polls)."""

    def __init__(self):
        self.calls = 0

    def perf_counter(self) -> float:
        self.calls += 1
        return time.perf_counter()


def reading_polls(monkeypatch, text: str, file: str) -> int:
    """How many times reading ``text`` polls the clock under a deadline."""
    clock = Counting()
    monkeypatch.setattr(V, "time", clock)
    V.parse_vnnlib(text, file, deadline=time.perf_counter() + 600)
    monkeypatch.undo()
    return clock.calls


@pytest.mark.parametrize("one_command", [True, False])
def test_the_lowering_stops_at_its_next_poll_after_the_deadline(tmp_path, monkeypatch,
                                                                one_command):
    """Polled per assertion and per junction: one disjunction of many atoms as the general
    reader reads it (the fast reader keeps it as arrays, lowered in a few array
    operations), and many assertions."""
    path, total = big_vnnlib(tmp_path, one_command)
    query = V.parse_vnnlib(path.read_text(), str(path), fast=not one_command)
    assert V.to_properties(query, (1, 4), 3)  # no deadline: it lowers
    clock = JumpAfter(3)
    monkeypatch.setattr(V, "time", clock)
    with pytest.raises(V.ReadTimeout, match="time limit reached while lowering the VNN-LIB "
                                            "file to properties") as info:
        V.to_properties(query, (1, 4), 3, deadline=time.perf_counter() + 600)
    assert clock.calls == 3  # the poll that saw the jump was the last
    assert 0 < stopped_line(str(info.value)) < total // 2  # it stopped early in the file


def test_a_row_whose_time_runs_out_while_lowering_is_a_timeout(tmp_path, monkeypatch):
    path, _ = big_vnnlib(tmp_path)
    polls = reading_polls(monkeypatch, path.read_text(), str(path))
    monkeypatch.setattr(V, "time", JumpAfter(polls + 2))
    row = Instance(onnx=str(write_net(tmp_path)), vnnlib=str(path), timeout=600.0,
                   where="instances.csv:1")
    record = run_instance(row, VerifyOptions())
    assert (record["verdict"], record["answer"]) == ("unknown", TIMEOUT)
    assert "time limit reached while lowering the VNN-LIB file" in record["detail"]
    assert record["result_file"] == "timeout\n"


def test_the_command_says_unknown_naming_the_lowering(tmp_path, monkeypatch, capsys):
    path, _ = big_vnnlib(tmp_path)
    polls = reading_polls(monkeypatch, path.read_text(), str(path))
    monkeypatch.setattr(V, "time", JumpAfter(polls + 2))
    code = main(["verify", str(path), "--network", str(write_net(tmp_path)), "--timeout",
                 "600"])
    out = capsys.readouterr().out
    assert code == EXIT_UNKNOWN
    assert "big.vnnlib: UNKNOWN: " in out and "while lowering the VNN-LIB file" in out
