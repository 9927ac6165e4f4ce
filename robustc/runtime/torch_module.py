"""IR to PyTorch: a ``torch.nn.Module`` that evaluates an IR graph, on CPU or CUDA.

The module takes a batch ``(B, *input_shape)`` and returns ``(B, *output_shape)``; it is
differentiable, so attacks (PGD, JMA, C&W) run on it. Weights are registered as buffers
(not parameters): attacks differentiate with respect to the input only.

``torch`` is imported here and nowhere in ``robustc.ir`` or ``robustc.compiler``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
    MaxPool,
    OutputMap,
    Relu,
    Reshape,
    Select,
)


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads (unchanged when ``n`` is None), then
    restore the previous count. On small networks one thread is much faster: every
    reduction over a few numbers otherwise wakes the whole pool."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class IRModule(torch.nn.Module):
    """Evaluates an IR graph on batched torch tensors.

    ``outputs="logits"`` stops before trailing output maps (sigmoid/softmax/tanh), which is
    what margin losses want; ``outputs="graph"`` (default) returns the graph's outputs.
    """

    def __init__(self, graph: Graph, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.graph = graph
        self.dtype = dtype
        self._keys: dict[tuple[str, str], str] = {}
        for node in graph.nodes:
            for field in ("weight", "bias", "scale", "shift", "value", "index"):
                value = getattr(node, field, None)
                if isinstance(value, np.ndarray):
                    key = f"b{len(self._keys)}"
                    tensor = torch.tensor(np.array(value, copy=True))
                    tensor = tensor if value.dtype.kind in "iu" else tensor.to(dtype)
                    self.register_buffer(key, tensor)
                    self._keys[(node.name, field)] = key

    def _buf(self, node, field: str) -> torch.Tensor | None:
        key = self._keys.get((node.name, field))
        return None if key is None else getattr(self, key)

    def forward(self, x: torch.Tensor, keep_all: bool = False):
        """Run the graph; ``keep_all`` returns a dict of every node's batched value."""
        values = {self.graph.inputs[0]: x.to(self.dtype)}
        batch = x.shape[0]
        for node in self.graph.nodes:
            if node.name not in values:
                args = [values[i] for i in node.inputs]
                values[node.name] = self._run(node, args, batch)
        if keep_all:
            return values
        outs = [values[o] for o in self.graph.outputs]
        return outs[0] if len(outs) == 1 else outs

    def _run(self, node, args: list[torch.Tensor], batch: int) -> torch.Tensor:
        fn = _RUNNERS[type(node)]
        return fn(self, node, args, batch)


def _dense(m: IRModule, node: Dense, args, batch):
    x = args[0]
    axis = node.axis % len(node.shape) + 1
    y = torch.movedim(x, axis, -1) @ m._buf(node, "weight").T
    bias = m._buf(node, "bias")
    if bias is not None:
        y = y + bias
    return torch.movedim(y, -1, axis)


def _conv(m: IRModule, node: Conv, args, batch):
    x = args[0][:, 0]
    t, l, b, r = node.pads
    if (t, l) == (b, r):
        y = F.conv2d(x, m._buf(node, "weight"), m._buf(node, "bias"), node.strides, (t, l),
                     node.dilations, node.groups)
    else:
        y = F.conv2d(F.pad(x, (l, r, t, b)), m._buf(node, "weight"), m._buf(node, "bias"),
                     node.strides, 0, node.dilations, node.groups)
    return y[:, None]


def _maxpool(m: IRModule, node: MaxPool, args, batch):
    t, l, b, r = node.pads
    x = F.pad(args[0][:, 0], (l, r, t, b), value=-torch.inf) if any(node.pads) else args[0][:, 0]
    return F.max_pool2d(x, node.kernel, node.strides, 0, node.dilations)[:, None]


def _select(m: IRModule, node: Select, args, batch):
    flat = args[0].reshape(batch, -1)
    index = m._buf(node, "index").reshape(-1)
    if bool((index < 0).any()):
        fill = torch.full((batch, 1), node.fill, dtype=flat.dtype, device=flat.device)
        flat = torch.cat([flat, fill], dim=1)
        index = torch.where(index < 0, flat.shape[1] - 1, index)
    return flat[:, index].reshape((batch,) + tuple(node.shape))


def _output_map(m: IRModule, node: OutputMap, args, batch):
    if node.kind == "softmax":
        return torch.softmax(args[0], dim=node.axis % len(node.shape) + 1)
    return _activation(m, node, args, batch)  # sigmoid, tanh: the same as hidden ones


def _activation(m: IRModule, node: Activation | OutputMap, args, batch):
    x = args[0]
    if node.kind == "sigmoid":
        return torch.sigmoid(x)
    if node.kind == "tanh":
        return torch.tanh(x)
    if node.kind == "softplus":
        return F.softplus(x)
    return F.elu(x, alpha=node.alpha)


def _constant(m: IRModule, node: Constant, args, batch):
    value = m._buf(node, "value")
    return value.unsqueeze(0).expand((batch,) + tuple(value.shape))


_RUNNERS = {
    Dense: _dense,
    Conv: _conv,
    MaxPool: _maxpool,
    Select: _select,
    OutputMap: _output_map,
    Activation: _activation,
    Constant: _constant,
    ElementwiseAffine: lambda m, n, a, b: a[0] * m._buf(n, "scale") + m._buf(n, "shift"),
    Add: lambda m, n, a, b: sum(a[1:], a[0]),
    Relu: lambda m, n, a, b: F.relu(a[0]) if n.alpha == 0 else F.leaky_relu(a[0], n.alpha),
    Reshape: lambda m, n, a, b: a[0].reshape((b,) + tuple(n.shape)),
    Concat: lambda m, n, a, b: torch.cat(a, dim=n.axis % len(n.shape) + 1),
    Identity: lambda m, n, a, b: a[0],
}


def to_torch(graph: Graph, device: str | torch.device | None = None,
             dtype: torch.dtype = torch.float32, logits: bool = False) -> IRModule:
    """Build an :class:`IRModule` for ``graph`` on ``device`` (default: CUDA if present).

    With ``logits=True`` trailing output maps are dropped, so the module returns logits.
    """
    if logits:
        from robustc.ir import logits as strip

        graph, _ = strip(graph)
    module = IRModule(graph, dtype=dtype)
    return module.to(default_device() if device is None else torch.device(device)).eval()
