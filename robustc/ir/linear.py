"""Exact affine maps of the linear IR nodes on flattened (row-major) values.

For a linear node with inputs ``x_1 .. x_k`` (each flattened in row-major order),
:func:`affine_map` returns sparse matrices ``M_i`` and an offset ``c`` with

    node.flat = M_1 @ x_1.flat + ... + M_k @ x_k.flat + c

exactly (float64; the matrices hold the node's own weights, no arithmetic is done on them
except a cast). Backends use these maps to write affine expressions, bound propagation uses
them to push intervals forwards and linear bounds backwards.

:func:`window_index` gives the flat input positions under each sliding window (Conv,
MaxPool), with ``-1`` for padded positions; it is built by index arithmetic, never by Python
loops over output pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from robustc.errors import IRError
from robustc.ir.nodes import (
    Add,
    Concat,
    Constant,
    Conv,
    Dense,
    ElementwiseAffine,
    Identity,
    MaxPool,
    Node,
    Reshape,
    Select,
    Shape,
)

AffineMap = tuple[list[sp.csr_matrix], np.ndarray]


def _size(shape: Shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape) -> sp.csr_matrix:
    mat = sp.csr_matrix((np.asarray(vals, dtype=np.float64), (rows, cols)), shape=shape)
    mat.sum_duplicates()
    return mat


def _identity(n: int) -> sp.csr_matrix:
    return sp.identity(n, dtype=np.float64, format="csr")


def window_index(in_hw: tuple[int, int], out_hw: tuple[int, int], kernel: tuple[int, int],
                 strides: tuple[int, int], pads: tuple[int, int, int, int],
                 dilations: tuple[int, int]) -> np.ndarray:
    """Flat positions ``h * W + w`` read by each window: int64 ``[Ho * Wo, kh * kw]``.

    Row ``y * Wo + x`` lists the kernel offsets ``(i, j)`` in row-major order; a position
    that falls in the padding is ``-1``.
    """
    (h, w), (ho, wo), (kh, kw) = in_hw, out_hw, kernel
    rows = (np.arange(ho)[:, None] * strides[0] - pads[0]
            + np.arange(kh)[None, :] * dilations[0])  # [Ho, kh]
    cols = (np.arange(wo)[:, None] * strides[1] - pads[1]
            + np.arange(kw)[None, :] * dilations[1])  # [Wo, kw]
    r = rows[:, None, :, None]
    c = cols[None, :, None, :]
    valid = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    flat = np.where(valid, r * w + c, -1)  # [Ho, Wo, kh, kw]
    return flat.reshape(ho * wo, kh * kw).astype(np.int64)


def _dense(node: Dense, in_shapes: list[Shape]) -> AffineMap:
    shape = tuple(in_shapes[0])
    axis = node.axis % len(shape)
    pre, post = _size(shape[:axis]), _size(shape[axis + 1:])
    weight = sp.csr_matrix(np.asarray(node.weight, dtype=np.float64))
    mat = weight
    if post > 1:
        mat = sp.kron(mat, _identity(post), format="csr")
    if pre > 1:
        mat = sp.kron(_identity(pre), mat, format="csr")
    offset = np.zeros(node.shape, dtype=np.float64)
    if node.bias is not None:
        bshape = [1] * len(node.shape)
        bshape[axis] = -1
        offset = offset + np.asarray(node.bias, dtype=np.float64).reshape(bshape)
    return [sp.csr_matrix(mat)], offset.ravel()


#: Entries of a convolution's matrix built at once (a block of output channels; between
#: blocks ``affine_map``'s ``check`` is called: a 16-channel 128x128 map took 12 s whole).
PART_ENTRIES = 1 << 21


def _conv(node: Conv, in_shapes: list[Shape], check: Callable[[], None] | None = None
          ) -> AffineMap:
    _, c_in, h, w = in_shapes[0]
    out_c, cg, kh, kw = node.weight.shape
    ho, wo = node.shape[2], node.shape[3]
    win = window_index((h, w), (ho, wo), (kh, kw), node.strides, node.pads, node.dilations)
    n_pos = ho * wo
    group = np.arange(out_c) // (out_c // node.groups)  # [O]
    chan = group[:, None] * cg + np.arange(cg)[None, :]  # [O, cg] input channel
    weight = np.asarray(node.weight, dtype=np.float64).reshape(out_c, 1, cg, kh * kw)
    step = max(1, PART_ENTRIES // max(1, n_pos * cg * kh * kw))
    parts = []
    for first in range(0, out_c, step):
        if check is not None:
            check()
        o = slice(first, min(out_c, first + step))
        # broadcast to [O, P, cg, K] for the output channels o
        rows = (np.arange(o.stop - o.start)[:, None, None, None] * n_pos
                + np.arange(n_pos)[None, :, None, None])
        pos = win[None, :, None, :]
        cols = chan[o, None, :, None] * (h * w) + pos
        full = (o.stop - o.start, n_pos, cg, kh * kw)
        rows, cols, vals, pos = (np.broadcast_to(a, full) for a in (rows, cols, weight[o], pos))
        keep = (pos >= 0) & (vals != 0.0)
        parts.append(_csr(rows[keep], cols[keep], vals[keep], (full[0] * n_pos, c_in * h * w)))
    mat = parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")
    offset = np.zeros(node.size, dtype=np.float64)
    if node.bias is not None:
        offset = np.repeat(np.asarray(node.bias, dtype=np.float64), n_pos)
    return [mat], offset


def _affine(node: ElementwiseAffine, in_shapes: list[Shape]) -> AffineMap:
    shape = tuple(in_shapes[0])
    scale = np.broadcast_to(np.asarray(node.scale, dtype=np.float64), shape).ravel()
    shift = np.broadcast_to(np.asarray(node.shift, dtype=np.float64), shape).ravel()
    return [sp.diags(scale, format="csr")], shift.copy()


def _select(node: Select, in_shapes: list[Shape]) -> AffineMap:
    idx = np.asarray(node.index, dtype=np.int64).ravel()
    rows = np.flatnonzero(idx >= 0)
    mat = _csr(rows, idx[rows], np.ones(rows.size), (node.size, _size(in_shapes[0])))
    offset = np.where(idx < 0, float(node.fill), 0.0)
    return [mat], offset


def _concat(node: Concat, in_shapes: list[Shape]) -> AffineMap:
    axis = node.axis % len(node.shape)
    out_pos = np.arange(node.size).reshape(node.shape)
    splits = np.cumsum([s[axis] for s in in_shapes])[:-1]
    mats = []
    for shape, part in zip(in_shapes, np.split(out_pos, splits, axis=axis), strict=True):
        rows = part.ravel()
        mats.append(_csr(rows, np.arange(rows.size), np.ones(rows.size),
                         (node.size, _size(shape))))
    return mats, np.zeros(node.size, dtype=np.float64)


def _passthrough(node: Node, in_shapes: list[Shape]) -> AffineMap:
    mats = [_identity(node.size) for _ in in_shapes]
    return mats, np.zeros(node.size, dtype=np.float64)


def _constant(node: Constant, in_shapes: list[Shape]) -> AffineMap:
    return [], np.asarray(node.value, dtype=np.float64).ravel().copy()


AFFINE_MAPS = {
    Dense: _dense,
    Conv: _conv,
    ElementwiseAffine: _affine,
    Add: _passthrough,
    Reshape: _passthrough,
    Identity: _passthrough,
    Select: _select,
    Concat: _concat,
    Constant: _constant,
}


def affine_map(node: Node, in_shapes: list[Shape], check: Callable[[], None] | None = None
               ) -> AffineMap:
    """The exact affine map of a linear node: ``([M_1, ..., M_k], offset)``.

    ``M_i`` is a float64 CSR matrix of shape ``[node.size, size of input i]`` and ``offset``
    a float64 vector of length ``node.size``. Raises ``IRError`` for a node that is not
    linear or when the number of input shapes does not match ``node.inputs``. ``check``,
    when given, is called before each part of a convolution's matrix (at most
    :data:`PART_ENTRIES` entries) and may raise to stop the work (a deadline).
    """
    fn = AFFINE_MAPS.get(type(node))
    if fn is None:
        raise IRError(f"node {node.name!r} ({node.op}) is not linear: it has no affine map")
    if len(in_shapes) != len(node.inputs):
        raise IRError(f"node {node.name!r}: {len(node.inputs)} inputs but "
                      f"{len(in_shapes)} shapes given")
    shapes = [tuple(s) for s in in_shapes]
    return _conv(node, shapes, check) if fn is _conv else fn(node, shapes)


def pool_index(node: MaxPool, in_shape: Shape) -> np.ndarray:
    """Flat input positions of each MaxPool window: int64 ``[node.size, kh * kw]``.

    Row ``o`` (a flat output position) lists the flat input positions in its window, ``-1``
    for padding. Every window holds at least one real position when the node is valid.
    """
    _, chans, h, w = in_shape
    ho, wo = node.shape[2], node.shape[3]
    win = window_index((h, w), (ho, wo), node.kernel, node.strides, node.pads,
                       node.dilations)
    base = (np.arange(chans) * h * w)[:, None, None]
    idx = np.where(win[None] >= 0, win[None] + base, -1)
    return idx.reshape(chans * ho * wo, -1)
