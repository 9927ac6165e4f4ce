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
   with the domain's own, clipped by its decisions; the unstable ReLU inputs after the
   newest decision can get fresh CROWN bounds through the domain's relaxations
   (``ReluSplitOptions.graph_refresh``, off by default; :meth:`Crown.refine`). ``lb`` is
   a back-substitution through the graph with a lower slope ``alpha`` per row and
   unstable neuron and a multiplier ``beta >= 0`` per row and decision (beta-CROWN,
   :meth:`Crown.backsubstitute`); any such values give a valid bound, and Adam steps
   raise it (warm-started from the parent; a child keeps its parent's bound where its
   own is lower, as its domain lies inside the parent's);
4. an open domain is split on the unstable ReLU with the largest BaBSR score (how much
   the chord's intercept lowers the bounds of the rows still open; the coefficient size
   times ``min(u, -l)`` when no intercept scores), the lowest domains first;
5. every open domain contributes the input vertices that minimise its rows' linear
   bounds; a point whose float64 forward pass satisfies a case goes to ``check`` (the
   caller replays it on onnxruntime). Only a replayed point is a counterexample.

A domain with every ReLU phase decided that is still open is reported undecided, never
proved. Bounds that count are float64 and widened down (:data:`~robustc.compiler.
bound_types.WIDEN_REL`).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robustc.compiler.bound_types import BoundsTimeout
from robustc.compiler.crown.engine import Crown, GraphBounds
from robustc.compiler.crown.intermediate import tighten_intermediate
from robustc.compiler.passes import maxpool_as_relus
from robustc.ir import Graph, MaxPool, Relu
from robustc.ir.property import AtLeast
from robustc.verify.cases import FOUND, PROVED, UNKNOWN, Outcome, case_atoms, check_best
from robustc.verify.relu_split.options import ReluSplitOptions
from robustc.verify.relu_split.search import split_children

#: Coefficient numbers one back-substitution of a round may hold (float64); the number
#: of domains bounded at once is cut to fit.
ROUND_ENTRIES = 1 << 23
#: Bytes the open domains may hold (decisions, bounds, alpha and beta) before the search
#: gives up with ``unknown``.
QUEUE_BYTES = 3 << 29


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
    measure: float          # min over cases of the refutation number (lowest first)
    depth: int
    choice: int             # flat neuron to split next
    signs: np.ndarray       # (total,) int8
    lo: np.ndarray          # (total,) ReLU input bounds, decisions clipped in
    hi: np.ndarray
    alpha: np.ndarray       # (R, total) float32
    beta: np.ndarray        # (R, total) float32, >= 0
    lb: np.ndarray          # (R,) widened lower bounds of -m

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.signs, self.lo, self.hi, self.alpha, self.beta,
                                      self.lb))


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
        self.module = to_torch(self.graph, device=self.device, dtype=torch.float64)
        original_pools = {n.name for n in self.graph.nodes if isinstance(n, MaxPool)}
        self.graph = maxpool_as_relus(self.graph, (self.bounds.lower, self.bounds.upper))
        self.crown = Crown(self.graph, device=self.device)  # UnsupportedOperator
        self.crown32 = Crown(self.graph, device=self.device, dtype=torch.float32)
        self.req = Requirements(self.cases)
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
                      "vertices": 0, "engine": "graph"}
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
        get CROWN bounds through the domain's own relaxations."""
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

    def bound(self, signs: np.ndarray, lo: np.ndarray, hi: np.ndarray, alpha: np.ndarray,
              beta: np.ndarray, inherited: np.ndarray | None, steps: int,
              split: np.ndarray | None = None):
        """Bound ``N`` domains; returns ``(lb, lo, hi, alpha, beta, choice, found)``:
        widened lower bounds ``(N, R)`` of ``-m`` (``inf`` rows for empty domains), the
        ReLU input bounds of the pass over the graph, the optimised parameters, the neuron to
        split next (-1: none) and a replayed counterexample or None. Only the rows some
        domain has not refuted (``inherited``) are bounded: a row refuted in a parent is
        refuted in its children, which keep the parent's bound and parameters there."""
        torch, crown, ops = self.torch, self.crown, self.crown.ops
        sub = np.arange(self.rows) if inherited is None else \
            np.flatnonzero((inherited <= self.tol).any(0))
        sub = sub if sub.size else np.arange(self.rows)
        full_alpha, full_beta = alpha, beta
        alpha, beta = alpha[:, sub], beta[:, sub]
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
            alpha_p, beta_p = self._optimise(gb, box, alpha_p, beta_p, signed, steps, sub)
        record: dict = {}
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
            full_alpha = full_alpha.copy()
            full_alpha[:, sub] = torch.cat(a_sl, -1).cpu().numpy()
        if b_sl:
            full_beta = full_beta.copy()
            full_beta[:, sub] = torch.cat(b_sl, -1).cpu().numpy()
        alpha, beta = full_alpha, full_beta
        open_ = self.req.refutation(lb).min(axis=1) <= self.tol
        choice = self._choose(record, gb, lb, open_, (box, alpha_p, betas, sub))
        found = self._candidates(record, open_)
        return lb, lo, hi, alpha, beta, choice, found

    def _optimise(self, gb: GraphBounds, box, alpha: dict, beta: dict, signed: dict,
                  steps: int, sub: np.ndarray) -> tuple[dict, dict]:
        """:meth:`Crown.tune` of rows ``sub`` in float32 (it only chooses parameters: the
        bound that counts is computed again in float64); returns the best step's
        parameters as float64."""
        f32, f64 = self.torch.float32, self.crown.ops.dtype
        relax = {k: tuple(t.to(f32) if t.is_floating_point() else t for t in v)
                 for k, v in gb.relax.items()}
        a, b = self.crown32.tune(self.w32[sub], self.b32[sub], GraphBounds({}, {}, relax),
                                 (box[0].to(f32), box[1].to(f32)), alpha, beta, signed,
                                 steps=steps, lr_alpha=self.options.lr_alpha,
                                 lr_beta=self.options.lr_beta, deadline=self.deadline)
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
        rows = self.crown.ops.tensor((lb[:, sub] <= self.tol).astype(np.float64)).unsqueeze(-1)
        scores = []
        for r in self.relus:
            _, _, tu, unstable = gb.relax[r.name]
            if r.name not in record:  # the output does not depend on this ReLU
                a = rows.new_zeros(n, len(sub), r.size)
            else:
                a = record[r.name] * rows  # (N, R, n): only the rows still open
            intercept = (a.clamp(max=0.0).neg() * tu.unsqueeze(1)).sum(1)
            src = r.inputs[0]
            width = torch.minimum(gb.upper[src], -gb.lower[src]).clamp(min=0.0)
            backup = a.abs().sum(1) * width
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
            measure[part] = self.req.refutation(full).min(axis=1)
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

    def _push(self, lb, lo, hi, alpha, beta, choice, signs, depth) -> None:
        measure = self.req.refutation(lb).min(axis=1)
        for i in range(len(measure)):
            if measure[i] > self.tol:
                self.stats["refuted"] += 1
            elif choice[i] < 0:
                self.stats["leaves"] += 1
                self.undecided = True
            else:
                d = Domain(float(measure[i]), int(depth[i]), int(choice[i]), signs[i], lo[i],
                           hi[i], alpha[i], beta[i], lb[i])
                self.queue_bytes += d.nbytes
                heapq.heappush(self.heap, (d.measure, next(self.counter), d))

    def _root(self) -> object:
        torch = self.torch
        lo = self._relu_inputs(self.root.lower, np.zeros((1, 0)))
        hi = self._relu_inputs(self.root.upper, np.zeros((1, 0)))
        sl = [self.root.relax[r.name][0] for r in self.relus]
        alpha = (torch.cat(sl, -1).unsqueeze(1).expand(-1, self.rows, -1).cpu().numpy()
                 .astype(np.float32)) if sl else np.zeros((1, self.rows, 0), np.float32)
        signs = np.zeros(lo.shape, np.int8)
        out = self.bound(signs, lo, hi, alpha, np.zeros_like(alpha), None,
                         self.options.root_iterations or 1)
        self.stats["domains"] = 1
        self.stats["root_bound"] = float(self.req.refutation(out[0]).min())
        self.stats["root_unstable"] = int(((lo < 0) & (hi > 0)).sum())
        if out[-1] is not None:
            return out[-1]
        self._push(*out[:-1], signs, np.zeros(1, np.int64))
        return None

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
        two = lambda f: np.repeat(np.stack([f(d) for d in parents]), 2, axis=0)  # noqa: E731
        signs, lo, hi = two(lambda d: d.signs), two(lambda d: d.lo), two(lambda d: d.hi)
        alpha, beta, inherited = two(lambda d: d.alpha), two(lambda d: d.beta), \
            two(lambda d: d.lb)
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
        self._push(*out[:-1], signs, depth)
        return None

    def open_cases(self) -> list[int]:
        """The cases some open domain has not refuted (all of them when a domain was left
        undecided or lost to the deadline): what a search that stopped leaves to others."""
        if self.undecided or self.stats["domains"] == 0:
            return list(range(len(self.req.cases)))
        if not self.heap:
            return []
        lbs = np.stack([d.lb for _, _, d in self.heap])
        return [int(c) for c in np.flatnonzero(
            (self.req.refutation(lbs) <= self.tol).any(axis=0))]

    def run(self, step_estimate: float = 0.0) -> Outcome:
        """Search until every domain is refuted (``proved``), a counterexample is replayed
        (``found``), or the deadline, the queue's memory or a decided leaf stops it
        (``unknown``). A round takes no more parents than the time left fits at the last
        round's seconds per child domain (:meth:`_affordable`); none starts when not even
        one parent fits."""
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
            return unknown("time limit reached while splitting ReLUs")
        per_child = time.perf_counter() - t  # the root: one domain
        step = max(step, per_child)
        while found is None and self.heap:
            most = self._affordable(per_child)
            if self._late() or most < 1:
                return unknown("time limit reached while splitting ReLUs")
            if self.queue_bytes > QUEUE_BYTES:
                return unknown(f"the open ReLU domains ({len(self.heap)}) outgrew "
                               f"{QUEUE_BYTES >> 20} MiB")
            if len(self.heap) > self.options.max_domains:
                return unknown(f"more than {self.options.max_domains} open ReLU domains")
            t, before = time.perf_counter(), self.stats["domains"]
            try:
                found = self._round(most)
            except BoundsTimeout:  # a refresh ran past the deadline: the parents are lost
                self.undecided = True
                return unknown("time limit reached while splitting ReLUs")
            took = time.perf_counter() - t
            step = max(step, took)
            per_child = took / max(1, self.stats["domains"] - before)
        self.stats["step_s"] = step
        if found is not None:
            return Outcome(FOUND, witness=found, stats=self.stats)
        if self.undecided:
            return Outcome(UNKNOWN, "a ReLU domain with every phase decided was not refuted",
                           stats=self.stats)
        return Outcome(PROVED, stats=self.stats)


__all__ = ["GraphSplit", "Requirements", "ROUND_ENTRIES", "QUEUE_BYTES"]
