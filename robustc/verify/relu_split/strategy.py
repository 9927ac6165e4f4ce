"""The ReLU-split hook of :func:`robustc.verify.verify`.

:func:`decide_by_relu_split` decides the violation cases of one box by splitting ReLU
phases, with one of two searches (``ReluSplitOptions.engine``):

* the *chain* search (:mod:`robustc.verify.relu_split.search`, one search per case, the
  searches taking turns) for MLPs with linear atoms (MNIST-FC: 784 inputs, hundreds of
  unstable ReLUs, where one MILP per case does not finish). Cases it has not decided after
  ``refine_after`` of the time left are searched again after the hidden bounds are refined
  (:func:`robustc.verify.relu_split.refine.refine`), with twice the refinement rounds each
  time, up to ``refine_max_rounds``;
* the *graph* search (:mod:`robustc.verify.relu_split.graph`, every case in one tree, top-k
  and label-set atoms included) for everything else: convolutions, MaxPool, residual
  connections.

Candidate points are replayed on onnxruntime before they count; a case a search leaves
undecided for a reason other than the time limit goes to the pipeline's MILP
(:func:`robustc.verify.milp.decide_case`). On a graph with smooth activations (sigmoid,
tanh, softplus, ELU), which the graph search bounds by their relaxations and never splits,
there is no MILP to try first or after: the search gets all the time, and what it leaves
open is ``unknown`` (the MILP step says why, naming the activations).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from robustc.backends.milp.encode import MARGIN_TOL
from robustc.compiler.bound_types import BoundsTimeout
from robustc.errors import UnsupportedOperator
from robustc.files.limits import large_allocations_mapped
from robustc.ir import Activation, Dense, ElementwiseAffine, Identity, Input, Relu, Reshape
from robustc.ir.property import Box, Linear, asks_several
from robustc.verify.cases import FOUND, PROVED, UNKNOWN, Outcome
from robustc.verify.milp import decide_case, decide_cases_by_milp, minimises_margin
from robustc.verify.relu_split.bounder import tighten
from robustc.verify.relu_split.chain import case_chain
from robustc.verify.relu_split.graph import GraphSplit
from robustc.verify.relu_split.refine import refine
from robustc.verify.relu_split.search import decide_cases
from robustc.verify.results import Result
from robustc.verify.run import Run

_FOUND = "found at a vertex of the ReLU-split search"
#: Seconds the refinement's timing assumes without a time limit (VNN-COMP's usual one).
UNTIMED = 300.0


def decide_by_relu_split(run: Run, box: Box, bounds, cases: list) -> Result | float | None:
    """Decide ``cases`` on ``box`` by ReLU splitting; None when it does not apply (a node
    the linear bounds do not cover), else a final :class:`Result` or ``np.inf`` when
    every case is proved. PyTorch and BLAS keep to ``threads``."""
    with run.limit_threads():
        return _search_cases(run, box, bounds, cases)


def _search_cases(run: Run, box: Box, bounds, cases: list) -> Result | float | None:
    options = run.options.relu_split
    linear = all(isinstance(a, Linear) for case in cases for a in case)
    chained = linear and (options.engine == "chain" or (options.engine == "auto"
                                                         and _is_mlp(run.graph)))
    ch, flat = case_chain(run.graph, cases) if chained else (None, None)
    if ch is None:
        return _search_graph(run, box, bounds, cases)
    pre_lo = [bounds.lower[name].ravel() for name in ch.pre]
    pre_hi = [bounds.upper[name].ravel() for name in ch.pre]
    lower, upper = box.lower.ravel(), box.upper.ravel()
    if options.root_iterations > 0:
        run.say("tightening the hidden layers' bounds (alpha-CROWN)")
        start = time.perf_counter()
        pre_lo, pre_hi = tighten(ch, lower, upper, pre_lo, pre_hi, options.root_iterations,
                                 options, run.deadline)
        run.stats["relu_split_tighten_s"] = time.perf_counter() - start
        run.stats["relu_split_unstable"] = _unstable(pre_lo, pre_hi)
    search = dict(tol=MARGIN_TOL, check=lambda x: run.confirm(box, x, "ReLU split", _FOUND),
                  options=options)
    run.say(f"splitting ReLUs, {len(cases)} case(s) taking turns")
    refining = options.refine_rounds > 0
    outs = decide_cases(ch, lower, upper, pre_lo, pre_hi, flat,
                        deadline=_first_phase(run, options) if refining else run.deadline,
                        **search)
    _book(run, outs)
    if refining:
        pre_lo, pre_hi = _refine_and_search(run, ch, lower, upper, pre_lo, pre_hi, flat, outs,
                                            search)
    tight = _with_bounds(bounds, ch.pre, pre_lo, pre_hi)
    for out in outs:
        if out.status == FOUND:
            return out.witness
    for i, (case, out) in enumerate(zip(cases, outs, strict=True)):
        if out.status == PROVED:
            continue
        if run.deadline is not None and time.perf_counter() >= run.deadline:
            return run.result("unknown", out.reason)
        run.say(f"ReLU splitting left case {i + 1} open ({out.reason}); deciding it by MILP")
        verdict = decide_case(run, box, tight, case)
        if isinstance(verdict, Result):
            return verdict
    return np.inf


def _is_mlp(graph) -> bool:
    """Whether ``graph`` has only dense layers, ReLUs, element-wise affine maps and
    reshapes (what the chain search was tuned on)."""
    return all(isinstance(n, Input | Dense | Relu | ElementwiseAffine | Reshape | Identity)
               for n in graph.nodes)


def _search_graph(run: Run, box: Box, bounds, cases: list) -> Result | float | None:
    """The cases in one search on the graph (:mod:`robustc.verify.relu_split.graph`),
    stopped where the MILPs after it get their share of the time left (:func:`_milp_share`);
    None when the linear bounds do not cover the graph. If it decides nothing, the time left
    goes to one MILP per case."""
    options = run.options.relu_split
    # a forced --strategy relu-split gets the search alone; so does a graph the MILP
    # refuses (smooth activations)
    smooth = any(isinstance(n, Activation) for n in run.graph.nodes)
    done = [False] * len(cases) if run.options.strategy == "relu-split" or smooth else \
        _probe(run, box, bounds, cases)
    if isinstance(done, Result):
        return done
    cases = [case for case, proved in zip(cases, done, strict=True) if not proved]
    if not cases:
        return np.inf
    left = run.remaining()
    share = 0.0 if smooth else _milp_share(run, cases)
    until = None if left is None else time.perf_counter() + (1 - share) * left
    with large_allocations_mapped():  # the search's freed tensors go back at once
        try:
            search = GraphSplit(run.graph, box.lower, box.upper, bounds, cases, MARGIN_TOL,
                                lambda x: run.confirm(box, x, "ReLU split", _FOUND),
                                options, until, run.options.device)
        except UnsupportedOperator as exc:
            run.stats["relu_split_skipped"] = str(exc).split(":")[0]
            return None
        except BoundsTimeout as exc:  # the root's bounds ran past the search's share
            search, out = None, Outcome(UNKNOWN, str(exc))
        if search is not None:
            run.say(f"splitting ReLUs on the graph, {len(cases)} case(s) in one tree")
            out = search.run()
    _book(run, [out])
    if out.status == FOUND:
        return out.witness
    if out.status == PROVED:
        return np.inf
    if run.late():
        return run.result("unknown", out.reason)
    left = range(len(cases)) if search is None else search.open_cases()
    return decide_cases_by_milp(run, box, bounds, cases, left,
                                f" (the ReLU split left it open: {out.reason})")


def _milp_share(run: Run, cases: list) -> float:
    """The share of the time left that the MILPs after the graph search get:
    ``milp_share``, or none where the probe's MILPs ran out of their budget (the MILPs
    after the search would be the same models; dd64_pgd image 17: 9 s of 60 more for the
    search), unless the probe's last MILP had solved its root relaxation (a finite dual
    bound on the margin, ``milp_probe_live``) and each case is one linear atom (a margin
    the MILP minimises; not a top-k case): then ``milp_share_live`` (oval21 cifar_wide_kw
    img9214: HiGHS proves it in 388 s at its root node, the search is open after 700 s;
    resnet_4b's MILPs do not reach their root LP in the probe)."""
    options = run.options.relu_split
    if not run.stats.get("milp_probe_exhausted"):
        return options.milp_share
    if run.stats.get("milp_probe_live") and all(minimises_margin(c) for c in cases):
        return options.milp_share_live
    return 0.0


def _probe(run: Run, box: Box, bounds, cases: list) -> Result | list[bool]:
    """Each case's MILP within a short budget (``milp_probe`` of the time left, at most
    ``milp_probe_cap`` s, for all of them; ``milp_probe_topk`` where a case asks for at
    least ``k > 1`` of its atoms): a final Result (a replayed counterexample, an error), or
    which cases it proved."""
    options = run.options.relu_split
    left = run.remaining()
    share = options.milp_probe_topk if asks_several(cases) else options.milp_probe
    budget = options.milp_probe_cap if left is None else \
        min(share * left, options.milp_probe_cap)
    proved = [False] * len(cases)
    if budget <= 0:
        return proved
    start = time.perf_counter()
    run.milp_dual_bound = None
    try:
        with run.until(start + budget):
            for i, case in enumerate(cases):
                if run.late():
                    break
                run.say(f"trying case {i + 1}/{len(cases)} by MILP first ({budget:.0f} s "
                        f"for all)")
                verdict = decide_case(run, box, bounds, case)
                if isinstance(verdict, Result):
                    if verdict.verdict == UNKNOWN:
                        continue
                    return verdict
                proved[i] = True
        return proved
    finally:
        run.stats["milp_probe_s"] = time.perf_counter() - start
        run.stats["milp_probe_proved"] = sum(proved)
        # its MILPs ran to the end of its budget with a case still open
        run.stats["milp_probe_exhausted"] = not all(proved) and \
            time.perf_counter() >= start + budget
        # the MILP it stopped had solved its root relaxation: a finite dual bound
        run.stats["milp_probe_live"] = run.stats["milp_probe_exhausted"] and \
            run.milp_dual_bound is not None


def _refine_and_search(run: Run, ch, lower, upper, pre_lo: list, pre_hi: list, flat: list,
                       outs: list, search: dict) -> tuple[list, list]:
    """While cases are open: refine the hidden bounds (:func:`refine`), search the open
    cases again (``outs`` updated in place), and refine with twice the rounds next time.
    Returns the refined bounds."""
    options = run.options.relu_split
    rounds = options.refine_rounds
    while not run.late() and not any(out.status == FOUND for out in outs):
        open_ = [i for i, out in enumerate(outs) if out.status != PROVED]
        if not open_:
            break
        run.say(f"refining the hidden layers' bounds ({rounds} rounds per neuron)")
        start, before = time.perf_counter(), _unstable(pre_lo, pre_hi)
        until = start + options.refine_share * run.remaining() if run.deadline else None
        pre_lo, pre_hi = refine(ch, lower, upper, pre_lo, pre_hi,
                                dataclasses.replace(options, refine_rounds=rounds), until,
                                run.deadline, run.stats.setdefault("relu_refine_layers", {}))
        run.stats["relu_refine_s"] = run.stats.get("relu_refine_s", 0.0) + \
            time.perf_counter() - start
        run.stats["relu_refine_unstable"] = _unstable(pre_lo, pre_hi)
        # The last search gets the time left: once the rounds reach their cap, or when
        # the refinement stabilised no neuron.
        last = 2 * rounds > options.refine_max_rounds or _unstable(pre_lo, pre_hi) == before
        run.say(f"splitting ReLUs again, {len(open_)} case(s) open")
        step = max((out.stats.get("step_s", 0.0) for out in outs), default=0.0)
        again = decide_cases(ch, lower, upper, pre_lo, pre_hi, [flat[i] for i in open_],
                             step_estimate=step,
                             deadline=run.deadline if last else _first_phase(run, options),
                             **search)
        _book(run, again)
        for i, out in zip(open_, again, strict=True):
            outs[i] = out
        if last:
            break
        rounds *= 2
    return pre_lo, pre_hi


def _book(run: Run, outs: list) -> None:
    """Add the searches' counters to the run's statistics."""
    for out in outs:
        for key, value in out.stats.items():
            if isinstance(value, int | float) and key not in ("root_bound", "step_s"):
                run.stats[f"relu_split_{key}"] = run.stats.get(f"relu_split_{key}", 0) + value


def _first_phase(run: Run, options) -> float:
    """When the search without refinement stops: after ``refine_after`` of the time left
    (of ``UNTIMED`` seconds without a time limit)."""
    left = run.remaining()
    return time.perf_counter() + options.refine_after * (UNTIMED if left is None else left)


def _unstable(lo: list, hi: list) -> int:
    return int(sum(((l < 0) & (h > 0)).sum() for l, h in zip(lo, hi, strict=True)))


def _with_bounds(bounds, names: list, lower: list, upper: list):
    """``bounds`` with the pre-activation bounds of ``names`` replaced (tighter ones)."""
    lo, hi = dict(bounds.lower), dict(bounds.upper)
    for name, l, h in zip(names, lower, upper, strict=True):
        lo[name] = np.maximum(lo[name], l.reshape(lo[name].shape))
        hi[name] = np.minimum(hi[name], h.reshape(hi[name].shape))
    return dataclasses.replace(bounds, lower=lo, upper=hi)
