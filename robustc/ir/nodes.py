"""IR node types.

Every node is a frozen, slotted dataclass that produces exactly one tensor. Tensors keep
the exact static shapes of the ONNX model they came from (a batch dimension of 1 included);
interpreters that evaluate many inputs at once add one extra leading batch axis of their own.

A node names its inputs in the tuple field ``inputs`` (never discovered by scanning other
attributes). Weight tensors are fields of the node that owns them, so a backend can treat
one layer's weights as variables. Arrays stored in nodes are made read-only.

Shape rules live next to each node in ``infer_shape``; ``robustc.ir.verify`` calls them for
the whole graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from robustc.errors import IRError, UnsupportedOperator

Shape = tuple[int, ...]


def frozen_array(value, dtype=np.float64) -> np.ndarray:
    """Return ``value`` as a read-only numpy array of ``dtype``."""
    arr = np.array(value, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


def _fail(node: Node, message: str) -> IRError:
    return IRError(f"node {node.name!r} ({node.op}): {message}")


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """Base class: a named node with its input names and its output shape."""

    name: str
    inputs: tuple[str, ...]
    shape: Shape
    note: str = field(default="", kw_only=True)

    op = "node"
    linear = False  # True when the output is an affine function of the inputs

    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        """The output shape this node must have for the given input shapes."""
        raise NotImplementedError

    def attrs(self) -> dict:
        """Attributes shown in the text dump (arrays are shown by shape)."""
        return {}

    @property
    def size(self) -> int:
        """Number of scalar values in the output tensor."""
        return int(math.prod(self.shape))


@dataclass(frozen=True, slots=True, eq=False)
class Input(Node):
    """A graph input of a fixed shape."""

    op = "input"

    def infer_shape(self, in_shapes):
        if in_shapes:
            raise _fail(self, "an input takes no inputs")
        return self.shape


@dataclass(frozen=True, slots=True, eq=False)
class Constant(Node):
    """A constant tensor (only where it feeds a non-affine consumer such as Concat)."""

    value: np.ndarray = None
    op = "constant"
    linear = True

    def infer_shape(self, in_shapes):
        if in_shapes:
            raise _fail(self, "a constant takes no inputs")
        return tuple(self.value.shape)

    def attrs(self):
        return {"value": self.value}


@dataclass(frozen=True, slots=True, eq=False)
class Dense(Node):
    """``y = W x + b`` contracted over one axis of the input.

    ``weight`` has shape ``[out, in]``; ``axis`` is the input axis of length ``in`` that is
    replaced by one of length ``out`` (ONNX Gemm and MatMul use the last axis).
    """

    weight: np.ndarray = None
    bias: np.ndarray | None = None
    axis: int = -1
    op = "dense"
    linear = True

    def infer_shape(self, in_shapes):
        (shape,) = _arity(self, in_shapes, 1)
        if self.weight.ndim != 2:
            raise _fail(self, f"weight must be 2-D, got {self.weight.shape}")
        axis = _axis(self, self.axis, len(shape))
        if shape[axis] != self.weight.shape[1]:
            raise _fail(self, f"input axis {axis} has {shape[axis]} values, "
                              f"weight expects {self.weight.shape[1]}")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise _fail(self, f"bias shape {self.bias.shape} != ({self.weight.shape[0]},)")
        return shape[:axis] + (self.weight.shape[0],) + shape[axis + 1:]

    def attrs(self):
        return {"weight": self.weight, "bias": self.bias, "axis": self.axis}


@dataclass(frozen=True, slots=True, eq=False)
class Conv(Node):
    """2-D convolution on an input of shape ``[1, C, H, W]``.

    ``weight`` is ``[O, C/groups, kh, kw]``; ``pads`` is ``(top, left, bottom, right)``.
    """

    weight: np.ndarray = None
    bias: np.ndarray | None = None
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    groups: int = 1
    op = "conv"
    linear = True

    def infer_shape(self, in_shapes):
        (shape,) = _arity(self, in_shapes, 1)
        if len(shape) != 4 or shape[0] != 1:
            raise _fail(self, f"input must have shape [1, C, H, W], got {list(shape)}")
        out_c, in_per_group, kh, kw = self.weight.shape
        if shape[1] != in_per_group * self.groups or out_c % self.groups:
            raise _fail(self, f"{shape[1]} input channels do not fit weight "
                              f"{list(self.weight.shape)} with groups={self.groups}")
        if self.bias is not None and self.bias.shape != (out_c,):
            raise _fail(self, f"bias shape {self.bias.shape} != ({out_c},)")
        h = window_out(shape[2], kh, self.strides[0], self.pads[0] + self.pads[2],
                        self.dilations[0])
        w = window_out(shape[3], kw, self.strides[1], self.pads[1] + self.pads[3],
                        self.dilations[1])
        if h <= 0 or w <= 0:
            raise _fail(self, f"kernel larger than the padded input {list(shape)}")
        return (1, out_c, h, w)

    def attrs(self):
        return {"weight": self.weight, "bias": self.bias, "strides": self.strides,
                "pads": self.pads, "dilations": self.dilations, "groups": self.groups}


@dataclass(frozen=True, slots=True, eq=False)
class ElementwiseAffine(Node):
    """``y = scale * x + shift`` with constants broadcastable to the input shape."""

    scale: np.ndarray = None
    shift: np.ndarray = None
    op = "affine"
    linear = True

    def infer_shape(self, in_shapes):
        (shape,) = _arity(self, in_shapes, 1)
        for what, arr in (("scale", self.scale), ("shift", self.shift)):
            if np.broadcast_shapes(arr.shape, shape) != tuple(shape):
                raise _fail(self, f"{what} of shape {arr.shape} does not broadcast to {shape}")
        return tuple(shape)

    def attrs(self):
        return {"scale": self.scale, "shift": self.shift}


@dataclass(frozen=True, slots=True, eq=False)
class Add(Node):
    """Element-wise sum of two or more tensors of the same shape."""

    op = "add"
    linear = True

    def infer_shape(self, in_shapes):
        if len(in_shapes) < 2 or any(s != in_shapes[0] for s in in_shapes):
            raise _fail(self, f"needs two or more inputs of one shape, got {in_shapes}")
        return tuple(in_shapes[0])


@dataclass(frozen=True, slots=True, eq=False)
class Relu(Node):
    """``y = max(x, alpha * x)``: ReLU for ``alpha = 0``, leaky ReLU for ``0 < alpha < 1``."""

    alpha: float = 0.0
    op = "relu"

    def infer_shape(self, in_shapes):
        (shape,) = _arity(self, in_shapes, 1)
        if not 0.0 <= self.alpha < 1.0:
            raise _fail(self, f"alpha must be in [0, 1), got {self.alpha}")
        return tuple(shape)

    def attrs(self):
        return {"alpha": self.alpha} if self.alpha else {}


@dataclass(frozen=True, slots=True, eq=False)
class MaxPool(Node):
    """2-D max pooling on ``[1, C, H, W]``; padded positions never win (they are -inf)."""

    kernel: tuple[int, int] = (2, 2)
    strides: tuple[int, int] = (2, 2)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    op = "maxpool"

    def infer_shape(self, in_shapes):
        (shape,) = _arity(self, in_shapes, 1)
        if len(shape) != 4 or shape[0] != 1:
            raise _fail(self, f"input must have shape [1, C, H, W], got {list(shape)}")
        h = window_out(shape[2], self.kernel[0], self.strides[0],
                        self.pads[0] + self.pads[2], self.dilations[0])
        w = window_out(shape[3], self.kernel[1], self.strides[1],
                        self.pads[1] + self.pads[3], self.dilations[1])
        if h <= 0 or w <= 0:
            raise _fail(self, f"kernel larger than the padded input {list(shape)}")
        return (1, shape[1], h, w)

    def attrs(self):
        return {"kernel": self.kernel, "strides": self.strides, "pads": self.pads,
                "dilations": self.dilations}


@dataclass(frozen=True, slots=True, eq=False)
class Reshape(Node):
    """Row-major reshape (ONNX Flatten, Reshape, Squeeze, Unsqueeze)."""

    op = "reshape"
    linear = True

    def infer_shape(self, in_shapes):
        (shape,) = _arity(self, in_shapes, 1)
        if int(np.prod(shape, dtype=np.int64)) != self.size:
            raise _fail(self, f"cannot reshape {list(shape)} to {list(self.shape)}")
        return self.shape


@dataclass(frozen=True, slots=True, eq=False)
class Select(Node):
    """Gather by flat index: ``y.flat[j] = x.flat[index.flat[j]]`` (``fill`` where index is -1).

    One node for every data movement with constant indices: Transpose, Slice, Gather,
    Pad (constant, edge or reflect).
    """

    index: np.ndarray = None
    fill: float = 0.0
    op = "select"
    linear = True

    def infer_shape(self, in_shapes):
        (shape,) = _arity(self, in_shapes, 1)
        n_in = int(np.prod(shape, dtype=np.int64))
        if self.index.size and (self.index.min() < -1 or self.index.max() >= n_in):
            raise _fail(self, f"index out of range for an input of {n_in} values")
        return tuple(self.index.shape)

    def attrs(self):
        return {"index": self.index, "fill": self.fill}


@dataclass(frozen=True, slots=True, eq=False)
class Concat(Node):
    """Concatenation of the inputs along ``axis``."""

    axis: int = 0
    op = "concat"
    linear = True

    def infer_shape(self, in_shapes):
        if not in_shapes:
            raise _fail(self, "needs at least one input")
        rank = len(in_shapes[0])
        axis = _axis(self, self.axis, rank)
        rest = [s[:axis] + s[axis + 1:] for s in in_shapes]
        if any(len(s) != rank for s in in_shapes) or any(r != rest[0] for r in rest):
            raise _fail(self, f"shapes {in_shapes} do not concatenate along axis {axis}")
        total = sum(s[axis] for s in in_shapes)
        return tuple(in_shapes[0][:axis]) + (total,) + tuple(in_shapes[0][axis + 1:])

    def attrs(self):
        return {"axis": self.axis}


@dataclass(frozen=True, slots=True, eq=False)
class Identity(Node):
    """A no-op (ONNX Identity, Dropout); removed by the ``drop_identities`` pass."""

    op = "identity"
    linear = True

    def infer_shape(self, in_shapes):
        (shape,) = _arity(self, in_shapes, 1)
        return tuple(shape)


#: Smooth element-wise activations allowed anywhere in a graph: S-shaped (sigmoid, tanh)
#: and convex (softplus, and ELU with ``0 < alpha <= 1``). All are increasing.
ACTIVATIONS = ("sigmoid", "tanh", "softplus", "elu")


@dataclass(frozen=True, slots=True, eq=False)
class Activation(Node):
    """A smooth element-wise activation anywhere in the graph (ONNX Sigmoid, Tanh, Softplus,
    Elu): ``sigmoid(x) = 1 / (1 + e^-x)``, ``tanh``, ``softplus(x) = log(1 + e^x)``,
    ``elu(x) = x`` for ``x > 0``, ``alpha (e^x - 1)`` otherwise (``0 < alpha <= 1``, so
    that it is convex; ``alpha`` is 1 for the other kinds).

    Bounds relax it by lines (tangents and chords, :mod:`robustc.compiler.smooth`); solvers
    that need piecewise-linear networks refuse it, naming the node.
    """

    kind: str = "sigmoid"
    alpha: float = 1.0
    op = "activation"

    def infer_shape(self, in_shapes):
        (shape,) = _arity(self, in_shapes, 1)
        if self.kind not in ACTIVATIONS:
            raise _fail(self, f"unknown activation {self.kind!r}; expected one of "
                              f"{list(ACTIVATIONS)}")
        if self.kind == "elu" and not 0.0 < self.alpha <= 1.0:
            raise _fail(self, f"ELU alpha must be in (0, 1] (convex), got {self.alpha}")
        if self.kind != "elu" and self.alpha != 1.0:
            raise _fail(self, f"alpha applies to ELU only, got {self.alpha} for {self.kind}")
        return tuple(shape)

    def attrs(self):
        return {"kind": self.kind, "alpha": self.alpha} if self.kind == "elu" else {
            "kind": self.kind}


def not_piecewise_linear(node: Activation, who: str) -> UnsupportedOperator:
    """The error of a backend (``who``) that encodes piecewise-linear networks only, for a
    smooth activation: it names the node."""
    return UnsupportedOperator(
        f"node {node.name!r} ({node.kind} activation): {who} encodes piecewise-linear "
        f"networks only and refuses smooth activations (no piecewise-linear "
        f"over-approximation is encoded); the bounds relax them (robustc verify --strategy "
        f"bounds, or the graph branch and bound)",
        [(node.kind, node.name, f"smooth activation: not encoded by {who}")])


OUTPUT_MAPS = ("sigmoid", "softmax", "tanh")


@dataclass(frozen=True, slots=True, eq=False)
class OutputMap(Node):
    """A monotone output activation (sigmoid, softmax, tanh), allowed only at graph outputs.

    Verification translates properties on its outputs into properties on its input
    (the logits); evaluation applies it.
    """

    kind: str = "sigmoid"
    axis: int = -1
    op = "output_map"

    def infer_shape(self, in_shapes):
        (shape,) = _arity(self, in_shapes, 1)
        if self.kind not in OUTPUT_MAPS:
            raise _fail(self, f"unknown output map {self.kind!r}")
        _axis(self, self.axis, len(shape))
        return tuple(shape)

    def attrs(self):
        return {"kind": self.kind, "axis": self.axis} if self.kind == "softmax" else {
            "kind": self.kind}


def _arity(node: Node, in_shapes: list[Shape], n: int) -> list[Shape]:
    if len(in_shapes) != n:
        raise _fail(node, f"expects {n} input(s), got {len(in_shapes)}")
    return [tuple(s) for s in in_shapes]


def _axis(node: Node, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise _fail(node, f"axis {axis} out of range for rank {rank}")
    return axis % rank


def window_out(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """Output length of a sliding window (floor mode)."""
    return (size + pad - dilation * (kernel - 1) - 1) // stride + 1

