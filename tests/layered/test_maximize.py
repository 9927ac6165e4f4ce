"""Maximal layered neighbourhoods on a tiny network, against an exhaustive grid search.

The grid oracle (tests/layered/tiny.py) decides every box exactly with scipy LPs, so it is
independent of robustc's bounds, MILP encoding and solvers. Robust sets are nested, so for
each (eps_0, eps_1) on the grid the largest robust eps_2 is found by bisection on the grid:
the table covers every grid vector.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np
import pytest

from robustc.analyses.maximize import (
    FIXED,
    METHODS,
    NAIVE,
    SENSITIVITY,
    LayeredProblem,
    MaximizeOptions,
    fixed_cutting_weights,
    maximize,
    sensitivity_cutting_weights,
)
from robustc.compiler.onnx_import import load_onnx
from robustc.compiler.passes import standard_passes
from robustc.ir import property as P
from robustc.specs.rings import layer_indices
from robustc.verify import ROBUST, VerifyOptions, verify
from tests.layered import tiny

STEP, STEPS = 0.05, 10          # the grid: multiples of 0.05 in [0, 0.5]
LEX = np.array([400.0, 20.0, 1.0])  # weights under which w . eps orders the grid lexically
BASE = MaximizeOptions(precision=STEP, max_eps=STEP * STEPS, call_time_limit=20.0,
                       iterations=30, step=0.05, threads=1)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    params = tiny.weights()
    path = tiny.write_onnx(tmp_path_factory.mktemp("tiny") / "tiny.onnx", params)
    graph = standard_passes().run(load_onnx(str(path)))
    region = np.zeros((tiny.H, tiny.W), dtype=bool)
    region[:, 0] = True
    rings = layer_indices(region, "chebyshev", 2)  # columns 0, 1, 2; column 3 is fixed
    return params, path, graph, rings, region


def make_problem(net, weights) -> LayeredProblem:
    params, path, graph, rings, region = net
    cond = P.output_gt(2, 0, value=0.0, label="'0' present")
    return LayeredProblem("tiny", graph, (str(path),), params["x0"].astype(np.float64), rings,
                          cond, np.asarray(weights, float), (1, tiny.H, tiny.W),
                          meta={"region": region})


def exact_robust(net, problem: LayeredProblem, eps) -> bool:
    box = problem.box(np.asarray(eps, float))
    return tiny.min_margin(net[0], box.lower, box.upper, stop_at=0.0) > 0


@pytest.fixture(scope="module")
def grid(net):
    """``top[i, j]`` = the largest k with (i, j, k) * STEP robust (-1: none). As the sets
    are nested, ``top[i, j]`` is at most ``top[i - 1, j]`` and ``top[i, j - 1]``."""
    problem = make_problem(net, np.ones(3))
    top = np.full((STEPS + 1, STEPS + 1), -1)
    for i in range(STEPS + 1):
        for j in range(STEPS + 1):
            if not exact_robust(net, problem, [i * STEP, j * STEP, 0.0]):
                break
            lo, hi = 0, min([STEPS] + [top[i - 1, j]] * (i > 0) + [top[i, j - 1]] * (j > 0))
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if exact_robust(net, problem, [i * STEP, j * STEP, mid * STEP]):
                    lo = mid
                else:
                    hi = mid - 1
            top[i, j] = lo
    return top


def grid_optimum(top: np.ndarray, weights) -> tuple[np.ndarray, float]:
    best, best_eps = -np.inf, None
    for i, j in zip(*np.nonzero(top >= 0), strict=True):
        eps = np.array([i, j, top[i, j]]) * STEP
        if np.dot(weights, eps) > best:
            best, best_eps = float(np.dot(weights, eps)), eps
    return best_eps, best


def assert_robust_by_sampling(net, problem: LayeredProblem, eps, count: int = 4000) -> None:
    box = problem.box(eps)
    rng = np.random.default_rng(0)
    u = rng.random((count,) + box.lower.shape)
    u[: count // 2] = np.round(u[: count // 2])  # half of them at corners of the box
    xs = box.lower + u * (box.upper - box.lower)
    assert tiny.forward(net[0], xs).min() > 0


def test_grid_is_not_trivial(grid):
    assert grid[0, 0] >= 0 and (grid == -1).any() and len(np.unique(grid)) > 3


def test_naive_matches_the_grid_optimum(net, grid):
    problem = make_problem(net, LEX)
    result = maximize(problem, replace(BASE, method=NAIVE))
    expected, size = grid_optimum(grid, LEX)
    assert result.certified
    np.testing.assert_allclose(result.eps, expected, atol=STEP * 1e-6)
    assert result.weighted_size == pytest.approx(size)
    assert exact_robust(net, problem, result.eps)


@pytest.mark.parametrize("method", [NAIVE, FIXED, SENSITIVITY])
def test_every_method_returns_a_robust_vector(net, grid, method):
    problem = make_problem(net, np.ones(3))
    result = maximize(problem, replace(BASE, method=method, precision=0.01))
    assert result.certified and result.final["verdict"] == ROBUST
    assert exact_robust(net, problem, result.eps)
    assert_robust_by_sampling(net, problem, result.eps)
    again = verify(problem.verify_problem(result.eps), VerifyOptions(threads=1))
    assert again.verdict == ROBUST
    _, best = grid_optimum(grid, np.ones(3))
    # The grid optimum is a lower bound of the true optimum (up to one grid step per layer).
    assert result.weighted_size <= best + 3 * STEP + 1e-9
    assert result.weighted_size >= 0.5 * best
    assert result.verifier_calls == len([h for h in result.history if h["kind"] == "verify"]) \
        + sum(h.get("queries", 0) for h in result.history if h["kind"] == "weakest")


def test_result_json_and_accounting(net):
    problem = make_problem(net, np.ones(3))
    result = maximize(problem, replace(BASE, method=FIXED, precision=0.01))
    data = result.to_json()
    assert data["eps"] == result.eps.tolist() and data["certified"] is True
    assert data["verifier_calls"] >= 3 and data["verifier_s"] > 0 and data["other_s"] >= 0
    assert data["cutting_weights"] == fixed_cutting_weights(3).tolist()


def test_call_budget_still_returns_a_proved_vector(net):
    problem = make_problem(net, np.ones(3))
    result = maximize(problem, replace(BASE, method=FIXED, max_calls=3, precision=0.01))
    assert result.stop_reason == "verifier call budget spent"
    assert result.certified and exact_robust(net, problem, result.eps)


def test_cutting_weights():
    np.testing.assert_allclose(fixed_cutting_weights(4), [0.75, 0.5, 0.25, 0.0])
    cw = sensitivity_cutting_weights(np.array([3.0, 1.0, 2.0]))
    np.testing.assert_allclose(cw, [0.0, 2 / 3, 1 / 3])
    np.testing.assert_allclose(sensitivity_cutting_weights(np.ones(3)), [2 / 3, 1 / 3, 0])


def test_unknown_method_is_an_error(net):
    from robustc.errors import Error

    with pytest.raises(Error, match="unknown maximize method"):
        maximize(make_problem(net, np.ones(3)), replace(BASE, method="bogus"))
    assert set(METHODS) == {NAIVE, FIXED, SENSITIVITY}


def test_cli_maximize_writes_json_and_heatmap(net, tmp_path, capsys, monkeypatch):
    from robustc.cli import main

    params, path, _, _, region = net
    np.save(tmp_path / "x.npy", params["x0"].reshape(1, tiny.H, tiny.W))
    np.save(tmp_path / "obj.npy", region)
    (tmp_path / "tiny.onnx").write_bytes(path.read_bytes())
    (tmp_path / "t.rspec").write_text(
        'network n = onnx("tiny.onnx")\ninput x = npy("x.npy") reshape [1, 1, 3, 4]\n'
        'labels two = ["a", "b"]\ndecode n as multilabel(logit > 0) over two\n'
        'region obj = mask("obj.npy")\n'
        'maximize keep_a on n:\n    layered(x, rings(obj, chebyshev, 2)) such that '
        'present("a")\n    weights [1, 1, 1]\n    method oracle(cutting=fixed, iterations=10)\n')
    code = main(["maximize", str(tmp_path / "t.rspec"), "--output", str(tmp_path / "out"),
                 "--call-timeout", "20"])
    assert code == 0
    assert "keep_a: fixed: eps = [" in capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "keep_a.json").read_text())
    problem = make_problem(net, np.ones(3))
    assert data["certified"] and exact_robust(net, problem, data["eps"])
    png = (tmp_path / "out" / "keep_a.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    # without matplotlib the JSON is still written and the missing picture is named
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = main(["maximize", str(tmp_path / "t.rspec"), "--output", str(tmp_path / "bare"),
                 "--call-timeout", "20"])
    assert code == 0
    assert json.loads((tmp_path / "bare" / "keep_a.json").read_text())["certified"]
    assert not (tmp_path / "bare" / "keep_a.png").exists()
    assert "no heatmap for keep_a" in capsys.readouterr().err


def test_weakest_points_from_the_falsifier_and_from_the_milp(net):
    from robustc.analyses.maximize import weakest_points
    from robustc.runtime.torch_module import to_torch

    problem = make_problem(net, np.ones(3))
    module = to_torch(problem.graph, device="cpu", logits=True)
    eps = np.array([0.1, 0.1, 0.1])
    box = problem.box(eps)
    at_x0 = float(tiny.forward(net[0], problem.x0[None])[0])
    exact = tiny.min_margin(net[0], box.lower, box.upper)
    for milp, queries in ((False, 0), (True, 1)):
        points, used = weakest_points(problem, eps, replace(BASE, weakest_milp=milp), module)
        assert used == queries and points
        margins = [m for _, m in points]
        assert margins == sorted(margins)
        for x, m in points:
            assert np.all(x >= box.lower - 1e-6) and np.all(x <= box.upper + 1e-6)
            assert m == pytest.approx(float(tiny.forward(net[0], x[None])[0]), abs=1e-4)
        # a local minimiser: below the centre's margin, not below the exact minimum
        assert exact - 1e-4 <= margins[0] < at_x0


def test_failure_budget_ends_the_search_early(net):
    problem = make_problem(net, np.ones(3))
    # no effort cap: its steps depend on measured proof times, the prefix would not hold
    base = replace(BASE, method=FIXED, precision=0.01, effort=None)
    free = maximize(problem, replace(base, max_failures=None))
    one = maximize(problem, replace(base, max_failures=1))
    assert one.certified and exact_robust(net, problem, one.eps)
    assert one.verifier_calls <= free.verifier_calls
    # the same deterministic search, cut short: its verifier calls are a prefix
    calls = [h["eps"] for h in one.history if h["kind"] == "verify"][:-1]  # less the recheck
    assert calls == [h["eps"] for h in free.history if h["kind"] == "verify"][:len(calls)]
    refused = [h for h in one.history if h["kind"] == "verify" and h["verdict"] != ROBUST]
    if one.stop_reason == "failure budget spent":
        assert refused


def test_effort_step_extrapolates_the_proof_time():
    from robustc.analyses.maximize import _effort_step

    # 0.1 s -> 0.2 s over a step of 0.01: doubling per 0.01, so 0.4 s after another 0.01
    assert _effort_step(0.1, 0.2, 0.01, 0.4) == pytest.approx(0.01)
    assert _effort_step(0.1, 0.2, 0.01, 0.8) == pytest.approx(0.02)
    assert _effort_step(0.1, 0.5, 0.01, 0.5) == 0.0      # the target is reached: stop
    assert _effort_step(0.3, 0.2, 0.01, 0.5) == np.inf   # no growth: no cap
