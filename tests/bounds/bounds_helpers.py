"""Random IR networks and input boxes for the bound-propagation tests.

Every builder takes a ``numpy.random.Generator`` so that hypothesis only has to draw a seed
and a few sizes; the graphs are verified before they are returned.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from robustc.ir import (
    Add,
    Concat,
    Constant,
    Conv,
    Dense,
    ElementwiseAffine,
    Graph,
    Input,
    MaxPool,
    Node,
    OutputMap,
    Relu,
    Reshape,
    Select,
    frozen_array,
)


class Builder:
    """Append nodes with fresh names and inferred shapes."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[Node] = []
        self.shapes: dict[str, tuple[int, ...]] = {}

    def add(self, cls, inputs: tuple[str, ...], **attrs) -> str:
        name = f"{cls.op}{len(self.nodes)}"
        probe = cls(name, inputs, tuple(attrs.pop("shape", ())), **attrs)
        shape = tuple(probe.infer_shape([self.shapes[i] for i in inputs]))
        self.nodes.append(cls(name, inputs, shape, **attrs))
        self.shapes[name] = shape
        return name

    def input(self, shape: tuple[int, ...]) -> str:
        self.nodes.append(Input("x", (), tuple(shape)))
        self.shapes["x"] = tuple(shape)
        return "x"

    def dense(self, src: str, out: int, axis: int = -1, scale: float = 1.0) -> str:
        n_in = self.shapes[src][axis]
        w = self.rng.normal(size=(out, n_in)) * scale / np.sqrt(n_in)
        b = self.rng.normal(size=out) * 0.3 * scale
        return self.add(Dense, (src,), weight=frozen_array(w), bias=frozen_array(b), axis=axis)

    def conv(self, src: str, out_c: int, kernel: tuple[int, int], strides=(1, 1),
             pads=(0, 0, 0, 0), dilations=(1, 1), groups: int = 1) -> str:
        c_in = self.shapes[src][1]
        fan_in = c_in // groups * kernel[0] * kernel[1]
        w = self.rng.normal(size=(out_c, c_in // groups, *kernel)) / np.sqrt(fan_in)
        b = self.rng.normal(size=out_c) * 0.3
        return self.add(Conv, (src,), weight=frozen_array(w), bias=frozen_array(b),
                        strides=tuple(strides), pads=tuple(pads), dilations=tuple(dilations),
                        groups=groups)

    def graph(self, output: str, name: str = "random") -> Graph:
        return Graph(tuple(self.nodes), ("x",), (output,), name).verify()


def random_mlp(rng: np.random.Generator, widths: list[int], leaky: bool = False) -> Graph:
    """Dense/ReLU layers ``widths[0] -> ... -> widths[-1]`` (no activation at the end)."""
    b = Builder(rng)
    cur = b.input((1, widths[0]))
    for k, width in enumerate(widths[1:]):
        cur = b.dense(cur, width)
        if k < len(widths) - 2:
            alpha = float(rng.uniform(0.01, 0.3)) if leaky and rng.random() < 0.5 else 0.0
            cur = b.add(Relu, (cur,), alpha=alpha)
    return b.graph(cur, "mlp")


def random_conv(rng: np.random.Generator, channels: int = 2, size: int = 7) -> Graph:
    """Conv (random strides, pads, dilations, groups) -> ReLU -> MaxPool (pads) -> dense."""
    b = Builder(rng)
    cur = b.input((1, channels, size, size))
    groups = channels if rng.random() < 0.5 else 1
    out_c = groups * int(rng.integers(1, 3))
    pads = tuple(int(p) for p in rng.integers(0, 2, size=4))
    strides = tuple(int(s) for s in rng.integers(1, 3, size=2))
    dil = (1, 1) if rng.random() < 0.7 else (2, 1)
    cur = b.conv(cur, out_c, (3, 2), strides=strides, pads=pads, dilations=dil, groups=groups)
    cur = b.add(Relu, (cur,))
    pool_pads = tuple(int(p) for p in rng.integers(0, 2, size=4))
    if min(b.shapes[cur][2:]) >= 2:
        cur = b.add(MaxPool, (cur,), kernel=(2, 2), strides=(1, 2), pads=pool_pads)
    cur = b.conv(cur, 3, (2, 2), pads=(1, 0, 0, 1))
    cur = b.add(Relu, (cur,), alpha=0.1 if rng.random() < 0.5 else 0.0)
    if min(b.shapes[cur][2:]) >= 2:
        cur = b.add(MaxPool, (cur,), kernel=(2, 2), strides=(2, 2))
    cur = b.add(Reshape, (cur,), shape=(1, int(np.prod(b.shapes[cur]))))
    cur = b.dense(cur, 6)
    cur = b.add(Relu, (cur,))
    return b.graph(b.dense(cur, 3), "conv")


def random_branchy(rng: np.random.Generator, n: int = 5, out_map: str | None = None) -> Graph:
    """Affine, two branches (ReLU and leaky ReLU) joined by Add, Concat with a constant,
    a Select with fill, a dense layer over a middle axis, and an optional output map."""
    b = Builder(rng)
    x = b.input((1, n))
    x = b.add(ElementwiseAffine, (x,), scale=frozen_array(rng.normal(size=(1, n))),
              shift=frozen_array(rng.normal(size=(n,)) * 0.2))
    left = b.add(Relu, (b.dense(x, 6),))
    right = b.add(Relu, (b.dense(x, 6),), alpha=0.2)
    joined = b.add(Add, (left, right, b.dense(x, 6)))
    const = b.add(Constant, (), value=frozen_array(rng.normal(size=(1, 2))))
    cat = b.add(Concat, (joined, const, x), axis=1)
    width = b.shapes[cat][1]
    index = rng.integers(-1, width, size=(1, 2, 5))
    sel = b.add(Select, (cat,), index=frozen_array(index, dtype=np.int64), fill=0.5)
    sel = b.add(Relu, (b.dense(sel, 3, axis=1),))
    flat = b.add(Reshape, (sel,), shape=(1, 15))
    cur = b.dense(b.add(Relu, (b.dense(flat, 7),)), 4)
    if out_map:
        cur = b.add(OutputMap, (cur,), kind=out_map)
    return b.graph(cur, "branchy")


def random_residual(rng: np.random.Generator, channels: int = 2, size: int = 6):
    """conv -> ReLU -> conv, plus the skip connection (residual Add), an average pool as a
    convolution with constant weights (groups = channels), a concat of two branches and a
    dense head: the shapes of the CIFAR ResNets and verivital's average-pool network."""
    b = Builder(rng)
    x = b.input((1, channels, size, size))
    h = b.add(Relu, (b.conv(x, channels, (3, 3), pads=(1, 1, 1, 1)),))
    h = b.conv(h, channels, (3, 3), pads=(1, 1, 1, 1))
    res = b.add(Relu, (b.add(Add, (h, x)),))
    k = 2
    avg = b.add(Conv, (res,), weight=frozen_array(np.full((channels, 1, k, k), 1 / k ** 2)),
                bias=None, strides=(k, k), groups=channels)
    side = b.add(Relu, (b.conv(res, 1, (2, 2), strides=(2, 2), groups=1),))
    cat = b.add(Concat, (avg, side), axis=1)
    if rng.random() < 0.5:
        cat = b.add(MaxPool, (cat,), kernel=(2, 2), strides=(1, 1), pads=(0, 0, 1, 1))
    flat = b.add(Reshape, (cat,), shape=(1, int(np.prod(b.shapes[cat]))))
    return b.graph(b.dense(b.add(Relu, (b.dense(flat, 5),)), 3), "residual")


@st.composite
def networks(draw, families=("mlp", "leaky_mlp", "conv", "branchy"),
             out_maps=(None, "sigmoid", "tanh", "softmax"), eps=(1e-3, 0.05, 0.3, 1.0, 3.0)):
    """A random network (one of ``families``; ``branchy`` ends with one of ``out_maps``) and
    a random box around a random centre: ``(graph, lower, upper, rng)``."""
    seed = draw(st.integers(0, 2**32 - 1))
    family = draw(st.sampled_from(list(families)))
    rng = np.random.default_rng(seed)
    if family in ("mlp", "leaky_mlp"):
        widths = [draw(st.integers(1, 6))] + [draw(st.integers(1, 12)) for _ in
                                              range(draw(st.integers(1, 4)))]
        graph = random_mlp(rng, widths + [draw(st.integers(1, 3))], leaky=family != "mlp")
    elif family == "conv":
        graph = random_conv(rng, channels=draw(st.integers(1, 2)), size=draw(st.integers(6, 9)))
    elif family == "branchy":
        graph = random_branchy(rng, n=draw(st.integers(1, 5)),
                               out_map=draw(st.sampled_from(list(out_maps))))
    else:
        graph = random_residual(rng, channels=draw(st.integers(1, 3)),
                                size=draw(st.integers(4, 7)))
    lo, hi = random_box(rng, graph.input.shape, draw(st.sampled_from(list(eps))))
    return graph, lo, hi, rng


def random_box(rng: np.random.Generator, shape: tuple[int, ...], eps: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """A box around a random centre with per-coordinate radii up to ``eps``."""
    centre = rng.normal(size=shape)
    radius = rng.uniform(0.0, eps, size=shape)
    return centre - radius, centre + radius
