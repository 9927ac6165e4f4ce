"""Shared fixtures for the spec tests: tiny ONNX networks and input files in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def tiny_onnx(path: Path, in_shape: list[int], n_out: int, layers: int = 1) -> Path:
    """Write an ONNX net Flatten -> (Gemm)^layers with the given input shape and outputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    width = int(np.prod(in_shape[1:]))
    nodes = [helper.make_node("Flatten", ["x"], ["h0"], axis=1)]
    inits = []
    for i in range(layers):
        out_w = n_out if i == layers - 1 else 4
        inits.append(numpy_helper.from_array(np.ones((width, out_w), np.float32), f"w{i}"))
        nodes.append(helper.make_node("MatMul", [f"h{i}", f"w{i}"], [f"h{i + 1}"]))
        width = out_w
    nodes.append(helper.make_node("Identity", [f"h{layers}"], ["y"]))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [in_shape[0], n_out])], inits)
    onnx.save(helper.make_model(graph), str(path))
    return path
