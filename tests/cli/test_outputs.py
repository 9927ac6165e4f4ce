"""Issue 23 (hardening), outputs: destinations checked before the work, files written all
or nothing through one helper (robustc.files), write errors as one line and exit 2, and
strict JSON."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest

from robustc.cli import main
from robustc.cli.common import EXIT_ERROR, EXIT_OK
from robustc.errors import OutputError
from robustc.files import (
    atomic_path,
    check_output_dir,
    check_output_file,
    json_text,
    write_text,
    write_with,
)
from tests.cli.test_hardening import VNNLIB, write_net, write_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OUTPUT_COMMANDS = {
    "compile": EXAMPLES / "double_digits_verify.rspec",
    "maximize": EXAMPLES / "double_digits_maximize.rspec",
    "attack": EXAMPLES / "attack_jma.rspec",
    "patch": EXAMPLES / "patch_fc.rspec",
    "global": EXAMPLES / "global_digits.rspec",
}


def refuse(obj):
    raise ValueError(f"not strict JSON: {obj}")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_an_unwritable_output_folder_fails_before_the_work(command, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main([command, str(OUTPUT_COMMANDS[command]), "-o", str(blocker / "out")])
    out = capsys.readouterr()
    assert code == EXIT_ERROR
    assert f"robustc: error: cannot create the output folder {blocker / 'out'}: Not a " \
           f"directory" in out.err
    assert out.out == ""  # nothing ran: no result line, no path printed
    assert blocker.read_text() == "not a folder"


def test_an_output_folder_that_is_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = main(["compile", str(OUTPUT_COMMANDS["compile"]), "-o", str(blocker)])
    assert code == EXIT_ERROR
    assert f"cannot write to {blocker}: it exists and is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("where, words", [("missing/result.txt", "the folder {parent} does "
                                                                  "not exist"),
                                          ("", "it is a folder")])
def test_vnncomp_result_is_checked_before_verifying(tmp_path, capsys, where, words):
    query = tmp_path / "q.vnnlib"
    query.write_text(VNNLIB + "".join(f"(assert (>= X_{i} 0)) (assert (<= X_{i} 1))\n"
                                      for i in range(4)) + "(assert (>= Y_1 Y_0))\n")
    target = tmp_path / where if where else tmp_path
    code = main(["verify", str(query), "--network", str(write_net(tmp_path)),
                 "--vnncomp-result", str(target)])
    out = capsys.readouterr()
    assert code == EXIT_ERROR
    assert words.format(parent=target.parent) in out.err
    assert out.out == "" and "verifying" not in out.err


def test_compile_writes_each_model_all_or_nothing(tmp_path, capsys):
    spec = write_spec(tmp_path)
    out = tmp_path / "models"
    assert main(["compile", str(spec), "-o", str(out), "--format", "lp",
                 "--format", "mps"]) == EXIT_OK
    printed = capsys.readouterr().out.split()
    assert printed and sorted(printed) == sorted(str(p) for p in out.iterdir())
    assert all(Path(p).stat().st_size > 0 for p in printed)
    assert leftovers(out) == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    """An injected writer that fills the disk half way: the destination keeps its old
    content, the temporary file is gone, the error names the destination."""
    target = tmp_path / "report.json"
    target.write_text("old")

    def full_disk(tmp: Path) -> None:
        tmp.write_text("half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=f"cannot write {target}: No space left on device"):
        write_with(target, full_disk)
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_a_writer_that_writes_nothing_is_an_error(tmp_path):
    with pytest.raises(OutputError, match="the writer produced no file"):
        with atomic_path(tmp_path / "m.lp"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_rename_onto_a_folder_fails_cleanly(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputError, match="cannot write .*taken"):
        write_text(tmp_path / "taken", "x")
    assert leftovers(tmp_path) == []


def test_the_temporary_name_keeps_the_suffix_writers_read(tmp_path):
    with atomic_path(tmp_path / "case0.gurobi.lp") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".lp") and tmp.name[0] == "."
        np.save(tmp, np.zeros(1)) if tmp.suffix == ".npy" else tmp.write_text("x")
    assert (tmp_path / "case0.gurobi.lp").read_text() == "x"


def test_checks_name_the_path_and_the_reason(tmp_path):
    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and leftovers(tmp_path / "a" / "b") == []
    assert check_output_file(tmp_path / "x.txt") == tmp_path / "x.txt"
    assert not (tmp_path / "x.txt").exists()
    with pytest.raises(OutputError, match="does not exist"):
        check_output_file(tmp_path / "nope" / "x.txt")


def test_json_is_strict_non_finite_numbers_become_strings():
    from fractions import Fraction

    text = json_text({"margin": float("nan"), "b": np.array([np.inf, -np.inf, 1.5]),
                      "n": np.int64(3), "f": np.float64("nan"), "t": (1, 2),
                      "q": Fraction(1, 4), "p": Path("a/b")})
    data = json.loads(text, parse_constant=refuse)
    assert data == {"margin": "NaN", "b": ["Infinity", "-Infinity", 1.5], "n": 3, "f": "NaN",
                    "t": [1, 2], "q": 0.25, "p": "a/b"}
    with pytest.raises(TypeError, match="cannot write object as JSON"):
        json_text({"x": object()})
    assert [float(v) for v in data["b"][:2]] == [np.inf, -np.inf]


def test_verify_json_lines_are_strict_json(tmp_path, capsys):
    code = main(["verify", str(write_spec(tmp_path)), "--json", "--margin"])
    lines = capsys.readouterr().out.splitlines()
    assert code in (0, 1, 3) and len(lines) == 1
    data = json.loads(lines[0], parse_constant=refuse)
    assert data["name"] == "p" and data["verdict"] in ("robust", "not_robust", "unknown")


def test_fmt_in_place_rewrites_through_the_helper(tmp_path, capsys):
    spec = tmp_path / "s.rspec"
    spec.write_text('network   n = onnx("n.onnx")\n', encoding="utf-8")
    assert main(["fmt", "-i", str(spec)]) == EXIT_OK
    assert spec.read_text(encoding="utf-8") == 'network n = onnx("n.onnx")\n'
    assert leftovers(tmp_path) == []
