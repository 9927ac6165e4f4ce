"""A network restricted to the part of it that an input box can move.

A layered neighbourhood perturbs the rings around one object and keeps the rest of the
image fixed: on ``dd64_pgd``'s 64x64 inputs about 650 pixels move, inside a bounding box of
18 % of the image, and every convolution output whose receptive field misses that box is a
constant on the whole box. :func:`restrict_to_box` builds the network that computes the
same outputs from the *crop* of the input to the box of its free pixels: each convolution,
pooling, element-wise node and residual Add keeps only the rectangle of positions that its
inputs' crops reach (all channels); the constant positions a window needs around a crop are
filled in from one forward pass at the box's centre (zero where a convolution pads); a
Dense layer that reads a flattened crop keeps the columns of the crop and folds the
constant columns into its bias. So a bound computation or a branch and bound over the
restricted graph does the same work on a fifth of the tensors, and its bounds are the
bounds of the same function on the box. Node names are kept: ``index[name]`` maps each
element of a kept node to its flat position in the original node, so bounds computed on the
original graph can be cut down to the restricted one (:meth:`Restricted.cut`), and
:meth:`Restricted.embed` maps a point of the restricted input back to the original input.

Only chains and DAGs of the node types above are restricted (Conv, MaxPool (its padding
kept where the crop reaches the edge), ReLU, smooth activations, element-wise affine maps,
Add, Concat of channels, Reshape to a flat vector, Dense); any other node a crop reaches,
a graph output that is still cropped, or a crop that saves too little, gives None: the
caller keeps the original graph.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from robustc.ir import (
    Activation,
    Add,
    Concat,
    Conv,
    Dense,
    ElementwiseAffine,
    Graph,
    Input,
    MaxPool,
    Node,
    Relu,
    Reshape,
    Select,
    evaluate,
    frozen_array,
)

#: A crop must leave at most this share of the input's positions to be worth a new graph.
MAX_SHARE = 0.8


@dataclass(frozen=True)
class Restricted:
    """The restricted graph (same node names and outputs; a smaller input), the flat
    indices of the original input its input holds (``input_index``), the original input
    point the constants come from (``point``, flat), and ``index``: for every node of the
    restricted graph that stands for an original node, the flat original positions of its
    elements (row-major)."""

    graph: Graph
    input_index: np.ndarray
    point: np.ndarray
    index: dict
    regions: tuple = ()  # (select, const node or None, source, index, constants) each

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Points ``x`` of the restricted input (``(n,)`` or ``(B, n)``, flat) as points of
        the original input: the box's fixed values elsewhere."""
        x = np.asarray(x, dtype=np.float64)
        full = np.repeat(self.point[None], 1 if x.ndim == 1 else len(x), axis=0)
        full[:, self.input_index] = x.reshape(len(full), -1)
        return full[0] if x.ndim == 1 else full

    def cut(self, side: dict) -> dict:
        """Flat per-node arrays of the original graph (bounds, say) cut down to the nodes
        and elements of the restricted graph, and carried to the regions the windows read
        (the constants where a region holds them: bounds of a max-pool's region let
        :func:`~robustc.compiler.passes.maxpool_as_relus` prune its windows)."""
        out = {name: np.ravel(side[name])[idx] for name, idx in self.index.items()
               if name in side}
        for select, const, src, index, value in self.regions:  # a window's region
            if src in out:
                picked = np.where(index >= 0, out[src][np.maximum(index, 0)], 0.0)
                out[select] = picked
                if const is not None:
                    out[const] = np.where(index >= 0, picked, value)
        return out


def restrict_to_box(graph: Graph, lower: np.ndarray, upper: np.ndarray,
                    max_share: float = MAX_SHARE) -> Restricted | None:
    """``graph`` restricted to the box ``[lower, upper]`` (flat arrays over its single
    ``[1, C, H, W]`` input), or None when it cannot be or gains too little (see the module
    docstring)."""
    inp = graph.input
    if len(inp.shape) != 4 or inp.shape[0] != 1:
        return None
    lower, upper = np.ravel(lower).astype(np.float64), np.ravel(upper).astype(np.float64)
    _, _, height, width = inp.shape
    free = (upper > lower).reshape(inp.shape).any(axis=(0, 1))
    if not free.any():
        return None
    rows, cols = np.flatnonzero(free.any(1)), np.flatnonzero(free.any(0))
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    if (box[1] - box[0]) * (box[3] - box[2]) > max_share * height * width:
        return None
    point = 0.5 * (lower + upper)
    values = evaluate(graph, point.reshape(inp.shape), keep_all=True)
    try:
        return _Builder(graph, values, point).run(box)
    except _Refused:
        return None


class _Refused(Exception):
    """A node the restriction does not cover."""


def _crop_index(shape, crop) -> np.ndarray:
    r0, r1, c0, c1 = crop
    return np.arange(int(np.prod(shape))).reshape(shape)[:, :, r0:r1, c0:c1].ravel()


class _Builder:
    """One pass over the nodes; ``crop[name]``: the rectangle ``(r0, r1, c0, c1)`` a
    cropped 4-D node keeps, ``flat[name]``: the original positions a cropped flat node
    keeps; a node in neither is whole (the original node)."""

    def __init__(self, graph: Graph, values: dict, point: np.ndarray):
        self.graph, self.values, self.point = graph, values, point
        self.crop: dict = {}
        self.flat: dict = {}
        self.nodes: list[Node] = []
        self.regions: list = []

    def run(self, box) -> Restricted:
        inp = self.graph.input
        self.crop[inp.name] = box
        self.nodes.append(Input(inp.name, (), self._shape(inp, box)))
        for node in self.graph.nodes[1:]:
            self._node(node)
        if any(o in self.crop or o in self.flat for o in self.graph.outputs):
            raise _Refused
        out = Graph(tuple(self.nodes), self.graph.inputs, self.graph.outputs, self.graph.name)
        index = {n.name: np.arange(n.size) for n in out.nodes}
        for name, crop in self.crop.items():
            index[name] = _crop_index(self.graph[name].shape, crop)
        for name, idx in self.flat.items():
            index[name] = idx
        index = {k: v for k, v in index.items() if k in self.graph.by_name}
        return Restricted(out, index[inp.name], self.point, index, tuple(self.regions))

    @staticmethod
    def _shape(node: Node, crop) -> tuple:
        return (1, node.shape[1], crop[1] - crop[0], crop[3] - crop[2])

    def _node(self, node: Node) -> None:
        cropped = [i for i in node.inputs if i in self.crop or i in self.flat]
        if not cropped:
            self.nodes.append(node)
            return
        if isinstance(node, Conv | MaxPool):
            self._window(node)
        elif isinstance(node, Relu | Activation) and node.inputs[0] in self.crop:
            crop = self.crop[node.inputs[0]]
            self.crop[node.name] = crop
            self.nodes.append(dataclasses.replace(node, shape=self._shape(node, crop)))
        elif isinstance(node, ElementwiseAffine) and node.inputs[0] in self.crop:
            crop = self.crop[node.inputs[0]]
            r0, r1, c0, c1 = crop
            part = [frozen_array(np.broadcast_to(a, node.shape)[:, :, r0:r1, c0:c1])
                    for a in (node.scale, node.shift)]
            self.crop[node.name] = crop
            self.nodes.append(ElementwiseAffine(node.name, node.inputs, self._shape(node, crop),
                                                scale=part[0], shift=part[1], note=node.note))
        elif isinstance(node, Add) and len(node.shape) == 4 and \
                all(i in self.crop or i not in self.flat for i in node.inputs):
            crop = self._union(node)
            ins = tuple(self._region(i, node.name, k, crop[:2], crop[2:], 0.0)
                        for k, i in enumerate(node.inputs))
            self.crop[node.name] = crop
            self.nodes.append(Add(node.name, ins, self._shape(node, crop), note=node.note))
        elif isinstance(node, Concat) and len(node.shape) == 4 and node.axis in (1, -3) \
                and not any(i in self.flat for i in node.inputs):
            crop = self._union(node)
            ins = tuple(self._region(i, node.name, k, crop[:2], crop[2:], 0.0)
                        for k, i in enumerate(node.inputs))
            self.crop[node.name] = crop
            self.nodes.append(Concat(node.name, ins, self._shape(node, crop), axis=node.axis,
                                     note=node.note))
        elif isinstance(node, Reshape) and len(node.shape) == 2 and node.shape[0] == 1 \
                and node.inputs[0] in self.crop:
            src = node.inputs[0]
            self.flat[node.name] = _crop_index(self.graph[src].shape, self.crop[src])
            self.nodes.append(Reshape(node.name, node.inputs, (1, len(self.flat[node.name])),
                                      note=node.note))
        elif isinstance(node, Dense) and node.inputs[0] in self.flat and \
                node.axis in (-1, 1) and len(self.graph[node.inputs[0]].shape) == 2:
            src = node.inputs[0]
            keep = self.flat[src]
            rest = np.setdiff1d(np.arange(self.graph[src].size), keep)
            w = np.asarray(node.weight, dtype=np.float64)
            bias = np.zeros(w.shape[0]) if node.bias is None else np.asarray(node.bias, np.float64)
            bias = bias + w[:, rest] @ np.ravel(self.values[src])[rest]
            self.nodes.append(Dense(node.name, node.inputs, node.shape,
                                    weight=frozen_array(w[:, keep]), bias=frozen_array(bias),
                                    axis=node.axis, note=node.note))
        else:
            raise _Refused(node.name)

    def _union(self, node: Node) -> tuple:
        """The smallest rectangle holding the crops of ``node``'s inputs (whole inputs:
        their whole extent)."""
        crops = [self.crop.get(i, (0, node.shape[2], 0, node.shape[3])) for i in node.inputs]
        return (min(c[0] for c in crops), max(c[1] for c in crops),
                min(c[2] for c in crops), max(c[3] for c in crops))

    def _window(self, node: Conv | MaxPool) -> None:
        """A convolution or max-pool of a cropped input: the outputs whose windows reach the
        crop, computed without padding from the region their windows cover."""
        src = node.inputs[0]
        if src not in self.crop:
            raise _Refused(node.name)
        r0, r1, c0, c1 = self.crop[src]
        _, _, height, width = self.graph[src].shape
        _, _, out_h, out_w = node.shape
        kh, kw = (node.weight.shape[2:] if isinstance(node, Conv) else node.kernel)
        (sh, sw), (dh, dw) = node.strides, node.dilations
        top, left = node.pads[0], node.pads[1]
        o_rows = _reach(r0, r1, out_h, sh, top, kh, dh)
        o_cols = _reach(c0, c1, out_w, sw, left, kw, dw)
        rows = (o_rows[0] * sh - top, (o_rows[1] - 1) * sh - top + (kh - 1) * dh + 1)
        cols = (o_cols[0] * sw - left, (o_cols[1] - 1) * sw - left + (kw - 1) * dw + 1)
        pads = (0, 0, 0, 0)
        if isinstance(node, MaxPool):  # padding never wins: the pool keeps what it needs
            pads = (max(0, -rows[0]), max(0, -cols[0]), max(0, rows[1] - height),
                    max(0, cols[1] - width))
            rows = (max(0, rows[0]), min(height, rows[1]))
            cols = (max(0, cols[0]), min(width, cols[1]))
        region = self._region(src, node.name, 0, rows, cols, 0.0)
        crop = (*o_rows, *o_cols)
        self.crop[node.name] = crop
        shape = self._shape(node, crop)
        if isinstance(node, Conv):
            self.nodes.append(Conv(node.name, (region,), shape, weight=node.weight,
                                   bias=node.bias, strides=node.strides, pads=(0, 0, 0, 0),
                                   dilations=node.dilations, groups=node.groups,
                                   note=node.note))
        else:
            self.nodes.append(MaxPool(node.name, (region,), shape, kernel=node.kernel,
                                      strides=node.strides, pads=pads,
                                      dilations=node.dilations, note=node.note))

    def _region(self, src: str, user: str, k: int, rows, cols, pad: float) -> str:
        """A node holding rows ``rows`` and columns ``cols`` (half-open, may reach past the
        edges) of ``src``'s original value, all channels: its cropped elements gathered,
        the others constants (``pad`` outside the tensor); ``src`` itself when its crop is
        that rectangle."""
        orig = self.graph[src].shape
        _, chans, height, width = orig
        crop = self.crop.get(src, (0, height, 0, width))
        if crop == (*rows, *cols):
            return src
        r0, r1, c0, c1 = crop
        i = np.arange(rows[0], rows[1])[None, :, None]
        j = np.arange(cols[0], cols[1])[None, None, :]
        ch = np.arange(chans)[:, None, None]
        inside = (i >= r0) & (i < r1) & (j >= c0) & (j < c1)
        index = np.where(inside, ch * (r1 - r0) * (c1 - c0) + (i - r0) * (c1 - c0) + (j - c0),
                         -1)
        within = (i >= 0) & (i < height) & (j >= 0) & (j < width)
        value = np.asarray(self.values[src], dtype=np.float64).reshape(chans, height, width)
        const = np.where(inside, 0.0, np.where(within, _take(value, i, j), pad))
        shape = (1, chans, rows[1] - rows[0], cols[1] - cols[0])
        index = np.broadcast_to(index, shape[1:]).reshape(shape)
        name = f"{user}/region{k}"
        self.nodes.append(Select(name, (src,), shape, index=frozen_array(index, dtype=np.int64)))
        const_name = None
        if not inside.all():
            const_name = f"{name}.const"
            self.nodes.append(ElementwiseAffine(const_name, (name,), shape,
                                                scale=frozen_array(np.ones(shape)),
                                                shift=frozen_array(const.reshape(shape))))
        self.regions.append((name, const_name, src, index.ravel(), const.ravel()))
        return const_name or name


def _take(value: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``value[:, i, j]`` (channels x rows x columns) with ``i``/``j`` clipped to the tensor."""
    height, width = value.shape[1:]
    return value[:, np.clip(i[0, :, 0], 0, height - 1)][:, :, np.clip(j[0, 0], 0, width - 1)]


def _reach(lo: int, hi: int, size: int, stride: int, pad: int, kernel: int, dilation: int):
    """The output positions ``[a, b)`` (of ``size``) whose window (``stride``, leading
    ``pad``, ``kernel`` taps ``dilation`` apart) holds an input position in ``[lo, hi)``."""
    out = np.arange(size)
    first = out * stride - pad
    taps = first[:, None] + np.arange(kernel)[None, :] * dilation
    hit = ((taps >= lo) & (taps < hi)).any(axis=1)
    pos = np.flatnonzero(hit)
    if not pos.size:
        raise _Refused("a window that reaches no free input")
    return int(pos[0]), int(pos[-1]) + 1


__all__ = ["MAX_SHARE", "Restricted", "restrict_to_box"]
