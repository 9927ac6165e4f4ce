"""Random small networks and properties for the differential suite, and their ONNX export.

A case is fully determined by its seed: a network family (dense, conv, conv + max-pool),
float32-representable weights (so the IR and the ONNX file hold the same numbers), an input
set (box, L-inf ball, layered rings) and a condition (argmax, top-k, multi-label threshold,
linear output condition, a disjunction of two). Thresholds and constants are drawn from the
network's output at the centre, so robust and non-robust cases both occur.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from robustc.ir import Conv, Dense, Graph, Input, MaxPool, Relu, Reshape, evaluate, frozen_array
from robustc.ir.property import And, Box, Linear, Or, Property, in_top_k, output_gt

FAMILIES = ("dense", "conv", "pool")
SETS = ("box", "linf", "layered")
CONDITIONS = ("argmax", "topk", "threshold", "linear", "or")


@dataclass
class Case:
    """One differential case: the network (IR and ONNX file) and the property."""

    seed: int
    family: str
    input_set: str
    condition_kind: str
    graph: Graph
    prop: Property
    onnx_path: str = ""
    notes: dict = field(default_factory=dict)


class _Net:
    """Appends IR nodes with float32-representable weights."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, ...]):
        self.rng = rng
        self.nodes = [Input("x", (), shape)]

    @property
    def last(self):
        return self.nodes[-1]

    def _f32(self, arr: np.ndarray):
        return frozen_array(np.asarray(arr, dtype=np.float32).astype(np.float64))

    def add(self, cls, **attrs) -> None:
        name = f"n{len(self.nodes)}"
        probe = cls(name, (self.last.name,), tuple(attrs.pop("shape", ())), **attrs)
        shape = tuple(probe.infer_shape([self.last.shape]))
        self.nodes.append(cls(name, (self.last.name,), shape, **attrs))

    def dense(self, out: int) -> None:
        n_in = self.last.shape[-1]
        w = self.rng.normal(size=(out, n_in)) * 1.5 / np.sqrt(n_in)
        self.add(Dense, weight=self._f32(w), bias=self._f32(self.rng.normal(size=out) * 0.3))

    def conv(self, out_c: int, pads) -> None:
        c_in = self.last.shape[1]
        w = self.rng.normal(size=(out_c, c_in, 3, 3)) * 1.5 / np.sqrt(9 * c_in)
        self.add(Conv, weight=self._f32(w), bias=self._f32(self.rng.normal(size=out_c) * 0.3),
                 pads=pads)

    def relu(self) -> None:
        leaky = self.rng.random() < 0.15
        self.add(Relu, alpha=float(np.float32(self.rng.uniform(0.05, 0.3))) if leaky else 0.0)

    def flatten(self) -> None:
        self.add(Reshape, shape=(1, int(np.prod(self.last.shape))))

    def graph(self) -> Graph:
        return Graph(tuple(self.nodes), ("x",), (self.last.name,), "diff").verify()


def random_network(rng: np.random.Generator, family: str) -> Graph:
    """A small random network of ``family`` (at most a few hundred neurons)."""
    if family == "dense":
        net = _Net(rng, (1, int(rng.integers(2, 7))))
        for _ in range(int(rng.integers(1, 4))):
            net.dense(int(rng.integers(3, 13)))
            net.relu()
    else:
        side = int(rng.integers(4, 7))
        net = _Net(rng, (1, int(rng.integers(1, 3)), side, side))
        net.conv(int(rng.integers(2, 4)), (1, 1, 1, 1) if rng.random() < 0.5 else (0, 0, 0, 0))
        net.relu()
        if family == "pool":
            net.add(MaxPool, kernel=(2, 2), strides=(2, 2))
        net.flatten()
        net.dense(int(rng.integers(4, 11)))
        net.relu()
    net.dense(int(rng.integers(3, 6)))
    return net.graph()


def random_set(rng: np.random.Generator, kind: str, center: np.ndarray) -> Box:
    """An input set around ``center``: a random box, an L-inf ball or layered rings."""
    eps = float(np.exp(rng.uniform(np.log(0.01), np.log(1.0))))
    if kind == "box":
        lo = center - eps * rng.uniform(0, 1, center.shape)
        hi = center + eps * rng.uniform(0, 1, center.shape)
        if rng.random() < 0.3:  # some values fixed
            fixed = rng.random(center.shape) < 0.4
            lo, hi = np.where(fixed, center, lo), np.where(fixed, center, hi)
        return Box(lo, hi)
    if kind == "linf":
        return Box(center - eps, center + eps)
    flat = np.arange(center.size).reshape(center.shape)
    if center.ndim == 4:  # rings by Chebyshev distance from the image centre
        h, w = center.shape[2:]
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        ring = np.maximum(abs(yy - (h - 1) / 2), abs(xx - (w - 1) / 2)).astype(int)
        ring = np.broadcast_to(ring, center.shape)
    else:
        ring = flat % 3
    radius = eps * np.array([0.25, 0.6, 1.0, 1.5])[np.minimum(ring, 3)]
    return Box(center - radius, center + radius)


def random_condition(rng: np.random.Generator, kind: str, y0: np.ndarray):
    """A condition on outputs that holds at the centre's outputs ``y0``."""
    n = len(y0)
    order = np.argsort(-y0)
    if kind == "argmax":
        return in_top_k(n, int(order[0]), 1, "argmax")
    if kind == "topk":
        k = int(rng.integers(1, n))
        return in_top_k(n, int(order[rng.integers(0, k)]), k, f"top-{k}")
    if kind == "threshold":
        gaps = np.sort(y0)
        cut = int(rng.integers(0, n - 1))
        t = (gaps[cut] + gaps[cut + 1]) / 2
        atoms = [output_gt(n, i, value=t) if y0[i] > t else
                 Linear(-np.eye(n)[i], t, True, f"y{i} < t") for i in range(n)]
        return And(tuple(atoms), "label set")
    if kind == "linear":
        return _linear(rng, y0)
    return Or((_linear(rng, y0), _linear(rng, y0)), "either")


def _linear(rng: np.random.Generator, y0: np.ndarray) -> Linear:
    coeffs = rng.normal(size=len(y0))
    const = -float(coeffs @ y0) + float(rng.exponential(0.5))
    return Linear(coeffs, const, bool(rng.random() < 0.5), "linear")


def random_case(seed: int) -> Case:
    """The case of ``seed`` (deterministic)."""
    rng = np.random.default_rng(seed)
    family = FAMILIES[seed % len(FAMILIES)]
    graph = random_network(rng, family)
    center = np.asarray(rng.uniform(-1, 1, graph.input.shape), np.float32).astype(np.float64)
    input_set = SETS[int(rng.integers(len(SETS)))]
    kind = CONDITIONS[int(rng.integers(len(CONDITIONS)))]
    y0 = np.asarray(evaluate(graph, center), dtype=np.float64).ravel()
    cond = random_condition(rng, kind, y0)
    box = random_set(rng, input_set, center)
    prop = Property(f"case{seed}", (box,), cond, {"center": center})
    return Case(seed, family, input_set, kind, graph, prop)


# ---------------------------------------------------------------- ONNX export

def _init(name: str, arr: np.ndarray, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)


def _export_node(node, inits: list) -> list:
    x, y = node.inputs[0], node.name
    if isinstance(node, Dense):
        inits += [_init(f"{y}.w", node.weight.T), _init(f"{y}.b", node.bias)]
        return [helper.make_node("MatMul", [x, f"{y}.w"], [f"{y}.mm"]),
                helper.make_node("Add", [f"{y}.mm", f"{y}.b"], [y])]
    if isinstance(node, Conv):
        inits += [_init(f"{y}.w", node.weight), _init(f"{y}.b", node.bias)]
        return [helper.make_node("Conv", [x, f"{y}.w", f"{y}.b"], [y],
                                 kernel_shape=list(node.weight.shape[2:]),
                                 pads=list(node.pads), strides=list(node.strides))]
    if isinstance(node, Relu):
        if node.alpha:
            return [helper.make_node("LeakyRelu", [x], [y], alpha=node.alpha)]
        return [helper.make_node("Relu", [x], [y])]
    if isinstance(node, MaxPool):
        return [helper.make_node("MaxPool", [x], [y], kernel_shape=list(node.kernel),
                                 strides=list(node.strides), pads=list(node.pads))]
    if isinstance(node, Reshape):
        inits.append(_init(f"{y}.shape", node.shape, np.int64))
        return [helper.make_node("Reshape", [x, f"{y}.shape"], [y])]
    raise NotImplementedError(f"no ONNX export for {node.op}")


def export_onnx(graph: Graph, path: Path) -> Path:
    """Write ``graph`` (Dense, Conv, Relu, MaxPool, Reshape) as an ONNX file (opset 13)."""
    inits: list = []
    nodes = [n for node in graph.nodes[1:] for n in _export_node(node, inits)]
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(graph.input.shape))
    out = helper.make_tensor_value_info(graph.output.name, TensorProto.FLOAT,
                                        list(graph.output.shape))
    model = helper.make_model(helper.make_graph(nodes, "diff", [inp], [out], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
