"""Conformance: small properties with known answers, run through every installed solver.

The answers are established without any solver: a 2-input network is evaluated on a fine
grid, and a Lipschitz bound turns the grid minimum into a certified interval for the true
minimum. A threshold below that interval (by a clear gap) must be proved robust; a
threshold above a grid value must be refuted with a replayed counterexample.
"""

from __future__ import annotations

import numpy as np
import pytest

from robustc.backends import available_solvers
from robustc.ir import evaluate, logits
from robustc.ir.property import And, Box, Property, in_top_k, output_gt
from robustc.verify import NOT_ROBUST, ROBUST, Problem, VerifyOptions, verify
from tests.verify.nets import mlp_onnx, save_and_load

SOLVERS = [s for s in available_solvers() if s in ("highs", "gurobi", "z3")]
GAP = 0.05  # distance of a threshold from the certified minimum


def _lipschitz_inf(graph) -> float:
    """An upper bound on |y_k(x) - y_k(x')| / ||x - x'||_inf for every output k."""
    bound = 1.0
    for layer in graph.layers():
        bound *= np.abs(layer.weight).sum(axis=1).max()
    return float(bound)


def _grid(graph, box: Box, n: int = 401):
    axes = [np.linspace(lo, hi, n) for lo, hi in zip(box.lower.ravel(), box.upper.ravel(),
                                                      strict=True)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
    ys = evaluate(graph, pts.reshape((-1,) + graph.input.shape), batched=True)
    return ys.reshape(len(pts), -1), (box.upper - box.lower).max() / (n - 1)


def _cases(tmp_path):
    """(problem, expected verdict) pairs on three random 2-input networks (2-6-6-3: two
    hidden ReLU layers, small enough for Z3: 2-10-8-3 took it 5 to 7 times as long)."""
    cases = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        path = tmp_path / f"net{seed}.onnx"
        graph = save_and_load(mlp_onnx(rng, [2, 6, 6, 3]), path)
        box = Box(np.array([[-1.0, -0.5]]), np.array([[0.5, 1.0]]))
        ys, h = _grid(graph, box)
        slack = _lipschitz_inf(graph) * h / 2 + GAP
        for k in range(3):
            low = ys[:, k].min()
            robust = output_gt(3, k, value=low - slack, label=f"y{k} high")
            broken = output_gt(3, k, value=low + GAP, label=f"y{k} higher")
            cases += [(_problem(graph, path, box, robust, f"{seed}-{k}-robust"), ROBUST),
                      (_problem(graph, path, box, broken, f"{seed}-{k}-broken"), NOT_ROBUST)]
        argmax = np.argmax(ys, axis=1)
        if len(set(argmax)) > 1:  # the winner changes inside the box: argmax is refuted
            cond = in_top_k(3, int(argmax[0]), 1)
            cases.append((_problem(graph, path, box, cond, f"{seed}-argmax"), NOT_ROBUST))
        both = And((output_gt(3, 0, value=ys[:, 0].min() - slack),
                    output_gt(3, 1, value=ys[:, 1].min() - slack)))
        cases.append((_problem(graph, path, box, both, f"{seed}-and"), ROBUST))
    return cases


def _problem(graph, path, box, cond, name):
    return Problem(name, graph, (str(path),), Property(name, (box,), cond))


# The attack path does not depend on the solver: it runs once, with HiGHS.
COMBOS = [(s, False) for s in SOLVERS] + [("highs", True)]


@pytest.mark.parametrize("solver,attack", COMBOS,
                         ids=[f"{s}-{'attack-first' if a else 'milp-only'}" for s, a in COMBOS])
def test_known_answers(tmp_path, solver, attack):
    for problem, expected in _cases(tmp_path):
        result = verify(problem, VerifyOptions(solver=solver, attack=attack, time_limit=60))
        assert result.verdict == expected, (problem.name, result.verdict, result.reason)
        if expected == NOT_ROBUST:
            cex = result.counterexample
            assert problem.prop.boxes[0].contains(cex.input)
            graph, _ = logits(problem.graph)
            y = evaluate(graph, cex.input).ravel()
            assert cex.margin <= 0 and np.allclose(y, cex.logits.ravel(), atol=1e-5)
