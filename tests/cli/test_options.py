"""Issue 23 (hardening), options: limits finite and > 0, counts >= 1, refused by argparse
(exit 2, the option named) before any work; a missing optional part (Ray, a CUDA device,
Gurobi) is one line and exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustc.cli import main
from robustc.cli.common import EXIT_ERROR
from robustc.cli.main import build_parser

SPEC = Path(__file__).resolve().parents[2] / "examples" / "double_digits_verify.rspec"
GLOBAL_SPEC = SPEC.with_name("global_digits.rspec")
SECONDS = "must be a finite number of seconds > 0"


@pytest.mark.parametrize("command, option, value, words", [
    ("verify", "--timeout", "nan", SECONDS),
    ("verify", "--timeout", "inf", SECONDS),
    ("verify", "--timeout", "-1", SECONDS),
    ("verify", "--timeout", "0", SECONDS),
    ("verify", "--timeout", "soon", "expected a number of seconds, got 'soon'"),
    ("verify", "--threads", "0", "must be an integer >= 1"),
    ("verify", "--threads", "-3", "must be an integer >= 1"),
    ("maximize", "--timeout", "inf", SECONDS),
    ("maximize", "--call-timeout", "0", SECONDS),
    ("maximize", "--max-failures", "-1", "must be an integer >= 0"),
    ("maximize", "--effort", "nan", "must be a finite number >= 0"),
    ("patch", "--timeout", "-5", SECONDS),
    ("global", "--workers", "0", "must be an integer >= 1"),
    ("global", "--verify-timeout", "inf", SECONDS),
    ("global", "--verify-nodes", "0", "must be an integer >= 1"),
    ("global", "--verify-samples", "-1", "must be an integer >= 0"),
    ("global", "--seed", "-1", "must be an integer >= 0"),
    ("verify", "--seed", "-2", "must be an integer >= 0"),
])
def test_bad_option_values_are_usage_errors_naming_the_option(command, option, value, words,
                                                              capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, str(SPEC), option, value])
    assert stop.value.code == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"robustc {command}: error: argument {option}: {words}" in err
    assert f"got {value!r}" in err


@pytest.mark.parametrize("command", ["verify", "maximize", "attack", "patch", "global"])
def test_the_spec_argument_is_always_a_file(command, tmp_path, capsys):
    """A folder (or any name not ending in .rspec) is read as a file, never parsed as text."""
    assert main([command, str(tmp_path), "-o" if command != "verify" else "--json",
                 *([str(tmp_path / "out")] if command != "verify" else [])]) == EXIT_ERROR
    assert f"robustc: error: {tmp_path}: cannot read spec file: Is a directory" in \
        capsys.readouterr().err


def test_good_option_values_pass_unchanged():
    args = build_parser().parse_args(["verify", "s.rspec", "--timeout", "1e-3", "--threads",
                                      "2"])
    assert (args.timeout, args.threads) == (0.001, 2)
    args = build_parser().parse_args(["maximize", "s.rspec", "--max-failures", "0",
                                      "--effort", "0"])
    assert (args.max_failures, args.effort) == (0, 0.0)


def test_ray_without_ray_installed_is_one_line_and_exit_2(capsys):
    pytest.importorskip("torch")
    try:
        import ray  # noqa: F401
        pytest.skip("Ray is installed here: the missing-Ray path cannot run")
    except ImportError:
        pass
    code = main(["global", str(GLOBAL_SPEC), "--ray", "local", "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert "robustc: error: --ray needs Ray, which is not installed: pip install " \
           "'robustc[ray]'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["verify", str(SPEC), "--device", "cuda"],
                                  ["attack", str(SPEC.with_name("attack_jma.rspec")),
                                   "--device", "cuda"]])
def test_cuda_without_a_gpu_is_one_line_and_exit_2(argv, capsys, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the no-GPU path cannot run")
    code = main(argv + ["-o", str(tmp_path / "out")] if argv[0] == "attack" else argv)
    out = capsys.readouterr()
    assert code == EXIT_ERROR
    assert out.err.strip().splitlines()[-1] == (
        f"robustc: error: device 'cuda' asked for, but PyTorch sees no CUDA device "
        f"(torch {torch.__version__}); use --device cpu")
    assert out.out == ""  # refused before any property ran


def test_a_gurobi_failure_while_writing_is_a_solver_error(tmp_path):
    """A real Gurobi failure (its writer cannot create the file) becomes a robustc
    ``SolverError`` naming the file, which the CLI prints as one line with exit 2."""
    pytest.importorskip("gurobipy")
    import numpy as np
    import scipy.sparse as sp

    from robustc.backends import gurobi
    from robustc.backends.export import write_model
    from robustc.backends.milp.model import MilpModel
    from robustc.errors import SolverError, SolverUnavailable

    try:
        gurobi.require()
    except SolverUnavailable as exc:
        pytest.skip(f"Gurobi cannot start here: {exc}")
    model = MilpModel(sp.csr_matrix(np.ones((1, 2))), np.array([0.0]), np.array([1.0]),
                      np.zeros(2), np.ones(2), np.zeros(2, bool), np.ones(2), 0.0,
                      np.arange(2), np.zeros(2), ("x_0", "x_1"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SolverError, match="file/m.gurobi.lp: Gurobi cannot write"):
        write_model(model, blocker / "m", ("gurobi",))
    assert write_model(model, tmp_path / "m", ("gurobi",)) == [tmp_path / "m.gurobi.lp"]
    assert "x_0" in (tmp_path / "m.gurobi.lp").read_text()
