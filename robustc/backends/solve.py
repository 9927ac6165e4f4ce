"""What every solver driver returns, and the options they take."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Our solver-independent statuses.
FEASIBLE = "feasible"        # a solution of the model was found (a candidate witness)
INFEASIBLE = "infeasible"    # proved: no solution (below the objective bound, if one is set)
LIMIT = "limit"              # stopped by a limit (time, nodes, memory) with no solution
ERROR = "error"              # the solver failed


@dataclass(frozen=True)
class SolveOptions:
    """Limits and settings common to all solvers.

    ``objective_bound``: only solutions with objective below it count (the rest is pruned);
    ``objective_target``: stop at the first solution at or below it. Together they turn an
    optimisation into the decision question "is there a solution below the bound?".
    """

    time_limit: float | None = None
    threads: int | None = None
    seed: int = 0
    node_limit: int | None = None
    objective_bound: float | None = None
    objective_target: float | None = None
    verbose: bool = False


@dataclass
class SolveOutcome:
    """A solver's answer: status, the solution when one exists, and statistics.

    ``FEASIBLE`` means the solver stopped with a solution it vouches for: an optimum
    (``proven_optimal``, judged by ``dual_bound``) or one at or below the objective target.
    ``LIMIT`` may still carry the best solution found (``solution``), which is *not*
    guaranteed to respect the objective bound.
    """

    status: str
    solver: str
    solution: np.ndarray | None = None
    proven_optimal: bool = False
    objective: float | None = None
    dual_bound: float | None = None
    reason: str = ""
    time_s: float = 0.0
    stats: dict = field(default_factory=dict)


def solve_empty(model, solver: str) -> SolveOutcome:
    """Decide a model without variables (every input fixed): its rows are constants."""
    lhs = np.zeros(model.num_rows)
    ok = bool(np.all(model.row_lower <= lhs) and np.all(lhs <= model.row_upper))
    objective = float(model.objective_const)
    return SolveOutcome(FEASIBLE if ok else INFEASIBLE, solver,
                        solution=np.zeros(0) if ok else None, proven_optimal=ok,
                        objective=objective if ok else None, dual_bound=objective)


def import_solver(module: str, package: str, label: str):
    """Import a solver library; raises ``SolverUnavailable`` naming the pip package."""
    import importlib

    from robustc.errors import SolverUnavailable

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SolverUnavailable(f"{label} is not installed (pip install {package}): {exc}") \
            from None


def can_import(module: str) -> bool:
    """Whether ``module`` imports."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
