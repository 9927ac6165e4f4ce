"""robustc.backends: solvers that read the IR.

Each solver is one module with ``NAME``, ``REQUIRED_MODULES``, ``available()`` and
``solve(model, options) -> SolveOutcome``; :data:`SOLVERS` is the registry. Solver
libraries are imported inside those modules' functions, so importing this package is cheap.
"""

from __future__ import annotations

import importlib

from robustc.errors import SolverUnavailable

SOLVERS = {
    "highs": "robustc.backends.highs",
    "gurobi": "robustc.backends.gurobi",
    "z3": "robustc.backends.z3smt",
}
DEFAULT_SOLVER = "highs"


def solver_module(name: str):
    """The driver module of solver ``name``; raises ``SolverUnavailable`` for unknown names."""
    if name not in SOLVERS:
        raise SolverUnavailable(f"unknown solver {name!r}; choose one of {sorted(SOLVERS)}")
    return importlib.import_module(SOLVERS[name])


def available_solvers() -> list[str]:
    """Names of the solvers that can run here."""
    return [name for name in SOLVERS if solver_module(name).available()]
