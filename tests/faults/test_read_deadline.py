"""``--timeout`` counts reading the VNN-LIB file, and the reading stops when it has passed
(issue 23, item 4): a fake clock that jumps a day ahead after a chosen number of readings
makes the deadline pass inside the file, whatever the machine's speed; the reader stops at
its next poll (the line it names is far from the end), and the command or the row ends
``unknown``, naming the reading. No wall-clock time is asserted."""

from __future__ import annotations

import time

import pytest

import robustc.compiler.vnnlib as V
from robustc.cli import main
from robustc.cli.common import EXIT_UNKNOWN
from robustc.verify import VerifyOptions
from robustc.verify.vnncomp import TIMEOUT, Instance, run_instance
from tests.cli.test_hardening import VNNLIB, write_net

N_CASES = 40_000  # an output disjunction of this many atoms: many blocks of the fast reader


def big_vnnlib(folder, one_command: bool = True) -> tuple:
    """A file of many output atoms: one disjunction (one command) or one assert each."""
    lines = VNNLIB + "".join(f"(assert (>= X_{i} 0)) (assert (<= X_{i} 0.1))\n"
                             for i in range(4))
    atoms = [f"(and (>= Y_{k % 3} {k * 1e-6:.6f}))" for k in range(N_CASES)]
    lines += "(assert (or\n" + "".join(f"  {a}\n" for a in atoms) + "))\n" if one_command \
        else "".join(f"(assert (or {a} {a}))\n" for a in atoms)
    path = folder / "big.vnnlib"
    path.write_text(lines)
    return path, lines.count("\n")


class JumpAfter:
    """``time.perf_counter`` for the reader: real, a day ahead from the ``n``-th call on."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def perf_counter(self) -> float:
        self.calls += 1
        return time.perf_counter() + (86400.0 if self.calls >= self.n else 0.0)


def stopped_line(message: str) -> int:
    return int(message.rsplit("at line ", 1)[1].rstrip(")"))


@pytest.mark.parametrize("fast, one_command", [(True, True), (True, False), (False, False)])
def test_the_reader_stops_at_its_next_poll_after_the_deadline(tmp_path, monkeypatch, fast,
                                                              one_command):
    """Polled per block by the fast reader (inside one long command too) and per command;
    the general reader does not interrupt a command (one disjunction: not tested)."""
    path, total = big_vnnlib(tmp_path, one_command)
    text = path.read_text()
    V.parse_vnnlib(text, str(path), fast=fast)  # no deadline: the whole file reads
    clock = JumpAfter(3)
    monkeypatch.setattr(V, "time", clock)
    with pytest.raises(V.ReadTimeout, match="time limit reached while reading the VNN-LIB") \
            as info:
        V.parse_vnnlib(text, str(path), fast=fast, deadline=time.perf_counter() + 600)
    assert clock.calls == 3  # the poll that saw the jump was the last
    assert stopped_line(str(info.value)) < total // 2  # it stopped early in the file


def test_a_row_whose_time_runs_out_while_reading_is_a_timeout(tmp_path, monkeypatch):
    path, _ = big_vnnlib(tmp_path)
    monkeypatch.setattr(V, "time", JumpAfter(2))
    row = Instance(onnx=str(write_net(tmp_path)), vnnlib=str(path), timeout=600.0,
                   where="instances.csv:1")
    record = run_instance(row, VerifyOptions())
    assert (record["verdict"], record["answer"]) == ("unknown", TIMEOUT)
    assert "time limit reached while reading the VNN-LIB file" in record["detail"]
    assert record["result_file"] == "timeout\n"


def test_the_command_says_unknown_naming_the_reading(tmp_path, monkeypatch, capsys):
    path, _ = big_vnnlib(tmp_path)
    monkeypatch.setattr(V, "time", JumpAfter(2))
    code = main(["verify", str(path), "--network", str(write_net(tmp_path)), "--timeout",
                 "600"])
    out = capsys.readouterr().out
    assert code == EXIT_UNKNOWN
    assert "big.vnnlib: UNKNOWN: " in out and "while reading the VNN-LIB file" in out
