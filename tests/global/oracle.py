"""A generator/classifier pair whose global probabilities are known in closed form.

Generator G(z) = relu(z + 3) - 3 on z in R^2 (the identity for z >= -3); classifier logits
(x_1 - a, 0), labels "pos", "neg". So C(G(z)) = "pos" iff z_1 > a (for a > -3), and the
ball of radius eps around z is robust iff z_1 - eps > a (ties count as a change).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from scipy.stats import norm

A = 0.3


def _gemm_model(path: Path, layers: list[tuple[np.ndarray, np.ndarray, bool]]) -> None:
    nodes, inits, prev = [], [], "x"
    for i, (w, b, relu) in enumerate(layers):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        out = f"h{i}" if relu or i < len(layers) - 1 else "y"
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [out]))
        prev = out
        if relu:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            prev = f"r{i}"
    graph = helper.make_graph(
        nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


SPEC = """
network cls = onnx("cls.onnx")
network gen = onnx("gen.onnx")
network comp = compose(cls, gen)
labels two = ["pos", "neg"]
decode cls as argmax over two

global c on comp:
    noise normal(0, 1)
    class "pos"
    correct(delta=0.5, confidence=0.9, samples=200)

global r on comp:
    noise uniform(-1, 1)
    class "pos"
    robust(eps=0.2, delta=0.5, confidence=0.9, samples=64)
"""

P_CORRECT = 1.0 - norm.cdf(A)            # normal(0, 1): P(z_1 > a)
EPS = 0.2
P_ROBUST = (1.0 - (A + EPS)) / 2.0       # uniform(-1, 1): P(z_1 > a + eps)


def write(tmp: Path) -> Path:
    """Write gen.onnx, cls.onnx and spec.rspec under ``tmp``; returns the spec's path."""
    eye = np.eye(2)
    _gemm_model(tmp / "gen.onnx", [(eye, np.full(2, 3.0), True), (eye, np.full(2, -3.0), False)])
    _gemm_model(tmp / "cls.onnx", [(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([-A, 0.0]),
                                    False)])
    (tmp / "spec.rspec").write_text(SPEC)
    return tmp / "spec.rspec"
