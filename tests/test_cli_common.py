"""What every subcommand shares (robustc/cli/common.py): one ``--set`` parser with one
behaviour, one exit-code table, and the worst-result rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustc.cli import main
from robustc.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNKNOWN,
    EXIT_VIOLATED,
    parse_overrides,
    verdict_exit,
    worst_exit,
)
from robustc.errors import SpecError

SPEC = Path(__file__).resolve().parents[1] / "examples" / "double_digits_verify.rspec"
SPEC_COMMANDS = ["check", "verify", "compile", "maximize", "attack", "patch", "global"]


def test_overrides_strip_names_and_keep_value_texts():
    assert parse_overrides([" eps = 0.05 ", "target=\"8\"", "b=[0.1, 0]", "e="]) == {
        "eps": "0.05", "target": '"8"', "b": "[0.1, 0]", "e": ""}


@pytest.mark.parametrize("item", ["eps", "=3", "  =x"])
def test_overrides_without_a_name_or_equals_sign_are_errors(item):
    with pytest.raises(SpecError, match="--set expects NAME=VALUE"):
        parse_overrides([item])


@pytest.mark.parametrize("command", SPEC_COMMANDS)
def test_every_spec_command_reads_set_the_same_way(command, capsys, tmp_path):
    argv = [command, str(SPEC), "--set", "eps"]
    if command in ("compile", "attack", "patch", "global", "maximize"):
        argv += ["--output", str(tmp_path / "out")]
    assert main(argv) == EXIT_ERROR
    assert "--set expects NAME=VALUE, got 'eps'" in capsys.readouterr().err


def test_worst_result_decides_error_violated_unknown_ok():
    assert worst_exit([]) == EXIT_OK
    assert worst_exit([EXIT_OK, EXIT_UNKNOWN]) == EXIT_UNKNOWN
    assert worst_exit([EXIT_UNKNOWN, EXIT_VIOLATED, EXIT_OK]) == EXIT_VIOLATED
    assert worst_exit([EXIT_VIOLATED, EXIT_ERROR, EXIT_UNKNOWN]) == EXIT_ERROR
    assert verdict_exit(["robust", "unknown", "not_robust"]) == EXIT_VIOLATED
    assert verdict_exit(["met", "undecided"]) == EXIT_UNKNOWN
    assert verdict_exit(["met", "undecided", "not_met"]) == EXIT_VIOLATED
