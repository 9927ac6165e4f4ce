"""A numpy executor of the IR.

Arrays carry one extra leading batch axis on top of the IR shapes: a node of shape ``s``
produces an array of shape ``(B, *s)``. Computation is in float64 by default, which is the
reference the PyTorch runtime and onnxruntime are compared against.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robustc.errors import ShapeError
from robustc.ir.graph import Graph
from robustc.ir.nodes import (
    Activation,
    Add,
    Concat,
    Constant,
    Conv,
    Dense,
    ElementwiseAffine,
    Identity,
    MaxPool,
    Node,
    OutputMap,
    Relu,
    Reshape,
    Select,
)


def _dense(node: Dense, x: np.ndarray) -> np.ndarray:
    axis = node.axis % (x.ndim - 1) + 1
    y = np.tensordot(x, node.weight.astype(x.dtype), axes=([axis], [1]))
    y = np.moveaxis(y, -1, axis)
    if node.bias is not None:
        shape = [1] * y.ndim
        shape[axis] = -1
        y = y + node.bias.astype(x.dtype).reshape(shape)
    return y


def _windows(x: np.ndarray, kernel, strides, dilations, out_hw) -> np.ndarray:
    """Stack the kernel offsets of a padded (B, C, H, W) array: (B, C, kh, kw, Ho, Wo)."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, strides, dilations, out_hw
    cols = np.empty(x.shape[:2] + (kh, kw, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                                 j * dw: j * dw + sw * (wo - 1) + 1: sw]
    return cols


def _pad_hw(x: np.ndarray, pads, value: float) -> np.ndarray:
    t, l, b, r = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def _conv(node: Conv, x: np.ndarray) -> np.ndarray:
    x = _pad_hw(x[:, 0], node.pads, 0.0)
    out_c, cg, kh, kw = node.weight.shape
    cols = _windows(x, (kh, kw), node.strides, node.dilations, node.shape[2:])
    g = node.groups
    cols = cols.reshape((x.shape[0], g, cg) + cols.shape[2:])
    w = node.weight.astype(x.dtype).reshape(g, out_c // g, cg, kh, kw)
    y = np.einsum("bgcijyx,gocij->bgoyx", cols, w, optimize=True)
    y = y.reshape((x.shape[0], out_c) + tuple(node.shape[2:]))
    if node.bias is not None:
        y = y + node.bias.astype(x.dtype)[None, :, None, None]
    return y[:, None]


def _maxpool(node: MaxPool, x: np.ndarray) -> np.ndarray:
    x = _pad_hw(x[:, 0], node.pads, -np.inf)
    cols = _windows(x, node.kernel, node.strides, node.dilations, node.shape[2:])
    return cols.max(axis=(2, 3))[:, None]


def _select(node: Select, x: np.ndarray) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1)
    idx = node.index.ravel()
    if (idx < 0).any():
        flat = np.concatenate([flat, np.full((x.shape[0], 1), node.fill, x.dtype)], axis=1)
        idx = np.where(idx < 0, flat.shape[1] - 1, idx)
    return flat[:, idx].reshape((x.shape[0],) + tuple(node.shape))


def _output_map(node: OutputMap, x: np.ndarray) -> np.ndarray:
    if node.kind == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic
    if node.kind == "tanh":
        return np.tanh(x)
    axis = node.axis % (x.ndim - 1) + 1
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def activation(kind: str, alpha: float, x: np.ndarray) -> np.ndarray:
    """The smooth activation ``kind`` (see :class:`robustc.ir.nodes.Activation`) of ``x``,
    element-wise, overflow-free, in ``x``'s dtype. The bounds relax exactly this function."""
    if kind == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic
    if kind == "tanh":
        return np.tanh(x)
    if kind == "softplus":
        return np.logaddexp(np.zeros((), x.dtype), x)
    if kind == "elu":
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))
    raise ValueError(f"unknown activation {kind!r}")


def _concat(node: Concat, *xs: np.ndarray) -> np.ndarray:
    return np.concatenate(xs, axis=node.axis % (xs[0].ndim - 1) + 1)


def _affine(node: ElementwiseAffine, x: np.ndarray) -> np.ndarray:
    return x * node.scale.astype(x.dtype) + node.shift.astype(x.dtype)


EXECUTORS: dict[type, Callable[..., np.ndarray]] = {
    Dense: _dense,
    Conv: _conv,
    ElementwiseAffine: _affine,
    Add: lambda node, *xs: sum(xs[1:], xs[0]),
    Relu: lambda node, x: np.maximum(x, node.alpha * x),
    MaxPool: _maxpool,
    Reshape: lambda node, x: x.reshape((x.shape[0],) + tuple(node.shape)),
    Select: _select,
    Concat: _concat,
    Identity: lambda node, x: x,
    OutputMap: _output_map,
    Activation: lambda node, x: activation(node.kind, node.alpha, x),
}


def run_node(node: Node, *inputs: np.ndarray, batch: int = 1) -> np.ndarray:
    """Evaluate one node on batched inputs (each of shape ``(B, *input_shape)``)."""
    if isinstance(node, Constant):
        return np.broadcast_to(node.value, (batch,) + node.value.shape).copy()
    return EXECUTORS[type(node)](node, *inputs)


def evaluate(graph: Graph, x: np.ndarray | dict[str, np.ndarray], *, batched: bool = False,
             dtype=np.float64, keep_all: bool = False) -> np.ndarray | dict[str, np.ndarray]:
    """Run ``graph`` on ``x`` and return its output (or every node's value with ``keep_all``).

    ``x`` has the input's shape, or ``(B, *shape)`` with ``batched=True``; a dict maps input
    names to arrays for graphs with several inputs. Raises ``ShapeError`` on a wrong shape.
    """
    feeds = x if isinstance(x, dict) else {graph.inputs[0]: x}
    values: dict[str, np.ndarray] = {}
    batch = None
    for name in graph.inputs:
        arr = np.asarray(feeds[name], dtype=dtype)
        arr = arr if batched else arr[None]
        want = tuple(graph[name].shape)
        if tuple(arr.shape[1:]) != want:
            got = list(arr.shape[1:] if batched else arr.shape[1:])
            raise ShapeError(f"input {name!r} of {graph.name!r} expects shape {list(want)}, "
                             f"got {got}")
        values[name] = arr
        batch = arr.shape[0]
    for node in graph.nodes:
        if node.name not in values:
            values[node.name] = run_node(node, *(values[i] for i in node.inputs), batch=batch)
    if keep_all:
        return values if batched else {k: v[0] for k, v in values.items()}
    outs = [values[o] if batched else values[o][0] for o in graph.outputs]
    return outs[0] if len(outs) == 1 else outs
