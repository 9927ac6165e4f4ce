"""Branch and bound over ReLU phases on the IR graph itself (beta-CROWN, any DAG).

The chain search (:mod:`robustc.verify.relu_split.search`) needs a chain of dense layers
and linear atoms. This one runs on whatever graph the linear bounds cover
(:class:`robustc.compiler.crown.engine.Crown`: convolutions, MaxPool, AveragePool as a
convolution, residual Adds, Concat, reshapes) and decides every violation case of a box
in one tree, top-k and label-set cases included:

1. the *requirements*: each case of the negated property is a conjunction of atom margins
   ``m >= 0`` and of "at least ``k`` of these margins ``>= 0``" (``topk``, label sets).
   Every domain gets a lower bound ``lb_r`` of ``-m_r`` for every distinct atom ``r``; an
   atom is impossible on the domain when ``lb_r > tol``, a top-k requirement when fewer
   than ``k`` of its atoms are possible, a case when one of its requirements is, and the
   domain is *refuted* when every case is;
2. every MaxPool is first rewritten as ReLUs (:func:`robustc.compiler.passes.
   maxpool_as_relus`: ``max(a, b) = b + relu(a - b)``), so "which input is the largest"
   is split like any ReLU and a domain with every phase decided is linear;
3. a *domain* is a set of phase decisions ``s_j z_j >= 0`` on ReLU inputs ``z_j``. Its
   bounds: every node intersected with the root's (CROWN) bounds and each ReLU input
   with the domain's own, clipped by its decisions (on a graph whose only relaxed nodes
   are ReLUs, the ReLU inputs alone: :meth:`GraphSplit._clipped_bounds`); the unstable
   ReLU inputs after the newest decision can get fresh CROWN bounds through the domain's
   relaxations (``ReluSplitOptions.graph_refresh``, off by default; :meth:`Crown.refine`).
   ``lb`` is a back-substitution through the graph with a lower slope ``alpha`` per row
   and unstable neuron and a multiplier ``beta >= 0`` per row and decision (beta-CROWN,
   :meth:`Crown.backsubstitute`); any such values give a valid bound, and Adam steps
   raise it (warm-started from the parent; a child keeps its parent's bound where its
   own is lower, as its domain lies inside the parent's);
4. an open domain is split on the unstable ReLU with the largest BaBSR score (how much
   the chord's intercept lowers the bounds of the rows still open; the coefficient size
   times ``min(u, -l)`` when no intercept scores), the lowest domains first;
5. every open domain contributes the input vertices that minimise its rows' linear
   bounds; a point whose float64 forward pass satisfies a case goes to ``check`` (the
   caller replays it on onnxruntime). Only a replayed point is a counterexample;
6. the *row phase* (``ReluSplitOptions.graph_rows``): when the root leaves several rows
   open, each open row that no point of the box is seen to satisfy is first proved alone,
   in a tree whose domains are refuted when that row is (:meth:`GraphSplit._by_rows`);
   the rows proved are refuted in every domain of the one tree for the rest.

A domain with every ReLU phase decided that is still open is reported undecided, never
proved. Bounds that count are float64 and widened down (:data:`~robustc.compiler.
bound_types.WIDEN_REL`).
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robustc.compiler.bound_types import BoundsTimeout
from robustc.compiler.crown.engine import Crown, GraphBounds
from robustc.compiler.crown.intermediate import tighten_intermediate
from robustc.compiler.crown.operators import relu_slopes
from robustc.compiler.passes import maxpool_as_relus
from robustc.compiler.restrict import restrict_to_box
from robustc.ir import Activation, Graph, MaxPool, Relu
from robustc.ir.property import AtLeast, Linear
from robustc.verify.cases import FOUND, PROVED, UNKNOWN, Outcome, case_atoms, check_best
from robustc.verify.relu_split.options import ReluSplitOptions
from robustc.verify.relu_split.search import down32, split_children, up32

#: Coefficient numbers one back-substitution of a round may hold (float64); the number
#: of domains bounded at once is cut to fit.
ROUND_ENTRIES = 1 << 23
#: Bytes the open domains may hold (decisions, bounds, alpha and beta, stored compactly:
#: :class:`Domain`) before the search gives up with ``unknown``: about 33,000 domains of
#: resnet_4b's row phase (14,436 ReLUs, 2,422 unstable at the root, one open row; 32 KiB
#: each as counted by ``queue_peak_bytes``: 601 open domains, 19.6 MB, in prop_1 at a 90 s
#: cap; 0.23 MiB before they were stored on the unstable neurons and open rows only).
#: Its searches at the listed 300 s peaked at 2.5-2.6 GiB in all, rounds included
#: (``docs/vnnlib.md``).
QUEUE_BYTES = 1 << 30
#: How far above ``tol`` (float32) the Adam steps of a round must have lifted a domain's
#: refutation before it takes no more steps (:meth:`Crown.tune`'s ``stop_at``): the bound
#: that counts is computed again in float64 from the same parameters, a few float32
#: roundings away.
TUNE_STOP = 1e-4
#: Restarts and steps of the row phase's gradient ascent per row (:meth:`GraphSplit.
#: _attack_rows`).
ROW_ATTACK = (4, 20)
#: Why the row phase left a row to the joint search: a point satisfies its atom.
_POSSIBLE = "a point satisfies the row's atom"
#: Why a search stopped at its deadline.
_LATE = "time limit reached while splitting ReLUs"
#: The share of the box (refuted domains, 2^-depth each) from which the row phase's last
#: row, at the end of its share, goes on with all the time left instead of waiting for the
#: pair phase: ``dd64_pgd`` image 17's last row had refuted 0.999 of the box there (and was
#: proved with all the time), image 2's 0.65 (the pair phase proved that image).
ROW_NEARLY_DONE = 0.9
#: The pair phase (:meth:`GraphSplit._by_pairs`): weights ``lam`` of the implied rows
#: ``lam m_i + (1 - lam) m_j >= 0`` of a pair of atoms, and the most pairs it takes on.
PAIR_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MAX_PAIRS = 6


class Requirements:
    """The violation cases over the distinct atoms (rows): a case holds where every one of
    its requirements does, a requirement being "at least ``k`` of these rows have margin
    ``>= 0``" (a plain atom: ``k = 1`` of one row)."""

    def __init__(self, cases: list):
        self.atoms = case_atoms(cases)
        column = {id(a): i for i, a in enumerate(self.atoms)}
        self.cases = []
        for case in cases:
            reqs = []
            for atom in case:
                subs = atom.atoms if isinstance(atom, AtLeast) else (atom,)
                k = atom.k if isinstance(atom, AtLeast) else 1
                reqs.append((k, [column[id(a)] for a in subs]))
            self.cases.append(reqs)

    def refutation(self, lb: np.ndarray) -> np.ndarray:
        """``(N, C)``: per domain and case, a number that exceeds ``tol`` exactly when the
        bounds ``lb`` (``(N, R)``, lower bounds of ``-m``) refute the case."""
        out = np.full((lb.shape[0], len(self.cases)), -np.inf)
        for c, reqs in enumerate(self.cases):
            for k, cols in reqs:
                if k <= 0:
                    continue  # always holds
                if k > len(cols):
                    out[:, c] = np.inf
                    continue
                # fewer than k possible <=> the k-th smallest bound is above tol
                val = np.sort(lb[:, cols], axis=1)[:, k - 1]
                out[:, c] = np.maximum(out[:, c], val)
        return out

    def row(self, r: int) -> Requirements:
        """The same atoms with one case, "row ``r``'s margin ``>= 0``": refuted exactly where
        row ``r`` is (the goal of a search that proves one row on the whole box)."""
        one = object.__new__(Requirements)
        one.atoms, one.cases = self.atoms, [[(1, [r])]]
        return one

    def violation(self, m: np.ndarray) -> np.ndarray:
        """``(N,)``: the largest over cases of how well margins ``m`` (``(N, R)``) satisfy
        the case (``>= 0``: the case holds)."""
        best = np.full(m.shape[0], -np.inf)
        for reqs in self.cases:
            worst = np.full(m.shape[0], np.inf)
            for k, cols in reqs:
                if k <= 0:
                    continue
                if k > len(cols):
                    worst[:] = -np.inf
                    continue
                worst = np.minimum(worst, -np.sort(-m[:, cols], axis=1)[:, k - 1])
            best = np.maximum(best, worst)
        return best


@dataclass
class Domain:
    """One open domain, stored compactly: its own arrays (no view keeps a round's batch
    alive), on the neurons unstable at the root only (``GraphSplit.alpha_cols``: every
    other neuron is stable in every domain, where the domain has the root's bounds, no
    decision and the root's alpha, which the steps never move), alpha and beta only for
    the rows the domain leaves open (a refuted row is never bounded for its descendants
    again, or only beside other domains' open rows, from the root's alpha and zero beta),
    beta only on the decided neurons (zero elsewhere, where a multiplier has no decision
    to weigh). resnet_4b prop_1's row phase: 32 KiB a domain instead of 0.23 MiB.
    :meth:`GraphSplit.unpack` gives the full arrays back."""

    measure: float          # min over cases of the refutation number (lowest first)
    depth: int
    choice: int             # flat neuron to split next
    signs: np.ndarray       # (unstable at the root,) int8
    lo: np.ndarray          # (unstable at the root,) ReLU input bounds, decisions clipped
    hi: np.ndarray          # in, float32 rounded outwards (a stored bound stays valid)
    rows: np.ndarray        # (r,) the rows alpha and beta hold (sorted)
    alpha: np.ndarray       # (r, unstable at the root) float32
    beta: np.ndarray        # (r, decided: flatnonzero(signs)) float32, >= 0
    lb: np.ndarray          # (R,) widened lower bounds of -m

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.signs, self.lo, self.hi, self.rows, self.alpha,
                                      self.beta, self.lb))


@dataclass(frozen=True)
class _Cut:
    """Per-node bounds of a restricted graph (the caller's, cut down)."""

    lower: dict
    upper: dict
    method: str | None


@dataclass
class GraphSplit:
    """The search of one box (see the module docstring). ``bounds``: valid bounds of every
    node of ``graph`` on the box (numpy arrays by name, e.g. the pipeline's
    :class:`~robustc.compiler.bound_types.Bounds`); ``check(x)`` returns the caller's
    counterexample when the flat input ``x`` violates the property on the real network."""

    graph: Graph
    lower: np.ndarray
    upper: np.ndarray
    bounds: object
    cases: list
    tol: float
    check: Callable[[np.ndarray], object] | None
    options: ReluSplitOptions = field(default_factory=ReluSplitOptions)
    deadline: float | None = None
    device: str = "cpu"

    def __post_init__(self):
        import torch

        from robustc.runtime.torch_module import to_torch

        self.torch = torch
        self._restrict()
        # what a pair search (:meth:`_by_pairs`) starts from: the graph before the max-pool
        # rewrite (a pruned tree is not the pool, whose bounds the caller's hold)
        self.source = (self.graph, self.lower, self.upper, self.bounds)
        self.module = to_torch(self.graph, device=self.device, dtype=torch.float64)
        original_pools = {n.name for n in self.graph.nodes if isinstance(n, MaxPool)}
        self.graph = maxpool_as_relus(self.graph, (self.bounds.lower, self.bounds.upper))
        self.crown = Crown(self.graph, device=self.device)  # UnsupportedOperator
        self.crown32 = Crown(self.graph, device=self.device, dtype=torch.float32)
        # whether a domain's bounds need no pass over the graph (:meth:`_clipped_bounds`)
        self.relus_only = not any(isinstance(n, MaxPool | Activation) for n in self.graph.nodes)
        self.req = Requirements(self.cases)
        # what refutes a domain: every case (self.req), or one row in the row phase
        self.goal = self.req
        ops = self.crown.ops
        # the atoms' margins m = w_np . y + b_np; the bounds are of -m
        self.w_np = np.stack([a.coeffs for a in self.req.atoms]).astype(np.float64)
        self.b_np = np.array([a.const for a in self.req.atoms], dtype=np.float64)
        self.w, self.b = ops.tensor(-self.w_np), ops.tensor(-self.b_np)
        self.w32, self.b32 = self.w.to(torch.float32), self.b.to(torch.float32)
        self.box = self.crown.box(self.lower, self.upper)
        # a pruned max-pool tree equals the pool only after its ReLU: not the pool's bounds
        known = [n.name for n in self.graph.nodes if n.name in self.bounds.lower
                 and n.name not in original_pools]
        within = tuple({name: ops.tensor(np.asarray(side[name]).reshape(1, -1))
                        for name in known} for side in (self.bounds.lower, self.bounds.upper))
        # the nodes the rewrite added get CROWN bounds (and the nodes after them, whose
        # relaxations got tighter); without a pool, every node has CROWN's values already
        # when the caller's bounds are symbolic (or tighter): bounding them again took most
        # of the search's time on resnet_4b
        keep = set(self.graph.outputs)
        if not original_pools and getattr(self.bounds, "method", None) in ("symbolic",
                                                                             "crown", "lp"):
            keep.update(known)
        with torch.no_grad():
            self.root = self.crown.refine(self.box, within=within, keep=keep,
                                          unstable_only=True, deadline=self.deadline)
        self.stats = {"domains": 0, "refuted": 0, "rounds": 0, "max_depth": 0, "leaves": 0,
                      "vertices": 0, "engine": "graph", "queue_peak_bytes": 0,
                      "queue_peak_domains": 0,
                      "restricted_inputs": 0 if self.restricted is None else
                      int(self.restricted.input_index.size)}
        self._tighten_root()
        self.relus = [n for n in self.graph.nodes if isinstance(n, Relu)]
        self.offsets = np.cumsum([0] + [n.size for n in self.relus])
        self.reads = {}
        for k, node in enumerate(self.relus):
            self.reads.setdefault(node.inputs[0], []).append(k)
        self.rows = len(self.req.atoms)
        self.widest = max(n.size for n in self.graph.nodes)
        self.per_round = max(2, ROUND_ENTRIES // (self.rows * self.widest))
        self.heap: list = []
        self.counter = itertools.count()
        self.queue_bytes = 0
        self.undecided = False
        self.root_domain: Domain | None = None
        # per row, the largest margin seen at a point of the box (centre, vertices, the
        # row attack); a row is possible (never refuted on the box) when it is >= -tol
        self.best_margin = np.full(self.rows, -np.inf)
        self.proved_rows: list[int] = []  # rows the row phase refuted on the whole box
        self.goal_row: int | None = None   # the row the row phase is proving
        # the row phase's last row, stopped at its share for the pair phase: (row, its
        # open domains, their bytes), resumed when the pair phase does not decide
        self.suspended: tuple | None = None
        # the share of the box the current goal's refuted domains cover (2^-depth each)
        self.refuted_volume = 0.0
        self.queue_limit = QUEUE_BYTES

    def _restrict(self) -> None:
        """Search the graph restricted to the part of it the box can move
        (:func:`~robustc.compiler.restrict.restrict_to_box`: a layered neighbourhood's crop)
        when there is one: the same function on the box, with the caller's bounds cut down
        to it and every point mapped back to the original input before ``check``."""
        self.restricted = restrict_to_box(self.graph, self.lower, self.upper) \
            if self.options.graph_restrict else None
        r = self.restricted
        if r is None:
            return
        self.graph = r.graph
        self.lower = np.ravel(self.lower)[r.input_index].reshape(r.graph.input.shape)
        self.upper = np.ravel(self.upper)[r.input_index].reshape(r.graph.input.shape)
        self.bounds = _Cut(r.cut(self.bounds.lower), r.cut(self.bounds.upper),
                           getattr(self.bounds, "method", None))
        if self.check is not None:
            check = self.check
            self.check = lambda x: check(r.embed(x))

    def _tighten_root(self) -> None:
        """alpha-CROWN on the root's ReLU inputs (:func:`tighten_intermediate`), within
        ``intermediate_share`` of the time left: every domain starts from these bounds."""
        steps = self.options.intermediate_steps
        if steps <= 0:
            return
        start = time.perf_counter()
        until = None if self.deadline is None else \
            start + self.options.intermediate_share * max(0.0, self.deadline - start)
        with self.torch.no_grad():
            done = tighten_intermediate(self.crown, self.box, self.root, steps=steps,
                                        lr=self.options.lr_alpha, deadline=until,
                                        tuner=self.crown32)
        self.stats["intermediate_s"] = time.perf_counter() - start
        self.stats["intermediate_unstable"] = done["unstable_before"] - done["unstable_after"]

    # -- bounds of a batch of domains ------------------------------------------------

    def _slices(self, flat):
        return [flat[..., a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:],
                                                strict=True)]

    def _relu_inputs(self, side: dict, none: np.ndarray) -> np.ndarray:
        """``(N, total)``: the bounds ``side`` (by node) of every ReLU's input, in the
        order of the flat neuron index; ``none`` when the graph has no ReLU."""
        if not self.relus:
            return none
        return np.concatenate([side[r.inputs[0]].cpu().numpy() for r in self.relus], axis=1)

    def _node_bounds(self, lo, hi, split: np.ndarray | None):
        """Bounds ``(N, n)`` of every node for domains whose ReLU inputs are bounded by
        ``lo``/``hi`` (``(N, total)`` tensors, decisions clipped in), and which domains are
        empty. Each node is intersected with the root's bounds; with ``graph_refresh``, the
        unstable inputs of ReLUs and MaxPools after the earliest new decision (``split``:
        the flat neuron each domain was just split on; None: the root, nothing refreshed)
        get CROWN bounds through the domain's own relaxations. A round without that refresh
        on a graph whose only relaxed nodes are ReLUs gets the ReLU inputs' bounds alone
        (:meth:`_clipped_bounds`)."""
        torch = self.torch
        n = lo.shape[0]
        lo_k, hi_k = self._slices(lo), self._slices(hi)
        clip: dict = {}
        for k, relu in enumerate(self.relus):
            src = relu.inputs[0]
            if src in clip:
                c_lo, c_hi = clip[src]
                clip[src] = (torch.maximum(c_lo, lo_k[k]), torch.minimum(c_hi, hi_k[k]))
            else:
                clip[src] = (lo_k[k], hi_k[k])
        if split is not None and not self.options.graph_refresh and self.relus_only:
            return self._clipped_bounds(clip, n)
        keep = set(self.graph.outputs)
        if split is None or not self.options.graph_refresh:
            keep = set(self.crown.targets)
        else:
            layer = np.searchsorted(self.offsets, split, side="right") - 1
            first = min(self.crown.position[self.relus[k].inputs[0]] for k in set(layer))
            keep.update(t for t in self.crown.targets if self.crown.position[t] <= first)
        box = (self.box[0].expand(n, -1), self.box[1].expand(n, -1))
        gb = self.crown.refine(box, within=(self.root.lower, self.root.upper), clip=clip,
                               keep=keep, unstable_only=True, deadline=self.deadline)
        empty = torch.zeros(n, dtype=torch.bool, device=lo.device)
        for name in gb.lower:
            crossed = gb.lower[name] > gb.upper[name]
            if crossed.any():
                empty |= crossed.any(1)
                gb.lower[name] = torch.where(crossed, gb.upper[name], gb.lower[name])
        return gb, empty

    def _clipped_bounds(self, clip: dict, n: int):
        """:meth:`_node_bounds` of a round without refreshed bounds on a graph whose only
        relaxed nodes are ReLUs: each ReLU input's bounds are the domain's (the root's,
        clipped by its decisions), intersected with the root's again (a queued domain keeps
        them in float32, rounded outwards), and its relaxation is built from them. The
        interval pass over the whole graph that :meth:`Crown.refine` makes first is left
        out: it took a sixth of resnet_4b's search and changed no phase (dd64_pgd image 17,
        40 s: 5,111 of 2.8 million unstable upper bounds lower, none stable). Empty: a
        domain whose decisions cross a bound."""
        torch = self.torch
        lower, upper, relax = {}, {}, {}
        empty = torch.zeros(n, dtype=torch.bool, device=self.box[0].device)
        for src, (c_lo, c_hi) in clip.items():
            lo = torch.maximum(c_lo, self.root.lower[src])
            hi = torch.minimum(c_hi, self.root.upper[src])
            crossed = lo > hi
            if crossed.any():
                empty |= crossed.any(1)
                lo = torch.where(crossed, hi, lo)
            lower[src], upper[src] = lo, hi
        for relu in self.relus:
            src = relu.inputs[0]
            relax[relu.name] = relu_slopes(torch, relu.alpha, lower[src], upper[src])
        return GraphBounds(lower, upper, relax), empty

    def _bounded_rows(self, inherited: np.ndarray | None) -> np.ndarray:
        """The rows a round bounds: those some of its domains have not refuted
        (``inherited``, ``(N, R)``); every row at the root (None) or where none is open."""
        sub = np.arange(self.rows) if inherited is None else \
            np.flatnonzero((inherited <= self.tol).any(0))
        return sub if sub.size else np.arange(self.rows)

    def bound(self, signs: np.ndarray, lo: np.ndarray, hi: np.ndarray, alpha: np.ndarray,
              beta: np.ndarray, inherited: np.ndarray | None, steps: int,
              split: np.ndarray | None = None, record: dict | None = None):
        """Bound ``N`` domains; returns ``(lb, lo, hi, alpha, beta, choice, found)``:
        widened lower bounds ``(N, R)`` of ``-m`` (``inf`` rows for empty domains), the
        ReLU input bounds of the pass over the graph, the optimised parameters, the neuron to
        split next (-1: none) and a replayed counterexample or None. Only the rows some
        domain has not refuted (``inherited``; :meth:`_bounded_rows`) are bounded: a row
        refuted in a parent is refuted in its children, which keep the parent's bound
        there. ``alpha`` and ``beta`` (given and returned, float32) are ``(N, len(rows),
        total)``: of those rows only (resnet_4b's row phase bounds 1 of 9 rows, and full
        arrays were the largest part of its rounds' memory). ``record`` (a dict) receives
        the coefficients of the back-substitution by node."""
        torch, crown, ops = self.torch, self.crown, self.crown.ops
        sub = self._bounded_rows(inherited)
        t_signs = ops.tensor(signs)
        with torch.no_grad():
            gb, empty = self._node_bounds(ops.tensor(lo), ops.tensor(hi), split)
        low, high = gb.lower, gb.upper
        n = signs.shape[0]
        box = (self.box[0].expand(n, -1), self.box[1].expand(n, -1))
        names = [r.name for r in self.relus]
        a_sl, s_sl = self._slices(ops.tensor(alpha)), self._slices(t_signs.unsqueeze(1))
        b_sl = self._slices(ops.tensor(beta))
        alpha_p = {nm: a for nm, a in zip(names, a_sl, strict=True) if gb.relax[nm][3].any()}
        beta_p = {nm: b for nm, b, s in zip(names, b_sl, s_sl, strict=True) if (s != 0).any()}
        signed = {nm: s for nm, s in zip(names, s_sl, strict=True)}
        if (alpha_p or beta_p) and steps > 0:
            alpha_p, beta_p = self._optimise(gb, box, alpha_p, beta_p, signed, steps, sub,
                                             inherited)
        record = {} if record is None else record
        with torch.no_grad():  # the bound that counts: float64, the parameters found
            betas = {nm: b * signed[nm] for nm, b in beta_p.items()}
            part = crown.objective(self.w[sub], self.b[sub], gb, box, alpha_p, betas, record)
            part = part.cpu().numpy()
        if inherited is not None:
            lb = inherited.copy()
            lb[:, sub] = np.maximum(part, inherited[:, sub])
        else:
            lb = part
        e = empty.cpu().numpy()
        lb[e] = np.inf
        # keep the tighter ReLU input bounds of the pass over the graph
        lo, hi = self._relu_inputs(low, lo), self._relu_inputs(high, hi)
        for nm, p in alpha_p.items():
            a_sl[names.index(nm)].copy_(p)
        for nm, p in beta_p.items():
            b_sl[names.index(nm)].copy_(p)
        if a_sl:
            alpha = torch.cat(a_sl, -1).cpu().numpy().astype(np.float32)
            beta = torch.cat(b_sl, -1).cpu().numpy().astype(np.float32)
        open_ = self.goal.refutation(lb).min(axis=1) <= self.tol
        choice = self._choose(record, gb, lb, open_, (box, alpha_p, betas, sub))
        found = self._candidates(record, open_)
        return lb, lo, hi, alpha, beta, choice, found

    def _optimise(self, gb: GraphBounds, box, alpha: dict, beta: dict, signed: dict,
                  steps: int, sub: np.ndarray, inherited: np.ndarray | None
                  ) -> tuple[dict, dict]:
        """:meth:`Crown.tune` of rows ``sub`` in float32 (it only chooses parameters: the
        bound that counts is computed again in float64); returns the best step's
        parameters as float64. A domain the steps so far refute (with the rows it
        ``inherited``, by ``TUNE_STOP`` more than ``tol``) takes no more steps."""
        f32, f64 = self.torch.float32, self.crown.ops.dtype
        relax = {k: tuple(t.to(f32) if t.is_floating_point() else t for t in v)
                 for k, v in gb.relax.items()}
        n = box[0].shape[0]
        known = np.full((n, self.rows), -np.inf) if inherited is None else inherited

        def refuted(best):
            lb = known.copy()
            lb[:, sub] = np.maximum(best.cpu().numpy(), lb[:, sub])
            out = self.goal.refutation(lb).min(axis=1) > self.tol + TUNE_STOP
            return self.torch.as_tensor(out, device=best.device)

        a, b = self.crown32.tune(self.w32[sub], self.b32[sub], GraphBounds({}, {}, relax),
                                 (box[0].to(f32), box[1].to(f32)), alpha, beta, signed,
                                 steps=steps, lr_alpha=self.options.lr_alpha,
                                 lr_beta=self.options.graph_lr_beta, deadline=self.deadline,
                                 stop_at=refuted)
        return ({k: v.to(f64) for k, v in a.items()}, {k: v.to(f64) for k, v in b.items()})

    def _choose(self, record: dict, gb: GraphBounds, lb: np.ndarray, open_: np.ndarray,
                params: tuple) -> np.ndarray:
        """The neuron to split next per domain, -1 where none is unstable or the domain is
        refuted: the ``graph_candidates`` unstable neurons with the largest BaBSR
        intercept score over the open rows are tried by bounding both children once with
        the domain's parameters (``params``: box, alpha, signed beta; no optimisation), and
        the candidate whose worse child is closest to refuted wins (filtered smart
        branching, FSB); with one candidate, BaBSR's choice."""
        torch = self.torch
        n = lb.shape[0]
        if not self.relus:
            return np.full(n, -1, dtype=np.int64)
        sub = params[3]
        # (N, 1, R): the rows still open, summed over by one batched product per score (no
        # masked (N, R, n) copy of the recorded coefficients; resnet_4b prop_1 at 300 s
        # peaked 27 MiB lower, one run each)
        rows = self.crown.ops.tensor((lb[:, sub] <= self.tol).astype(np.float64)).unsqueeze(1)
        scores = []
        for r in self.relus:
            _, _, tu, unstable = gb.relax[r.name]
            src = r.inputs[0]
            width = torch.minimum(gb.upper[src], -gb.lower[src]).clamp(min=0.0)
            if r.name not in record:  # the output does not depend on this ReLU
                intercept = backup = width.new_zeros(n, r.size)
            else:
                a = record[r.name]  # (N, R, n)
                intercept = -torch.bmm(rows, a.clamp(max=0.0))[:, 0] * tu
                backup = torch.bmm(rows, a.abs())[:, 0] * width
            scores.append((intercept, backup, unstable))
        inter = torch.cat([s[0] for s in scores], 1)
        backup = torch.cat([s[1] for s in scores], 1)
        unstable = torch.cat([s[2] for s in scores], 1)
        score = torch.where(inter > 0, inter + backup.amax(1, keepdim=True), backup)
        score = torch.where(unstable, score, torch.full_like(score, -1.0))
        k = min(self.options.graph_candidates, score.shape[1])
        best, top = score.topk(max(k, 1), dim=1)
        choice = torch.where(best[:, 0] >= 0, top[:, 0], torch.full_like(top[:, 0], -1))
        choice = choice.cpu().numpy()
        choice[~open_] = -1
        rows = np.flatnonzero(choice >= 0)
        if k > 1 and rows.size and not self._late():
            top, valid = top.cpu().numpy()[rows], (best >= 0).cpu().numpy()[rows]
            worse = np.where(valid, self._try_splits(gb, lb, rows, top, params), -np.inf)
            choice[rows] = top[np.arange(rows.size), np.argmax(worse, axis=1)]
        return choice

    def _try_splits(self, gb: GraphBounds, lb: np.ndarray, rows: np.ndarray, top: np.ndarray,
                    params: tuple) -> np.ndarray:
        """``(len(rows), k)``: for each candidate neuron ``top`` of domains ``rows``, the
        refutation measure of the worse of its two children, bounded once in float32 with
        the parent's bounds, alpha and beta and the neuron's phase fixed (it only ranks
        candidates: no domain is refuted by it)."""
        torch, f32 = self.torch, self.torch.float32
        box, alpha, betas, sub = params
        n, k = top.shape
        parent = np.repeat(rows, 2 * k)
        neuron = np.repeat(top.ravel(), 2)
        active = np.tile([True, False], n * k)
        layer = np.searchsorted(self.offsets, neuron, side="right") - 1
        measure = np.empty(len(parent))
        chunk = max(2, self.per_round)
        dev = self.box[0].device
        for first in range(0, len(parent), chunk):
            part = slice(first, first + chunk)
            sel = torch.as_tensor(parent[part], device=dev)
            relax = {nm: tuple(t[sel].to(f32) if t.is_floating_point() else t[sel].clone()
                               for t in v) for nm, v in gb.relax.items()}
            for kk, relu in enumerate(self.relus):
                here = np.flatnonzero(layer[part] == kk)
                if not here.size:
                    continue
                i = torch.as_tensor(here, device=dev)
                j = torch.as_tensor(neuron[part][here] - self.offsets[kk], device=dev)
                on = torch.as_tensor(active[part][here], device=dev)
                slope = torch.where(on, 1.0, float(relu.alpha)).to(f32)
                sl, su, tu, unstable = relax[relu.name]
                sl[i, j], su[i, j], tu[i, j], unstable[i, j] = slope, slope, 0.0, False
            child = self.crown32.objective(
                self.w32[sub], self.b32[sub], GraphBounds({}, {}, relax),
                (box[0][sel].to(f32), box[1][sel].to(f32)),
                {nm: a[sel].to(f32) for nm, a in alpha.items()},
                {nm: b[sel].to(f32) for nm, b in betas.items()})
            full = lb[parent[part]].copy()
            full[:, sub] = np.maximum(child.cpu().numpy().astype(np.float64), full[:, sub])
            measure[part] = self.goal.refutation(full).min(axis=1)
        return measure.reshape(n, k, 2).min(axis=2)

    def _candidates(self, record: dict, open_: np.ndarray):
        """The input vertices minimising each open domain's row bounds; the ones that
        satisfy a violation case in a float64 forward pass go to ``check``."""
        if self.check is None or not open_.any() or self.crown.input.name not in record:
            return None
        torch = self.torch
        a = record[self.crown.input.name][torch.as_tensor(open_, device=self.box[0].device)]
        x = torch.where(a >= 0, self.box[0].unsqueeze(1), self.box[1].unsqueeze(1))
        x = x.reshape(-1, x.shape[-1])
        with torch.no_grad():
            y = self.module(x.reshape(-1, *self.graph.input.shape))
        y = y.reshape(x.shape[0], -1).cpu().numpy()
        m = y @ self.w_np.T + self.b_np
        self._seen(m)
        score = self.req.violation(m)
        self.stats["vertices"] += len(score)
        return check_best(x.cpu().numpy(), score, self.check, self.options.checks)

    # -- the tree ----------------------------------------------------------------------

    def _late(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline

    def _affordable(self, per_child: float) -> int:
        """How many parents a round may split before the deadline: their two children each
        at ``per_child`` seconds (the last round's; a smaller round costs more per child,
        so growing rounds are estimated high) with a quarter to spare. Without a deadline,
        any number."""
        if self.deadline is None:
            return len(self.heap)
        left = self.deadline - time.perf_counter()
        return int(left / (2.5 * max(per_child, 1e-6)))

    def _push(self, lb, lo, hi, alpha, beta, choice, signs, depth, rows: np.ndarray) -> None:
        """Queue the open domains of a round (``alpha``/``beta`` are of ``rows``)."""
        measure = self.goal.refutation(lb).min(axis=1)
        for i in range(len(measure)):
            if measure[i] > self.tol:
                self.stats["refuted"] += 1
                self.refuted_volume += 2.0 ** -int(depth[i])
            elif choice[i] < 0:
                self.stats["leaves"] += 1
                self.undecided = True
            else:
                d = self._domain(float(measure[i]), int(depth[i]), int(choice[i]), signs[i],
                                 lo[i], hi[i], alpha[i], beta[i], lb[i], rows)
                self.queue_bytes += d.nbytes
                heapq.heappush(self.heap, (d.measure, next(self.counter), d))
        if self.queue_bytes > self.stats["queue_peak_bytes"]:
            self.stats["queue_peak_bytes"] = self.queue_bytes
            self.stats["queue_peak_domains"] = len(self.heap)

    def _domain(self, measure, depth, choice, signs, lo, hi, alpha, beta, lb,
                rows: np.ndarray) -> Domain:
        """A :class:`Domain` of copies of one row of a round's arrays (``alpha``/``beta``
        of ``rows``, ``(len(rows), total)``), on the columns and rows it keeps: the rows it
        leaves open are among those the round bounded (a row refuted before stays refuted,
        :meth:`_bounded_rows`)."""
        cols = self.alpha_cols
        s = signs[cols]
        decided = cols[np.flatnonzero(s)]
        keep = np.flatnonzero(lb[rows] <= self.tol)
        return Domain(measure, depth, choice, s.copy(), down32(lo[cols]), up32(hi[cols]),
                      rows[keep].copy(), np.ascontiguousarray(alpha[keep][:, cols], np.float32),
                      np.ascontiguousarray(beta[keep][:, decided], np.float32), lb.copy())

    def unpack(self, domains: list[Domain]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(signs, lo, hi)`` of ``domains`` on every ReLU input (``(k, total)``): the
        root's bounds and no decision off the columns they store."""
        k, cols = len(domains), self.alpha_cols
        signs = np.zeros((k, self.lo_fill.size), np.int8)
        lo = np.repeat(self.lo_fill[None], k, axis=0)
        hi = np.repeat(self.hi_fill[None], k, axis=0)
        if k:
            signs[:, cols] = np.stack([d.signs for d in domains])
            lo[:, cols] = np.stack([d.lo for d in domains])
            hi[:, cols] = np.stack([d.hi for d in domains])
        return signs, lo, hi

    def _expand(self, parents: list[Domain], rows: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """``(k, len(rows), total)`` alpha and beta of ``parents`` on ``rows``, the compact
        columns and rows put back: alpha the root's values elsewhere, beta zero."""
        k, cols = len(parents), self.alpha_cols
        alpha = np.repeat(self.alpha_fill[rows][None], k, axis=0)
        beta = np.zeros_like(alpha)
        for i, d in enumerate(parents):
            have = np.flatnonzero(np.isin(d.rows, rows))
            if not have.size:
                continue
            at = np.searchsorted(rows, d.rows[have])
            alpha[i][np.ix_(at, cols)] = d.alpha[have]
            beta[i][np.ix_(at, cols[np.flatnonzero(d.signs)])] = d.beta[have]
        return alpha, beta

    def _root(self) -> object:
        """Bound the root domain (every row) and push it; keeps it as ``root_domain``
        (None when refuted at once) and the rows' margins at the box's centre and the
        root's input vertices (:meth:`_possible`)."""
        torch = self.torch
        lo = self._relu_inputs(self.root.lower, np.zeros((1, 0)))
        hi = self._relu_inputs(self.root.upper, np.zeros((1, 0)))
        sl = [self.root.relax[r.name][0] for r in self.relus]
        alpha = (torch.cat(sl, -1).unsqueeze(1).expand(-1, self.rows, -1).cpu().numpy()
                 .astype(np.float32)) if sl else np.zeros((1, self.rows, 0), np.float32)
        signs = np.zeros(lo.shape, np.int8)
        record: dict = {}
        out = self.bound(signs, lo, hi, alpha, np.zeros_like(alpha), None,
                         self.options.root_iterations or 1, record=record)
        self.stats["domains"] = 1
        self.stats["root_bound"] = float(self.req.refutation(out[0]).min())
        self.stats["root_unstable"] = int(((lo < 0) & (hi > 0)).sum())
        self.stats["root_open_rows"] = int((out[0] <= self.tol).sum())
        self._possible(record)
        if out[-1] is not None:
            return out[-1]
        # alpha moves only where a neuron is unstable, and every domain's bounds lie
        # within the root's: the other columns keep the root domain's values
        self.alpha_fill = out[3][0].copy()
        self.alpha_cols = np.flatnonzero((lo[0] < 0) & (hi[0] > 0))
        self.lo_fill, self.hi_fill = down32(out[1][0]), up32(out[2][0])
        self._push(*out[:-1], signs, np.zeros(1, np.int64), np.arange(self.rows))
        self.root_domain = self.heap[0][2] if self.heap else None
        return None

    @property
    def possible(self) -> np.ndarray:
        """``(R,)``: the rows whose margin reached ``-tol`` at a point of the box (never
        refuted there)."""
        return self.best_margin >= -self.tol

    def _seen(self, m: np.ndarray) -> None:
        """Margins ``m`` ``(N, R)`` of points of the box: keep each row's largest."""
        if len(m):
            self.best_margin = np.maximum(self.best_margin, m.max(axis=0))

    def _possible(self, record: dict) -> None:
        """The margins at the box's centre and at the input vertices minimising the rows'
        linear bounds at the root (``record``), float64 forward pass."""
        torch = self.torch
        points = [0.5 * (self.box[0] + self.box[1])]
        if self.crown.input.name in record:
            a = record[self.crown.input.name][0]  # (R, n_in)
            points.append(torch.where(a >= 0, self.box[0], self.box[1]))
        x = torch.cat(points)
        with torch.no_grad():
            y = self.module(x.reshape(-1, *self.graph.input.shape))
        self._seen(y.reshape(x.shape[0], -1).cpu().numpy() @ self.w_np.T + self.b_np)

    def _attack_rows(self, rows: list[int]) -> None:
        """Projected gradient ascent on each of ``rows``' margins over the box
        (``ROW_ATTACK`` restarts and steps per row, float64, fixed seed): every row whose
        margin reaches ``-tol`` at a point tried becomes ``possible`` (the row phase would
        search it in vain). It only picks the rows to prove: no verdict rests on it. Only
        where a row's atom can hold without a case holding (a case of several atoms, or
        "at least k" with k > 1): otherwise such a point is a counterexample, which the
        pipeline's attack has looked for already (9 rows of resnet_4b: 7.7 s at load 6.7)."""
        torch = self.torch
        restarts, steps = ROW_ATTACK
        single = all(len(reqs) == 1 and reqs[0][0] <= 1 for reqs in self.req.cases)
        if not rows or single:
            return
        lo, hi = self.box
        gen = torch.Generator(device=lo.device).manual_seed(0)
        which = np.repeat(np.asarray(rows, dtype=np.int64), restarts)
        w = self.crown.ops.tensor(self.w_np[which])
        b = self.crown.ops.tensor(self.b_np[which])
        x = lo + (hi - lo) * torch.rand((len(which), lo.shape[1]), generator=gen,
                                        dtype=lo.dtype, device=lo.device)
        shape = (-1, *self.graph.input.shape)
        for i in range(steps + 1):
            if self._late():
                return
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                y = self.module(x.reshape(shape)).reshape(len(which), -1)
                grad, = torch.autograd.grad(((y * w).sum(1) + b).sum(), x)
            m = y.detach().cpu().numpy() @ self.w_np.T + self.b_np
            self._seen(m)
            size = 0.5 * (1.0 - i / (steps + 1))
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x + size * (hi - lo) * grad.sign(), lo), hi)

    def _row_targets(self) -> list[int]:
        """The rows the row phase proves one by one, easiest first: the root's open rows
        that are not ``possible``, when more than one row is open (one open row is the
        joint search's tree already). The joint search keeps the rest (the possible rows:
        a top-2 property's other label at the input, say)."""
        d = self.root_domain
        if d is None or not self.options.graph_rows:
            return []
        open_rows = np.flatnonzero(d.lb <= self.tol)
        if len(open_rows) < 2:
            return []
        self._attack_rows([int(r) for r in open_rows if not self.possible[r]])
        targets = [int(r) for r in open_rows if not self.possible[r]]
        return sorted(targets, key=lambda r: -d.lb[r])

    def _restart(self, lb: np.ndarray) -> None:
        """Empty the queue and push the root domain again with row bounds ``lb``, measured
        by the current ``goal``."""
        self.heap.clear()
        self.queue_bytes = 0
        self.refuted_volume = 0.0
        d = self.root_domain
        measure = float(self.goal.refutation(lb[None]).min())
        root = Domain(measure, 0, d.choice, d.signs, d.lo, d.hi, d.rows, d.alpha, d.beta, lb)
        self.queue_bytes += root.nbytes
        heapq.heappush(self.heap, (root.measure, next(self.counter), root))

    def _by_rows(self, per_child: float, step: float):
        """The row phase: each target row (:meth:`_row_targets`) is proved on the whole
        box by a search of its own (the root's bounds and parameters, every other row
        counted as refuted, a domain refuted when that row is), easiest first, each within
        ``graph_row_share`` of the time left; a proved row is refuted in every domain
        afterwards. The last one gets all the time left (the joint search of a top-2 case
        whose other rows are proved is that row's search again, with the label that can
        hold kept open: ``dd64_pgd`` image 17's hardest row took about 20 s alone on one
        thread, more than its share), unless rows left open form pairs for the pair phase
        (:meth:`_by_pairs`; image 2's last row, label 1, is neither proved nor possible in
        its share, the pair (1, 9) is proved by the pair phase). Then it gets its share;
        at the end of the share it goes on with all the time left when its refuted domains
        cover ``ROW_NEARLY_DONE`` of the box, and otherwise waits, its open domains kept
        (:attr:`suspended`), until the pair phase has had its turn (:meth:`_resume`). A
        row found ``possible`` meanwhile (a vertex of its search satisfies its atom), not
        proved in its share, or stopped otherwise (a decided leaf, the queue's size) is
        left to the joint search. Returns ``(found, stop reason or None, per_child,
        step)``."""
        targets = self._row_targets()
        self.stats["rows_tried"] = 0
        self.stats["rows_proved"] = 0
        if not targets:
            return None, None, per_child, step
        base = self.root_domain.lb
        for n, r in enumerate(targets):
            if self.possible[r] or self._refuted_without(r, base):
                continue
            self.goal, self.goal_row = self.req.row(r), r
            lb = np.full_like(base, np.inf)
            lb[r] = base[r]
            self._restart(lb)
            self.stats["rows_tried"] += 1
            self.undecided = False
            whole = self.deadline
            later = [t for t in targets[n + 1:] if not self.possible[t]]
            share = whole is not None and bool(later or self._pair_targets())
            if share:
                now = time.perf_counter()
                self.deadline = now + self.options.graph_row_share * max(0.0, whole - now)
            last_share = share and not later  # the last row, given a share for the pairs
            try:
                found, stop, per_child, step = self._search(per_child, step)
                if (last_share and stop == _LATE and not self.undecided
                        and self.refuted_volume >= ROW_NEARLY_DONE):
                    self.deadline = whole  # the pair phase would come before a near proof
                    self.stats["rows_extended"] = 1
                    found, stop, per_child, step = self._search(per_child, step)
            finally:
                self.deadline = whole
            if found is not None:
                return found, None, per_child, step
            if stop == _LATE and self._affordable(per_child) < 1:
                return None, stop, per_child, step  # the search's own deadline
            if last_share and stop == _LATE and not self.undecided:
                self.suspended = (r, self.heap, self.queue_bytes)  # its share, for pairs
                self.heap = []
            if stop is not None:
                continue  # the joint search keeps the row
            self.proved_rows.append(r)
            self.stats["rows_proved"] += 1
            if (self.req.refutation(self._with_proved(base)[None]) > self.tol).all():
                break  # the rows proved refute every case: the rest need no proof
        self._joint()
        return None, None, per_child, step

    def _joint(self) -> None:
        """Start the joint search: the root again, every case the goal, the rows proved
        refuted (an empty queue when they refute every case)."""
        self.goal, self.goal_row = self.req, None
        self.undecided = False
        self._restart(self._with_proved(self.root_domain.lb))
        if self.heap[0][0] > self.tol:  # every case refuted by the rows proved
            self.heap.clear()
            self.queue_bytes = 0

    def _resume(self, per_child: float, step: float):
        """Go on with the row the row phase stopped at its share for the pair phase
        (:attr:`suspended`), within all the time left; proved, the joint search starts
        again with it refuted. Returns what :meth:`_search` does."""
        r, heap, size = self.suspended
        self.suspended = None
        self.goal, self.goal_row = self.req.row(r), r
        self.heap, self.queue_bytes, self.undecided = heap, size, False
        self.stats["rows_resumed"] = 1
        found, stop, per_child, step = self._search(per_child, step)
        if found is None and stop is None:
            self.proved_rows.append(r)
            self.stats["rows_proved"] += 1
            self._joint()
        return found, stop, per_child, step

    def _round(self, most: int | None = None) -> object:
        k = min(self.options.graph_batch, len(self.heap), most or len(self.heap))
        parents = [heapq.heappop(self.heap)[2] for _ in range(k)]
        # as many parents as the rows they leave open fit in ROUND_ENTRIES; the rest go back
        rows = max(1, int((np.stack([d.lb for d in parents]) <= self.tol).any(0).sum()))
        fit = max(1, ROUND_ENTRIES // (rows * self.widest) // 2)
        for d in parents[fit:]:
            heapq.heappush(self.heap, (d.measure, next(self.counter), d))
        parents = parents[:fit]
        for d in parents:
            self.queue_bytes -= d.nbytes
        signs, lo, hi = (np.repeat(a, 2, axis=0) for a in self.unpack(parents))
        inherited = np.repeat(np.stack([d.lb for d in parents]), 2, axis=0)
        bounded = self._bounded_rows(inherited)
        alpha, beta = self._expand(parents, bounded)
        alpha, beta = np.repeat(alpha, 2, axis=0), np.repeat(beta, 2, axis=0)
        idx = np.repeat([d.choice for d in parents], 2)
        depth = np.repeat([d.depth + 1 for d in parents], 2)
        signs, lo, hi, beta = split_children(signs, lo, hi, beta, idx)
        self.stats["rounds"] += 1
        self.stats["domains"] += len(idx)
        self.stats["max_depth"] = max(self.stats["max_depth"], int(depth.max()))
        out = self.bound(signs, lo, hi, alpha, beta, inherited, self.options.graph_iterations,
                         idx)
        if out[-1] is not None:
            return out[-1]
        self._push(*out[:-1], signs, depth, bounded)
        return None

    def _with_proved(self, lb: np.ndarray) -> np.ndarray:
        """Row bounds ``lb`` with the rows the row phase proved refuted (``inf``)."""
        lb = lb.copy()
        lb[self.proved_rows] = np.inf
        return lb

    def _refuted_without(self, r: int, base: np.ndarray) -> bool:
        """Whether the rows proved so far refute every case that row ``r`` is part of (a
        pair phase's pair refuted by another of its rows): ``r`` needs no proof then."""
        done = self.req.refutation(self._with_proved(base)[None])[0] > self.tol
        return all(done[c] for c, reqs in enumerate(self.req.cases)
                   if any(r in cols for _, cols in reqs))

    def _pair_targets(self) -> list[tuple[int, int]]:
        """The pairs of rows the pair phase proves: with every case one "at least 2 of these
        rows" requirement (a top-2 property), the pairs of its rows that the row phase left
        open; none for other cases or more than ``MAX_PAIRS`` pairs."""
        d = self.root_domain
        if d is None or not self.options.graph_pairs:
            return []
        open_rows = {int(r) for r in np.flatnonzero(d.lb <= self.tol)} - set(self.proved_rows)
        pairs: set = set()
        for reqs in self.req.cases:
            if len(reqs) != 1 or reqs[0][0] != 2:
                return []
            rows = sorted(open_rows & set(reqs[0][1]))
            pairs.update((a, b) for i, a in enumerate(rows) for b in rows[i + 1:])
        return sorted(pairs) if len(pairs) <= MAX_PAIRS else []

    def _by_pairs(self) -> Outcome | None:
        """The pair phase, after the row phase: where every case asks for 2 of its rows
        and the rows left open form a few pairs, a search of its own (within
        ``graph_pair_share`` of the time left) over one case per pair ``(i, j)``: ``m_i >= 0``,
        ``m_j >= 0`` and the rows they imply, ``lam m_i + (1 - lam) m_j >= 0`` for each
        ``lam`` of ``PAIR_WEIGHTS``. Its row phase proves those rows one by one: one of them
        impossible on the whole box refutes the pair, although neither ``m_i`` nor ``m_j``
        is impossible alone (the labels that can each beat b but not together). The rows
        proved before stay impossible, so "2 of the case's rows" holds only where some
        pair does: its ``proved`` proves the box, ``found`` is a replayed counterexample;
        ``unknown`` (or None: no pairs) leaves the time left to the joint search."""
        pairs = self._pair_targets()
        if not pairs:
            return None
        cases = []
        for i, j in pairs:
            a, b = self.req.atoms[i], self.req.atoms[j]
            implied = [Linear(lam * np.asarray(a.coeffs) + (1 - lam) * np.asarray(b.coeffs),
                              lam * a.const + (1 - lam) * b.const, False,
                              f"{lam:g} ({a.label}) + {1 - lam:g} ({b.label})")
                       for lam in PAIR_WEIGHTS]
            cases.append([a, b, *implied])
        until = self.deadline
        if until is not None:
            now = time.perf_counter()
            until = now + self.options.graph_pair_share * max(0.0, until - now)
        graph, lower, upper, bounds = self.source
        options = dataclasses.replace(self.options, graph_pairs=False, graph_restrict=False)
        self.stats["pairs"] = len(pairs)
        try:
            sub = GraphSplit(graph, lower, upper, bounds, cases, self.tol, self.check,
                             options, until, self.device)
            # the row waiting for it keeps its domains
            sub.queue_limit = self.queue_limit - (self.suspended[2] if self.suspended else 0)
            out = sub.run()
        except BoundsTimeout:
            return None
        self.stats["pair_domains"] = sub.stats["domains"]
        self.stats["pairs_proved"] = len(pairs) if out.status == PROVED else 0
        return out

    def open_cases(self) -> list[int]:
        """The cases some open domain has not refuted (all of them when a domain was left
        undecided or lost to the deadline): what a search that stopped leaves to others.
        Stopped in the row phase: the cases the root's bounds leave open with the rows
        proved so far refuted."""
        if self.undecided or self.stats["domains"] == 0:
            return list(range(len(self.req.cases)))
        if self.goal is not self.req:
            lbs = self.root_domain.lb.copy()[None]
            lbs[:, self.proved_rows] = np.inf
        elif not self.heap:
            return []
        else:
            lbs = np.stack([d.lb for _, _, d in self.heap])
        return [int(c) for c in np.flatnonzero(
            (self.req.refutation(lbs) <= self.tol).any(axis=0))]

    def _search(self, per_child: float, step: float):
        """Rounds until the queue is empty or a counterexample is replayed; returns
        ``(found, stop reason or None, per_child, step)``: the reason when the deadline,
        the queue's memory or a decided leaf stopped it."""
        found = None
        while found is None and self.heap:
            if self.goal_row is not None and self.possible[self.goal_row]:
                return None, _POSSIBLE, per_child, step
            most = self._affordable(per_child)
            if self._late() or most < 1:
                return None, _LATE, per_child, step
            if self.queue_bytes > self.queue_limit:
                return None, (f"the open ReLU domains ({len(self.heap)}) outgrew "
                              f"{self.queue_limit >> 20} MiB"), per_child, step
            if len(self.heap) > self.options.max_domains:
                return None, f"more than {self.options.max_domains} open ReLU domains", \
                    per_child, step
            t, before = time.perf_counter(), self.stats["domains"]
            try:
                found = self._round(most)
            except BoundsTimeout:  # a refresh ran past the deadline: the parents are lost
                self.undecided = True
                return None, _LATE, per_child, step
            took = time.perf_counter() - t
            step = max(step, took)
            per_child = took / max(1, self.stats["domains"] - before)
        if found is None and self.undecided:
            return None, "a ReLU domain with every phase decided was not refuted", \
                per_child, step
        return found, None, per_child, step

    def run(self, step_estimate: float = 0.0) -> Outcome:
        """Search until every domain is refuted (``proved``), a counterexample is replayed
        (``found``), or the deadline, the queue's memory or a decided leaf stops it
        (``unknown``). First the row phase (:meth:`_by_rows`, ``graph_rows``), then the
        pair phase (:meth:`_by_pairs`, ``graph_pairs``), then the row the row phase left
        waiting for it (:meth:`_resume`), then one tree for all rows not proved. A round
        takes no more parents than the time left fits at the last round's seconds per
        child domain (:meth:`_affordable`); none starts when not even one parent fits."""
        step = step_estimate

        def too_late(seconds: float) -> bool:
            return self.deadline is not None and time.perf_counter() + seconds > self.deadline

        def unknown(reason: str) -> Outcome:
            self.stats["step_s"] = step
            return Outcome(UNKNOWN, reason, stats=self.stats)

        if too_late(step):
            return unknown("time limit reached before the ReLU split started")
        t = time.perf_counter()
        try:
            found = self._root()
        except BoundsTimeout:
            return unknown(_LATE)
        per_child = time.perf_counter() - t  # the root: one domain
        step = max(step, per_child)
        stop = None
        if found is None and self.heap:
            found, stop, per_child, step = self._by_rows(per_child, step)
        if found is None and stop is None and self.heap:
            pairs = self._by_pairs()
            if pairs is not None and pairs.status != UNKNOWN:
                self.stats["step_s"] = step
                return Outcome(pairs.status, pairs.reason, pairs.witness, stats=self.stats)
        if found is None and stop is None and self.suspended is not None:
            found, stop, per_child, step = self._resume(per_child, step)
        if found is None and stop is None:
            found, stop, per_child, step = self._search(per_child, step)
        self.stats["step_s"] = step
        if found is not None:
            return Outcome(FOUND, witness=found, stats=self.stats)
        if stop is not None:
            return Outcome(UNKNOWN, stop, stats=self.stats)
        return Outcome(PROVED, stats=self.stats)


__all__ = ["GraphSplit", "Requirements", "ROUND_ENTRIES", "QUEUE_BYTES"]

