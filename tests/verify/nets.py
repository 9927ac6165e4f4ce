"""Random small networks as IR graphs, and their export to ONNX (for replay)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from robustc.compiler import load_onnx
from robustc.ir import Graph


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def mlp_onnx(rng: np.random.Generator, sizes: list[int], alpha: float = 0.0) -> onnx.ModelProto:
    """A dense ReLU (or leaky ReLU) network ``sizes[0] -> ... -> sizes[-1]`` as ONNX."""
    nodes, inits, prev = [], [], "x"
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        inits += [numpy_helper.from_array(_f32(rng.normal(0, 1 / np.sqrt(a), (b, a))), f"W{k}"),
                  numpy_helper.from_array(_f32(rng.normal(0, 0.3, b)), f"b{k}")]
        nodes.append(helper.make_node("Gemm", [prev, f"W{k}", f"b{k}"], [f"h{k}"], transB=1))
        prev = f"h{k}"
        if k < len(sizes) - 2:
            act = helper.make_node("LeakyRelu", [prev], [f"r{k}"], alpha=alpha) if alpha \
                else helper.make_node("Relu", [prev], [f"r{k}"])
            nodes.append(act)
            prev = f"r{k}"
    return _model(nodes, inits, [1, sizes[0]], prev)


def conv_onnx(rng: np.random.Generator, hw=(6, 6), channels=(1, 3, 4), classes=3
              ) -> onnx.ModelProto:
    """conv -> relu -> maxpool(2) -> conv -> relu -> flatten -> gemm (a small CNN)."""
    c0, c1, c2 = channels
    h, w = hw
    nodes = [helper.make_node("Conv", ["x", "K1", "c1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ra"]),
             helper.make_node("MaxPool", ["ra"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p", "K2", "c2"], ["b"], pads=[0, 0, 0, 0]),
             helper.make_node("Relu", ["b"], ["rb"]),
             helper.make_node("Flatten", ["rb"], ["f"]),
             helper.make_node("Gemm", ["f", "W", "bw"], ["y"], transB=1)]
    flat = c2 * (h // 2 - 1) * (w // 2 - 1)
    inits = [numpy_helper.from_array(_f32(rng.normal(0, 0.5, s)), n) for n, s in (
        ("K1", (c1, c0, 3, 3)), ("c1", (c1,)), ("K2", (c2, c1, 2, 2)), ("c2", (c2,)),
        ("W", (classes, flat)), ("bw", (classes,)))]
    return _model(nodes, inits, [1, c0, h, w], "y")


def residual_onnx(rng: np.random.Generator, hw=(6, 6), channels=2, classes=3,
                  pool: str = "avg") -> onnx.ModelProto:
    """conv -> relu -> conv, plus the input (residual Add) -> relu -> average (or max)
    pool -> flatten -> gemm -> relu -> gemm: a CIFAR ResNet block in miniature."""
    c, (h, w) = channels, hw
    pool_node = (helper.make_node("AveragePool", ["rs"], ["p"], kernel_shape=[2, 2],
                                  strides=[2, 2]) if pool == "avg" else
                 helper.make_node("MaxPool", ["rs"], ["p"], kernel_shape=[2, 2], strides=[2, 2]))
    nodes = [helper.make_node("Conv", ["x", "K1", "c1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ra"]),
             helper.make_node("Conv", ["ra", "K2", "c2"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["b", "x"], ["s"]),
             helper.make_node("Relu", ["s"], ["rs"]),
             pool_node,
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "W1", "b1"], ["g"], transB=1),
             helper.make_node("Relu", ["g"], ["rg"]),
             helper.make_node("Gemm", ["rg", "W2", "b2"], ["y"], transB=1)]
    flat = c * (h // 2) * (w // 2)
    inits = [numpy_helper.from_array(_f32(rng.normal(0, 0.4, s)), n) for n, s in (
        ("K1", (c, c, 3, 3)), ("c1", (c,)), ("K2", (c, c, 3, 3)), ("c2", (c,)),
        ("W1", (8, flat)), ("b1", (8,)), ("W2", (classes, 8)), ("b2", (classes,)))]
    return _model(nodes, inits, [1, c, h, w], "y")


def _model(nodes, inits, in_shape, out) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "random", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, in_shape)], [helper.make_tensor_value_info(
            out, TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def save_and_load(model: onnx.ModelProto, path) -> Graph:
    """Write ``model`` to ``path`` and import it (so replay and the IR see the same file)."""
    onnx.save(model, str(path))
    return load_onnx(path)
