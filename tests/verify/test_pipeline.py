"""The verification pipeline's decisions, errors and CLI contract."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import robustc.verify.milp as V
from robustc.backends.solve import LIMIT, SolveOutcome
from robustc.ir.property import Box, Linear, Property, output_gt
from robustc.verify import ERROR, NOT_ROBUST, ROBUST, UNKNOWN, Problem, VerifyOptions, verify
from tests.verify.nets import mlp_onnx, save_and_load


@pytest.fixture()
def small(tmp_path):
    """A 2-10-3 network and a box where y0 >= its grid minimum - 1 holds (robust)."""
    path = tmp_path / "net.onnx"
    graph = save_and_load(mlp_onnx(np.random.default_rng(4), [2, 10, 3]), path)
    box = Box(np.array([[-1.0, -1.0]]), np.array([[1.0, 1.0]]))
    return graph, path, box


def _problem(graph, path, box, cond, name="p"):
    return Problem(name, graph, (str(path),), Property(name, (box,), cond))


def test_a_solver_limit_with_an_incumbent_is_never_a_proof(small, monkeypatch):
    """Regression: HiGHS keeps incumbents above objective_bound; a limit must stay unknown."""
    graph, path, box = small
    cond = output_gt(3, 0, value=-1e6)  # any MILP query decides it; we fake the solver's state

    def stopped(run, model, options):
        return SolveOutcome(LIMIT, "highs", solution=np.zeros(model.num_vars), objective=3.9,
                            reason="Time limit reached")

    monkeypatch.setattr(V, "_solve", stopped)
    monkeypatch.setattr(V, "_linear_lower", lambda *a: -1.0)  # do not let bounds decide
    result = verify(_problem(graph, path, box, cond),  # nor alpha-CROWN (robustc.verify.alpha)
                    VerifyOptions(attack=False, alpha_steps=0))
    assert result.verdict == UNKNOWN and "Time limit" in result.reason


def test_real_time_limit_is_unknown_not_robust(small):
    graph, path, box = small
    wide = Box(box.lower * 50, box.upper * 50)
    result = verify(_problem(graph, path, wide, output_gt(3, 0, value=-1e9)),
                    VerifyOptions(attack=False, time_limit=1e-3))
    assert result.verdict in (UNKNOWN, ROBUST)
    if result.verdict == ROBUST:  # legitimate only when the bounds alone proved it
        assert result.stats["queries"] == 0


def test_gurobi_falls_back_to_highs_when_over_the_license(tmp_path):
    pytest.importorskip("gurobipy")
    from robustc.backends.gurobi import license_limits

    if license_limits() is None:
        pytest.skip("an unrestricted Gurobi license is installed")
    path = tmp_path / "wide.onnx"
    graph = save_and_load(mlp_onnx(np.random.default_rng(5), [3, 2500, 2]), path)
    box = Box(np.full((1, 3), -1.0), np.full((1, 3), 1.0))
    # all-positive output coefficients: every ReLU uses its convex side (an LP, fast),
    # while the model still has > 2,000 variables
    w = np.abs(graph.layers()[-1].weight[0])
    assert w.size == 2500
    cond = Linear(np.array([1.0, 0.0]), 1e6)
    problem = _problem(graph, path, box, cond)
    loose = verify(problem, VerifyOptions(solver="gurobi", attack=False, bounds="interval"))
    assert loose.verdict == ROBUST
    strict = verify(problem, VerifyOptions(solver="gurobi", strict_solver=True, attack=False,
                                           bounds="interval"))
    if loose.stats["queries"]:
        assert loose.solver == "highs" and loose.stats["notices"]
        assert strict.verdict == ERROR and "license" in strict.reason


def test_bad_inputs_give_error_verdicts(small):
    graph, path, box = small
    wrong_outputs = _problem(graph, path, box, output_gt(5, 0, value=0.0))
    assert verify(wrong_outputs).verdict == ERROR
    wrong_box = _problem(graph, path, Box(np.zeros((1, 3)), np.ones((1, 3))),
                         output_gt(3, 0, value=0.0))
    result = verify(wrong_box)
    assert result.verdict == ERROR and "shape" in result.reason
    unknown_solver = verify(_problem(graph, path, box, output_gt(3, 0, value=-1e6)),
                            VerifyOptions(solver="cplex", attack=False))
    assert unknown_solver.verdict in (ERROR, ROBUST)  # robust only if bounds alone decide
    missing = Problem("m", graph, (str(path) + ".gone",), Property("m", (box,), output_gt(
        3, 0, value=1e6)))
    assert verify(missing).verdict == ERROR


def test_empty_box_is_rejected():
    with pytest.raises(ValueError, match="empty input box"):
        Box(np.ones((1, 2)), np.zeros((1, 2)))


SPEC = """
network net = onnx("net.onnx")
input x = values([[0.2, -0.3]]) in [-1, 1]
labels names = ["a", "b", "c"]
decode net as multilabel(logit > {t}) over names
verify holds on net: forall x' in linf(x, 0.01): unchanged
verify fails on net: forall x' in linf(x, 0.9): unchanged
"""


def test_cli_json_and_exit_codes(small, tmp_path, capsys):
    graph, path, _ = small
    spec = tmp_path / "p.rspec"
    spec.write_text(SPEC.format(t=0.0))
    run = subprocess.run([sys.executable, "-m", "robustc.cli", "verify", str(spec), "--json"],
                         capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["name"] for r in lines] == ["holds", "fails"], run.stderr
    assert lines[0]["verdict"] == ROBUST and lines[1]["verdict"] == NOT_ROBUST
    for record in lines:
        assert {"name", "verdict", "time_s", "solver"} <= set(record)
    cex = lines[1]["counterexample"]
    assert np.asarray(cex["input"]).shape == (1, 2) and np.asarray(cex["output"]).size == 3
    assert run.returncode == 1
    # the other exit codes in this process (the entry point the command runs)
    from robustc.cli import main

    capsys.readouterr()
    assert main(["verify", str(spec), "-p", "holds"]) == 0
    assert "ROBUST" in capsys.readouterr().out
    assert main(["verify", str(spec), "-p", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no verify property named nope" in err and "Traceback" not in err


def test_cli_json_stdout_is_only_json_when_highs_solves(small, tmp_path):
    """HiGHS prints a banner on stdout at a process's first solver object; the CLI sends it
    to stderr so that ``--json`` output stays one JSON object a line."""
    spec = tmp_path / "p.rspec"
    spec.write_text(SPEC.format(t=0.0))
    run = subprocess.run([sys.executable, "-m", "robustc.cli", "verify", str(spec), "--json",
                          "--no-attack", "--bounds", "interval"],
                         capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(r["name"], r["verdict"]) for r in lines] == [("holds", ROBUST),
                                                          ("fails", NOT_ROBUST)], run.stderr
    assert lines[1]["solver"] == "highs" and lines[1]["stats"]["queries"] >= 1
    assert run.returncode == 1


def test_node_limit_is_deterministic_and_never_a_proof():
    from robustc.compiler import load_onnx, standard_passes
    from robustc.ir import evaluate
    from robustc.ir.property import AtLeast
    from tests.conftest import shared_benchmarks

    path = shared_benchmarks() / "vnncomp2021/benchmarks/acasxu/ACASXU_run2a_1_1_batch_2000.onnx"
    graph = standard_passes().run(load_onnx(path))
    x0 = np.random.default_rng(1).uniform(-0.3, 0.3, graph.input.shape)
    c = int(np.argmin(evaluate(graph, x0)))
    cond = AtLeast(tuple(output_gt(5, j, c) for j in range(5) if j != c), 4)
    box = Box(np.maximum(x0 - 0.05, -0.5), np.minimum(x0 + 0.05, 0.5))
    problem = _problem(graph, path, box, cond)
    runs = [verify(problem, VerifyOptions(attack=False, node_limit=1, threads=1, split=None,
                                          relu_split=None))
            for _ in range(2)]
    assert [r.verdict for r in runs] == [UNKNOWN, UNKNOWN]
    full = verify(problem, VerifyOptions(attack=False, threads=1, split=None))
    assert full.verdict == ROBUST  # the same cases, decided without the limit


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError(
    "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried "
    "to allocate 85899345920 bytes")])
def test_running_out_of_memory_is_unknown_with_the_reason(small, monkeypatch, exc):
    import robustc.verify.pipeline as pipeline

    graph, path, box = small

    def exhausted(*args, **kwargs):
        raise exc

    monkeypatch.setattr(pipeline, "compute_bounds", exhausted)
    result = verify(_problem(graph, path, box, output_gt(3, 0, value=-1e6)),
                    VerifyOptions(attack=False))
    assert result.verdict == UNKNOWN and "out of memory" in result.reason


def test_other_runtime_errors_are_not_taken_for_memory(small, monkeypatch):
    import robustc.verify.pipeline as pipeline

    graph, path, box = small
    monkeypatch.setattr(pipeline, "compute_bounds",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        verify(_problem(graph, path, box, output_gt(3, 0, value=-1e6)),
               VerifyOptions(attack=False))
