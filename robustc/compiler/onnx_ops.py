"""One lowering function per ONNX op type: ``fn(importer, onnx_node, attrs) -> [ir_names]``.

Each function returns the IR node names of the ONNX node's outputs (``None`` for an output
that was folded to a constant). It raises ``Unsupported`` with the reason when a case is
outside what robustc can lower exactly; the importer collects those into one error.
"""

from __future__ import annotations

import math

import numpy as np

from robustc.compiler.onnx_context import Attrs, Importer, Unsupported
from robustc.ir import (
    Activation,
    Add,
    Concat,
    Conv,
    Dense,
    ElementwiseAffine,
    Identity,
    MaxPool,
    OutputMap,
    Relu,
    Reshape,
    Select,
    frozen_array,
)
from robustc.ir.nodes import window_out

_HUGE = 1e38  # Clip bounds beyond this count as infinite (ONNX's float limits)


def _base(node) -> str:
    return node.name or (node.output[0] if node.output else node.op_type.lower())


def _affine(imp: Importer, base: str, x: str, scale=1.0, shift=0.0) -> str:
    return imp.add(ElementwiseAffine, base, (x,), scale=frozen_array(scale),
                   shift=frozen_array(shift))


def _no_extra_outputs(node, what: str) -> None:
    if any(o for o in node.output[1:]):
        raise Unsupported(f"the {what} output is not supported")


# -- affine layers ---------------------------------------------------------------------

def gemm(imp: Importer, node, a: Attrs):
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    if a.get("transA", 0):
        raise Unsupported("attribute transA=1 is not supported")
    trans_b = a.get("transB", 0)
    shape = imp.shape(node.input[0])
    if len(shape) != 2:
        raise Unsupported(f"input A must be 2-D, got shape {list(shape)}")
    b = imp.const(node.input[1], "input B").astype(np.float64)
    weight = (b if trans_b else b.T) * alpha
    bias = None
    if len(node.input) > 2 and node.input[2]:
        c = np.broadcast_to(imp.const(node.input[2], "input C") * beta,
                            (shape[0], weight.shape[0]))
        if not np.all(c == c[:1]):
            raise Unsupported("input C varies along the rows of A")
        bias = frozen_array(c[0])
    x = imp.tensor(node.input[0])
    return [imp.add(Dense, _base(node), (x,), weight=frozen_array(weight), bias=bias, axis=-1)]


def matmul(imp: Importer, node, a: Attrs):
    xa, xb = node.input
    if imp.is_const(xb) and not imp.is_const(xa):
        w = imp.const(xb, "input B").astype(np.float64)
        if w.ndim != 2:
            raise Unsupported(f"constant operand of rank {w.ndim} (only 2-D is supported)")
        return [imp.add(Dense, _base(node), (imp.tensor(xa),), weight=frozen_array(w.T),
                        bias=None, axis=-1)]
    if imp.is_const(xa):
        w = imp.const(xa, "input A").astype(np.float64)
        if w.ndim != 2:
            raise Unsupported(f"constant operand of rank {w.ndim} (only 2-D is supported)")
        axis = -2 if len(imp.shape(xb)) >= 2 else -1
        return [imp.add(Dense, _base(node), (imp.tensor(xb),), weight=frozen_array(w),
                        bias=None, axis=axis)]
    raise Unsupported("product of two variable tensors (not piecewise linear)")


def _conv_fields(imp: Importer, node, a: Attrs, in_hw, kernel) -> dict:
    nd = len(kernel)
    strides = tuple(a.get("strides", [1] * nd))
    dilations = tuple(a.get("dilations", [1] * nd))
    pads = _pads(a, in_hw, kernel, strides, dilations)
    return {"strides": strides, "dilations": dilations, "pads": pads}


def _pads(a: Attrs, in_hw, kernel, strides, dilations) -> tuple[int, ...]:
    nd = len(kernel)
    auto_pad = a.get("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        return tuple(a.get("pads", [0] * (2 * nd)))
    if auto_pad == "VALID":
        return (0,) * (2 * nd)
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations, strict=True):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else large)
        end.append(large if auto_pad == "SAME_UPPER" else small)
    return tuple(begin + end)


def _to_2d(imp: Importer, node, x: str) -> str:
    """View a [1, C, L] tensor as [1, C, 1, L] so 1-D windows reuse the 2-D nodes."""
    shape = imp.shape(node.input[0])
    return imp.add(Reshape, _base(node) + "_as2d", (x,), shape=(shape[0], shape[1], 1, shape[2]))


def _from_2d(imp: Importer, node, y: str) -> str:
    s = imp.nodes[y].shape
    return imp.add(Reshape, _base(node) + "_as1d", (y,), shape=(s[0], s[1], s[3]))


def conv(imp: Importer, node, a: Attrs):
    w = imp.const(node.input[1], "the weight input").astype(np.float64)
    if w.ndim not in (3, 4):
        raise Unsupported(f"only 1-D and 2-D convolutions are supported (weight rank {w.ndim})")
    kernel = tuple(a.get("kernel_shape", list(w.shape[2:])))
    if kernel != tuple(w.shape[2:]):
        raise Unsupported(f"kernel_shape {list(kernel)} differs from the weight's "
                           f"{list(w.shape[2:])}")
    bias = None
    if len(node.input) > 2 and node.input[2]:
        bias = frozen_array(imp.const(node.input[2], "the bias input"))
    in_shape = imp.shape(node.input[0])
    if len(in_shape) != w.ndim:
        raise Unsupported(f"input {list(in_shape)} does not fit a weight of rank {w.ndim}")
    fields = _conv_fields(imp, node, a, in_shape[2:], kernel)
    groups = int(a.get("group", 1))
    x = imp.tensor(node.input[0])
    if w.ndim == 3:
        x, w = _to_2d(imp, node, x), w[:, :, None, :]
        fields = _fields_1d_to_2d(fields)
    y = imp.add(Conv, _base(node), (x,), weight=frozen_array(w), bias=bias, groups=groups,
                **fields)
    return [_from_2d(imp, node, y) if len(in_shape) == 3 else y]


def _fields_1d_to_2d(fields: dict) -> dict:
    p = fields["pads"]
    return {"strides": (1, fields["strides"][0]), "dilations": (1, fields["dilations"][0]),
            "pads": (0, p[0], 0, p[1])}


# -- element-wise ----------------------------------------------------------------------

def _binary(imp: Importer, node, kind: str):
    xa, xb = node.input
    ca, cb = imp.is_const(xa), imp.is_const(xb)
    if not ca and not cb:
        return [_binary_tensors(imp, node, kind)]
    x, c = (xb, imp.const(xa, "")) if ca else (xa, imp.const(xb, ""))
    shape = imp.shape(x)
    if np.broadcast_shapes(c.shape, shape) != tuple(shape):
        raise Unsupported(f"the constant of shape {list(c.shape)} would enlarge the tensor "
                           f"of shape {list(shape)}")
    c = c.astype(np.float64)
    if kind == "Add":
        scale, shift = 1.0, c
    elif kind == "Sub":
        scale, shift = (-1.0, c) if ca else (1.0, -c)
    elif kind == "Mul":
        scale, shift = c, 0.0
    else:  # Div
        if ca:
            raise Unsupported("division by a variable tensor (not piecewise linear)")
        if np.any(c == 0):
            raise Unsupported("division by a constant containing zeros")
        scale, shift = 1.0 / c, 0.0
    return [_affine(imp, _base(node), imp.tensor(x), scale, shift)]


def _binary_tensors(imp: Importer, node, kind: str) -> str:
    if kind in ("Mul", "Div"):
        raise Unsupported(f"{kind} of two variable tensors (not piecewise linear)")
    sa, sb = imp.shape(node.input[0]), imp.shape(node.input[1])
    if sa != sb:
        raise Unsupported(f"broadcasting between variable tensors {list(sa)} and {list(sb)}")
    ta, tb = imp.tensor(node.input[0]), imp.tensor(node.input[1])
    if kind == "Sub":
        tb = _affine(imp, _base(node) + "_neg", tb, -1.0, 0.0)
    return imp.add(Add, _base(node), (ta, tb))


def relu(imp: Importer, node, a: Attrs):
    return [imp.add(Relu, _base(node), (imp.tensor(node.input[0]),), alpha=0.0)]


def leaky_relu(imp: Importer, node, a: Attrs):
    alpha = float(a.get("alpha", 0.01))
    if not 0.0 <= alpha < 1.0:
        raise Unsupported(f"attribute alpha={alpha} (only 0 <= alpha < 1 is supported)")
    return [imp.add(Relu, _base(node), (imp.tensor(node.input[0]),), alpha=alpha)]


def elu(imp: Importer, node, a: Attrs):
    alpha = float(a.get("alpha", 1.0))
    if not 0.0 < alpha <= 1.0:
        raise Unsupported(f"attribute alpha={alpha} (only 0 < alpha <= 1 is supported: "
                          f"ELU is then convex, which its bounds rely on)")
    return [imp.add(Activation, _base(node), (imp.tensor(node.input[0]),), kind="elu",
                    alpha=alpha)]


def softplus(imp: Importer, node, a: Attrs):
    return [imp.add(Activation, _base(node), (imp.tensor(node.input[0]),), kind="softplus")]


def clip(imp: Importer, node, a: Attrs):
    if imp.opset < 11:
        lo, hi = float(a.get("min", -math.inf)), float(a.get("max", math.inf))
    else:
        lo = float(imp.const(node.input[1], "min")) if len(node.input) > 1 and node.input[1] \
            else -math.inf
        hi = float(imp.const(node.input[2], "max")) if len(node.input) > 2 and node.input[2] \
            else math.inf
    lo, hi = (-math.inf if lo <= -_HUGE else lo), (math.inf if hi >= _HUGE else hi)
    if lo > hi:
        raise Unsupported(f"min {lo} is larger than max {hi}")
    x, base = imp.tensor(node.input[0]), _base(node)
    if math.isinf(lo) and math.isinf(hi):
        return [imp.add(Identity, base, (x,))]
    if math.isinf(hi):  # lo + relu(x - lo)
        r = imp.add(Relu, base + "_relu", (_affine(imp, base + "_shift", x, 1.0, -lo),))
        return [_affine(imp, base, r, 1.0, lo)]
    if math.isinf(lo):  # hi - relu(hi - x)
        r = imp.add(Relu, base + "_relu", (_affine(imp, base + "_shift", x, -1.0, hi),))
        return [_affine(imp, base, r, -1.0, hi)]
    # lo + relu(x - lo) - relu(x - hi)
    r_lo = imp.add(Relu, base + "_relu_lo", (_affine(imp, base + "_shift_lo", x, 1.0, -lo),))
    r_hi = imp.add(Relu, base + "_relu_hi", (_affine(imp, base + "_shift_hi", x, 1.0, -hi),))
    diff = imp.add(Add, base + "_sum", (r_lo, _affine(imp, base + "_neg", r_hi, -1.0, 0.0)))
    return [_affine(imp, base, diff, 1.0, lo)]


def batchnorm(imp: Importer, node, a: Attrs):
    _no_extra_outputs(node, "running statistics")
    if a.get("training_mode", 0):
        raise Unsupported("attribute training_mode=1 is not supported")
    if not a.get("spatial", 1):
        raise Unsupported("attribute spatial=0 is not supported")
    a.get("momentum")
    eps = float(a.get("epsilon", 1e-5))
    scale, bias, mean, var = (imp.const(n, what).astype(np.float64) for n, what in
                              zip(node.input[1:5], ("scale", "B", "mean", "var"), strict=True))
    shape = imp.shape(node.input[0])
    s = scale / np.sqrt(var + eps)
    bshape = (shape[1],) + (1,) * (len(shape) - 2)
    return [_affine(imp, _base(node), imp.tensor(node.input[0]), s.reshape(bshape),
                    (bias - mean * s).reshape(bshape))]


def output_map(kind: str):
    def lower(imp: Importer, node, a: Attrs):
        axis = -1
        if kind == "softmax":
            rank = len(imp.shape(node.input[0]))
            axis = int(a.get("axis", 1 if imp.opset < 13 else -1)) % rank
            if imp.opset < 13 and axis != rank - 1:
                raise Unsupported(f"Softmax over axes {axis}.. of a rank-{rank} tensor "
                                   "(opset < 13 flattens them); only the last axis is supported")
        return [imp.add(OutputMap, _base(node), (imp.tensor(node.input[0]),), kind=kind,
                        axis=axis)]
    return lower


# -- pooling ---------------------------------------------------------------------------

def _pool_fields(imp: Importer, node, a: Attrs):
    in_shape = imp.shape(node.input[0])
    if len(in_shape) not in (3, 4):
        raise Unsupported(f"only 1-D and 2-D pooling is supported (input {list(in_shape)})")
    if a.get("kernel_shape") is None:
        raise Unsupported("the required attribute kernel_shape is missing")
    kernel = tuple(a.get("kernel_shape"))
    fields = _conv_fields(imp, node, a, in_shape[2:], kernel)
    if a.get("ceil_mode", 0):
        _check_ceil_mode(in_shape[2:], kernel, fields)
    if len(in_shape) == 3:
        fields = _fields_1d_to_2d(fields)
        kernel = (1,) + kernel
    return in_shape, kernel, fields


def _check_ceil_mode(in_hw, kernel, fields) -> None:
    nd = len(kernel)
    for i in range(nd):
        pad = fields["pads"][i] + fields["pads"][i + nd]
        span = in_hw[i] + pad - fields["dilations"][i] * (kernel[i] - 1) - 1
        if span % fields["strides"][i]:
            raise Unsupported("attribute ceil_mode=1 changes the output size here "
                               "(only floor mode is supported)")


def maxpool(imp: Importer, node, a: Attrs):
    _no_extra_outputs(node, "Indices")
    a.get("storage_order")  # only affects the Indices output, rejected above
    in_shape, kernel, fields = _pool_fields(imp, node, a)
    x = imp.tensor(node.input[0])
    if len(in_shape) == 3:
        x = _to_2d(imp, node, x)
    y = imp.add(MaxPool, _base(node), (x,), kernel=kernel, **fields)
    return [_from_2d(imp, node, y) if len(in_shape) == 3 else y]


def avgpool(imp: Importer, node, a: Attrs):
    in_shape, kernel, fields = _pool_fields(imp, node, a)
    include_pad = bool(a.get("count_include_pad", 0))
    return [_average(imp, node, in_shape, kernel, fields, include_pad)]


def global_avgpool(imp: Importer, node, a: Attrs):
    in_shape = imp.shape(node.input[0])
    if len(in_shape) not in (3, 4):
        raise Unsupported(f"only 1-D and 2-D pooling is supported (input {list(in_shape)})")
    kernel = (1,) * (4 - len(in_shape)) + tuple(in_shape[2:])
    fields = {"strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0)}
    return [_average(imp, node, in_shape, kernel, fields, True)]


def _average(imp: Importer, node, in_shape, kernel, fields, include_pad: bool) -> str:
    """Average pooling as a depthwise convolution (plus a border correction)."""
    channels = in_shape[1]
    weight = np.full((channels, 1) + tuple(kernel), 1.0 / np.prod(kernel))
    x = imp.tensor(node.input[0])
    if len(in_shape) == 3:
        x = _to_2d(imp, node, x)
    y = imp.add(Conv, _base(node), (x,), weight=frozen_array(weight), bias=None,
                groups=channels, **fields)
    if any(fields["pads"]) and not include_pad:
        y = _affine(imp, _base(node) + "_border", y, _border_scale(imp.nodes[x].shape, kernel,
                                                                   fields), 0.0)
    return _from_2d(imp, node, y) if len(in_shape) == 3 else y


def _border_scale(in_shape, kernel, fields) -> np.ndarray:
    """kernel size / number of real (unpadded) pixels in each window, shape [1,1,Ho,Wo]."""
    t, l, b, r = fields["pads"]
    ones = np.pad(np.ones(in_shape[2:]), ((t, b), (l, r)))
    (kh, kw), (sh, sw), (dh, dw) = kernel, fields["strides"], fields["dilations"]
    ho = window_out(in_shape[2], kh, sh, t + b, dh)
    wo = window_out(in_shape[3], kw, sw, l + r, dw)
    counts = np.zeros((ho, wo))
    for i in range(kh):
        for j in range(kw):
            counts += ones[i * dh: i * dh + sh * (ho - 1) + 1: sh,
                           j * dw: j * dw + sw * (wo - 1) + 1: sw]
    return (kh * kw / counts)[None, None]


# -- shape and data movement -----------------------------------------------------------

def _reshape_to(imp: Importer, node, shape) -> list[str]:
    return [imp.add(Reshape, _base(node), (imp.tensor(node.input[0]),), shape=tuple(shape))]


def flatten(imp: Importer, node, a: Attrs):
    shape = imp.shape(node.input[0])
    axis = int(a.get("axis", 1)) % (len(shape) + 1) if shape else 0
    return _reshape_to(imp, node, (int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))))


def reshape(imp: Importer, node, a: Attrs):
    shape = imp.shape(node.input[0])
    target = [int(d) for d in imp.const(node.input[1], "the shape input")]
    if not a.get("allowzero", 0):
        target = [shape[i] if d == 0 else d for i, d in enumerate(target)]
    if target.count(-1) > 1:
        raise Unsupported(f"target shape {target} has more than one -1")
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = int(np.prod(shape)) // max(known, 1)
    if int(np.prod(target)) != int(np.prod(shape)):
        raise Unsupported(f"cannot reshape {list(shape)} to {target}")
    return _reshape_to(imp, node, target)


def _axes(imp: Importer, node, a: Attrs) -> list[int] | None:
    if imp.opset < 13:
        axes = a.get("axes")
        return None if axes is None else [int(x) for x in axes]
    if len(node.input) > 1 and node.input[1]:
        return [int(x) for x in imp.const(node.input[1], "axes")]
    return None


def squeeze(imp: Importer, node, a: Attrs):
    shape = imp.shape(node.input[0])
    axes = _axes(imp, node, a)
    axes = [i for i, d in enumerate(shape) if d == 1] if axes is None else \
        [x % len(shape) for x in axes]
    if any(shape[x] != 1 for x in axes):
        raise Unsupported(f"cannot squeeze axes {axes} of shape {list(shape)}")
    return _reshape_to(imp, node, [d for i, d in enumerate(shape) if i not in axes])


def unsqueeze(imp: Importer, node, a: Attrs):
    shape = list(imp.shape(node.input[0]))
    axes = _axes(imp, node, a)
    if axes is None:
        raise Unsupported("axes are missing")
    rank = len(shape) + len(axes)
    for x in sorted(x % rank for x in axes):
        shape.insert(x, 1)
    return _reshape_to(imp, node, shape)


def _select(imp: Importer, node, index: np.ndarray, fill: float = 0.0, note: str = "") -> list:
    return [imp.add(Select, _base(node), (imp.tensor(node.input[0]),),
                    index=frozen_array(index, dtype=np.int64), fill=float(fill), note=note)]


def _positions(imp: Importer, node) -> np.ndarray:
    shape = imp.shape(node.input[0])
    return np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)


def transpose(imp: Importer, node, a: Attrs):
    pos = _positions(imp, node)
    perm = a.get("perm", list(range(pos.ndim))[::-1])
    return _select(imp, node, pos.transpose(perm), note=f"transpose perm={list(perm)}")


def gather(imp: Importer, node, a: Attrs):
    pos = _positions(imp, node)
    indices = imp.const(node.input[1], "indices").astype(np.int64)
    axis = int(a.get("axis", 0))
    try:
        index = np.take(pos, indices, axis=axis)
    except IndexError as exc:
        raise Unsupported(f"indices out of range: {exc}") from None
    return _select(imp, node, index, note="gather")


def slice_(imp: Importer, node, a: Attrs):
    pos = _positions(imp, node)
    if imp.opset < 10:
        starts, ends = a.get("starts"), a.get("ends")
        axes, steps = a.get("axes", list(range(len(starts)))), [1] * len(starts)
    else:
        inp = list(node.input) + [""] * (5 - len(node.input))
        starts = imp.const(inp[1], "starts").tolist()
        ends = imp.const(inp[2], "ends").tolist()
        axes = imp.const(inp[3], "axes").tolist() if inp[3] else list(range(len(starts)))
        steps = imp.const(inp[4], "steps").tolist() if inp[4] else [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step == 0:
            raise Unsupported("a step of 0")
        pos = np.take(pos, _slice_indices(pos.shape[axis], start, end, step), axis=axis)
    return _select(imp, node, pos, note="slice")


def _slice_indices(dim: int, start: int, end: int, step: int) -> np.ndarray:
    """Indices of one sliced axis, with ONNX's clamping rules."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return np.arange(start, end, step, dtype=np.int64)


def pad(imp: Importer, node, a: Attrs):
    pos = _positions(imp, node)
    mode = a.get("mode", "constant")
    if imp.opset < 11:
        pads, value = a.get("pads"), float(a.get("value", 0.0))
    else:
        pads = imp.const(node.input[1], "pads").tolist()
        value = float(imp.const(node.input[2], "constant_value")) \
            if len(node.input) > 2 and node.input[2] else 0.0
        if len(node.input) > 3 and node.input[3]:
            raise Unsupported("the axes input is not supported")
    if any(p < 0 for p in pads):
        raise Unsupported("negative pads (cropping) are not supported")
    width = list(zip(pads[: pos.ndim], pads[pos.ndim:], strict=True))
    if mode == "constant":
        return _select(imp, node, np.pad(pos, width, constant_values=-1), value, "pad")
    if mode in ("edge", "reflect"):
        return _select(imp, node, np.pad(pos, width, mode=mode), note=f"pad {mode}")
    raise Unsupported(f"attribute mode={mode!r} is not supported")


def concat(imp: Importer, node, a: Attrs):
    axis = int(a.get("axis"))
    inputs = tuple(imp.tensor(i) for i in node.input)
    return [imp.add(Concat, _base(node), inputs, axis=axis)]


def identity(imp: Importer, node, a: Attrs):
    return [imp.add(Identity, _base(node), (imp.tensor(node.input[0]),))]


def dropout(imp: Importer, node, a: Attrs):
    _no_extra_outputs(node, "mask")
    a.get("ratio")
    a.get("seed")
    if len(node.input) > 2 and node.input[2]:
        if imp.is_const(node.input[2]) and not bool(imp.const(node.input[2], "")):
            return identity(imp, node, a)
        raise Unsupported("training_mode must be a constant false")
    return identity(imp, node, a)


def cast(imp: Importer, node, a: Attrs):
    from onnx import TensorProto

    a.get("saturate")
    if a.get("to") not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
        raise Unsupported("Cast of a variable tensor to a non-float type")
    return identity(imp, node, a)


def shape_(imp: Importer, node, a: Attrs):
    shape = np.array(imp.shape(node.input[0]), dtype=np.int64)
    start, end = a.get("start", 0), a.get("end", None)
    imp.consts[node.output[0]] = shape[start:end]
    return [None]


LOWERINGS = {
    "Gemm": gemm,
    "MatMul": matmul,
    "Conv": conv,
    "Add": lambda imp, n, a: _binary(imp, n, "Add"),
    "Sub": lambda imp, n, a: _binary(imp, n, "Sub"),
    "Mul": lambda imp, n, a: _binary(imp, n, "Mul"),
    "Div": lambda imp, n, a: _binary(imp, n, "Div"),
    "Relu": relu,
    "LeakyRelu": leaky_relu,
    "Elu": elu,
    "Softplus": softplus,
    "Clip": clip,
    "BatchNormalization": batchnorm,
    "MaxPool": maxpool,
    "AveragePool": avgpool,
    "GlobalAveragePool": global_avgpool,
    "Flatten": flatten,
    "Reshape": reshape,
    "Squeeze": squeeze,
    "Unsqueeze": unsqueeze,
    "Transpose": transpose,
    "Gather": gather,
    "Slice": slice_,
    "Pad": pad,
    "Concat": concat,
    "Identity": identity,
    "Dropout": dropout,
    "Cast": cast,
    "Shape": shape_,
    "Sigmoid": output_map("sigmoid"),
    "Softmax": output_map("softmax"),
    "Tanh": output_map("tanh"),
}
