"""Branch and bound over ReLU phases with optimised linear bounds (beta-CROWN).

Boxes over many inputs (MNIST-FC: 784 pixels) cannot be split on the input; what makes
their MILPs slow is the number of unstable ReLUs. This pass splits ReLUs instead:

1. the margin graph (:func:`robustc.compiler.input_split.margin_graph`) is flattened into a
   *chain* of affine layers with ReLUs between them (:func:`chain`; graphs of linear nodes
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
pipeline) and are tightened here by alpha-CROWN (:func:`tighten`: the same optimised
back-substitution with every neuron of a layer as a row). Bounds that count are computed
in float64 and widened by :func:`robustc.compiler.bounds.widen`; the Adam steps and the
branching trials run in float32 (they only choose parameters and rank candidates).
A domain with no unstable neuron left to split (every phase decided) is reported as
undecided, never as a proof, and the search answers ``unknown``. Each violation case has
its own search; :func:`decide_cases` lets them take turns.

This module reads only the IR (through :func:`robustc.compiler.bounds` linear operators)
and uses PyTorch for the gradients of the bound; the attack and the replay are callbacks.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robustc.compiler.bounds import _prepare, widen
from robustc.compiler.input_split import (
    FOUND,
    PROVED,
    UNKNOWN,
    Outcome,
    case_atoms,
    margin_graph,
)
from robustc.ir import Graph, Input, Relu

#: Coefficient entries per chunk of the per-domain bound refresh (memory cap).
REFRESH_ENTRIES = 1 << 22


@dataclass(frozen=True)
class ReluSplitOptions:
    """How the ReLU branch and bound runs (see the module docstring)."""

    min_unstable: int = 40      # verify uses it only for boxes with more unstable ReLUs
    batch: int = 128            # domains split per round (2 * batch children bounded at once)
    iterations: int = 20        # Adam steps on alpha and beta per round
    root_iterations: int = 60   # alpha-CROWN steps per hidden layer at the root (0: none)
    lr_alpha: float = 0.1
    lr_beta: float = 0.05
    max_domains: int = 400_000  # give up (unknown) when the queue grows beyond this
    checks: int = 4             # candidate points handed to ``check`` per round at most
    branch_candidates: int = 5  # neurons tried per split (filtered smart branching; 1: BaBSR)
    refresh: bool = True        # recompute hidden bounds per domain after each split (CROWN)
    # Hidden bounds tightened by a branch and bound per neuron when the search has not
    # decided every case after `refine_after` of the time left (robustc.compiler.relu_refine).
    # verify then searches the open cases again for `refine_after` of the time left, and
    # refines again with twice the rounds, up to `refine_max_rounds` (the last search gets
    # all the time left). Rounds per neuron at first (0: never refine), domains split per
    # neuron and round, and the share of the time left one refinement may use (32 rounds
    # and 70 % prove MNIST-FC 256x6 prop_12_0.05 in 300 s, 16 and 40 % do not; docs/vnnlib.md).
    refine_after: float = 0.05
    refine_rounds: int = 32
    refine_max_rounds: int = 64
    refine_parents: int = 8
    refine_share: float = 0.7
    # How the refinement's trees branch and whether they refresh hidden bounds per domain
    # (see relu_refine: BaBSR alone and no refresh measured best).
    refine_candidates: int = 1
    refine_refresh: bool = False


@dataclass
class Chain:
    """Affine layers ``z_k = W_k a_{k-1} + b_k`` with ``a_k = relu(z_k)`` between them.

    ``weights[k]``/``biases[k]`` for ``k < L`` are the hidden layers (``a_0`` is the flat
    input), the last pair maps the last hidden activation to the graph's output (the atom
    margins). ``pre[k]`` names the IR node whose value is ``z_k`` (for its bounds).
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    pre: list[str]

    @property
    def hidden(self) -> list[int]:
        return [w.shape[0] for w in self.weights[:-1]]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The output (``(N, m)``) on flat inputs ``x`` (``(N, n_in)``), float64."""
        a = np.asarray(x, dtype=np.float64)
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            a = a @ w.T + b
            if k < len(self.weights) - 1:
                a = np.maximum(a, 0.0)
        return a


def case_chain(graph: Graph, cases: list) -> tuple[Chain | None, list[list[int]]]:
    """The chain of ``graph`` with one output per atom of ``cases`` (their margins, see
    :func:`~robustc.compiler.input_split.margin_graph`), and each case as the list of its
    atoms' output columns; the chain is None when the graph is not one."""
    atoms = case_atoms(cases)
    column = {id(a): i for i, a in enumerate(atoms)}
    return (chain(margin_graph(graph, atoms)),
            [[column[id(a)] for a in case] for case in cases])


def chain(graph: Graph) -> Chain | None:
    """``graph`` as a :class:`Chain`, or None when it is not one: one input, then linear
    nodes and ReLUs (slope 0 below zero) each reading the node before it."""
    if len(graph.inputs) != 1 or not isinstance(graph.nodes[0], Input):
        return None
    prep = _prepare(graph)
    nodes = graph.nodes
    n = nodes[0].size
    mat, off = np.eye(n), np.zeros(n)
    weights, biases, pre = [], [], []
    for prev, node in zip(nodes, nodes[1:], strict=False):
        if tuple(node.inputs) != (prev.name,):
            return None
        if isinstance(node, Relu):
            if node.alpha != 0.0:
                return None
            weights.append(mat)
            biases.append(off)
            pre.append(prev.name)
            mat, off = np.eye(node.size), np.zeros(node.size)
            continue
        if not node.linear or len(prep.ops[node.name]) != 1:
            return None
        op = prep.ops[node.name][0]
        mat = _apply_op(op, mat)
        off = _apply_op(op, off[:, None])[:, 0] + prep.offsets[node.name]
    if graph.outputs != (nodes[-1].name,) or isinstance(nodes[-1], Relu | Input):
        return None
    weights.append(mat)
    biases.append(off)
    return Chain(weights, biases, pre)


def _apply_op(op, mat: np.ndarray) -> np.ndarray:
    """``M @ mat`` for the operator ``M`` of a linear node (``mat``: ``(n_in, k)``)."""
    if op.kind == "identity":
        return mat
    if op.kind == "diag":
        return np.asarray(op.mat).reshape(-1, 1) * mat
    if op.kind == "dense":
        return op.mat @ mat
    return np.asarray(op.mat @ mat)


# --------------------------------------------------------------------------------------
# The optimised bound (PyTorch, float64)


class _Bounder:
    """Back-substitution through a :class:`Chain` with ``alpha``/``beta`` parameters."""

    def __init__(self, ch: Chain, lower: np.ndarray, upper: np.ndarray, dtype=None):
        import torch

        self.torch = torch
        self.dtype = dtype or torch.float64
        cast = lambda a: _f64(a).to(self.dtype)  # noqa: E731
        self.W = [cast(w) for w in ch.weights]
        self.b = [cast(b) for b in ch.biases]
        lo, hi = np.asarray(lower, np.float64).ravel(), np.asarray(upper, np.float64).ravel()
        self.center, self.radius = cast(0.5 * (lo + hi)), cast(0.5 * (hi - lo))
        self.x_lo, self.x_hi = _f64(lo), _f64(hi)
        self.args = (ch, lower, upper)
        self._single = None

    @property
    def single(self) -> _Bounder:
        """A float32 twin, for the optimisation of the parameters only (any parameters
        give a valid bound; the bound that counts is computed again in float64)."""
        if self._single is None:
            self._single = _Bounder(*self.args, dtype=self.torch.float32)
        return self._single

    def bound(self, obj_w, obj_b, lo: list, hi: list, signs: list | None, alpha: list,
              beta: list | None, want_coefs: bool = False):
        """Lower bounds of ``obj_w @ a_K + obj_b`` (``K = len(lo)`` hidden layers below).

        ``obj_w``: ``(R, n_K)``, or ``(B, R, n_K)`` with ``obj_b`` ``(B, R)`` for an
        objective per domain; ``lo``/``hi``: per layer ``(B, n_k)`` (decisions already
        clipped in); ``signs``: per layer ``(B, n_k)`` in ``{-1, 0, 1}`` (None: no
        decisions); ``alpha``/``beta``: per layer ``(B, R, n_k)``. Returns ``(lb (B, R),
        A (B, R, n_in), coefs)``: ``A`` the input coefficients and ``coefs[k]`` the
        coefficients on ``a_k`` (with ``want_coefs``).
        """
        torch = self.torch
        a = obj_w if obj_w.dim() == 3 else obj_w.unsqueeze(0)
        const = obj_b if obj_b.dim() == 2 else obj_b.unsqueeze(0)
        coefs: list = [None] * len(lo)
        for k in reversed(range(len(lo))):
            if want_coefs:
                coefs[k] = a
            # Slopes per domain and neuron ((B, 1, n_k)), shared by the rows; only the
            # lower slope of an unstable neuron (alpha) is per row.
            l, u = lo[k].unsqueeze(1), hi[k].unsqueeze(1)
            unstable = (l < 0) & (u > 0)
            active = (l >= 0).to(a.dtype)
            chord = torch.where(unstable, u / torch.where(unstable, u - l, 1.0), 0.0)
            upper_slope = chord + active
            lower_slope = torch.where(unstable, alpha[k], active)
            neg = a.clamp(max=0.0)
            c = (a - neg) * lower_slope + neg * upper_slope
            const = const - (neg * (chord * l)).sum(-1)
            if beta is not None:
                c = c - beta[k] * signs[k].unsqueeze(1)
            const = const + c @ self.b[k]
            a = c @ self.W[k]
        lb = const + a @ self.center - a.abs() @ self.radius
        return lb, a, coefs


def _adam(bounder: _Bounder, obj, lo, hi, signs, alpha, beta, steps: int,
          options: ReluSplitOptions, deadline: float | None):
    """``steps`` projected Adam steps on ``alpha`` (and ``beta``); returns the parameters
    (float64) with the best bound seen per row (each row's bound depends on its own
    parameters). The steps run in float32 (:attr:`_Bounder.single`): they only choose the
    parameters, and the caller bounds with them in float64."""
    torch = bounder.torch
    bounder = bounder.single
    single = lambda ts: None if ts is None else [t.to(torch.float32) for t in ts]  # noqa: E731
    obj, lo, hi, signs = single(obj), single(lo), single(hi), single(signs)
    alpha = [p.detach().to(torch.float32).requires_grad_(True) for p in alpha]
    groups = [{"params": alpha, "lr": options.lr_alpha}]
    if beta is not None:
        beta = [p.detach().to(torch.float32).requires_grad_(True) for p in beta]
        groups.append({"params": beta, "lr": options.lr_beta})
    opt = torch.optim.Adam(groups, maximize=True, foreach=True)
    best = None
    best_alpha = [p.detach().clone() for p in alpha]
    best_beta = None if beta is None else [p.detach().clone() for p in beta]
    for _ in range(steps):
        lb, _, _ = bounder.bound(obj[0], obj[1], lo, hi, signs, alpha, beta)
        with torch.no_grad():
            if best is None:
                best = lb.detach().clone()
                improved = torch.ones_like(best, dtype=torch.bool)
            else:
                improved = lb > best
                best = torch.where(improved, lb, best)
            mask = improved.unsqueeze(-1)
            best_alpha = [torch.where(mask, p, q) for p, q in zip(alpha, best_alpha, strict=True)]
            if beta is not None:
                best_beta = [torch.where(mask, p, q) for p, q in zip(beta, best_beta, strict=True)]
        if deadline is not None and time.perf_counter() > deadline:
            break
        opt.zero_grad()
        lb.sum().backward()
        opt.step()
        with torch.no_grad():
            for p in alpha:
                p.clamp_(0.0, 1.0)
            for p in beta or ():
                p.clamp_(min=0.0)
    double = lambda ts: None if ts is None else [t.to(torch.float64) for t in ts]  # noqa: E731
    return double(best_alpha), double(best_beta)


def _initial_alpha(lo, hi, rows: int) -> list:
    """CROWN's adaptive lower slope: 1 where ``u > -l``, else 0, for every row."""
    return [(h > -l).to(l.dtype).unsqueeze(1).expand(-1, rows, -1).clone()
            for l, h in zip(lo, hi, strict=True)]


def tighten(ch: Chain, lower: np.ndarray, upper: np.ndarray, pre_lo: list, pre_hi: list,
            steps: int, options: ReluSplitOptions = ReluSplitOptions(),
            deadline: float | None = None, first: int = 1) -> tuple[list, list]:
    """alpha-CROWN bounds of the hidden layers' pre-activations, layer by layer from
    ``first`` (the first hidden layer's interval bounds are exact already).

    ``pre_lo``/``pre_hi`` are valid bounds (``(n_k,)`` each, e.g. CROWN's); the result is
    their intersection with the optimised bounds (widened), so never looser.
    """
    import torch

    bounder = _Bounder(ch, lower, upper)
    lo = [np.asarray(v, np.float64).copy() for v in pre_lo]
    hi = [np.asarray(v, np.float64).copy() for v in pre_hi]
    for k in range(max(first, 1), len(lo)):
        rows = np.flatnonzero((lo[k] < 0) & (hi[k] > 0))
        if rows.size == 0 or (deadline is not None and time.perf_counter() > deadline):
            continue
        w, b = ch.weights[k][rows], ch.biases[k][rows]
        obj = (torch.as_tensor(np.concatenate([w, -w])), torch.as_tensor(np.concatenate([b, -b])))
        tlo = [torch.as_tensor(v).unsqueeze(0) for v in lo[:k]]
        thi = [torch.as_tensor(v).unsqueeze(0) for v in hi[:k]]
        alpha = _initial_alpha(tlo, thi, 2 * rows.size)
        alpha, _ = _adam(bounder, obj, tlo, thi, None, alpha, None, steps, options, deadline)
        with torch.no_grad():
            lb, _, _ = bounder.bound(obj[0], obj[1], tlo, thi, None, alpha, None)
        lb = lb[0].numpy()
        lo[k][rows] = np.maximum(lo[k][rows], _widen_lower(lb[:rows.size]))
        hi[k][rows] = np.minimum(hi[k][rows], -_widen_lower(lb[rows.size:]))
    return lo, hi


def _f64(a):
    """A float64 (contiguous) torch tensor of ``a``."""
    import torch

    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float64))


def _widen_lower(v: np.ndarray) -> np.ndarray:
    """A lower bound moved down by the pipeline's widening (absorbs float64 rounding)."""
    return widen(v, v)[0]


# --------------------------------------------------------------------------------------
# The search


@dataclass
class _Batch:
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
class _Search:
    ch: Chain
    bounder: _Bounder
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
              inherited: np.ndarray | None = None, obj: tuple | None = None) -> _Batch:
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
        tlo, thi = self._layers(_f64(lo)), self._layers(_f64(hi))
        tsign = self._layers(_f64(signs))
        ta = [p.clone() for p in self._layers3(_f64(alpha))]
        tb = [p.clone() for p in self._layers3(_f64(beta))]
        ta, tb = _adam(self.bounder, obj, tlo, thi, tsign, ta, tb, steps, self.options,
                       self.deadline)
        with torch.no_grad():
            lb, a, coefs = self.bounder.bound(*obj, tlo, thi, tsign, ta, tb, want_coefs=True)
        lb = _widen_lower(lb.numpy())
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
        out = _Batch(signs, _down32(lo), _up32(hi), alpha.astype(np.float32),
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
            obj = (_f64(np.concatenate([w, -w])), _f64(np.concatenate([b, -b])))
            chunk = max(1, REFRESH_ENTRIES // (2 * rows.size * width))
            for s in range(0, doms.size, chunk):
                part = doms[s:s + chunk]
                tlo, thi = self._layers(_f64(lo[part]))[:k], self._layers(_f64(hi[part]))[:k]
                alpha = [(h > -l).to(l.dtype).unsqueeze(1) for l, h in zip(tlo, thi, strict=True)]
                with torch.no_grad():
                    lb, _, _ = self.bounder.bound(*obj, tlo, thi, None, alpha, None)
                lb = lb.numpy()
                cols = np.ix_(part, first + rows)
                lo[cols] = np.maximum(lo[cols], _widen_lower(lb[:, :rows.size]))
                hi[cols] = np.minimum(hi[cols], -_widen_lower(lb[:, rows.size:]))
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
        s, lo, hi, b = _children(signs[sel], lo[sel], hi[sel], beta[sel], idx)
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
        for i in np.argsort(-margins)[:self.options.checks]:
            if margins[i] < 0.0:
                break
            found = self.check(x[i])
            if found is not None:
                return found
        return None


def _children(signs, lo, hi, beta, idx):
    """Rows in pairs: even rows decide neuron ``idx`` active, odd rows inactive (the
    bounds clipped at 0, the new decision's multiplier reset). Modifies its arguments."""
    both = np.arange(len(idx))
    active = both % 2 == 0
    signs[both, idx] = np.where(active, 1, -1)
    lo[both, idx] = np.where(active, np.maximum(lo[both, idx], 0.0), lo[both, idx])
    hi[both, idx] = np.where(active, hi[both, idx], np.minimum(hi[both, idx], 0.0))
    beta[both, :, idx] = 0.0
    return signs, lo, hi, beta


def _down32(v: np.ndarray) -> np.ndarray:
    """float32 values not above ``v`` (stored bounds stay valid)."""
    out = v.astype(np.float32)
    return np.where(out > v, np.nextafter(out, np.float32(-np.inf)), out)


def _up32(v: np.ndarray) -> np.ndarray:
    out = v.astype(np.float32)
    return np.where(out < v, np.nextafter(out, np.float32(np.inf)), out)


class _Tree:
    """The open domains of one violation case and how its search stands."""

    def __init__(self, search: _Search):
        self.search = search
        self.heap: list = []
        self.counter = itertools.count()
        self.undecided = False   # a domain with every phase decided was not refuted
        self.out: Outcome | None = None
        self.spent = 0.0         # seconds this search has run (the turns go by it)

    @property
    def stats(self) -> dict:
        return self.search.stats

    def root(self, root_lo: np.ndarray, root_hi: np.ndarray) -> None:
        import torch

        search, options = self.search, self.search.options
        t = time.perf_counter()
        alpha0 = torch.cat(_initial_alpha([torch.as_tensor(root_lo)[None]],
                                          [torch.as_tensor(root_hi)[None]], search.rows.size), -1)
        alpha0 = alpha0.numpy().astype(np.float32)
        signs0 = np.zeros((1, root_lo.size), np.int8)
        batch = search.bound(signs0, root_lo[None], root_hi[None], alpha0,
                             np.zeros_like(alpha0), options.root_iterations or 1)
        self.stats["domains"] = 1
        self.stats["root_bound"] = float(batch.lb.max())
        self._take(batch, np.zeros(1, dtype=np.int64))
        self._settle(t)

    def _take(self, b: _Batch, depth: np.ndarray) -> None:
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
        signs, lo, hi, beta = _children(signs, lo.astype(np.float64), hi.astype(np.float64),
                                        beta, idx)
        stats["rounds"] += 1
        stats["domains"] += len(idx)
        stats["max_depth"] = max(stats["max_depth"], int(depth.max()))
        self._take(search.bound(signs, lo, hi, alpha, beta, search.options.iterations, idx,
                                inherited), depth)
        self._settle(t)

    def stop(self, reason: str) -> None:
        self.out = Outcome(UNKNOWN, reason, stats=self.stats)


def decide_cases(ch: Chain, lower: np.ndarray, upper: np.ndarray, pre_lo: list,
                 pre_hi: list, cases: list, *, tol: float, check: Callable[[np.ndarray], object],
                 options: ReluSplitOptions = ReluSplitOptions(),
                 deadline: float | None = None) -> list[Outcome]:
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
    :class:`~robustc.compiler.input_split.Outcome` per case: ``proved`` when every domain
    of the case is refuted with tolerance ``tol``; ``found`` (and every other unfinished
    case ``unknown``); ``unknown`` at the deadline, when the open domains of all cases
    together pass ``max_domains``, or when a domain has every phase decided but is not
    refuted.
    """
    root_lo, root_hi = np.concatenate(pre_lo), np.concatenate(pre_hi)
    bounder = _Bounder(ch, lower, upper)
    trees = []
    for rows in cases:
        stats = {"domains": 0, "refuted": 0, "rounds": 0, "max_depth": 0, "leaves": 0,
                 "root_unstable": int(((root_lo < 0) & (root_hi > 0)).sum())}
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        trees.append(_Tree(_Search(ch, bounder, rows, tol, check, options, deadline, stats)))

    def late() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    for tree in trees:
        if late():
            break
        tree.root(root_lo, root_hi)
        if tree.out is not None and tree.out.status == FOUND:
            break
    while not any(t.out is not None and t.out.status == FOUND for t in trees):
        open_ = [t for t in trees if t.out is None and t.heap]
        if not open_ or late() or sum(len(t.heap) for t in open_) > options.max_domains:
            break
        min(open_, key=lambda t: t.spent).round()
    found = any(t.out is not None and t.out.status == FOUND for t in trees)
    domains = sum(len(t.heap) for t in trees if t.out is None)
    for tree in trees:
        if tree.out is not None:
            continue
        if found:
            tree.stop("another case has a counterexample")
        elif late() or not tree.heap:
            tree.stop("time limit reached while splitting ReLUs")
        else:
            tree.stop(f"more than {options.max_domains} open ReLU domains ({domains} in all)")
    return [t.out for t in trees]


def branch_and_bound(ch: Chain, lower: np.ndarray, upper: np.ndarray, pre_lo: list,
                     pre_hi: list, rows, *, tol: float, check: Callable[[np.ndarray], object],
                     options: ReluSplitOptions = ReluSplitOptions(),
                     deadline: float | None = None) -> Outcome:
    """:func:`decide_cases` for one case, ``m_r >= 0`` for every row ``r`` in ``rows``."""
    return decide_cases(ch, lower, upper, pre_lo, pre_hi, [rows], tol=tol, check=check,
                        options=options, deadline=deadline)[0]


__all__ = ["ReluSplitOptions", "Chain", "chain", "tighten", "decide_cases", "branch_and_bound"]
