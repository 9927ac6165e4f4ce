"""Each IR node type's own rules for linear bound propagation, in PyTorch.

Values, bounds and coefficients are flat per node (row-major, the node's leading batch
axis of 1 dropped): bounds are ``(B, n)`` for ``B`` boxes (domains), coefficients ``(B, R,
n)`` for ``R`` linear functions per box. A linear node has three rules:

* ``affine(node, xs, absolute)``: its value on inputs ``xs`` (``absolute``: with ``|W|`` and
  no offset, for the radius of interval arithmetic);
* ``backward(node, a)``: the coefficients on each input of ``a . node`` and the constant
  term, through the node's own operator: a convolution goes back by a transposed
  convolution (or its kernel product folded onto the image: :func:`conv_route`), a
  selection by a scatter (:meth:`Operators.select_backward` adds into what the input has
  already), a reshape by nothing at all. No matrix of a convolution is ever built.

The nonlinear nodes (ReLU, MaxPool, smooth activations) have a relaxation: two linear
functions that enclose them on the input's bounds (:func:`relu_slopes`,
:func:`pool_relaxation`, :func:`activation_relaxation`), and the backward rule that picks
the lower or the upper one by the sign of each coefficient (:func:`relu_backward`,
:func:`pool_backward`, :func:`activation_backward`). They are the relaxations of
:mod:`robustc.compiler.bounds` (CROWN's adaptive ReLU slope, the MaxPool input with the
largest lower bound), so both engines give the same bounds.
"""

from __future__ import annotations

import numpy as np

from robustc.compiler import smooth
from robustc.compiler.bound_types import POOL_TIE
from robustc.errors import UnsupportedOperator
from robustc.ir import (
    Activation,
    Add,
    Concat,
    Constant,
    Conv,
    Dense,
    ElementwiseAffine,
    Identity,
    Input,
    MaxPool,
    Node,
    Relu,
    Reshape,
    Select,
)
from robustc.ir.linear import pool_index

#: The node types the engine propagates through (anything else is named in an error).
LINEAR = (Dense, Conv, ElementwiseAffine, Add, Reshape, Identity, Select, Concat, Constant)
NONLINEAR = (Relu, MaxPool, Activation)


def unsupported(node: Node) -> UnsupportedOperator:
    """The error for a node the linear bounds do not cover."""
    return UnsupportedOperator(
        f"node {node.name!r} ({node.op}): no linear bound rule (covered: input, dense, conv, "
        f"affine, add, reshape, identity, select, concat, constant, relu, maxpool, "
        f"activation: sigmoid, tanh, softplus, elu); output "
        f"maps are removed first (robustc.ir.logits)",
        [(node.name, node.op, "no linear bound rule")])


class Operators:
    """The constants of every node of one graph as tensors on one device (float64 unless
    told), built once and shared by every bound computation on that graph."""

    def __init__(self, graph, device: str = "cpu", dtype=None):
        import torch

        self.torch = torch
        self.device = device
        self.dtype = dtype or torch.float64
        self.graph = graph
        self.consts: dict[str, dict] = {}
        for node in graph.nodes:
            if not isinstance(node, (Input, *LINEAR, *NONLINEAR)):
                raise unsupported(node)
            self.consts[node.name] = self._constants(node)

    def tensor(self, value, dtype=None):
        """``value`` as a tensor on this device (this dtype unless told)."""
        return self.torch.as_tensor(np.array(value), device=self.device,
                                    dtype=dtype or self.dtype)

    def _constants(self, node: Node) -> dict:
        t = self.tensor
        if isinstance(node, Dense):
            shape = self.graph[node.inputs[0]].shape
            return {"w": t(node.weight), "axis": node.axis % len(shape),
                    "b": None if node.bias is None else t(node.bias)}
        if isinstance(node, Conv):
            w = t(node.weight)
            return {"w": w, "abs_w": w.abs(), "b": None if node.bias is None else t(node.bias),
                    "route": conv_route(node, self.graph[node.inputs[0]].shape)}
        if isinstance(node, ElementwiseAffine):
            return {"scale": t(np.broadcast_to(node.scale, node.shape).ravel()),
                    "shift": t(np.broadcast_to(node.shift, node.shape).ravel())}
        if isinstance(node, Select):
            index = np.asarray(node.index).ravel()
            valid = index >= 0
            return {"index": t(np.maximum(index, 0), self.torch.long),
                    "valid": t(valid, self.torch.bool), "all_valid": bool(valid.all())}
        if isinstance(node, Constant):
            return {"value": t(np.asarray(node.value).ravel())}
        if isinstance(node, MaxPool):
            index = pool_index(node, self.graph[node.inputs[0]].shape)
            return {"index": t(np.maximum(index, 0), self.torch.long),
                    "valid": t(index >= 0, self.torch.bool)}
        return {}

    # -- linear nodes ----------------------------------------------------------------

    def affine(self, node: Node, xs: list, absolute: bool = False):
        """The value ``(B, n)`` of linear ``node`` on flat inputs ``xs`` (each ``(B, n_i)``);
        with ``absolute``: ``|M| x`` (no offset), the radius of interval arithmetic."""
        torch, c = self.torch, self.consts[node.name]
        if isinstance(node, Constant):
            value = torch.zeros_like(c["value"]) if absolute else c["value"]
            return value.expand(xs[0].shape[0] if xs else 1, -1)
        x = xs[0]
        batch = x.shape[0]
        if isinstance(node, Dense):
            in_shape = self.graph[node.inputs[0]].shape
            w = c["w"].abs() if absolute else c["w"]
            y = torch.tensordot(x.reshape(batch, *in_shape), w, dims=([c["axis"] + 1], [1]))
            y = torch.movedim(y, -1, c["axis"] + 1)
            if c["b"] is not None and not absolute:
                view = [1] * (len(node.shape) + 1)
                view[c["axis"] + 1] = -1
                y = y + c["b"].view(view)
            return y.reshape(batch, -1)
        if isinstance(node, Conv):
            in_shape = self.graph[node.inputs[0]].shape
            top, left, bottom, right = node.pads
            xi = torch.nn.functional.pad(x.reshape(batch, *in_shape[1:]),
                                         (left, right, top, bottom))
            y = torch.nn.functional.conv2d(
                xi, c["abs_w"] if absolute else c["w"],
                None if absolute or c["b"] is None else c["b"], stride=node.strides,
                dilation=node.dilations, groups=node.groups)
            return y.reshape(batch, -1)
        if isinstance(node, ElementwiseAffine):
            if absolute:
                return x * c["scale"].abs()
            return x * c["scale"] + c["shift"]
        if isinstance(node, Add):
            return sum(xs[1:], xs[0])
        if isinstance(node, Reshape | Identity):
            return x
        if isinstance(node, Select):
            y = x[:, c["index"]]
            if not c["all_valid"]:
                fill = 0.0 if absolute else float(node.fill)
                y = torch.where(c["valid"], y, torch.full_like(y, fill))
            return y
        if isinstance(node, Concat):
            axis = node.axis % len(node.shape)
            parts = [xi.reshape(batch, *self.graph[s].shape)
                     for xi, s in zip(xs, node.inputs, strict=True)]
            return torch.cat(parts, dim=axis + 1).reshape(batch, -1)
        raise unsupported(node)

    def backward(self, node: Node, a):
        """``(coefficients on each input, constant)`` of ``a . node`` for coefficients ``a``
        ``(B, R, n)`` on linear ``node``: a list of ``(B, R, n_i)`` and a ``(B, R)``."""
        torch, c = self.torch, self.consts[node.name]
        batch, rows = a.shape[0], a.shape[1]
        zero = a.new_zeros(batch, rows)
        if isinstance(node, Constant):
            return [], a @ c["value"]
        if isinstance(node, Dense):
            in_shape = self.graph[node.inputs[0]].shape
            axis = c["axis"] + 2
            ao = a.reshape(batch, rows, *node.shape)
            const = zero
            if c["b"] is not None:
                const = torch.tensordot(ao, c["b"], dims=([axis], [0])).reshape(
                    batch, rows, -1).sum(-1)
            ai = torch.movedim(torch.tensordot(ao, c["w"], dims=([axis], [0])), -1, axis)
            return [ai.reshape(batch, rows, int(np.prod(in_shape)))], const
        if isinstance(node, Conv):
            return [self._conv_backward(node, a)], (
                zero if c["b"] is None else
                a.reshape(batch, rows, node.shape[1], -1).sum(-1) @ c["b"])
        if isinstance(node, ElementwiseAffine):
            return [a * c["scale"]], a @ c["shift"]
        if isinstance(node, Add):
            return [a] * len(node.inputs), zero
        if isinstance(node, Reshape | Identity):
            return [a], zero
        if isinstance(node, Select):
            out, const = self.select_backward(node, a)
            return [out], const
        if isinstance(node, Concat):
            axis = node.axis % len(node.shape) + 2
            sizes = [self.graph[s].shape[axis - 2] for s in node.inputs]
            parts = a.reshape(batch, rows, *node.shape).split(sizes, dim=axis)
            return [p.reshape(batch, rows, -1) for p in parts], zero
        raise unsupported(node)

    def _conv_backward(self, node: Conv, a):
        """``a`` through a convolution, onto the input (any padding, stride, dilation and
        groups), by the cheapest of three equal routes (:func:`conv_route`): a transposed
        convolution that drops the padding itself, the product with the kernel folded back
        onto the image (few input channels), or a transposed convolution onto the padded
        input, cropped."""
        torch, c = self.torch, self.consts[node.name]
        f = torch.nn.functional
        batch, rows = a.shape[0], a.shape[1]
        _, chans, h, w = self.graph[node.inputs[0]].shape
        top, left = node.pads[0], node.pads[1]
        flat = a.reshape(batch * rows, *node.shape[1:])
        route, extra = c["route"]
        if route == "fold":
            out_c, ho, wo = node.shape[1:]
            cols = c["w"].reshape(out_c, -1).t() @ flat.reshape(batch * rows, out_c, ho * wo)
            grad = f.fold(cols, (h, w), tuple(node.weight.shape[2:]), dilation=node.dilations,
                          padding=(top, left), stride=node.strides)
        elif route == "padding":
            grad = f.conv_transpose2d(flat, c["w"], stride=node.strides, padding=(top, left),
                                      output_padding=extra, groups=node.groups,
                                      dilation=node.dilations)
        else:
            grad = f.conv_transpose2d(flat, c["w"], stride=node.strides, output_padding=extra,
                                      groups=node.groups, dilation=node.dilations)
            grad = grad[:, :, top:top + h, left:left + w]
        return grad.reshape(batch, rows, chans * h * w)

    def select_backward(self, node: Select, a, into=None):
        """``a`` through a Select, added to ``into`` (coefficients already on the Select's
        input, ``(B, R, n_in)``; zeros when None) without building a zero tensor for each
        Select of the same input (a rewritten max-pool reads one input through many); returns
        the sum and the constant ``(B, R)``."""
        c = self.consts[node.name]
        batch, rows = a.shape[0], a.shape[1]
        if into is None:
            n_in = int(np.prod(self.graph[node.inputs[0]].shape))
            into = a.new_zeros(batch, rows, n_in)
        if c["all_valid"]:
            return into.index_add(2, c["index"], a), a.new_zeros(batch, rows)
        kept = self.torch.where(c["valid"], a, self.torch.zeros_like(a))
        const = (a * ~c["valid"]).sum(-1) * float(node.fill)
        return into.index_add(2, c["index"], kept), const

    # -- nonlinear nodes -------------------------------------------------------------

    def interval(self, node: Node, lo, hi):
        """Interval bounds ``(B, n)`` of a ReLU, MaxPool or smooth activation from its
        input's bounds."""
        torch = self.torch
        if isinstance(node, Relu):
            return torch.maximum(lo, node.alpha * lo), torch.maximum(hi, node.alpha * hi)
        if isinstance(node, Activation):  # the numpy rule, so both engines agree
            out = smooth.interval(node.kind, node.alpha, lo.detach().cpu().numpy(),
                                  hi.detach().cpu().numpy())
            return tuple(self.tensor(v, lo.dtype) for v in out)
        if isinstance(node, MaxPool):
            return self._pool_max(node, lo), self._pool_max(node, hi)
        raise unsupported(node)

    def _pool_max(self, node: MaxPool, values):
        c = self.consts[node.name]
        win = values[:, c["index"]]
        return win.masked_fill(~c["valid"], -np.inf).amax(-1)

    def pool_relaxation(self, node: MaxPool, lo, hi):
        """``(chosen, exact, offset)`` per box and output: ``x[chosen] <= maxpool(x)``, and
        ``maxpool(x) <= x[chosen]`` where ``exact`` (that input's lower bound is at least
        every other upper bound), else ``<= offset`` (the largest upper bound)."""
        torch, c = self.torch, self.consts[node.name]
        l_win = lo[:, c["index"]].masked_fill(~c["valid"], -np.inf)
        u_win = hi[:, c["index"]].masked_fill(~c["valid"], -np.inf)
        # the first input within POOL_TIE of the largest lower bound (bounds.near_top)
        top = l_win.amax(-1, keepdim=True)
        tol = torch.where(torch.isfinite(top), POOL_TIE * (1.0 + top.abs()),
                          torch.zeros_like(top))
        near = c["valid"] & (l_win >= top - tol)
        best = near.to(torch.uint8).argmax(-1, keepdim=True)
        chosen = torch.gather(c["index"].expand(lo.shape[0], -1, -1), 2, best)[..., 0]
        others = u_win.scatter(2, best, -np.inf).amax(-1)
        exact = torch.gather(l_win, 2, best)[..., 0] >= others
        offset = torch.where(exact, torch.zeros_like(others), u_win.amax(-1))
        return chosen, exact, offset

    def pool_backward(self, node: MaxPool, relax, a):
        """Coefficients on the MaxPool's input and the constant, for a lower bound of
        ``a . maxpool(x)`` (each coefficient's sign picks the side of the relaxation)."""
        chosen, exact, offset = relax
        batch, rows = a.shape[0], a.shape[1]
        pos, neg = a.clamp(min=0.0), a.clamp(max=0.0)
        coef = pos + neg * exact.unsqueeze(1)
        n_in = int(np.prod(self.graph[node.inputs[0]].shape))
        out = a.new_zeros(batch, rows, n_in).scatter_add_(
            2, chosen.unsqueeze(1).expand(-1, rows, -1), coef)
        return out, (neg * offset.unsqueeze(1)).sum(-1)


def conv_route(node: Conv, in_shape) -> tuple[str, tuple[int, int]]:
    """How :meth:`Operators.backward` takes coefficients back through ``node`` (input shape
    ``in_shape``): ``("fold", _)`` (kernel product folded onto the image: no groups, the
    windows of a symmetric padding, at most 4 input channels, where it measured 2-3x faster
    than a transposed convolution), ``("padding", output_padding)`` (a transposed convolution
    that crops the padding itself; the cropping copy was a third of its time), or ``("crop",
    output_padding)`` (onto the padded input, cropped: any padding)."""
    _, chans, h, w = in_shape
    top, left, bottom, right = node.pads
    (sh, sw), (dh, dw) = node.strides, node.dilations
    kh, kw = node.weight.shape[2:]
    ho, wo = node.shape[2], node.shape[3]
    if (node.groups == 1 and chans <= 4
            and (h + 2 * top - dh * (kh - 1) - 1) // sh + 1 == ho
            and (w + 2 * left - dw * (kw - 1) - 1) // sw + 1 == wo):
        return "fold", (0, 0)
    full_h, full_w = (ho - 1) * sh + dh * (kh - 1) + 1, (wo - 1) * sw + dw * (kw - 1) + 1
    op_h, op_w = h + 2 * top - full_h, w + 2 * left - full_w
    if 0 <= op_h < max(sh, dh) and 0 <= op_w < max(sw, dw):
        return "padding", (op_h, op_w)
    return "crop", (h + top + bottom - full_h, w + left + right - full_w)


def activation_relaxation(ops: Operators, node: Activation, lo, hi) -> tuple:
    """``(sl, tl, su, tu)`` tensors ``(B, n)`` with ``sl x + tl <= f(x) <= su x + tu`` on
    ``[lo, hi]``: :func:`robustc.compiler.smooth.relaxation` (computed in numpy, float64)."""
    lines = smooth.relaxation(node.kind, node.alpha, lo.detach().cpu().numpy(),
                              hi.detach().cpu().numpy())
    return tuple(ops.tensor(v, lo.dtype) for v in lines)


def activation_backward(a, relax):
    """Coefficients on a smooth activation's input and the constant, for a lower bound of
    ``a . f(x)``: positive coefficients take the lower line, negative ones the upper."""
    sl, tl, su, tu = relax
    pos, neg = a.clamp(min=0.0), a.clamp(max=0.0)
    coef = pos * sl.unsqueeze(1) + neg * su.unsqueeze(1)
    return coef, (pos * tl.unsqueeze(1) + neg * tu.unsqueeze(1)).sum(-1)


def relu_slopes(torch, leak: float, lo, hi):
    """``(lower slope, upper slope, upper intercept, unstable)`` of CROWN's adaptive ReLU
    relaxation ``sl x <= relu(x) <= su x + tu`` on ``[lo, hi]`` (``(B, n)`` each): the chord
    above an unstable neuron, a line through the origin of slope 1 or ``leak`` below
    (whichever covers more of the interval)."""
    unstable = (lo < 0.0) & (hi > 0.0)
    active = lo >= 0.0
    sl = torch.where(active, torch.ones_like(lo), torch.full_like(lo, leak))
    width = torch.where(unstable, hi - lo, torch.ones_like(lo))
    su = torch.where(unstable, (hi - leak * lo) / width, sl)
    tu = torch.where(unstable, (1.0 - leak) * hi * (-lo) / width, torch.zeros_like(lo))
    sl = torch.where(unstable, torch.where(hi >= -lo, torch.ones_like(lo),
                                           torch.full_like(lo, leak)), sl)
    return sl, su, tu, unstable


def relu_backward(a, lower_slope, upper_slope, upper_intercept):
    """Coefficients on a ReLU's input and the constant, for a lower bound of
    ``a . relu(x)``: positive coefficients take the lower line, negative ones the upper.
    ``lower_slope`` is ``(B, n)`` or per row ``(B, R, n)`` (alpha-CROWN)."""
    pos, neg = a.clamp(min=0.0), a.clamp(max=0.0)
    low = lower_slope if lower_slope.dim() == 3 else lower_slope.unsqueeze(1)
    coef = pos * low + neg * upper_slope.unsqueeze(1)
    return coef, (neg * upper_intercept.unsqueeze(1)).sum(-1)


__all__ = ["Operators", "LINEAR", "NONLINEAR", "unsupported", "relu_slopes", "relu_backward",
           "conv_route", "activation_relaxation", "activation_backward"]
