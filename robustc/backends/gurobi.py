"""Gurobi (gurobipy), used when asked for and licensed.

The pip wheel's bundled license is size-limited (2,000 variables and 2,000 constraints;
above that Gurobi raises error 10010). :func:`license_limits` finds out once per process,
with a throw-away model, so robustc can check a model's size *before* solving and fall
back to HiGHS.
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

import numpy as np

from robustc.backends.milp.model import MilpModel
from robustc.backends.solve import (
    ERROR,
    FEASIBLE,
    INFEASIBLE,
    LIMIT,
    SolveOptions,
    SolveOutcome,
    solve_empty,
)
from robustc.errors import LicenseLimit, SolverError, SolverUnavailable

NAME = "gurobi"
REQUIRED_MODULES = ("gurobipy",)
SIZE_LIMITED = 2000  # variables and constraints allowed by the size-limited license


def require() -> None:
    """Raise ``SolverUnavailable`` (one line: not installed, or no license) unless Gurobi
    can start."""
    _env()


def write_lp(model: MilpModel, path: Path, names: list[str]) -> None:
    """Write ``model`` in Gurobi's LP dialect to ``path`` (columns named ``names``).

    Raises ``SolverUnavailable`` when Gurobi cannot start, ``LicenseLimit`` for a model the
    license refuses and ``SolverError`` for any other Gurobi failure (a write error).
    """
    import gurobipy as gp

    _env()
    try:
        m, _ = build(model, SolveOptions())
        for var, name in zip(m.getVars(), names, strict=True):
            var.VarName = name
        m.write(str(path))
        m.dispose()
    except gp.GurobiError as exc:
        error = LicenseLimit if exc.errno == 10010 else SolverError
        raise error(f"Gurobi cannot write {path}: {exc}") from None


def available() -> bool:
    """Whether gurobipy imports and a license (of any size) lets it start."""
    try:
        _env()
    except SolverUnavailable:
        return False
    return True


@cache
def _env():
    try:
        import gurobipy as gp
    except ImportError as exc:
        raise SolverUnavailable(f"Gurobi is not installed (pip install gurobipy): {exc}") \
            from None
    try:
        return gp.Env(params={"OutputFlag": 0})
    except gp.GurobiError as exc:
        raise SolverUnavailable(f"Gurobi cannot start (license?): {exc}") from None


@cache
def license_limits() -> int | None:
    """The variable/constraint limit of the installed license, or None when unlimited."""
    import gurobipy as gp

    model = gp.Model(env=_env())
    x = model.addMVar(SIZE_LIMITED + 1, lb=0.0, ub=1.0)
    model.setObjective(x.sum())
    try:
        model.optimize()
    except gp.GurobiError as exc:
        if exc.errno == 10010:
            return SIZE_LIMITED
        raise
    finally:
        model.dispose()
    return None


def check_fits(model: MilpModel) -> None:
    """Raise ``LicenseLimit`` if ``model`` is too large for the installed license."""
    limit = license_limits()
    if limit is not None and (model.num_vars > limit or model.num_rows > limit):
        raise LicenseLimit(f"the model has {model.num_vars} variables and {model.num_rows} "
                           f"constraints; the installed Gurobi license allows {limit} of each")


_STATUS = {2: FEASIBLE, 15: FEASIBLE, 10: LIMIT,         # optimal, user obj limit, solution limit
           3: INFEASIBLE, 4: INFEASIBLE, 6: INFEASIBLE,  # infeasible, inf-or-unbd, cutoff
           9: LIMIT, 8: LIMIT, 7: LIMIT, 11: LIMIT, 16: LIMIT, 17: LIMIT}


def build(model: MilpModel, options: SolveOptions):
    """A ``gurobipy.Model`` holding ``model`` with the options set (used by solve, export)."""
    import gurobipy as gp

    m = gp.Model(env=_env())
    m.Params.OutputFlag = int(options.verbose)
    m.Params.Seed = int(options.seed)
    if options.threads:
        m.Params.Threads = int(options.threads)
    if options.time_limit is not None:
        m.Params.TimeLimit = max(float(options.time_limit), 0.01)
    if options.node_limit is not None:
        m.Params.NodeLimit = float(options.node_limit)
    if options.objective_bound is not None:
        m.Params.Cutoff = float(options.objective_bound)
    if options.objective_target is not None:
        m.Params.BestObjStop = float(options.objective_target)
    vtype = np.where(model.integer, gp.GRB.BINARY, gp.GRB.CONTINUOUS)
    vtype = np.where(model.integer & ((model.lb != 0) | (model.ub != 1)), gp.GRB.INTEGER, vtype)
    x = m.addMVar(model.num_vars, lb=model.lb, ub=model.ub, vtype=vtype)
    _add_rows(m, x, model)
    m.setObjective(model.objective @ x + model.objective_const, gp.GRB.MINIMIZE)
    m.update()
    return m, x


def _add_rows(m, x, model: MilpModel) -> None:
    import gurobipy as gp

    lo, hi = model.row_lower, model.row_upper
    eq = lo == hi
    ge = ~eq & np.isfinite(lo)
    le = ~eq & np.isfinite(hi)
    for mask, sense, rhs in ((eq, gp.GRB.EQUAL, lo), (ge, gp.GRB.GREATER_EQUAL, lo),
                             (le, gp.GRB.LESS_EQUAL, hi)):
        if mask.any():
            m.addMConstr(model.A[mask], x, sense, rhs[mask])


def solve(model: MilpModel, options: SolveOptions) -> SolveOutcome:
    """Solve with Gurobi; raises ``LicenseLimit`` for a model the license cannot take."""
    import gurobipy as gp

    if model.num_vars == 0:
        return solve_empty(model, NAME)
    start = time.perf_counter()
    check_fits(model)
    try:
        m, x = build(model, options)
        m.optimize()
    except gp.GurobiError as exc:
        if exc.errno == 10010:
            raise LicenseLimit(f"Gurobi: {exc}") from None
        return SolveOutcome(ERROR, NAME, reason=f"Gurobi failed: {exc}",
                            time_s=time.perf_counter() - start)
    try:
        status = _STATUS.get(m.Status, ERROR)
        has_solution = m.SolCount > 0
        solution = np.array(x.X) if has_solution else None
        optimal = m.Status == 2
        bound = m.ObjBound if m.IsMIP and status != INFEASIBLE else (
            m.ObjVal if optimal else None)
        return SolveOutcome(
            status, NAME, solution=solution, proven_optimal=optimal,
            objective=m.ObjVal if has_solution else None, dual_bound=bound,
            reason="" if status in (FEASIBLE, INFEASIBLE) else f"Gurobi status {m.Status}",
            time_s=time.perf_counter() - start, stats={"nodes": int(m.NodeCount or 0)},
        )
    finally:
        m.dispose()
