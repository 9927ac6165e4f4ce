"""Issue 23 (hardening), a fault suite for ONNX files: corrupt, truncated and padded bytes
and malformed graphs give robustc's own errors (one line from the CLI, exit 2), never
another exception."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from robustc.cli import main
from robustc.cli.common import EXIT_ERROR, EXIT_OK
from robustc.compiler import load_onnx, standard_passes
from robustc.errors import Error, ModelError, UnsupportedOperator
from tests.verify.nets import conv_onnx, mlp_onnx, residual_onnx

NETWORKS = {"mlp": lambda rng: mlp_onnx(rng, [4, 6, 3]), "conv": conv_onnx,
            "residual": residual_onnx}


def mutate(data: bytes, rng: np.random.Generator, case: int) -> bytes:
    """Overwrite 1-3 bytes, truncate, or insert 1-7 random bytes (by ``case % 3``)."""
    b = bytearray(data)
    if case % 3 == 0:
        for _ in range(rng.integers(1, 4)):
            b[rng.integers(len(b))] = rng.integers(256)
    elif case % 3 == 1:
        b = b[: rng.integers(len(b))]
    else:
        i = rng.integers(len(b))
        b[i:i] = bytes(rng.integers(0, 256, rng.integers(1, 8)).tolist())
    return bytes(b)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_mutated_onnx_files_give_robustc_errors_only(name, tmp_path):
    """150 seeded mutations per network (seeds that once raised KeyError, TypeError,
    IndexError and ValueError from the importer); most are refused, some still load."""
    rng = np.random.default_rng(3)
    data = NETWORKS[name](np.random.default_rng(0)).SerializeToString()
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(150):
        path = tmp_path / f"m{case}.onnx"
        path.write_bytes(mutate(data, rng, case))
        try:
            standard_passes().run(load_onnx(path))
            outcomes["loaded"] += 1
        except Error:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and sum(outcomes.values()) == 150


def test_truncated_network_through_the_cli_is_one_line(tmp_path, capsys):
    data = mlp_onnx(np.random.default_rng(0), [4, 6, 3]).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    assert main(["dump", str(path)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"robustc: error: {path}: not a readable ONNX model") and \
        "Traceback" not in err
    path.write_bytes(data)
    assert main(["dump", str(path)]) == EXIT_OK


def _graph(nodes, inits, out="y", in_shape=(1, 4)):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(in_shape))], [helper.make_tensor_value_info(
            out, TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_a_corrupt_initializer_is_named(tmp_path):
    w = numpy_helper.from_array(np.ones((3, 4), np.float32), "W")
    w.dims[:] = [5, 4]  # 20 values announced, 12 stored
    onnx.save(_graph([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)], [w]),
              str(tmp_path / "n.onnx"))
    with pytest.raises(ModelError, match="initializer 'W' is corrupt"):
        load_onnx(tmp_path / "n.onnx")


def test_an_input_no_node_defines_is_named(tmp_path):
    w = numpy_helper.from_array(np.ones((3, 4), np.float32), "W")
    onnx.save(_graph([helper.make_node("Gemm", ["h", "W"], ["y"], transB=1)], [w]),
              str(tmp_path / "n.onnx"))
    with pytest.raises(UnsupportedOperator, match=r"Gemm node 'y': input\(s\) \['h'\] are not "
                                                  r"defined before this node"):
        load_onnx(tmp_path / "n.onnx")


def test_a_pool_without_its_kernel_is_named(tmp_path):
    onnx.save(_graph([helper.make_node("MaxPool", ["x"], ["y"])], [], in_shape=(1, 1, 4, 4)),
              str(tmp_path / "n.onnx"))
    with pytest.raises(UnsupportedOperator, match="required attribute kernel_shape is missing"):
        load_onnx(tmp_path / "n.onnx")


def test_a_conv_whose_weight_does_not_fit_its_input_is_named(tmp_path):
    k = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "K")
    onnx.save(_graph([helper.make_node("Conv", ["x", "K"], ["y"])], [k], in_shape=(1, 1, 6)),
              str(tmp_path / "n.onnx"))
    with pytest.raises(UnsupportedOperator, match=r"input \[1, 1, 6\] does not fit a weight "
                                                  r"of rank 4"):
        load_onnx(tmp_path / "n.onnx")
