"""robustc.runtime.onnx_chain: batched forward passes through a chain of ONNX files, against
onnxruntime sessions run one sample at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from robustc.errors import ModelError
from robustc.runtime.onnx_chain import OnnxChain, onnx_info


def _save(path: Path, nodes, inits: dict, in_shape, out_shape) -> str:
    graph = helper.make_graph(
        nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return str(path)


def _gen(tmp: Path, fixed_batch: bool) -> str:
    """z [1, 3] -> MatMul -> Tanh -> Reshape to [B, 1, 2, 2] (B fixed to 1, or -1)."""
    w = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    shape = np.array([1 if fixed_batch else -1, 1, 2, 2], dtype=np.int64)
    return _save(tmp / f"gen_{int(fixed_batch)}.onnx",
                 [helper.make_node("MatMul", ["x", "w"], ["h"]),
                  helper.make_node("Tanh", ["h"], ["t"]),
                  helper.make_node("Reshape", ["t", "s"], ["y"])],
                 {"w": w, "s": shape}, [1, 3], [1, 1, 2, 2])


def _cls(tmp: Path) -> str:
    """[1, 1, 2, 2] -> Flatten -> Gemm(3) -> Softmax."""
    w = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    return _save(tmp / "cls.onnx", [helper.make_node("Flatten", ["x"], ["f"]),
                                    helper.make_node("Gemm", ["f", "w", "b"], ["l"]),
                                    helper.make_node("Softmax", ["l"], ["y"], axis=1)],
                 {"w": w, "b": np.zeros(3, np.float32)}, [1, 1, 2, 2], [1, 3])


def _one_by_one(paths, z: np.ndarray, logits_of_last: bool) -> np.ndarray:
    """Each row through the files with plain sessions; the last file's pre-Softmax tensor
    read by asking onnxruntime for the Gemm's output."""
    rows = []
    for row in z.astype(np.float32):
        value = row[None]
        for k, p in enumerate(paths):
            model = onnx.load(p)
            want = "y"
            if logits_of_last and k == len(paths) - 1:
                model.graph.output.append(helper.make_empty_tensor_value_info("l"))
                want = "l"
            sess = ort.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"])
            value = sess.run([want], {"x": value.reshape(sess.get_inputs()[0].shape)})[0]
        rows.append(value.reshape(-1))
    return np.array(rows)


@pytest.mark.parametrize("fixed_batch", [False, True])
def test_chain_equals_one_sample_at_a_time(tmp_path, fixed_batch):
    paths = (_gen(tmp_path, fixed_batch), _cls(tmp_path))
    z = np.random.default_rng(2).normal(size=(7, 1, 3))
    chain = OnnxChain(paths)
    assert chain.batched == (not fixed_batch, True)   # one run per batch, or row by row
    got = chain(z)
    assert got.shape == (7, 3) and got.dtype == np.float64
    np.testing.assert_array_equal(got, _one_by_one(paths, z, logits_of_last=True))
    images = OnnxChain(paths[:1], logits=False)(z)
    np.testing.assert_array_equal(images, _one_by_one(paths[:1], z, logits_of_last=False))


def test_info_and_errors(tmp_path):
    info = onnx_info(_cls(tmp_path))
    assert (info.input_name, info.input_shape, info.output_shape) == ("x", (1, 1, 2, 2), (1, 3))
    assert info.logits_name == "l"
    with pytest.raises(ModelError, match="network file not found"):
        onnx_info(str(tmp_path / "missing.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="junk.onnx: not a readable ONNX model"):
        onnx_info(str(tmp_path / "junk.onnx"))
    chain = OnnxChain((_cls(tmp_path),))
    with pytest.raises(ModelError, match=r"input 'x' takes \[1, 1, 2, 2\] \(4 values per "
                                         r"sample\), got 3"):
        chain(np.zeros((2, 3)))
