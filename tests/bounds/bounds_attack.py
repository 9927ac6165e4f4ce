"""Sampled and gradient-attacked inputs, and the containment check, for the bound tests.

The attacks run a float64 PyTorch evaluation of the IR written here independently of the
numpy interpreter; containment is then checked on the interpreter's activations.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from robustc.ir import (
    Activation,
    Add,
    Concat,
    Constant,
    Conv,
    Dense,
    ElementwiseAffine,
    Graph,
    Identity,
    Input,
    MaxPool,
    OutputMap,
    Relu,
    Reshape,
    Select,
    evaluate,
)


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.array(a, dtype=np.float64))


def _dense(node: Dense, x):
    axis = node.axis % len(node.shape) + 1
    y = torch.movedim(torch.tensordot(x, _t(node.weight), dims=([axis], [1])), -1, axis)
    if node.bias is not None:
        shape = [1] * y.dim()
        shape[axis] = -1
        y = y + _t(node.bias).reshape(shape)
    return y


def _conv(node: Conv, x):
    t, l, b, r = node.pads
    x = F.pad(x[:, 0], (l, r, t, b))
    bias = None if node.bias is None else _t(node.bias)
    y = F.conv2d(x, _t(node.weight), bias, stride=node.strides, dilation=node.dilations,
                 groups=node.groups)
    return y[:, None]


def _maxpool(node: MaxPool, x):
    t, l, b, r = node.pads
    x = F.pad(x[:, 0], (l, r, t, b), value=-np.inf)
    return F.max_pool2d(x, node.kernel, node.strides, dilation=node.dilations)[:, None]


def _select(node: Select, x):
    flat = x.reshape(x.shape[0], -1)
    flat = torch.cat([flat, torch.full_like(flat[:, :1], node.fill)], dim=1)
    idx = torch.as_tensor(np.where(node.index < 0, flat.shape[1] - 1, node.index).ravel())
    return flat[:, idx].reshape(x.shape[0], *node.shape)


def _output_map(node: OutputMap, x):
    if node.kind == "sigmoid":
        return torch.sigmoid(x)
    if node.kind == "tanh":
        return torch.tanh(x)
    return torch.softmax(x, dim=node.axis % len(node.shape) + 1)


def _activation(node: Activation, x):
    if node.kind in ("sigmoid", "tanh"):
        return _output_map(node, x)
    if node.kind == "softplus":
        return torch.logaddexp(torch.zeros_like(x), x)
    return torch.where(x > 0, x, node.alpha * torch.expm1(torch.clamp(x, max=0.0)))


def torch_eval(graph: Graph, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every node's value for a batch ``x`` of shape ``(B, *input_shape)``."""
    vals: dict[str, torch.Tensor] = {}
    for node in graph.nodes:
        ins = [vals[i] for i in node.inputs]
        if isinstance(node, Input):
            y = x
        elif isinstance(node, Constant):
            y = _t(node.value).expand(x.shape[0], *node.shape)
        elif isinstance(node, Dense):
            y = _dense(node, ins[0])
        elif isinstance(node, Conv):
            y = _conv(node, ins[0])
        elif isinstance(node, MaxPool):
            y = _maxpool(node, ins[0])
        elif isinstance(node, ElementwiseAffine):
            y = ins[0] * _t(node.scale) + _t(node.shift)
        elif isinstance(node, Add):
            y = sum(ins[1:], ins[0])
        elif isinstance(node, Relu):
            y = torch.maximum(ins[0], node.alpha * ins[0])
        elif isinstance(node, Reshape | Identity):
            y = ins[0].reshape(x.shape[0], *node.shape)
        elif isinstance(node, Select):
            y = _select(node, ins[0])
        elif isinstance(node, Concat):
            y = torch.cat(ins, dim=node.axis % len(node.shape) + 1)
        elif isinstance(node, OutputMap):
            y = _output_map(node, ins[0])
        elif isinstance(node, Activation):
            y = _activation(node, ins[0])
        else:
            raise NotImplementedError(node.op)
        vals[node.name] = y
    return vals


def sample_box(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, n_uniform: int,
               n_corners: int) -> np.ndarray:
    """Uniform points, random corners and the centre of the box: ``(n, *lo.shape)``."""
    uniform = rng.uniform(lo, hi, size=(n_uniform, *lo.shape))
    pick = rng.random(size=(n_corners, *lo.shape)) < 0.5
    corners = np.where(pick, hi, lo)
    return np.concatenate([uniform, corners, (0.5 * (lo + hi))[None]])


def attack(graph: Graph, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator,
           n_targets: int = 150, steps: int = 20) -> np.ndarray:
    """Projected sign-gradient ascent, each batch row pushing one random neuron of one random
    non-input node up or down; returns every iterate, ``(steps + 1) * n_targets`` inputs."""
    nodes = [n for n in graph.nodes if not isinstance(n, Input | Constant)]
    which = rng.integers(len(nodes), size=n_targets)
    neuron = np.array([rng.integers(nodes[k].size) for k in which])
    sign = torch.as_tensor(rng.choice([-1.0, 1.0], size=n_targets))
    lo_t, hi_t = _t(lo), _t(hi)
    x = _t(rng.uniform(lo, hi, size=(n_targets, *lo.shape)))
    step = 0.15 * (hi_t - lo_t)
    iterates = [x.numpy().copy()]
    for _ in range(steps):
        x.requires_grad_(True)
        vals = torch_eval(graph, x)
        rows = torch.arange(n_targets)
        obj = torch.zeros(n_targets, dtype=torch.float64)
        for k, node in enumerate(nodes):
            mask = torch.as_tensor(which == k)
            if mask.any():
                flat = vals[node.name].reshape(n_targets, -1)
                obj = obj + torch.where(mask, flat[rows, torch.as_tensor(neuron) * mask], 0.0)
        (grad,) = torch.autograd.grad((sign * obj).sum(), x)
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x + step * torch.sign(grad), lo_t), hi_t)
        iterates.append(x.numpy().copy())
    return np.concatenate(iterates)


def violations(graph: Graph, bounds, xs: np.ndarray) -> list[str]:
    """Nodes where some activation of the inputs ``xs`` leaves ``bounds`` (empty: sound)."""
    values = evaluate(graph, xs, batched=True, keep_all=True)
    bad = []
    for name, val in values.items():
        lo, hi = bounds.of(name)
        below, above = np.sum(val < lo), np.sum(val > hi)
        if below or above:
            gap = max(float(np.max(lo - val)), float(np.max(val - hi)))
            bad.append(f"{name}: {below} below, {above} above (by up to {gap:.3g})")
    return bad
