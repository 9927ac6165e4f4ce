"""Z3 (SMT over linear real/integer arithmetic): the MILP model as an SMT formula.

The solver-neutral :class:`~robustc.backends.milp.model.MilpModel` (see
:mod:`robustc.backends.milp.encode`: stable ReLUs already eliminated by the bounds, one 0/1
variable per unstable ReLU, MaxPool survivor and AtLeast selector) is written as SMT-LIB 2
(:func:`smtlib`), which is both what ``robustc compile --format smt2`` writes and what
:func:`solve` hands to Z3:

* every column is a ``Real``, every binary an ``Int`` in ``[0, 1]`` (big-M form) or a
  ``Bool`` (the solver's default, see below);
* every column bound and every ranged row is an assertion (so the bounds of every neuron
  that has a variable are asserted);
* every float64 coefficient is written as the exact rational it denotes
  (``(/ n.0 2^k.0)``), so Z3 decides the float64 model exactly; the model itself is a
  float64 composition of the network's weights (see :mod:`robustc.backends.z3exact` for a
  decision that involves no floating-point arithmetic at all).

Which form solves fastest, measured (``PYTHONPATH=. python benchmarks/z3_vs_highs.py
--cases 20 --nets 6 --limit 20``, Z3 5.4, 2 shared CPU cores, one run): on the 27 violation
MILPs of 20 random differential cases the median Z3 time was 0.148 s with binaries as
``Bool`` (``(ite b 1 0)`` in the rows) against 0.222 s as 0/1 ``Int`` (1.5x), and HiGHS took
0.020 s (Z3 7.4x slower). :func:`solve` therefore uses ``Bool`` binaries by default;
:func:`smtlib` writes 0/1 ``Int`` (plain big-M, read by any QF_LIRA solver) unless asked.
For the exact encoding of ReLUs straight from the IR see :mod:`robustc.backends.z3exact`.

The decision semantics follow :class:`~robustc.backends.solve.SolveOptions`: with an
objective and ``objective_target`` Z3 is first asked for a solution at or below the
target, then (``objective_bound``) for one strictly below the bound; with an objective and
no bound, ``z3.Optimize`` minimises it. ``unknown`` (time limit, resource limit,
interruption) is our ``LIMIT``: never a proof.
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from robustc.backends.milp.model import MilpModel
from robustc.backends.solve import (
    FEASIBLE,
    INFEASIBLE,
    LIMIT,
    SolveOptions,
    SolveOutcome,
    can_import,
    import_solver,
    solve_empty,
)
from robustc.errors import SolverError
from robustc.files import write_text

NAME = "z3"
REQUIRED_MODULES = ("z3",)
# Every row's range is widened by this much, like HiGHS' and Gurobi's feasibility
# tolerance (1e-7). Without it an exact solver can find the float64 model *empty* where the
# network is not: the big-M rows of an active ReLU, ``y >= z`` and
# ``y <= z - l (1 - d)`` with ``zc - l`` rounded, leave no point at d = 1 in exact
# arithmetic (differential cases 1100, 1301, 1486, 1506 were unsound "robust" answers).
# Widening only enlarges the violation region, and every witness is replayed.
ROW_TOL = 1e-7


def available() -> bool:
    """Whether the z3 module (z3-solver) can be imported."""
    return can_import("z3")


def z3_module():
    """The ``z3`` module; raises ``SolverUnavailable`` when z3-solver is not installed."""
    return import_solver("z3", "z3-solver", "Z3")


# ---------------------------------------------------------------- SMT-LIB text

def real_literal(value: float | Fraction) -> str:
    """The exact SMT-LIB ``Real`` literal of a float (or Fraction): ``2.0``, ``(/ 1.0 8.0)``."""
    if isinstance(value, float) and not np.isfinite(value):
        raise SolverError(f"cannot write the non-finite number {value} in SMT-LIB")
    frac = Fraction(value)
    mag = abs(frac)
    text = f"{mag.numerator}.0" if mag.denominator == 1 else \
        f"(/ {mag.numerator}.0 {mag.denominator}.0)"
    return f"(- {text})" if frac < 0 else text


def _var(i: int, model: MilpModel, binaries: str) -> str:
    if not model.integer[i]:
        return f"v{i}"
    return f"(to_real v{i})" if binaries == "int" else f"(ite v{i} 1.0 0.0)"


def _linear_term(cols: np.ndarray, vals: np.ndarray, model: MilpModel, binaries: str) -> str:
    terms = [_var(j, model, binaries) if v == 1.0 else
             f"(* {real_literal(float(v))} {_var(j, model, binaries)})"
             for j, v in zip(cols, vals, strict=True) if v != 0.0]
    if not terms:
        return "0.0"
    return terms[0] if len(terms) == 1 else f"(+ {' '.join(terms)})"


def _range_asserts(term: str, lo: float, hi: float) -> list[str]:
    if lo == hi:
        return [f"(assert (= {term} {real_literal(lo)}))"]
    out = []
    if np.isfinite(lo):
        out.append(f"(assert (<= {real_literal(lo)} {term}))")
    if np.isfinite(hi):
        out.append(f"(assert (<= {term} {real_literal(hi)}))")
    return out


def _declarations(model: MilpModel, binaries: str) -> list[str]:
    lines = []
    for i in range(model.num_vars):
        name = model.col_names[i] if i < len(model.col_names) else ""
        if model.integer[i] and binaries == "bool":
            if model.lb[i] != 0 or model.ub[i] != 1:
                raise SolverError(f"column {i} is an integer outside [0, 1]: not a binary")
            lines.append(f"(declare-fun v{i} () Bool) ; {name}")
        elif model.integer[i]:
            lines.append(f"(declare-fun v{i} () Int) ; {name}")
            lines.append(f"(assert (and (<= {int(model.lb[i])} v{i}) (<= v{i} "
                         f"{int(model.ub[i])})))")
        else:
            lines.append(f"(declare-fun v{i} () Real) ; {name}")
            lines.extend(_range_asserts(f"v{i}", model.lb[i], model.ub[i]))
    return lines


def objective_term(model: MilpModel, binaries: str = "int") -> str:
    """The objective ``c . x + c0`` as an SMT-LIB term."""
    cols = np.flatnonzero(model.objective)
    term = _linear_term(cols, model.objective[cols], model, binaries)
    if model.objective_const == 0.0:
        return term
    return f"(+ {term} {real_literal(model.objective_const)})"


def smtlib(model: MilpModel, *, binaries: str = "int", objective_below: float | None = None,
           check_sat: bool = True, row_tol: float = ROW_TOL) -> str:
    """``model`` as an SMT-LIB 2 script (QF_LIRA, or QF_LRA without binaries).

    Its models are the model's feasible points (``v<i>`` is column ``i``; comments name
    them), every row widened by ``row_tol`` (see ROW_TOL); with ``objective_below`` only
    those whose objective is strictly below it.
    ``binaries`` is ``"int"`` (0/1 ``Int``) or ``"bool"`` (``Bool`` with ``ite``).
    """
    if binaries not in ("int", "bool"):
        raise SolverError(f"binaries must be 'int' or 'bool', got {binaries!r}")
    logic = "QF_LIRA" if model.integer.any() and binaries == "int" else "QF_LRA"
    lines = ["; robustc MILP model: its models are the inputs that violate the property",
             f"(set-logic {logic})", *_declarations(model, binaries)]
    A = model.A.tocsr()
    for r in range(model.num_rows):
        lo, hi = A.indptr[r], A.indptr[r + 1]
        term = _linear_term(A.indices[lo:hi], A.data[lo:hi], model, binaries)
        lines.extend(_range_asserts(term, model.row_lower[r] - row_tol,
                                    model.row_upper[r] + row_tol))
    if objective_below is not None:
        lines.append(f"(assert (< {objective_term(model, binaries)} "
                     f"{real_literal(float(objective_below))}))")
    if check_sat:
        lines.append("(check-sat)")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- solving

def _z3_vars(z3, model: MilpModel, binaries: str) -> list:
    def make(i: int):
        if not model.integer[i]:
            return z3.Real(f"v{i}")
        return z3.Int(f"v{i}") if binaries == "int" else z3.Bool(f"v{i}")
    return [make(i) for i in range(model.num_vars)]


def _solution(z3, zmodel, variables: list) -> np.ndarray:
    out = np.zeros(len(variables))
    for i, var in enumerate(variables):
        val = zmodel.eval(var, model_completion=True)
        if z3.is_true(val) or z3.is_false(val):
            out[i] = 1.0 if z3.is_true(val) else 0.0
        elif z3.is_int_value(val):
            out[i] = float(val.as_long())
        else:
            out[i] = float(val.as_fraction())
    return out


def _check(z3, assertions, extra: list, remaining: float | None, seed: int):
    """``(status, z3 model or None, reason)`` of one satisfiability check."""
    solver = z3.Solver()
    solver.set("random_seed", int(seed))
    if remaining is not None:
        solver.set("timeout", max(int(remaining * 1000), 1))
    solver.add(assertions)
    solver.add(*extra)
    answer = solver.check()
    if answer == z3.sat:
        return FEASIBLE, solver.model(), ""
    if answer == z3.unsat:
        return INFEASIBLE, None, ""
    return LIMIT, None, f"Z3 returned unknown ({solver.reason_unknown()})"


def solve(model: MilpModel, options: SolveOptions, *, binaries: str = "bool") -> SolveOutcome:
    """Decide ``model`` with Z3 (see the module docstring); ``LIMIT`` when Z3 says unknown."""
    z3 = z3_module()
    if model.num_vars == 0:
        return solve_empty(model, NAME)
    start = time.perf_counter()
    deadline = None if options.time_limit is None else start + options.time_limit
    assertions = z3.parse_smt2_string(smtlib(model, binaries=binaries, check_sat=False))
    variables = _z3_vars(z3, model, binaries)
    has_objective = bool(model.objective.any())
    if has_objective and options.objective_bound is None:
        out = _minimise(z3, model, assertions, variables, options, deadline)
    else:
        out = _decide(z3, model, assertions, variables, options, deadline, has_objective)
    out.time_s = time.perf_counter() - start
    return out


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.perf_counter(), 0.001)


def _decide(z3, model: MilpModel, assertions, variables, options: SolveOptions,
            deadline: float | None, has_objective: bool) -> SolveOutcome:
    """A solution at or below the target, else one strictly below the bound, else none."""
    obj = _objective_expr(z3, model, variables) if has_objective else None
    queries = []
    if obj is not None and options.objective_target is not None:
        queries.append([obj <= z3.RealVal(Fraction(options.objective_target))])
    queries.append([] if obj is None else [obj < z3.RealVal(Fraction(options.objective_bound))])
    for extra in queries:
        status, zmodel, reason = _check(z3, assertions, extra, _left(deadline), options.seed)
        if status == FEASIBLE:
            sol = _solution(z3, zmodel, variables)
            return SolveOutcome(FEASIBLE, NAME, solution=sol,
                                objective=float(model.objective @ sol + model.objective_const))
        if status == LIMIT:
            return SolveOutcome(LIMIT, NAME, reason=reason)
    return SolveOutcome(INFEASIBLE, NAME)


def _as_real(z3, var):
    if z3.is_bool(var):
        return z3.If(var, z3.RealVal(1), z3.RealVal(0))
    return z3.ToReal(var) if z3.is_int(var) else var


def _objective_expr(z3, model: MilpModel, variables: list):
    cols = np.flatnonzero(model.objective)
    terms = [z3.RealVal(Fraction(float(model.objective[j]))) * _as_real(z3, variables[j])
             for j in cols]
    return z3.Sum(terms) + z3.RealVal(Fraction(model.objective_const))


def _minimise(z3, model: MilpModel, assertions, variables, options: SolveOptions,
              deadline: float | None) -> SolveOutcome:
    """The proven minimum of the objective (``z3.Optimize``); LIMIT when Z3 gives up."""
    opt = z3.Optimize()
    opt.set("random_seed", int(options.seed))
    remaining = _left(deadline)
    if remaining is not None:
        opt.set("timeout", max(int(remaining * 1000), 1))
    opt.add(assertions)
    obj = _objective_expr(z3, model, variables)
    opt.minimize(obj)
    answer = opt.check()
    if answer == z3.unsat:
        return SolveOutcome(INFEASIBLE, NAME)
    if answer != z3.sat:
        return SolveOutcome(LIMIT, NAME, reason=f"Z3 returned unknown ({opt.reason_unknown()})")
    sol = _solution(z3, opt.model(), variables)
    value = float(opt.model().eval(obj, model_completion=True).as_fraction())
    return SolveOutcome(FEASIBLE, NAME, solution=sol, proven_optimal=True, objective=value,
                        dual_bound=value)


def write_smt2(model: MilpModel, path) -> None:
    """Write ``model`` as an SMT-LIB 2 file ending in ``(check-sat)``, all or nothing;
    raises ``OutputError``."""
    write_text(path, smtlib(model))
