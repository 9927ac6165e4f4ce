"""Branch and bound over ReLU phases with optimised linear bounds (beta-CROWN).

Boxes over many inputs (MNIST-FC: 784 pixels) cannot be split on the input; what makes
their MILPs slow is the number of unstable ReLUs. This pass splits ReLUs instead:

1. the margin graph (:func:`robustc.verify.cases.margin_graph`) is flattened into a
   *chain* of affine layers with ReLUs between them (:func:`~robustc.verify.relu_split.
   chain.chain`; graphs of linear nodes
   and plain ReLUs in sequence: MLPs, and convolutions unrolled to dense matrices);
2. a *domain* is a set of phase decisions (``z_j >= 0`` or ``z_j <= 0`` for some unstable
   pre-activations ``z_j``). Its lower bound on ``-m`` for each atom margin ``m`` of the
   violation case is a CROWN back-substitution through the chain with the intermediate
   bounds of the root (clipped at 0 by the decisions), a lower ReLU slope ``alpha`` per
   unstable neuron and a Lagrange multiplier ``beta >= 0`` per decision (Wang et al. 2021,
   beta-CROWN): ``min f >= min f - sum beta_j s_j z_j`` on the domain, where ``s_j z_j >= 0``
   is decision ``j``. Any ``alpha`` in ``[0, 1]`` and ``beta >= 0`` give a valid bound;
   a few Adam steps per round push it up (warm-started from the parent domain; a child
   keeps its parent's bound where its own is lower);
3. a domain is *refuted* when some atom's bound exceeds ``tol`` (no input of the domain
   reaches the violation ``m >= -tol``: the MILP encoding's tolerance); otherwise the neuron
   with the largest intercept score (how much its chord's intercept lowers the bound, the
   BaBSR rule) is split and both children go back to the queue, the lowest bound first;
4. every bounded domain contributes the input vertex that minimises its linear bound: a
   point whose float64 margins violate the case goes to ``check`` (the caller replays it
   on onnxruntime). Only a replayed point is a counterexample.

The root's intermediate bounds (per hidden layer) come from the caller (CROWN bounds of the
pipeline) and are tightened by alpha-CROWN (:func:`~robustc.verify.relu_split.bounder.
tighten`: the same optimised back-substitution with every neuron of a layer as a row).
Bounds that count are computed in float64 and widened by
:func:`robustc.compiler.bounds.widen`; the Adam steps and the branching trials run in
float32 (they only choose parameters and rank candidates).
A domain with no unstable neuron left to split (every phase decided) is reported as
undecided, never as a proof, and the search answers ``unknown``. Each violation case has
its own search; :func:`decide_cases` lets them take turns.

The search reads only the chain (:mod:`robustc.verify.relu_split.chain`; bounds by
:mod:`robustc.verify.relu_split.bounder`); the attack and the replay are callbacks.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robustc.verify.cases import FOUND, PROVED, UNKNOWN, Outcome, check_best
from robustc.verify.relu_split.bounder import (
    Bounder,
    as_float64,
    initial_alpha,
    optimise_parameters,
    widen_lower,
)
from robustc.verify.relu_split.chain import Chain
from robustc.verify.relu_split.options import ReluSplitOptions

#: Coefficient entries per chunk of the per-domain bound refresh (memory cap).
REFRESH_ENTRIES = 1 << 22

# --------------------------------------------------------------------------------------
# The search


@dataclass
class DomainBatch:
    """Bounded domains: decisions, parameters, widened bounds and the next split."""

    signs: np.ndarray    # (N, total) int8
    lo: np.ndarray       # (N, total) float32, rounded down: hidden pre-activation bounds
    hi: np.ndarray       # (N, total) float32, rounded up
    alpha: np.ndarray    # (N, R, total) float32
    beta: np.ndarray     # (N, R, total) float32
    lb: np.ndarray       # (N, R) widened lower bounds of -margin
    choice: np.ndarray   # (N,) flat neuron to split next, -1 when none is left
    found: object = None


@dataclass
class Search:
    ch: Chain
    bounder: Bounder
    rows: np.ndarray
    tol: float
    check: Callable[[np.ndarray], object] | None  # None: no candidate points are tried
    options: ReluSplitOptions
    deadline: float | None
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        import torch

        self.offsets = np.cumsum([0] + self.ch.hidden)
        w, b = self.ch.weights[-1][self.rows], self.ch.biases[-1][self.rows]
        self.obj = (torch.as_tensor(-w), torch.as_tensor(-b))

    def _layers(self, flat):
        return [flat[:, a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]

    def bound(self, signs: np.ndarray, lo: np.ndarray, hi: np.ndarray, alpha: np.ndarray,
              beta: np.ndarray, steps: int, split: np.ndarray | None = None,
              inherited: np.ndarray | None = None, obj: tuple | None = None) -> DomainBatch:
        """Bound domains (decisions ``signs``, hidden bounds ``lo``/``hi`` with the
        decisions clipped in; ``split``: the flat neuron each was just split on, None at
        the root; ``inherited``: the parent's bounds ``(N, R)``, valid for the child too;
        ``obj``: an objective per domain, ``(N, R, n)`` weights and ``(N, R)`` offsets,
        instead of the search's rows): refresh the hidden bounds above the split,
        optimise, choose the next split and try the minimising vertices."""
        import torch

        obj = self.obj if obj is None else obj

        if self.options.refresh:
            layer = (np.zeros(len(lo), dtype=np.int64) if split is None else
                     np.searchsorted(self.offsets, split, side="right") - 1)
            lo, hi = self._refresh(lo, hi, layer)
        empty = (lo > hi).any(axis=1)  # valid bounds that cross: no input in the domain
        lo, hi = np.where(empty[:, None], np.minimum(lo, hi), lo), np.maximum(lo, hi)
        tlo, thi = self._layers(as_float64(lo)), self._layers(as_float64(hi))
        tsign = self._layers(as_float64(signs))
        ta = [p.clone() for p in self._layers3(as_float64(alpha))]
        tb = [p.clone() for p in self._layers3(as_float64(beta))]
        ta, tb = optimise_parameters(self.bounder, obj, tlo, thi, tsign, ta, tb, steps,
                                     self.options, self.deadline)
        with torch.no_grad():
            lb, a, coefs = self.bounder.bound(*obj, tlo, thi, tsign, ta, tb, want_coefs=True)
        lb = widen_lower(lb.numpy())
        if inherited is not None:
            # A child's domain lies inside its parent's, so the parent's bound holds for it;
            # the optimised bound of a child can be lower (the relaxation is not monotone
            # in the hidden bounds), and a domain left with it would be split again and again.
            lb = np.maximum(lb, inherited)
        lb[empty] = np.inf
        alpha = torch.cat(ta, -1).numpy()
        beta = torch.cat(tb, -1).numpy()
        open_ = lb.max(axis=1) <= self.tol
        choice = self._choose(coefs, lo, hi, open_, (signs, lo, hi, alpha, beta), obj)
        out = DomainBatch(signs, down32(lo), up32(hi), alpha.astype(np.float32),
                     beta.astype(np.float32), lb, choice)
        out.found = self._candidates(a.numpy()[open_])
        return out

    def _refresh(self, lo: np.ndarray, hi: np.ndarray, layer: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """CROWN bounds, per domain, of every hidden layer above ``layer`` (the layer of
        the domain's newest decision; layers at or below it cannot change) through the
        domain's own (clipped) bounds below it; intersected with the given ones."""
        import torch

        lo, hi = lo.copy(), hi.copy()
        width = max(self.ch.hidden)
        for k in range(1, len(self.ch.hidden)):
            if self._late():
                break  # the bounds so far are valid, only less tight
            first, last = self.offsets[k], self.offsets[k + 1]
            doms = np.flatnonzero(layer < k)
            rows = np.flatnonzero(((lo[doms, first:last] < 0) &
                                   (hi[doms, first:last] > 0)).any(0))
            if rows.size == 0:
                continue
            w, b = self.ch.weights[k][rows], self.ch.biases[k][rows]
            obj = (as_float64(np.concatenate([w, -w])), as_float64(np.concatenate([b, -b])))
            chunk = max(1, REFRESH_ENTRIES // (2 * rows.size * width))
            for s in range(0, doms.size, chunk):
                part = doms[s:s + chunk]
                tlo = self._layers(as_float64(lo[part]))[:k]
                thi = self._layers(as_float64(hi[part]))[:k]
                alpha = [(h > -l).to(l.dtype).unsqueeze(1) for l, h in zip(tlo, thi, strict=True)]
                with torch.no_grad():
                    lb, _, _ = self.bounder.bound(*obj, tlo, thi, None, alpha, None)
                lb = lb.numpy()
                cols = np.ix_(part, first + rows)
                lo[cols] = np.maximum(lo[cols], widen_lower(lb[:, :rows.size]))
                hi[cols] = np.minimum(hi[cols], -widen_lower(lb[:, rows.size:]))
        return lo, hi

    def _late(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline

    def _layers3(self, flat):
        return [flat[..., a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]

    def _choose(self, coefs: list, lo: np.ndarray, hi: np.ndarray, open_: np.ndarray,
                params: tuple, obj: tuple) -> np.ndarray:
        """The neuron to split next in each open domain (-1: none left, or refuted).

        Candidates are the ``branch_candidates`` unstable neurons with the largest BaBSR
        intercept score (``|negative coefficient| * -u l / (u - l)``; the coefficient size
        times ``min(u, -l)`` when no intercept scores); each is tried by bounding both
        children with the domain's parameters, and the candidate whose better child bound
        is highest wins (filtered smart branching).
        """
        n = lo.shape[0]
        choice = np.full(n, -1, dtype=np.int64)
        unstable = (lo < 0) & (hi > 0)
        rows = np.flatnonzero(open_ & unstable.any(axis=1))
        if rows.size == 0:
            return choice
        lo, hi, unstable = lo[rows], hi[rows], unstable[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            intercept = np.where(unstable, -hi * lo / (hi - lo), 0.0)
        coef = np.concatenate([np.broadcast_to(c.numpy(), (n,) + c.shape[1:])[rows]
                               for c in coefs], axis=-1)  # (n_open, R, total)
        score = (np.maximum(-coef, 0.0) * intercept[:, None, :]).sum(axis=1)
        backup = np.abs(coef).sum(axis=1) * np.minimum(hi, -lo)
        score = np.where(score > 0, score + backup.max(), backup)  # intercepts rank first
        score = np.where(unstable, score, -1.0)
        k = min(self.options.branch_candidates, score.shape[1])
        top = np.argsort(-score, axis=1)[:, :k]
        valid = np.take_along_axis(score, top, axis=1) >= 0
        choice[rows] = top[:, 0]
        if k > 1 and not self._late():
            gain = self._try_splits(rows, top, params, obj)
            gain = np.where(valid, gain, -np.inf)
            choice[rows] = top[np.arange(rows.size), np.argmax(gain, axis=1)]
        return choice

    def _try_splits(self, rows: np.ndarray, top: np.ndarray, params: tuple, obj: tuple
                    ) -> np.ndarray:
        """``(n_open, k)``: the better child bound of splitting each candidate, bounded
        once with the parent's parameters (no optimisation)."""
        signs, lo, hi, alpha, beta = params
        n, k = top.shape
        sel = np.repeat(rows, 2 * k)
        idx = np.repeat(top.ravel(), 2)
        s, lo, hi, b = split_children(signs[sel], lo[sel], hi[sel], beta[sel], idx)
        if obj[0].dim() == 3:  # an objective per domain
            obj = (obj[0][sel], obj[1][sel])
        lb = self._bound_once(s, lo, hi, alpha[sel], b, obj)
        return lb.max(axis=1).reshape(n, k, 2).max(axis=2)

    def _bound_once(self, signs: np.ndarray, lo, hi, alpha, beta, obj: tuple) -> np.ndarray:
        """Bounds with the given parameters, in float32: they only rank branching
        candidates (no domain is refuted by them)."""
        import torch

        f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
        obj = [t.to(torch.float32) for t in obj]
        with torch.no_grad():
            lb, _, _ = self.bounder.single.bound(
                *obj, self._layers(f32(lo)), self._layers(f32(hi)), self._layers(f32(signs)),
                self._layers3(f32(alpha)), self._layers3(f32(beta)))
        return lb.numpy()

    def _candidates(self, a: np.ndarray):
        """The input vertices minimising each bound; replays the best violating ones."""
        if self.check is None:
            return None
        x = np.where(a >= 0, self.bounder.x_lo.numpy(), self.bounder.x_hi.numpy())
        x = x.reshape(-1, x.shape[-1])
        margins = self.ch.forward(x)[:, self.rows].min(axis=1)
        self.stats["vertices"] = self.stats.get("vertices", 0) + len(x)
        return check_best(x, margins, self.check, self.options.checks)


def split_children(signs, lo, hi, beta, idx):
    """Rows in pairs: even rows decide neuron ``idx`` active, odd rows inactive (the
    bounds clipped at 0, the new decision's multiplier reset). Modifies its arguments."""
    both = np.arange(len(idx))
    active = both % 2 == 0
    signs[both, idx] = np.where(active, 1, -1)
    lo[both, idx] = np.where(active, np.maximum(lo[both, idx], 0.0), lo[both, idx])
    hi[both, idx] = np.where(active, hi[both, idx], np.minimum(hi[both, idx], 0.0))
    beta[both, :, idx] = 0.0
    return signs, lo, hi, beta


def down32(v: np.ndarray) -> np.ndarray:
    """float32 values not above ``v`` (stored bounds stay valid)."""
    out = v.astype(np.float32)
    return np.where(out > v, np.nextafter(out, np.float32(-np.inf)), out)


def up32(v: np.ndarray) -> np.ndarray:
    """float32 values not below ``v``."""
    out = v.astype(np.float32)
    return np.where(out < v, np.nextafter(out, np.float32(np.inf)), out)


class SearchTree:
    """The open domains of one violation case and how its search stands."""

    def __init__(self, search: Search):
        self.search = search
        self.heap: list = []
        self.counter = itertools.count()
        self.undecided = False   # a domain with every phase decided was not refuted
        self.out: Outcome | None = None
        self.spent = 0.0         # seconds this search has run (the turns go by it)
        self.last_round = 0.0    # seconds the last round took (no round starts too late)

    @property
    def stats(self) -> dict:
        return self.search.stats

    def root(self, root_lo: np.ndarray, root_hi: np.ndarray) -> None:
        import torch

        search, options = self.search, self.search.options
        t = time.perf_counter()
        alpha0 = torch.cat(initial_alpha([torch.as_tensor(root_lo)[None]],
                                          [torch.as_tensor(root_hi)[None]], search.rows.size), -1)
        alpha0 = alpha0.numpy().astype(np.float32)
        signs0 = np.zeros((1, root_lo.size), np.int8)
        batch = search.bound(signs0, root_lo[None], root_hi[None], alpha0,
                             np.zeros_like(alpha0), options.root_iterations or 1)
        self.stats["domains"] = 1
        self.stats["root_bound"] = float(batch.lb.max())
        self._take(batch, np.zeros(1, dtype=np.int64))
        self._settle(t)
        self.last_round = time.perf_counter() - t

    def _take(self, b: DomainBatch, depth: np.ndarray) -> None:
        stats = self.stats
        if b.found is not None:
            self.out = Outcome(FOUND, witness=b.found, stats=stats)
            return
        best = b.lb.max(axis=1)
        for i in range(len(best)):
            if best[i] > self.search.tol:
                stats["refuted"] += 1
            elif b.choice[i] < 0:  # every phase decided, not refuted
                stats["leaves"] += 1
                self.undecided = True
            else:
                heapq.heappush(self.heap, (float(best[i]), next(self.counter), int(depth[i]),
                                           int(b.choice[i]), b.signs[i], b.lo[i], b.hi[i],
                                           b.alpha[i], b.beta[i], b.lb[i]))

    def _settle(self, t: float) -> None:
        """Close the search when no open domain is left; book the time since ``t``."""
        self.spent += time.perf_counter() - t
        self.stats["s"] = self.spent
        if self.out is None and not self.heap:
            self.out = (Outcome(UNKNOWN, "a ReLU domain with every phase decided was not "
                                "refuted", stats=self.stats) if self.undecided
                        else Outcome(PROVED, stats=self.stats))

    def round(self) -> None:
        """Split the ``batch`` open domains with the lowest bounds and bound the children."""
        t = time.perf_counter()
        search, stats, heap = self.search, self.stats, self.heap
        parents = [heapq.heappop(heap) for _ in range(min(search.options.batch, len(heap)))]
        depth = np.repeat([p[2] + 1 for p in parents], 2)
        idx = np.repeat([p[3] for p in parents], 2)
        signs, lo, hi, alpha, beta, inherited = (
            np.repeat(np.stack([p[i] for p in parents]), 2, axis=0) for i in range(4, 10))
        signs, lo, hi, beta = split_children(signs, lo.astype(np.float64), hi.astype(np.float64),
                                        beta, idx)
        stats["rounds"] += 1
        stats["domains"] += len(idx)
        stats["max_depth"] = max(stats["max_depth"], int(depth.max()))
        self._take(search.bound(signs, lo, hi, alpha, beta, search.options.iterations, idx,
                                inherited), depth)
        self._settle(t)
        self.last_round = time.perf_counter() - t

    def stop(self, reason: str) -> None:
        self.out = Outcome(UNKNOWN, reason, stats=self.stats)


def decide_cases(ch: Chain, lower: np.ndarray, upper: np.ndarray, pre_lo: list,
                 pre_hi: list, cases: list, *, tol: float, check: Callable[[np.ndarray], object],
                 options: ReluSplitOptions = ReluSplitOptions(),
                 deadline: float | None = None, step_estimate: float = 0.0) -> list[Outcome]:
    """Decide violation cases by splitting ReLUs, one search per case, taking turns.

    ``cases[i]`` lists the output rows of ``ch`` (atom margins) of case ``i``: the case
    holds where ``m_r >= 0`` for every row ``r`` of it. ``pre_lo``/``pre_hi``: valid bounds
    of every hidden layer's pre-activations on the box ``[lower, upper]`` (tighten them
    first with :func:`tighten`; the search never changes them). ``check(x)`` returns the
    caller's counterexample when the flat input ``x`` violates the property on the real
    network (after replay), else None.

    The searches take turns a round at a time, the one that has used the least time going
    next, so a counterexample to a later case is not kept waiting by an earlier case that
    cannot be proved in time. Returns one
    :class:`~robustc.verify.cases.Outcome` per case: ``proved`` when every domain
    of the case is refuted with tolerance ``tol``; ``found`` (and every other unfinished
    case ``unknown``); ``unknown`` at the deadline, when the open domains of all cases
    together pass ``max_domains``, or when a domain has every phase decided but is not
    refuted. No root bound or round starts when the longest one so far (at least
    ``step_estimate`` seconds, e.g. from an earlier search of the same chain) would end
    past the deadline; each outcome's ``stats["step_s"]`` is that longest step.
    """
    root_lo, root_hi = np.concatenate(pre_lo), np.concatenate(pre_hi)
    bounder = Bounder(ch, lower, upper)
    trees = []
    for rows in cases:
        stats = {"domains": 0, "refuted": 0, "rounds": 0, "max_depth": 0, "leaves": 0,
                 "root_unstable": int(((root_lo < 0) & (root_hi > 0)).sum())}
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        trees.append(SearchTree(Search(ch, bounder, rows, tol, check, options, deadline, stats)))

    def late() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    no_time, step = False, step_estimate

    def too_late(seconds: float) -> bool:
        return deadline is not None and time.perf_counter() + seconds > deadline

    for tree in trees:
        if late() or too_late(step):
            no_time = True
            break
        tree.root(root_lo, root_hi)
        step = max(step, tree.last_round)
        if tree.out is not None and tree.out.status == FOUND:
            break
    while not any(t.out is not None and t.out.status == FOUND for t in trees):
        open_ = [t for t in trees if t.out is None and t.heap]
        if not open_ or late() or sum(len(t.heap) for t in open_) > options.max_domains:
            break
        tree = min(open_, key=lambda t: t.spent)
        if too_late(max(step, tree.last_round)):
            no_time = True  # a round lasts about as long as the longest: it would end late
            break
        tree.round()
        step = max(step, tree.last_round)
    found = any(t.out is not None and t.out.status == FOUND for t in trees)
    domains = sum(len(t.heap) for t in trees if t.out is None)
    for tree in trees:
        tree.stats["step_s"] = step  # the outcomes share these dicts
    for tree in trees:
        if tree.out is not None:
            continue
        if found:
            tree.stop("another case has a counterexample")
        elif late() or no_time or not tree.heap:
            tree.stop("time limit reached while splitting ReLUs")
        else:
            tree.stop(f"more than {options.max_domains} open ReLU domains ({domains} in all)")
    return [t.out for t in trees]


def decide_one_case(ch: Chain, lower: np.ndarray, upper: np.ndarray, pre_lo: list,
                     pre_hi: list, rows, *, tol: float, check: Callable[[np.ndarray], object],
                     options: ReluSplitOptions = ReluSplitOptions(),
                     deadline: float | None = None) -> Outcome:
    """:func:`decide_cases` for one case, ``m_r >= 0`` for every row ``r`` in ``rows``."""
    return decide_cases(ch, lower, upper, pre_lo, pre_hi, [rows], tol=tol, check=check,
                        options=options, deadline=deadline)[0]


__all__ = ["REFRESH_ENTRIES", "Search", "SearchTree", "DomainBatch", "split_children",
           "decide_cases", "decide_one_case", "down32", "up32"]
