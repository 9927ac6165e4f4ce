"""Large HiGHS models with a time limit are solved in a child process that robustc ends at
the limit (HiGHS ran 65 s past a 15 s limit on a CIFAR ResNet's MILP): the child's answers
equal an in-process solve and a second solver's, and a child out of time gives ``limit``."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from robustc.backends import highs
from robustc.backends.milp.model import MilpModel
from robustc.backends.solve import FEASIBLE, LIMIT, SolveOptions


def _model(seed: int, bound: float | None = None):
    rng = np.random.default_rng(seed)
    A = rng.uniform(-1, 1, (8, 6))
    cost = rng.uniform(-1, 1, 6)
    integer = np.array([1, 1, 0, 1, 0, 1], dtype=bool)
    lb, ub, hi = -2 * np.ones(6), 3 * np.ones(6), rng.uniform(0.5, 2, 8)
    model = MilpModel(A=sp.csr_matrix(A), row_lower=np.full(8, -np.inf), row_upper=hi,
                      lb=lb, ub=ub, integer=integer, objective=cost, objective_const=0.0,
                      input_index=np.arange(6), input_fixed=np.zeros(6))
    oracle = milp(cost, constraints=LinearConstraint(A, -np.inf, hi),
                  integrality=integer.astype(int), bounds=Bounds(lb, ub))
    return model, oracle


def test_the_child_answers_like_an_in_process_solve_and_scipy():
    for seed in range(3):
        model, oracle = _model(seed)
        options = SolveOptions(time_limit=60.0, threads=1)
        here = highs.solve_here(model, options)
        child = highs.solve_isolated(model, options)
        assert here.status == child.status == FEASIBLE
        assert child.stats["isolated"]
        assert abs(child.objective - oracle.fun) < 1e-6
        assert abs(here.objective - child.objective) < 1e-9
        np.testing.assert_allclose(child.solution, here.solution, atol=1e-9)
        cut = SolveOptions(time_limit=60.0, threads=1, objective_bound=oracle.fun - 1e-3)
        assert highs.solve_isolated(model, cut).status == highs.solve_here(model, cut).status


def test_a_child_out_of_time_gives_limit_without_a_solution():
    model, _ = _model(0)
    out = highs.solve_isolated(model, SolveOptions(time_limit=1e-3, threads=1))
    assert out.status == LIMIT and out.solution is None
    assert "Time limit" in out.reason


def test_large_models_with_a_limit_are_isolated(monkeypatch):
    model, oracle = _model(1)
    monkeypatch.setattr(highs, "ISOLATE_NONZEROS", 1)
    out = highs.solve(model, SolveOptions(time_limit=60.0, threads=1))
    assert out.stats.get("isolated") and abs(out.objective - oracle.fun) < 1e-6
    assert not highs.solve(model, SolveOptions(threads=1)).stats.get("isolated")
