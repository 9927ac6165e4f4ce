"""The verification pipeline: one property of one network to one trusted verdict.

For each input box of the property:

1. *falsify*: PGD on the IR's PyTorch module (unless switched off); a witness it finds is
   replayed on the ONNX file and, if it violates the property there, reported at once;
2. *bounds*: symbolic (CROWN-style) bounds of every neuron over the box;
3. *decide*: the violation (the negated condition) is split into cases (its disjunctive
   normal form: "label set unchanged" becomes one small case per label); each case is one
   MILP, decided with early stopping (the first counterexample or the proof ends it), in
   order, stopping at the first violation. Boxes with few free inputs and many unstable
   ReLUs are split on the input instead (:mod:`robustc.verify_split`), chains of affine
   layers and ReLUs with many unstable ReLUs on ReLU phases (:mod:`robustc.verify_relu`).

Every counterexample is replayed on the original ONNX model with onnxruntime before it is
reported; a solver witness whose replay does not violate the property yields ``unknown``
when its margin is within the numerical tolerance and ``error`` otherwise. The verdict is
``robust`` only when every case of every box is proved infeasible.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robustc.backends import DEFAULT_SOLVER, solver_module
from robustc.backends.milp.encode import MARGIN_TOL, encode
from robustc.backends.solve import FEASIBLE, INFEASIBLE, LIMIT, SolveOptions, SolveOutcome
from robustc.compiler.input_split import SplitOptions, wants_split
from robustc.compiler.relu_split import ReluSplitOptions
from robustc.errors import Error, LicenseLimit
from robustc.ir import Graph, logits
from robustc.ir.property import Box, Linear, Property, dnf, negate

ROBUST, NOT_ROBUST, UNKNOWN, ERROR = "robust", "not_robust", "unknown", "error"
VERDICTS = (ROBUST, NOT_ROBUST, UNKNOWN, ERROR)
# A solver witness whose onnxruntime margin is at most this is "within tolerance"
# (unknown); a larger margin means the encoding and the network disagree (error).
REPLAY_SLACK = 1e-3
# The solver is first asked for a violation by at least this much (see _decide_case).
CLEAR_VIOLATION = 1e-4


@dataclass(frozen=True)
class Problem:
    """A network and a property: what :func:`verify` decides.

    ``onnx_paths`` are the original files, in order (two for a generator composed into a
    classifier), used for replay. ``graph`` is the IR of the whole network.
    """

    name: str
    graph: Graph
    onnx_paths: tuple[str, ...]
    prop: Property
    network: str = ""


@dataclass(frozen=True)
class VerifyOptions:
    """How to decide a property (see the module docstring)."""

    solver: str = DEFAULT_SOLVER
    strict_solver: bool = False     # fail instead of falling back to HiGHS
    time_limit: float | None = None
    node_limit: int | None = None   # branch-and-bound nodes per MILP: a deterministic limit
    threads: int | None = None      # solver threads, and PyTorch threads for the attacks
    seed: int = 0
    attack: bool = True
    attack_steps: int = 50
    attack_restarts: int = 8
    bounds: str = "symbolic"
    margin: bool = False            # also compute the worst-case margin (slower)
    # Branch and bound over input splits for boxes with few free inputs and many unstable
    # ReLUs (robustc.compiler.input_split); None switches it off.
    split: SplitOptions | None = SplitOptions()
    # Branch and bound over ReLU phases (beta-CROWN bounds) for chains of affine layers and
    # ReLUs with many unstable ReLUs (robustc.compiler.relu_split); None switches it off.
    relu_split: ReluSplitOptions | None = ReluSplitOptions()
    exact: bool = False             # decide in exact rational arithmetic (Z3, z3exact.py)
    progress: Callable[[str], None] | None = None


@dataclass
class Counterexample:
    """A replayed witness: input, network output, logits and the condition's margin."""

    input: np.ndarray
    output: np.ndarray
    logits: np.ndarray
    margin: float
    source: str

    def to_json(self) -> dict:
        return {"input": self.input.tolist(), "output": self.output.tolist(),
                "logits": self.logits.tolist(), "margin": self.margin, "source": self.source,
                "input_shape": list(self.input.shape)}


@dataclass
class Result:
    """The verdict on one property, with what it took to get there."""

    name: str
    verdict: str
    time_s: float
    solver: str
    reason: str = ""
    counterexample: Counterexample | None = None
    margin: float | None = None
    stats: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"name": self.name, "verdict": self.verdict, "time_s": round(self.time_s, 4),
               "solver": self.solver, "reason": self.reason, "margin": self.margin,
               "stats": self.stats}
        if self.counterexample is not None:
            out["counterexample"] = self.counterexample.to_json()
        return out


class _Run:
    """State of one verify() call."""

    def __init__(self, problem: Problem, options: VerifyOptions):
        self.problem, self.options = problem, options
        self.start = time.perf_counter()
        self.deadline = None if options.time_limit is None else self.start + options.time_limit
        self.solvers_used: set[str] = set()
        self.stats = {"queries": 0, "bounds_s": 0.0, "solve_s": 0.0, "attack_s": 0.0,
                      "max_variables": 0, "max_binaries": 0, "max_constraints": 0,
                      "unstable_relus": 0, "cases": 0, "notices": []}
        self.graph, _ = logits(problem.graph)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def say(self, message: str) -> None:
        if self.options.progress:
            self.options.progress(message)

    def result(self, verdict: str, reason: str = "", cex: Counterexample | None = None,
               margin: float | None = None) -> Result:
        solver = "+".join(sorted(self.solvers_used))
        if not solver:  # decided without a solver: by the attack or by the bounds alone
            solver = cex.source if cex is not None else ("bounds" if verdict == ROBUST
                                                         else "none")
        return Result(self.problem.name, verdict, time.perf_counter() - self.start, solver,
                      reason, cex, margin, self.stats)

    def confirm(self, box: Box, x: np.ndarray, source: str, reason: str) -> Result | None:
        """A not-robust result (``reason``; counterexample ``source``) when onnxruntime
        confirms that the candidate ``x`` in ``box`` violates the property, else None."""
        from robustc.runtime.replay import replay

        rep = replay(self.problem.onnx_paths, np.reshape(x, box.lower.shape), box,
                     self.problem.prop.condition)
        if not rep.violated:
            return None
        cex = Counterexample(rep.input, rep.output, rep.logits, rep.margin, source)
        return self.result(NOT_ROBUST, reason, cex, rep.margin)


def verify(problem: Problem, options: VerifyOptions | None = None) -> Result:
    """Decide ``problem``; never raises for robustc errors (verdict ``error`` instead)."""
    run = _Run(problem, options or VerifyOptions())
    try:
        prop = problem.prop
        prop.check_against(run.graph.input.shape, run.graph.output.size)
        if run.options.attack:
            for box in prop.boxes:
                found = _falsify(run, box)
                if found is not None:
                    return run.result(NOT_ROBUST, "found by the PGD attack", found,
                                      found.margin)
        return _decide_exact(run) if run.options.exact else _decide(run)
    except Error as exc:
        return run.result(ERROR, str(exc))


def _falsify(run: _Run, box: Box) -> Counterexample | None:
    from robustc.runtime.falsify import pgd_falsify
    from robustc.runtime.replay import replay
    from robustc.runtime.torch_module import torch_threads

    t = time.perf_counter()
    run.say("attacking (PGD)")
    center = (box.lower + box.upper) / 2
    with torch_threads(run.options.threads):
        x, _ = pgd_falsify(run.graph, box, run.problem.prop.condition,
                           steps=run.options.attack_steps,
                           restarts=run.options.attack_restarts, seed=run.options.seed,
                           device="cpu", start=run.problem.prop.meta.get("center", center),
                           targeted=True)
    rep = replay(run.problem.onnx_paths, x, box, run.problem.prop.condition)
    run.stats["attack_s"] += time.perf_counter() - t
    if rep.violated:
        return Counterexample(rep.input, rep.output, rep.logits, rep.margin, "pgd")
    return None


def _decide(run: _Run) -> Result:
    from robustc.compiler.bounds import compute_bounds

    prop = run.problem.prop
    cases = dnf(negate(prop.condition))
    run.stats["cases"] = len(cases) * len(prop.boxes)
    worst = np.inf
    for box in prop.boxes:
        t = time.perf_counter()
        run.say("computing bounds")
        bounds = compute_bounds(run.graph, box.lower, box.upper, run.options.bounds,
                                time_limit=run.remaining())
        run.stats["bounds_s"] += time.perf_counter() - t
        run.stats["unstable_relus"] = max(run.stats["unstable_relus"], bounds.num_unstable())
        if run.options.split is not None and wants_split(box, bounds, run.options.split):
            from robustc.verify_split import decide_by_splitting

            verdict = decide_by_splitting(run, box, cases)
            if isinstance(verdict, Result):
                return verdict
            continue
        relu = run.options.relu_split
        if relu is not None and bounds.num_unstable() > relu.min_unstable:
            from robustc.verify_relu import decide_by_relu_split

            verdict = decide_by_relu_split(run, box, bounds, cases)
            if isinstance(verdict, Result):
                return verdict
            if verdict is not None:
                continue
        for i, case in enumerate(cases):
            run.say(f"deciding case {i + 1}/{len(cases)}")
            verdict = _decide_case(run, box, bounds, case)
            if isinstance(verdict, Result):
                return verdict
            worst = min(worst, verdict)
    margin = None if not np.isfinite(worst) else float(worst)
    return run.result(ROBUST, "every violation case is infeasible", margin=margin)


def _decide_exact(run: _Run) -> Result:
    """Exact mode: each box decided by Z3 over the rationals; a witness is replayed."""
    from robustc.backends.z3exact import NAME, decide_exact
    from robustc.runtime.replay import replay

    cond = run.problem.prop.condition
    for box in run.problem.prop.boxes:
        run.say("deciding exactly (Z3)")
        out = decide_exact(run.graph, box, cond, time_limit=run.remaining(),
                           seed=run.options.seed)
        run.solvers_used.add(NAME)
        run.stats["queries"] += 1
        run.stats["solve_s"] += out.time_s
        run.stats["unstable_relus"] = max(run.stats["unstable_relus"],
                                          out.stats.get("unstable_relus", 0))
        if out.status == LIMIT:
            return run.result(UNKNOWN, out.reason or "Z3 limit reached")
        if out.status == FEASIBLE:
            rep = replay(run.problem.onnx_paths, out.solution, box, cond)
            if rep.violated:
                cex = Counterexample(rep.input, rep.output, rep.logits, rep.margin, NAME)
                return run.result(NOT_ROBUST, "counterexample found in exact arithmetic", cex,
                                  rep.margin)
            return run.result(UNKNOWN, f"exact counterexample (margin "
                              f"{out.stats['margin_exact']}) does not violate the float32 "
                              f"network (onnxruntime margin {rep.margin:.3g})")
    return run.result(ROBUST, "no input violates the property in exact rational arithmetic")


def _decide_case(run: _Run, box: Box, bounds, case: list) -> Result | float:
    """Decide one violation case; returns a final Result or the proved margin (or inf).

    The solver is asked for a *clear* violation (margin <= -CLEAR_VIOLATION) first, so a
    point that merely touches the tolerance band is not taken for a counterexample while a
    real one exists.
    """
    objective = None
    if len(case) == 1 and isinstance(case[0], Linear):
        objective = negate(case[0])  # minimise the property's margin
        lo = _linear_lower(objective, bounds, run.graph.output.name)
        if lo > MARGIN_TOL:
            return lo if run.options.margin else np.inf  # the bounds alone prove it
    if objective is not None:
        model = _encode(run, box, bounds, [], objective)
        bound = None if run.options.margin else MARGIN_TOL
        target = None if run.options.margin else -CLEAR_VIOLATION
        out = _solve(run, model, _options(run, bound, target))
        if out.status == FEASIBLE and out.proven_optimal and out.dual_bound is not None \
                and out.dual_bound > MARGIN_TOL:
            return float(out.dual_bound)  # margin mode: a proved lower bound on the margin
        return _conclude(run, box, model, out)
    model = _encode(run, box, bounds, case, None, tol=-CLEAR_VIOLATION)
    out = _solve(run, model, _options(run, None, None))
    if out.status == INFEASIBLE:  # no clear violation: is there one within tolerance?
        model = _encode(run, box, bounds, case, None)
        out = _solve(run, model, _options(run, None, None))
    return _conclude(run, box, model, out)


def _encode(run: _Run, box: Box, bounds, atoms: list, objective, tol: float = MARGIN_TOL):
    model = encode(run.graph, bounds.lower, bounds.upper, box, atoms, objective=objective,
                   tol=tol)
    run.stats["queries"] += 1
    run.stats["max_variables"] = max(run.stats["max_variables"], model.num_vars)
    run.stats["max_binaries"] = max(run.stats["max_binaries"], model.num_binaries)
    run.stats["max_constraints"] = max(run.stats["max_constraints"], model.num_rows)
    return model


def _options(run: _Run, bound: float | None, target: float | None) -> SolveOptions:
    return SolveOptions(time_limit=run.remaining(), threads=run.options.threads,
                        seed=run.options.seed, node_limit=run.options.node_limit,
                        objective_bound=bound, objective_target=target)


def _conclude(run: _Run, box: Box, model, out: SolveOutcome) -> Result | float:
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


def _linear_lower(atom: Linear, bounds, out_name: str) -> float:
    lo, hi = bounds.lower[out_name].ravel(), bounds.upper[out_name].ravel()
    pos, neg = np.maximum(atom.coeffs, 0), np.minimum(atom.coeffs, 0)
    return float(pos @ lo + neg @ hi + atom.const)


def _solve(run: _Run, model, options: SolveOptions) -> SolveOutcome:
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


def _check_witness(run: _Run, box: Box, model, out: SolveOutcome) -> Result:
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


__all__ = ["Problem", "VerifyOptions", "Result", "Counterexample", "verify", "VERDICTS",
           "ROBUST", "NOT_ROBUST", "UNKNOWN", "ERROR"]


def export_problem(problem: Problem, out_dir, formats=("lp", "mps", "gurobi"),
                   bounds_method: str = "symbolic") -> list:
    """Write the MILP of every violation case of ``problem`` to ``out_dir``; returns paths.

    Files are named ``<property>[_box<b>]_case<i>.<ext>``; each model's solutions are the
    inputs that violate the property in that case (see :mod:`robustc.backends.milp.encode`).
    """
    from pathlib import Path

    from robustc.backends.export import write_model
    from robustc.compiler.bounds import compute_bounds

    graph, _ = logits(problem.graph)
    prop = problem.prop
    prop.check_against(graph.input.shape, graph.output.size)
    cases = dnf(negate(prop.condition))
    written = []
    for b, box in enumerate(prop.boxes):
        bounds = compute_bounds(graph, box.lower, box.upper, bounds_method)
        for i, case in enumerate(cases):
            model = encode(graph, bounds.lower, bounds.upper, box, case)
            tag = f"_box{b}" if len(prop.boxes) > 1 else ""
            stem = Path(out_dir) / f"{problem.name}{tag}_case{i}"
            written.extend(write_model(model, stem, tuple(formats)))
    return written
