"""The MILP step of the pipeline: one violation case of one box, decided by one solver query.

:func:`decide_case` encodes the case (:func:`robustc.backends.milp.encode.encode`) with the
box's bounds, solves it with early stopping and turns the answer into a proof (the case is
infeasible), a replayed counterexample, or ``unknown``/``error``. Every strategy ends here
for the parts it cannot decide itself.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from robustc.backends import solver_module
from robustc.backends.milp.encode import MARGIN_TOL, EncodeTimeout, encode
from robustc.backends.solve import FEASIBLE, INFEASIBLE, LIMIT, SolveOptions, SolveOutcome
from robustc.errors import LicenseLimit
from robustc.ir import Activation
from robustc.ir.property import Box, Linear, negate
from robustc.verify.results import (
    CLEAR_VIOLATION,
    ERROR,
    NOT_ROBUST,
    REPLAY_SLACK,
    UNKNOWN,
    Counterexample,
    Result,
)
from robustc.verify.run import Run


def decide_case(run: Run, box: Box, bounds, case: list) -> Result | float:
    """Decide one violation case; returns a final Result or the proved margin (or inf).

    The solver is asked for a *clear* violation (margin <= -CLEAR_VIOLATION) first, so a
    point that merely touches the tolerance band is not taken for a counterexample while a
    real one exists. The model is built within the run's deadline (the current one: a
    phase's under :meth:`Run.until`); past it, the case is ``unknown``.
    """
    try:
        return _decide_case(run, box, bounds, case)
    except EncodeTimeout as exc:
        return run.result(UNKNOWN, str(exc))


def minimises_margin(case: list) -> bool:
    """Whether ``case``'s MILP minimises the property's margin (one linear atom: its proved
    lower bound is a margin) instead of asking for any point of the case."""
    return len(case) == 1 and isinstance(case[0], Linear)


def _decide_case(run: Run, box: Box, bounds, case: list) -> Result | float:
    objective = None
    if minimises_margin(case):
        objective = negate(case[0])  # minimise the property's margin
        lo = output_margin_lower(run, bounds, case)
        if lo > MARGIN_TOL:
            return lo if run.options.margin else np.inf  # the bounds alone prove it
    if run.late():  # building a large model would overrun the time limit
        return run.result(UNKNOWN, "time limit reached before the MILP")
    smooth = [n for n in run.graph.nodes if isinstance(n, Activation)]
    if smooth:  # the MILP refuses them (robustc.backends.milp.encode): not a proof, no guess
        names = ", ".join(f"{n.name!r} ({n.kind})" for n in smooth[:3])
        more = f" and {len(smooth) - 3} more" if len(smooth) > 3 else ""
        return run.result(UNKNOWN, f"the bounds leave a violation case open and the MILP "
                                   f"does not encode the smooth activation(s) {names}{more}")
    if objective is not None:
        model = _encode(run, box, bounds, [], objective)
        bound = None if run.options.margin else MARGIN_TOL
        target = None if run.options.margin else -CLEAR_VIOLATION
        out = _solve(run, model, _options(run, bound, target))
        run.milp_dual_bound = out.dual_bound
        if out.status == FEASIBLE and out.proven_optimal and out.dual_bound is not None \
                and out.dual_bound > MARGIN_TOL:
            return float(out.dual_bound)  # margin mode: a proved lower bound on the margin
        return _conclude(run, box, model, out)
    model = _encode(run, box, bounds, case, None, tol=-CLEAR_VIOLATION)
    out = _solve(run, model, _options(run, None, None))
    if out.status == INFEASIBLE:  # no clear violation: is there one within tolerance?
        if run.late():  # the first answer alone is no proof
            return run.result(UNKNOWN, "time limit reached before the tolerance check")
        model = _encode(run, box, bounds, case, None)
        out = _solve(run, model, _options(run, None, None))
    return _conclude(run, box, model, out)


def decide_cases_by_milp(run: Run, box: Box, bounds, cases: list, which, note: str = ""
                         ) -> Result | float:
    """One MILP for each case ``cases[i]``, ``i`` in ``which``, in order: the first final
    Result, or the smallest proved margin (``inf`` without one). ``note`` goes into the
    progress message."""
    worst = np.inf
    for i in which:
        run.say(f"deciding case {i + 1}/{len(cases)} by MILP{note}")
        verdict = decide_case(run, box, bounds, cases[i])
        if isinstance(verdict, Result):
            return verdict
        worst = min(worst, verdict)
    return worst


def _encode(run: Run, box: Box, bounds, atoms: list, objective, tol: float = MARGIN_TOL):
    model = encode(run.graph, bounds.lower, bounds.upper, box, atoms, objective=objective,
                   tol=tol, deadline=run.deadline)
    run.stats["queries"] += 1
    run.stats["max_variables"] = max(run.stats["max_variables"], model.num_vars)
    run.stats["max_binaries"] = max(run.stats["max_binaries"], model.num_binaries)
    run.stats["max_constraints"] = max(run.stats["max_constraints"], model.num_rows)
    return model


def _options(run: Run, bound: float | None, target: float | None) -> SolveOptions:
    return SolveOptions(time_limit=run.remaining(), threads=run.options.threads,
                        seed=run.options.seed, node_limit=run.options.node_limit,
                        objective_bound=bound, objective_target=target)


def _conclude(run: Run, box: Box, model, out: SolveOutcome) -> Result | float:
    """INFEASIBLE proves the case; a candidate is replayed; anything else is not a proof.

    A candidate is a solution inside the violation region: any solution of a model without
    objective (its rows are the violation), or one whose objective (the property's margin)
    is at most MARGIN_TOL. A solver stopped by a limit proves nothing, whatever incumbent
    it holds.
    """
    if out.status == INFEASIBLE:
        return np.inf
    candidate = out.solution is not None and (
        not model.objective.any() or (out.objective is not None and
                                      out.objective <= MARGIN_TOL))
    if out.status in (FEASIBLE, LIMIT) and candidate:
        return _check_witness(run, box, model, out)
    if out.status == LIMIT:
        return run.result(UNKNOWN, out.reason or "solver limit reached")
    return run.result(ERROR, out.reason or f"solver status {out.status}: no usable answer")


def output_margin_lower(run: Run, bounds, case: list) -> float:
    """A lower bound of the property's margin on a one-atom violation case, from the output
    bounds alone (``-inf`` for other cases): above ``MARGIN_TOL`` the case is refuted."""
    if not minimises_margin(case):
        return -np.inf
    return _linear_lower(negate(case[0]), bounds, run.graph.output.name)


def _linear_lower(atom: Linear, bounds, out_name: str) -> float:
    lo, hi = bounds.lower[out_name].ravel(), bounds.upper[out_name].ravel()
    pos, neg = np.maximum(atom.coeffs, 0), np.minimum(atom.coeffs, 0)
    return float(pos @ lo + neg @ hi + atom.const)


def _solve(run: Run, model, options: SolveOptions) -> SolveOutcome:
    if run.late():  # the deadline passed while the model was built: no solve
        return SolveOutcome(LIMIT, run.options.solver,
                            reason="time limit reached while building the MILP")
    t = time.perf_counter()
    name = run.options.solver
    try:
        out = solver_module(name).solve(model, options)
    except LicenseLimit as exc:
        if run.options.strict_solver:
            raise
        notice = f"{exc}; falling back to HiGHS"
        if notice not in run.stats["notices"]:
            run.stats["notices"].append(notice)
            print(f"robustc: notice: {notice}", file=sys.stderr)
        name = "highs"
        out = solver_module(name).solve(model, options)
    run.solvers_used.add(name)
    run.stats["solve_s"] += time.perf_counter() - t
    return out


def _check_witness(run: Run, box: Box, model, out: SolveOutcome) -> Result:
    from robustc.runtime.replay import replay

    x = model.input_values(out.solution).reshape(box.lower.shape)
    rep = replay(run.problem.onnx_paths, x, box, run.problem.prop.condition)
    if rep.violated:
        cex = Counterexample(rep.input, rep.output, rep.logits, rep.margin, run.options.solver)
        return run.result(NOT_ROBUST, "counterexample found by the MILP solver", cex,
                          rep.margin)
    if rep.margin <= REPLAY_SLACK:
        return run.result(UNKNOWN, f"the worst case is within the numerical tolerance: the "
                          f"solver's candidate has margin {rep.margin:.3g} in onnxruntime "
                          f"(robust needs > {MARGIN_TOL:g} in the MILP)", margin=rep.margin)
    return run.result(ERROR, f"the solver's witness does not replay: onnxruntime gives margin "
                      f"{rep.margin:.6g} (> {REPLAY_SLACK:g}); the encoding and the network "
                      f"disagree")


__all__ = ["decide_case", "minimises_margin", "output_margin_lower"]
