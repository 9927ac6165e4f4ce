"""Branch and bound over input splits: a pass that decides a property box by parts.

Wide boxes over few inputs (ACAS Xu: 5 inputs, 300 ReLUs) leave most ReLUs unstable, and
one MILP over the whole box is slow. Splitting the box makes the bounds tight:

1. the box's *margin graph* (:func:`margin_graph`) is the network with one extra Dense
   node computing the margin of every atom of the violation cases, so the symbolic (CROWN)
   bounds of that node bound each atom directly, not through output intervals;
2. a part whose bounds refute every violation case (:func:`refuted`) is proved;
3. otherwise it is attacked (a counterexample ends the search); a part with at most
   ``max_unstable`` unstable ReLUs is handed to the exact decision (a MILP per open case),
   unless the network holds smooth activations (sigmoid, tanh, ...: the MILP refuses them,
   and each bisection tightens their relaxation), whose parts are bisected until refuted;
4. any other part is bisected at the midpoint of the input dimension with the largest
   estimated influence, ``width_i * |d margin / d x_i|`` (gradients supplied by the caller,
   :func:`split_dimension`). The two halves share the cut plane, so they cover the part
   exactly, without gaps.

The driver (:func:`branch_and_bound`) reads only the IR and the property IR; the attack,
the influence gradients and the exact decision are callbacks, so every property kind that
lowers to boxes and atoms can use it. It returns ``proved`` only when every part is proved;
a part stopped by a limit is never a proof.

When the margin graph is made of linear nodes and ReLUs (MLPs such as ACAS Xu and
MNIST-FC; :func:`robustc.compiler.batch_bounds.supports`), the search runs in batches
(``SplitOptions.batch`` parts at a time, :func:`_batched_search`): one vectorised CROWN
computation bounds the whole batch (the same bounds as per part), a batched attack starts
at each open part's centre and concretisation vertices and hands points that violate a
case in float64 to ``Callbacks.check`` (the caller replays them), parts with at most
``batch_max_unstable`` unstable ReLUs are decided exactly, and the split input is chosen
from margin gradients computed for the whole batch in numpy. Parts are taken best first by
the best score their parent's attack reached, and a sampling local search over the whole
box (:class:`LocalSearch`) takes a share of the time after the first second: it finds
counterexamples in regions too thin for the attacks. Other graphs take the per-part
search.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robustc.compiler import batch_bounds
from robustc.compiler.bounds import Bounds, compute_bounds
from robustc.ir import Activation, Graph
from robustc.ir.property import AtLeast, Box
from robustc.verify.cases import (
    FOUND,
    MARGIN_NODE,
    PROVED,
    UNKNOWN,
    Outcome,
    case_atoms,
    margin_graph,
    refuted,
)

#: Parts whose widest side is below this are never bisected (decided exactly instead).
MIN_WIDTH = 1e-9


@dataclass(frozen=True)
class SplitOptions:
    """When and how to split (see the module docstring)."""

    max_unstable: int = 30        # decide a part exactly once at most this many are unstable
    min_unstable: int = 40        # split a box only when more ReLUs than this are unstable
    max_dims: int = 16            # split only boxes with at most this many free inputs
    max_parts: int = 2_000_000    # give up (unknown) after this many parts
    attack_depth: int = 4         # attack parts up to this depth (deeper: every 6th level)
    # Batched search (graphs of linear nodes and ReLUs, see robustc.compiler.batch_bounds):
    # bound this many parts at once; 0 or 1 keeps the per-part search.
    batch: int = 64
    batch_max_unstable: int = 3   # the batched search decides a part exactly at or below this
    batch_checks: int = 4         # candidate points replayed per batch at most
    batch_attack_steps: int = 2   # gradient steps of the batched attack on every batch
    batch_attack_depth: int = 1   # the batched search runs ``attack`` on parts this shallow
    # Sampling local search beside the batched search (:class:`LocalSearch`): it starts
    # after ``search_after`` seconds and takes at most ``search_share`` of the time since.
    search_after: float = 1.0
    search_share: float = 0.1


def split_dimension(box: Box, gradient: np.ndarray) -> int:
    """The flat index of the free input with the largest ``width * |gradient|``; ties and
    zero gradients fall back to the widest input."""
    width = (box.upper - box.lower).ravel()
    score = width * np.abs(np.asarray(gradient, dtype=np.float64).ravel())
    if not np.any(score > 0):
        score = width
    return int(np.argmax(score))


def bisect(box: Box, dim: int) -> tuple[Box, Box]:
    """The two halves of ``box`` cut at the midpoint of flat input ``dim``; they share the
    cut plane, so their union is exactly ``box``."""
    lo, hi = box.lower.ravel(), box.upper.ravel()
    mid = lo[dim] + (hi[dim] - lo[dim]) / 2
    left_hi, right_lo = hi.copy(), lo.copy()
    left_hi[dim], right_lo[dim] = mid, mid
    shape = box.lower.shape
    return (Box(box.lower, left_hi.reshape(shape)), Box(right_lo.reshape(shape), box.upper))


def wants_split(box: Box, bounds: Bounds, options: SplitOptions) -> bool:
    """Whether ``box`` is worth splitting: few free inputs and many unstable ReLUs."""
    return box.perturbed <= options.max_dims and bounds.num_unstable() > options.min_unstable


@dataclass
class Callbacks:
    """What :func:`branch_and_bound` asks of its caller.

    ``attack(box)``: a counterexample in ``box`` or None. ``gradient(box)``: the gradient
    of the property's margin (input-shaped) used for the influence estimate. ``decide(box,
    bounds, open_cases)``: ``(PROVED, None)``, ``(FOUND, witness)`` or ``(UNKNOWN,
    reason)``, exactly (a MILP per case). ``check(box, x)``: the caller's counterexample when
    the point ``x`` (input-shaped, in ``box``) violates the property on the real network
    (replayed), else None; used by the batched search on cheap candidate points (without
    it, the batched search only attacks and decides).
    """

    attack: Callable[[Box], object]
    gradient: Callable[[Box], np.ndarray]
    decide: Callable[[Box, Bounds, list], tuple[str, object]]
    check: Callable[[Box, np.ndarray], object] | None = None


def branch_and_bound(graph: Graph, box: Box, cases: list[list], calls: Callbacks, *,
                     tol: float, options: SplitOptions = SplitOptions(),
                     deadline: float | None = None) -> Outcome:
    """Decide the violation ``cases`` (a DNF over ``graph``'s output) on ``box`` by parts.

    Returns an :class:`Outcome`. ``proved``: no part admits a violation (every part refuted
    by its bounds or decided by ``calls.decide``); ``found``: a callback returned a
    counterexample; ``unknown``: the deadline, ``max_parts`` or an undecided part. ``tol``
    is the refutation tolerance of :func:`refuted`.
    """
    atoms = case_atoms(cases)
    mgraph = margin_graph(graph, atoms)
    if options.batch > 1 and batch_bounds.supports(mgraph):
        return _batched_search(mgraph, box, cases, atoms, calls, tol, options, deadline)
    stack, stats = [(box, 0)], {"parts": 0, "refuted": 0, "exact": 0, "attacked": 0,
                                "max_depth": 0}
    undecided = ""
    while stack:
        if deadline is not None and time.perf_counter() > deadline:
            return Outcome(UNKNOWN, "time limit reached while splitting", stats=stats)
        if stats["parts"] >= options.max_parts:
            return Outcome(UNKNOWN, f"more than {options.max_parts} input parts", stats=stats)
        part, depth = stack.pop()
        stats["parts"] += 1
        stats["max_depth"] = max(stats["max_depth"], depth)
        status, payload = _visit(mgraph, part, depth, cases, atoms, calls, (tol, options), stats)
        if status == FOUND:
            return Outcome(FOUND, witness=payload, stats=stats)
        if status == UNKNOWN:
            undecided = undecided or str(payload)
        elif status == "split":
            left, right = bisect(part, split_dimension(part, calls.gradient(part)))
            stack += [(right, depth + 1), (left, depth + 1)]
    if undecided:
        return Outcome(UNKNOWN, undecided, stats=stats)
    return Outcome(PROVED, stats=stats)


def _visit(mgraph: Graph, part: Box, depth: int, cases: list, atoms: list, calls: Callbacks,
           settings: tuple[float, SplitOptions], stats: dict) -> tuple[str, object]:
    """One part: refute by bounds, attack, decide exactly, or ask for a split."""
    tol, options = settings
    bounds = compute_bounds(mgraph, part.lower, part.upper, "symbolic")
    upper = bounds.upper[MARGIN_NODE].ravel()
    by_id = {id(a): float(upper[i]) for i, a in enumerate(atoms)}
    open_cases = [c for c in cases if not refuted(c, by_id, tol)]
    if not open_cases:
        stats["refuted"] += 1
        return PROVED, None
    if depth <= options.attack_depth or depth % 6 == 0:
        stats["attacked"] += 1
        found = calls.attack(part)
        if found is not None:
            return FOUND, found
    # A part too thin to bisect in floating point is decided exactly whatever its size.
    # Smooth activations: the MILP refuses them, while each bisection tightens their
    # relaxation, so such parts are split until refuted (or thin).
    thin = float(np.max(part.upper - part.lower)) < MIN_WIDTH
    smooth = any(isinstance(n, Activation) for n in mgraph.nodes)
    if (bounds.num_unstable() <= options.max_unstable and not smooth) or thin:
        stats["exact"] += 1
        return calls.decide(part, bounds, open_cases)
    return "split", None


# --------------------------------------------------------------------------------------
# The batched search


def _case_table(cases: list, atoms: list) -> list[list[tuple[np.ndarray, int]]]:
    """Each case as ``(atom columns, k)`` pairs: at least ``k`` of those margins are >= 0
    (a Linear atom is ``([col], 1)``)."""
    col = {id(a): i for i, a in enumerate(atoms)}
    return [[(np.array([col[id(a)] for a in atom.atoms]), atom.k) if isinstance(atom, AtLeast)
             else (np.array([col[id(atom)]]), 1) for atom in case] for case in cases]


def _open_cases(table: list, upper: np.ndarray, tol: float) -> np.ndarray:
    """``(B, cases)`` bool: the cases that :func:`refuted` does not refute, per part."""
    possible = (upper >= -tol).astype(np.int64)
    out = np.ones((upper.shape[0], len(table)), dtype=bool)
    for c, case in enumerate(table):
        for cols, k in case:
            out[:, c] &= possible[:, cols].sum(axis=1) >= k
    return out


def _candidates(table: list, lo: np.ndarray, hi: np.ndarray, coeffs: np.ndarray,
                open_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cheap points of the open parts: each part's centre and, per open case, the vertex
    that maximises the sum of the CROWN upper bounds (``coeffs @ x``) of its atoms (the
    concretisation point of the relaxation). Returns the points and their part indices."""
    points, owners = [0.5 * (lo + hi)], [np.arange(lo.shape[0])]
    for c, case in enumerate(table):
        rows = np.flatnonzero(open_[:, c])
        if rows.size:
            cols = np.concatenate([cols for cols, _ in case])
            direction = coeffs[rows][:, cols, :].sum(axis=1)
            points.append(np.where(direction > 0, hi[rows], lo[rows]))
            owners.append(rows)
    return np.concatenate(points), np.concatenate(owners)


def _batched_search(mgraph: Graph, box: Box, cases: list, atoms: list, calls: Callbacks,
                    tol: float, options: SplitOptions, deadline: float | None) -> Outcome:
    """:func:`branch_and_bound` with parts bounded ``options.batch`` at a time.

    Each round pops up to ``batch`` parts, bounds them in one computation
    (:func:`batch_bounds.batch_symbolic_bounds`, the per-part bounds exactly), refutes
    cases, evaluates the network at every open part's centre and concretisation vertices
    (points whose margins show a violation are handed to ``calls.check``, which replays
    them), attacks the shallow parts, decides parts with at most ``batch_max_unstable``
    unstable ReLUs exactly, and bisects the rest on the input with the largest
    ``width * mean |gradient|`` of the binding atom's margin (:func:`_split_dimensions`).

    Parts are taken best first by the score of the best point the batched attack found in
    their parent (how nearly it violates the property), deepest first among equals. Which
    parts a proof visits does not depend on this order (the split rule alone fixes the
    tree), but it decides how soon a counterexample is met.
    """
    shape = box.lower.shape
    table = _case_table(cases, atoms)
    start = time.perf_counter()
    search = LocalSearch(mgraph, table, box.lower.ravel(), box.upper.ravel(), seed=0) \
        if options.search_share > 0 and calls.check is not None else None
    tick = itertools.count()
    # heap entries: (-parent score, -depth, tie, lower, upper, depth)
    stack = [(np.inf, 0, next(tick), box.lower.ravel().astype(np.float64),
              box.upper.ravel().astype(np.float64), 0)]
    stats = {"parts": 0, "refuted": 0, "exact": 0, "attacked": 0, "max_depth": 0,
             "batches": 0, "checked": 0}
    undecided = ""
    rng = np.random.default_rng(0)
    while stack:
        if deadline is not None and time.perf_counter() > deadline:
            return Outcome(UNKNOWN, "time limit reached while splitting", stats=stats)
        if stats["parts"] >= options.max_parts:
            return Outcome(UNKNOWN, f"more than {options.max_parts} input parts", stats=stats)
        if search is not None and _search_due(search, start, options):
            x = search.run(max(options.search_share * 0.2, 0.01))
            if x is not None:
                stats["checked"] += 1
                found = calls.check(box, x.reshape(shape))
                if found is not None:
                    stats["search_s"] = search.spent
                    return Outcome(FOUND, witness=found, stats=stats)
        take = [heapq.heappop(stack) for _ in range(min(options.batch, len(stack)))]
        lo = np.stack([t[3] for t in take])
        hi = np.stack([t[4] for t in take])
        depth = np.array([t[5] for t in take])
        stats["parts"] += len(take)
        stats["batches"] += 1
        stats["max_depth"] = max(stats["max_depth"], int(depth.max()))
        bb = batch_bounds.batch_symbolic_bounds(mgraph, lo, hi)
        upper = bb.upper[MARGIN_NODE]
        open_ = _open_cases(table, upper, tol)
        alive = np.flatnonzero(open_.any(axis=1))
        stats["refuted"] += len(take) - alive.size
        if not alive.size:
            continue
        found, part_score = _check_candidates(mgraph, table, lo[alive], hi[alive],
                                              bb.linear_upper[MARGIN_NODE][0][alive],
                                              open_[alive], calls, shape, options, stats)
        score = np.full(len(take), -np.inf)
        score[alive] = part_score
        if found is not None:
            return Outcome(FOUND, witness=found, stats=stats)
        unstable = bb.num_unstable()
        split = []
        for b in alive:
            part = None if depth[b] > options.batch_attack_depth and unstable[b] > \
                options.batch_max_unstable else Box(lo[b].reshape(shape), hi[b].reshape(shape))
            if depth[b] <= options.batch_attack_depth:
                stats["attacked"] += 1
                found = calls.attack(part)
                if found is not None:
                    return Outcome(FOUND, witness=found, stats=stats)
            thin = float(np.max(hi[b] - lo[b])) < MIN_WIDTH
            if unstable[b] <= options.batch_max_unstable or thin:
                part = part or Box(lo[b].reshape(shape), hi[b].reshape(shape))
                if deadline is not None and time.perf_counter() > deadline:
                    return Outcome(UNKNOWN, "time limit reached while splitting", stats=stats)
                stats["exact"] += 1
                still = [c for c, o in zip(cases, open_[b], strict=True) if o]
                status, payload = calls.decide(part, bb.part(b), still)
                if status == FOUND:
                    return Outcome(FOUND, witness=payload, stats=stats)
                if status == UNKNOWN:
                    undecided = undecided or str(payload)
            else:
                split.append(b)
        if split:
            split = np.array(split)
            dims = _split_dimensions(mgraph, table, lo[split], hi[split], open_[split], rng)
            for b, d in zip(split, dims, strict=True):
                mid = lo[b, d] + (hi[b, d] - lo[b, d]) / 2
                left_hi, right_lo = hi[b].copy(), lo[b].copy()
                left_hi[d], right_lo[d] = mid, mid
                for child in ((right_lo, hi[b]), (lo[b], left_hi)):
                    heapq.heappush(stack, (-score[b], -depth[b] - 1, next(tick), *child,
                                           depth[b] + 1))
    if undecided:
        return Outcome(UNKNOWN, undecided, stats=stats)
    return Outcome(PROVED, stats=stats)


def _search_due(search: LocalSearch, start: float, options: SplitOptions) -> bool:
    """Whether the local search's turn has come: after ``search_after`` seconds, while it
    has used less than ``search_share`` of the time since."""
    elapsed = time.perf_counter() - start - options.search_after
    return elapsed > 0 and search.spent < options.search_share * elapsed


class LocalSearch:
    """Random sampling and a local search for a violation over the whole box, in float64.

    Counterexamples in thin regions (ACAS Xu 1_9 property 7: margins below 5e-4 on a face
    of the box) defeat gradient attacks, whose steps jump across them, and take the
    bisection many parts to isolate. This search keeps the ``keep`` best of ``samples``
    points (uniform in the box, half of them with each coordinate moved to a bound with
    probability 1/4) and improves each by a (1+``tries``) evolution strategy: Gaussian
    steps whose per-point radius grows 1.5x after a success and shrinks 0.7x after a
    failure, clipped to the box (so faces are reached). When the best score has not grown
    for ``patience`` generations, it starts over from fresh samples. The score of a point
    is that of its most nearly violated case (>= 0: a violation in float64), as in the
    batched attack; a point is offered only when its score is >= 0 and better than any
    offered before.
    """

    def __init__(self, mgraph: Graph, table: list, lower: np.ndarray, upper: np.ndarray, *,
                 seed: int = 0, samples: int = 20_000, keep: int = 64, tries: int = 64,
                 patience: int = 30):
        self.mgraph, self.table = mgraph, table
        self.lo, self.hi = lower.astype(np.float64), upper.astype(np.float64)
        self.rng = np.random.default_rng(seed)
        self.samples, self.keep, self.tries, self.patience = samples, keep, tries, patience
        self.stale = 0
        self.x = None
        self.offered = -np.inf
        self.spent = 0.0

    def score(self, x: np.ndarray) -> np.ndarray:
        """The score of each row of ``x``: its most nearly violated case's binding margin."""
        return _best_case(self.table, batch_bounds.forward(self.mgraph, x))[0]

    def _restart(self) -> None:
        x = self.lo + (self.hi - self.lo) * self.rng.random((self.samples, self.lo.size))
        # half the samples on faces: each coordinate at a bound with probability 1/4
        half = slice(self.samples // 2, None)
        snap = self.rng.random(x[half].shape) < 0.25
        x[half] = np.where(snap, np.where(self.rng.random(snap.shape) < 0.5, self.lo, self.hi),
                           x[half])
        s = self.score(x)
        top = np.argsort(-s)[:self.keep]
        self.x, self.s = x[top], s[top]
        self.radius = np.full(len(top), 0.1)
        self.stale = 0

    def run(self, seconds: float) -> np.ndarray | None:
        """Search for about ``seconds``; the best point when it is a new best violation."""
        t0 = time.perf_counter()
        try:
            while time.perf_counter() - t0 < seconds:
                if self.x is None or self.stale >= self.patience:
                    self._restart()
                k, n = self.x.shape
                step = (self.hi - self.lo) * self.radius[:, None, None]
                cand = np.clip(self.x[:, None, :] + step * self.rng.standard_normal(
                    (k, self.tries, n)), self.lo, self.hi)
                cs = self.score(cand.reshape(-1, n)).reshape(k, self.tries)
                j = cs.argmax(axis=1)
                best = cs[np.arange(k), j]
                better = best > self.s
                self.stale = 0 if best.max() > self.s.max() + 1e-9 else self.stale + 1
                self.x[better] = cand[np.arange(k), j][better]
                self.s[better] = best[better]
                self.radius = np.where(better, self.radius * 1.5, self.radius * 0.7)
                i = int(np.argmax(self.s))
                if self.s[i] >= 0 and self.s[i] > self.offered:
                    self.offered = float(self.s[i])
                    return self.x[i].copy()
            return None
        finally:
            self.spent += time.perf_counter() - t0


#: Points per part (the centre and random ones) whose margin gradients estimate influences.
GRADIENT_POINTS = 4


def _binding(table: list, margins: np.ndarray, case: int) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the score of ``case`` (as :func:`_case_scores`) and the atom column
    that sets it (the smallest requirement's k-th largest margin)."""
    n = margins.shape[0]
    score, col = np.full(n, np.inf), np.zeros(n, dtype=np.int64)
    for cols, k in table[case]:
        k = min(max(k, 1), cols.size)
        order = np.argsort(-margins[:, cols], axis=1)[:, k - 1]
        value = margins[np.arange(n), cols[order]]
        better = value < score
        score, col = np.where(better, value, score), np.where(better, cols[order], col)
    return score, col


def _best_case(table: list, margins: np.ndarray, open_: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the score of its most nearly violated case among the ``open_`` ones
    (``(N, cases)`` bool; None: all) and the atom column that sets it (:func:`_binding`)."""
    n = margins.shape[0]
    scores, cols = np.empty((n, len(table))), np.empty((n, len(table)), dtype=np.int64)
    for c in range(len(table)):
        scores[:, c], cols[:, c] = _binding(table, margins, c)
    if open_ is not None:
        scores[~open_] = -np.inf
    case = np.argmax(scores, axis=1)
    rows = np.arange(n)
    return scores[rows, case], cols[rows, case]


def _split_dimensions(mgraph: Graph, table: list, lo: np.ndarray, hi: np.ndarray,
                      open_: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The input to bisect for each part: the largest ``width * mean |gradient|`` of the
    binding atom margin of the part's most nearly violated open case, at the centre and
    random points of the part (as :func:`split_dimension` with the caller's gradients)."""
    parts, n_in = lo.shape
    t = rng.random((GRADIENT_POINTS, n_in))
    t[0] = 0.5
    points = (lo[:, None, :] + (hi - lo)[:, None, :] * t[None]).reshape(-1, n_in)
    margins = batch_bounds.forward(mgraph, points)
    _, best_col = _best_case(table, margins, np.repeat(open_, GRADIENT_POINTS, axis=0))
    weights = np.zeros_like(margins)
    weights[np.arange(points.shape[0]), best_col] = 1.0
    grad = np.abs(batch_bounds.gradient(mgraph, points, weights))
    influence = grad.reshape(parts, GRADIENT_POINTS, n_in).mean(axis=1)
    width = hi - lo
    score = width * influence
    score = np.where(np.any(score > 0, axis=1, keepdims=True), score, width)
    return np.argmax(score, axis=1)


def _check_candidates(mgraph: Graph, table: list, lo: np.ndarray, hi: np.ndarray,
                      coeffs: np.ndarray, open_: np.ndarray, calls: Callbacks, shape: tuple,
                      options: SplitOptions, stats: dict) -> object:
    """A batched attack on the open parts, replayed via ``calls.check``.

    Starts at every open part's centre and concretisation vertices (:func:`_candidates`)
    and takes ``batch_attack_steps`` signed-gradient steps on the score of each point's
    most nearly violated open case (float64, every point at once), each point kept in its
    part. The few best points whose margins put them in a violation case are replayed.
    Returns the replayed counterexample (or None) and each part's best score.
    """
    if calls.check is None:
        return None, np.zeros(lo.shape[0])
    x, owners = _candidates(table, lo, hi, coeffs, open_)
    plo, phi, live = lo[owners], hi[owners], open_[owners]
    step = (phi - plo) / 4
    best_x, best_s = x.copy(), np.full(x.shape[0], -np.inf)
    rows = np.arange(x.shape[0])
    for it in range(options.batch_attack_steps + 1):
        margins = batch_bounds.forward(mgraph, x)
        score, col = _best_case(table, margins, live)
        better = score > best_s
        best_s[better], best_x[better] = score[better], x[better]
        if it == options.batch_attack_steps or np.sum(best_s >= 0) >= options.batch_checks:
            break
        weights = np.zeros_like(margins)
        weights[rows, col] = 1.0
        x = np.clip(x + step * np.sign(batch_bounds.gradient(mgraph, x, weights)), plo, phi)
        step *= 0.6
    order = np.argsort(-best_s)
    for i in order[:options.batch_checks]:
        if best_s[i] < 0:
            break
        stats["checked"] += 1
        part = Box(lo[owners[i]].reshape(shape), hi[owners[i]].reshape(shape))
        found = calls.check(part, best_x[i].reshape(shape))
        if found is not None:
            return found, None
    part_score = np.full(lo.shape[0], -np.inf)
    np.maximum.at(part_score, owners, best_s)
    return None, part_score


__all__ = ["SplitOptions", "Callbacks", "branch_and_bound", "split_dimension", "bisect",
           "wants_split", "LocalSearch"]
