"""The MILP encoding is exact: its objective equals the network's output at its solution.

Oracle: the numpy interpreter (itself checked against onnxruntime in tests/ir).
"""

from __future__ import annotations

import numpy as np
import pytest

from robustc.backends import available_solvers, solver_module
from robustc.backends.milp.encode import encode
from robustc.backends.solve import FEASIBLE, SolveOptions
from robustc.compiler import load_onnx, standard_passes
from robustc.compiler.bounds import compute_bounds
from robustc.ir import evaluate, logits
from robustc.ir.property import Box, Linear
from tests.conftest import EXAMPLES
from tests.verify.nets import conv_onnx, mlp_onnx, save_and_load

SOLVERS = [s for s in available_solvers() if s in ("highs", "gurobi")]


def _graphs(tmp_path):
    rng = np.random.default_rng(7)
    return [save_and_load(mlp_onnx(rng, [4, 12, 10, 3]), tmp_path / "mlp.onnx"),
            save_and_load(mlp_onnx(rng, [3, 8, 8, 2], alpha=0.1), tmp_path / "leaky.onnx"),
            save_and_load(conv_onnx(rng), tmp_path / "cnn.onnx")]


def _optimise(graph, box, coeffs, solver="highs"):
    bounds = compute_bounds(graph, box.lower, box.upper)
    model = encode(graph, bounds.lower, bounds.upper, box, [], objective=Linear(coeffs, 0.0))
    out = solver_module(solver).solve(model, SolveOptions(time_limit=60))
    assert out.status == FEASIBLE and out.proven_optimal, out
    return model, out


@pytest.mark.parametrize("solver", SOLVERS)
def test_point_box_gives_the_forward_pass(tmp_path, solver):
    rng = np.random.default_rng(0)
    for graph in _graphs(tmp_path):
        x = rng.uniform(0, 1, graph.input.shape)
        y = evaluate(graph, x).ravel()
        for k in range(len(y)):
            for sign in (1.0, -1.0):
                coeffs = sign * np.eye(len(y))[k]
                _, out = _optimise(graph, Box(x, x), coeffs, solver)
                assert out.objective == pytest.approx(sign * y[k], abs=1e-6)


@pytest.mark.parametrize("solver", SOLVERS)
def test_optimum_is_attained_by_the_network_and_beats_samples(tmp_path, solver):
    rng = np.random.default_rng(1)
    for graph, radius in zip(_graphs(tmp_path), (0.2, 0.2, 0.04), strict=True):
        x0 = rng.uniform(0.2, 0.8, graph.input.shape)
        box = Box(x0 - radius, x0 + radius)
        samples = rng.uniform(box.lower, box.upper, (300,) + graph.input.shape)
        ys = evaluate(graph, samples, batched=True).reshape(300, -1)
        for k in range(ys.shape[1]):
            for sign in (1.0, -1.0):
                coeffs = sign * np.eye(ys.shape[1])[k]
                model, out = _optimise(graph, box, coeffs, solver)
                x = model.input_values(out.solution).reshape(graph.input.shape)
                assert box.contains(x, tol=1e-7)
                at_x = sign * evaluate(graph, np.clip(x, box.lower, box.upper)).ravel()[k]
                assert out.objective == pytest.approx(at_x, abs=1e-5)
                assert out.objective <= (sign * ys[:, k]).min() + 1e-6


def test_example_network_point_box(tmp_path):
    path = EXAMPLES / "models" / "mlc_plain.onnx"
    if not path.exists():
        pytest.skip("examples/models/mlc_plain.onnx is missing")
    graph, _ = logits(standard_passes().run(load_onnx(path)))
    x = np.load(EXAMPLES / "samples" / "dd_0.npy").reshape(graph.input.shape)
    y = evaluate(graph, x).ravel()
    for k in (0, 7, 8):
        _, out = _optimise(graph, Box(x, x), np.eye(10)[k])
        assert out.objective == pytest.approx(y[k], abs=1e-5)
    box = Box(np.clip(x - 0.01, 0, 1), np.clip(x + 0.01, 0, 1))
    model, out = _optimise(graph, box, np.eye(10)[7])
    xs = model.input_values(out.solution).reshape(graph.input.shape)
    assert out.objective == pytest.approx(evaluate(graph, xs).ravel()[7], abs=1e-5)
    assert out.objective <= y[7] + 1e-9
