"""Symbolic (CROWN) bounds over a batch of input boxes in one vectorised computation.

:func:`batch_symbolic_bounds` computes, for ``B`` boxes of one graph at once, what
:func:`robustc.compiler.bounds.symbolic_bounds` computes for each box: the same interval
pass, the same adaptive ReLU relaxation (chord above; slope ``alpha`` or 1 below, whichever
covers more of ``[l, u]``), the same back-substitution targets and refined rows, the same
intersection with interval bounds and the same outward widening ``WIDEN_REL * (1 + |b|)``.
Only the arithmetic is arranged differently: coefficient matrices carry a leading batch
axis (``(B, rows, width)``; shared ``(rows, width)`` until the first ReLU makes them
depend on the box), and the affine maps are applied to all boxes with one matrix product.
The results agree with the per-box function up to float64 rounding (the tests check
``1e-9``), far inside the widening.

It handles graphs of one input made of linear nodes (Dense, Conv, Reshape, Add, ...) and
ReLUs (:func:`supports`); anything else (MaxPool, output maps, several inputs) is left to
the per-box function. Besides the bounds, it returns for every graph output the linear
upper bound ``A x + c`` that CROWN concretised (:attr:`BatchBounds.linear_upper`): its
maximising vertex is where the output's upper bound is attained by the relaxation, a cheap
candidate counterexample.

This module reads the IR and the per-graph preparation of :mod:`robustc.compiler.bounds`
(linear operators, offsets); it changes nothing there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from robustc.compiler.bounds import (
    BLOCK_ENTRIES,
    Bounds,
    BoundsError,
    LinearOp,
    LinearOps,
    prepare_linear_ops,
    push_coefficients,
    reads_input,
    relu_relaxation,
    symbolic_targets,
    widen,
)
from robustc.errors import ShapeError
from robustc.ir import Graph, Input, Node, Relu, evaluate


@dataclass
class BatchBounds:
    """Bounds of every node of one graph over ``B`` boxes.

    ``lower[name]``/``upper[name]`` are float64 arrays of shape ``(B, node.size)`` (flat);
    ``linear_upper[name]`` for each graph output is ``(A, c)`` with ``A`` of shape
    ``(B, size, n_in)`` and ``c`` of shape ``(B, size)``: for every input ``x`` in box ``b``,
    ``output[b] <= A[b] @ x + c[b]`` (before the widening and the interval intersection,
    which only make ``upper`` larger or tighter but still valid).
    """

    graph: Graph
    lower: dict[str, np.ndarray]
    upper: dict[str, np.ndarray]
    relu_inputs: dict[str, str]
    linear_upper: dict[str, tuple[np.ndarray, np.ndarray]]
    time_s: float

    @property
    def size(self) -> int:
        return next(iter(self.lower.values())).shape[0]

    def num_unstable(self) -> np.ndarray:
        """The number of unstable ReLU neurons of each box (``(B,)`` int)."""
        count = np.zeros(self.size, dtype=np.int64)
        for src in self.relu_inputs.values():
            count += ((self.lower[src] < 0.0) & (self.upper[src] > 0.0)).sum(axis=1)
        return count

    def part(self, b: int) -> Bounds:
        """The :class:`Bounds` of box ``b`` (node shapes), as ``compute_bounds`` returns them."""
        lower = {n.name: self.lower[n.name][b].reshape(n.shape) for n in self.graph.nodes}
        upper = {n.name: self.upper[n.name][b].reshape(n.shape) for n in self.graph.nodes}
        return Bounds(lower, upper, "symbolic", self.time_s / self.size, dict(self.relu_inputs))


def supports(graph: Graph) -> bool:
    """Whether :func:`batch_symbolic_bounds` handles ``graph``: one input, and only linear
    nodes and ReLUs."""
    if len(graph.inputs) != 1:
        return False
    return all(isinstance(n, Input | Relu) or n.linear for n in graph.nodes)


# --------------------------------------------------------------------------------------
# Affine maps on batches: rows of ``x`` are boxes (forward), rows of ``a`` are coefficient
# rows (backward).


def _forward(op: LinearOp, x: np.ndarray, absolute: bool = False) -> np.ndarray:
    """``x @ M.T`` (or ``x @ |M|.T``) for ``x`` of shape ``(B, n_in)``."""
    mat = op.abs_mat if absolute else op.mat
    if op.kind == "identity":
        return x
    if op.kind == "diag":
        return x * mat
    if op.kind == "dense":
        return x @ mat.T
    return np.asarray((mat @ x.T).T)


def _backward(op: LinearOp, a: np.ndarray) -> np.ndarray:
    """``a @ M`` for coefficients ``a`` of shape ``(rows, n)`` or ``(B, rows, n)``."""
    if op.kind == "identity":
        return a
    if op.kind == "diag":
        return a * op.mat
    flat = a.reshape(-1, a.shape[-1])
    out = flat @ op.mat if op.kind == "dense" else np.asarray((op.mat_t @ flat.T).T)
    return out.reshape(a.shape[:-1] + (out.shape[-1],))


def _apply(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``a @ v`` per box: ``a`` ``(rows, n)`` or ``(B, rows, n)``, ``v`` ``(B, n)`` ->
    ``(B, rows)``."""
    if a.ndim == 2:
        return v @ a.T
    return np.einsum("brn,bn->br", a, v)


# --------------------------------------------------------------------------------------
# Interval pass


def _interval_node(node: Node, prep: LinearOps, lo: dict, hi: dict, batch: int):
    if not node.inputs and node.linear:  # a constant
        value = np.broadcast_to(prep.offsets[node.name], (batch, node.size)).copy()
        return value, value.copy()
    if node.linear:
        centre = np.broadcast_to(prep.offsets[node.name], (batch, node.size)).copy()
        radius = np.zeros_like(centre)
        for src, op in zip(node.inputs, prep.ops[node.name], strict=True):
            centre += _forward(op, 0.5 * (lo[src] + hi[src]))
            radius += _forward(op, 0.5 * (hi[src] - lo[src]), absolute=True)
        return widen(centre - radius, centre + radius)
    (src,) = node.inputs
    return (np.maximum(lo[src], node.alpha * lo[src]),
            np.maximum(hi[src], node.alpha * hi[src]))


def _interval_pass(graph: Graph, prep: LinearOps, box: tuple) -> tuple[dict, dict]:
    batch = box[0].shape[0]
    lo, hi = {graph.inputs[0]: box[0]}, {graph.inputs[0]: box[1]}
    for node in graph.nodes:
        if not isinstance(node, Input):
            lo[node.name], hi[node.name] = _interval_node(node, prep, lo, hi, batch)
    return lo, hi


# --------------------------------------------------------------------------------------
# Back-substitution


def _relu_backward(relax: tuple, a_lo: np.ndarray, a_hi: np.ndarray | None):
    """Coefficients on a ReLU's input and constant terms for the lower (``a_lo``) and upper
    (``a_hi``; None: the same as ``a_lo``) bounds: ``a * sl`` where ``a >= 0`` else ``a * su``
    for the lower bound, the other way round for the upper bound, plus ``a * tu`` on the
    side that uses the chord.

    ``relax`` is ``(sl, su, tu, cols)``: slopes and offsets ``(B, n)`` and the columns that
    are unstable in some box. Elsewhere ``sl == su`` and ``tu == 0`` in every box, so those
    columns are one product; only the unstable columns pay for the sign test.
    """
    sl, su, tu, cols = relax
    a_hi_ = a_lo if a_hi is None else a_hi
    if 2 * cols.size > sl.shape[1]:  # mostly unstable: the sign test on every column
        l, u = sl[:, None, :], su[:, None, :]
        pos_lo = a_lo >= 0.0
        pos_hi = pos_lo if a_hi is None else a_hi_ >= 0.0
        b_lo = np.where(pos_lo, l, u)
        b_lo *= a_lo
        b_hi = np.where(pos_hi, u, l)
        b_hi *= a_hi_
        return (b_lo, _apply(np.minimum(a_lo, 0.0), tu), b_hi,
                _apply(np.maximum(a_hi_, 0.0), tu))
    b_lo = a_lo * sl[:, None, :]
    b_hi = b_lo if a_hi is None else a_hi * sl[:, None, :]
    if not cols.size:
        zero = np.zeros((sl.shape[0], a_lo.shape[-2]))
        return b_lo, zero, b_hi, zero
    if b_hi is b_lo:
        b_hi = b_lo.copy()
    l, u, t = sl[:, None, cols], su[:, None, cols], tu[:, cols]
    c_lo, c_hi = a_lo[..., cols], a_hi_[..., cols]
    pos_lo = c_lo >= 0.0
    pos_hi = pos_lo if a_hi is None else c_hi >= 0.0
    b_lo[..., cols] = np.where(pos_lo, l, u) * c_lo
    b_hi[..., cols] = np.where(pos_hi, u, l) * c_hi
    d_lo = _apply(np.minimum(c_lo, 0.0), t)
    d_hi = _apply(np.maximum(c_hi, 0.0), t)
    return b_lo, d_lo, b_hi, d_hi


def _backsubstitute(graph: Graph, prep: LinearOps, target: str, rows: np.ndarray,
                    box: tuple, relax: dict, keep_linear: bool):
    """Linear bounds of ``target``'s neurons ``rows`` for every box, concretised; with
    ``keep_linear`` also the upper linear bound ``(A, c)`` in terms of the input."""
    batch = box[0].shape[0]
    first = prep.ops.get(target)
    out_lo, out_hi = np.zeros((batch, rows.size)), np.zeros((batch, rows.size))
    pending: dict = {}
    node = graph[target]
    out_lo += prep.offsets[target][rows]
    out_hi += prep.offsets[target][rows]
    for src, op in zip(node.inputs, first, strict=True):  # I[rows] @ M, sliced exactly
        b = op.rows(rows, graph[src].size)
        push_coefficients(pending, src, b, b)
    linear = None
    for node in reversed(graph.nodes[:prep.position[target]]):
        if node.name not in pending:
            continue
        a_lo, a_hi = pending.pop(node.name)
        shared = a_lo is a_hi
        if isinstance(node, Input):
            lo, hi = box
            mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
            if keep_linear:
                a = a_hi if a_hi.ndim == 3 else np.broadcast_to(a_hi, (batch,) + a_hi.shape)
                linear = (a, out_hi.copy())
            out_lo += _apply(a_lo, mid) - _apply(np.abs(a_lo), rad)
            out_hi += _apply(a_hi, mid) + _apply(np.abs(a_hi), rad)
        elif node.linear:
            offset = prep.offsets[node.name]
            out_lo += a_lo @ offset
            out_hi += a_hi @ offset
            for src, op in zip(node.inputs, prep.ops[node.name], strict=True):
                b_lo = _backward(op, a_lo)
                push_coefficients(pending, src, b_lo, b_lo if shared else _backward(op, a_hi))
        else:
            b_lo, d_lo, b_hi, d_hi = _relu_backward(relax[node.name], a_lo,
                                                     None if shared else a_hi)
            out_lo += d_lo
            out_hi += d_hi
            push_coefficients(pending, node.inputs[0], b_lo, b_hi)
    lo, hi = widen(out_lo, out_hi)
    return lo, hi, linear


def _crown(graph: Graph, prep: LinearOps, target: str, box: tuple, relax: dict,
           rows: np.ndarray, keep_linear: bool):
    """Back-substitution of ``rows`` in blocks small enough for memory."""
    batch = box[0].shape[0]
    widest = max(node.size for node in graph.nodes[:prep.position[target] + 1])
    block = max(1, BLOCK_ENTRIES // (widest * batch))
    if keep_linear:
        block = rows.size
    lo, hi = np.empty((batch, rows.size)), np.empty((batch, rows.size))
    linear = None
    for first in range(0, rows.size, block):
        part = slice(first, min(rows.size, first + block))
        lo[:, part], hi[:, part], linear = _backsubstitute(graph, prep, target, rows[part], box,
                                                           relax, keep_linear)
    return lo, hi, linear


def _refine_mask(graph: Graph, prep: LinearOps, node: Node, hi: np.ndarray) -> np.ndarray | None:
    """Per box, the rows of target ``node`` that ``bounds._rows_to_refine`` refines (a bool
    ``(B, size)`` array), or None for none at all."""
    if node.linear and len(node.inputs) == 1 and reads_input(graph, prep, node.inputs[0]):
        return None
    if node.name in graph.outputs:
        return np.ones(hi.shape, dtype=bool)
    wanted = np.zeros(hi.shape, dtype=bool)
    for user in graph.consumers.get(node.name, ()):
        user = graph[user]
        if isinstance(user, Relu):
            wanted |= (hi > 0.0) if user.alpha == 0.0 else True
        elif not user.linear:
            return np.ones(hi.shape, dtype=bool)
    return wanted


def _check_box(graph: Graph, lower: np.ndarray, upper: np.ndarray) -> tuple:
    shape = tuple(graph[graph.inputs[0]].shape)
    size = int(np.prod(shape, dtype=np.int64))
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    if lo.shape != hi.shape or lo.ndim < 1 or lo[0].size != size:
        raise ShapeError(f"batched boxes of input {graph.inputs[0]!r} must have shape "
                         f"(B, {list(shape)}), got {list(lo.shape)} and {list(hi.shape)}")
    lo, hi = lo.reshape(lo.shape[0], size), hi.reshape(hi.shape[0], size)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise BoundsError("a batched box is not finite")
    if np.any(lo > hi):
        raise BoundsError("a batched box is empty (lower > upper)")
    return lo, hi


def batch_symbolic_bounds(graph: Graph, lower: np.ndarray, upper: np.ndarray) -> BatchBounds:
    """Symbolic bounds of every node of ``graph`` over each box ``[lower[b], upper[b]]``.

    ``lower`` and ``upper`` have shape ``(B, *input_shape)`` (or ``(B, input_size)``).
    Bound for bound, the result is :func:`robustc.compiler.bounds.symbolic_bounds` of each
    box (up to float64 rounding). Raises ``ValueError`` for a graph that :func:`supports`
    rejects, ``ShapeError``/``BoundsError`` for bad boxes.
    """
    if not supports(graph):
        raise ValueError(f"graph {graph.name!r} has nodes the batched bounds do not handle")
    start = time.perf_counter()
    prep = prepare_linear_ops(graph)
    box = _check_box(graph, lower, upper)
    batch = box[0].shape[0]
    int_lo, int_hi = _interval_pass(graph, prep, box)
    targets = symbolic_targets(graph)
    lo, hi = {graph.inputs[0]: box[0]}, {graph.inputs[0]: box[1]}
    relax: dict[str, tuple] = {}
    linear: dict[str, tuple] = {}
    for node in graph.nodes:
        if isinstance(node, Input):
            continue
        if isinstance(node, Relu):
            src = node.inputs[0]
            cols = np.flatnonzero(((lo[src] < 0.0) & (hi[src] > 0.0)).any(axis=0))
            relax[node.name] = (*relu_relaxation(node.alpha, lo[src], hi[src]), cols)
        l, u = _interval_node(node, prep, lo, hi, batch)
        if node.name in targets:
            l, u = np.maximum(l, int_lo[node.name]), np.minimum(u, int_hi[node.name])
            wanted = _refine_mask(graph, prep, node, u)
            rows = np.flatnonzero(wanted.any(axis=0)) if wanted is not None else np.arange(0)
            if rows.size:
                keep = node.name in graph.outputs and rows.size == node.size
                c_lo, c_hi, lin = _crown(graph, prep, node.name, box, relax, rows, keep)
                if lin is not None:
                    linear[node.name] = lin
                w = wanted[:, rows]
                l[:, rows] = np.where(w, np.maximum(l[:, rows], c_lo), l[:, rows])
                u[:, rows] = np.where(w, np.minimum(u[:, rows], c_hi), u[:, rows])
        lo[node.name] = np.maximum(l, int_lo[node.name])
        hi[node.name] = np.minimum(u, int_hi[node.name])
    relu_inputs = {n.name: n.inputs[0] for n in graph.nodes if isinstance(n, Relu)}
    return BatchBounds(graph, lo, hi, relu_inputs, linear, time.perf_counter() - start)


def forward(graph: Graph, x: np.ndarray, keep_all: bool = False):
    """The flat output of ``graph`` (float64, ``(B, n_out)``) on the flat inputs ``x``
    (``(B, n_in)``), by the IR interpreter (:func:`robustc.ir.evaluate`); every node's flat
    value with ``keep_all``."""
    x = np.asarray(x, dtype=np.float64)
    batch = x.shape[0]
    shaped = x.reshape((batch,) + tuple(graph[graph.inputs[0]].shape))
    values = evaluate(graph, shaped, batched=True, keep_all=True)
    if keep_all:
        return {name: v.reshape(batch, -1) for name, v in values.items()}
    return values[graph.outputs[0]].reshape(batch, -1)


def gradient(graph: Graph, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``d (weights[p] . output(x[p])) / d x[p]`` for every point ``p`` (``(N, n_in)``): one
    forward and one backward pass for all points (a ReLU's derivative at 0 is taken as 0)."""
    prep = prepare_linear_ops(graph)
    values = forward(graph, x, keep_all=True)
    pending = {graph.outputs[0]: np.asarray(weights, dtype=np.float64)}
    for node in reversed(graph.nodes):
        g = pending.pop(node.name, None)
        if g is None:
            continue
        if isinstance(node, Input):
            return g
        if isinstance(node, Relu):
            v = values[node.inputs[0]]
            contributions = [(node.inputs[0], g * np.where(v > 0.0, 1.0, node.alpha))]
        else:
            contributions = [(src, _backward(op, g)) for src, op in
                             zip(node.inputs, prep.ops[node.name], strict=True)]
        for src, c in contributions:
            pending[src] = pending[src] + c if src in pending else c
    return np.zeros_like(values[graph.inputs[0]])


__all__ = ["BatchBounds", "batch_symbolic_bounds", "supports", "forward", "gradient"]
