"""ONNX import, passes, numpy interpreter and torch module, against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from robustc.compiler import load_onnx, standard_passes
from robustc.compiler.passes import PASSES
from robustc.errors import Error, ModelError, UnsupportedOperator
from robustc.ir import evaluate
from tests.conftest import benchmark_networks, example_networks
from tests.ir.onnx_cases import cases, unsupported_model

CASES = cases()
RTOL = 1e-5  # relative agreement with onnxruntime (float32), as the issue asks


def _ort(model_bytes: bytes, xs: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.stack([sess.run(None, {name: x})[0] for x in xs])


def _close(out: np.ndarray, ref: np.ndarray) -> None:
    scale = max(1.0, float(np.abs(ref).max()))
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= RTOL * scale, np.abs(out - ref).max()


def _inputs(graph, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.5, 1.5, (n,) + graph.input.shape).astype(np.float32)


@pytest.fixture(params=sorted(CASES), ids=sorted(CASES))
def case(request, tmp_path):
    path = tmp_path / f"{request.param}.onnx"
    onnx.save(CASES[request.param], str(path))
    return path


def test_case_matches_onnxruntime(case):
    graph = load_onnx(case)
    xs = _inputs(graph, 20)
    ref = _ort(case.read_bytes(), xs)
    _close(evaluate(graph, xs, batched=True), ref)


def test_passes_keep_function_and_validity(case):
    graph = load_onnx(case)
    xs = _inputs(graph, 20, seed=1)
    before = evaluate(graph, xs, batched=True)
    for name, fn in PASSES.items():  # every pass alone keeps the IR valid and the function
        out = fn(graph).verify()
        np.testing.assert_allclose(evaluate(out, xs, batched=True), before, rtol=1e-9,
                                   atol=1e-9, err_msg=name)
    optimised = standard_passes().run(graph)
    np.testing.assert_allclose(evaluate(optimised, xs, batched=True), before, rtol=1e-9,
                               atol=1e-9)
    assert len(optimised.nodes) <= len(graph.nodes)


def test_torch_module_matches_onnxruntime(case):
    torch = pytest.importorskip("torch")
    from robustc.runtime.torch_module import to_torch

    graph = standard_passes().run(load_onnx(case))
    xs = _inputs(graph, 20, seed=2)
    out = to_torch(graph, device="cpu")(torch.tensor(xs)).detach().numpy()
    _close(out, _ort(case.read_bytes(), xs))


def test_passes_fold_normalisation_and_batchnorm(tmp_path):
    for name, kept in (("normalise_flatten_gemm", {"reshape", "dense"}),
                       ("bn_dropout_identity", {"conv"}),
                       ("merge_dense_chain", {"dense"})):
        path = tmp_path / f"{name}.onnx"
        onnx.save(CASES[name], str(path))
        ops = {n.op for n in standard_passes().run(load_onnx(path)).nodes} - {"input"}
        assert ops == kept, (name, ops)


def test_every_unsupported_node_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.onnx"
    onnx.save(unsupported_model(), str(path))
    with pytest.raises(UnsupportedOperator) as err:
        load_onnx(path)
    found = {(op, detail.split(" ")[0]) for op, _, detail in err.value.problems}
    assert {op for op, _ in found} == {"Gemm", "Erf", "Mul", "Softmax"}
    message = str(err.value)
    assert "transA" in message and "Erf" in message and "hidden activation" in message
    assert isinstance(err.value, NotImplementedError) and isinstance(err.value, Error)


def test_ceil_mode_that_changes_the_shape_is_rejected(tmp_path):
    from tests.ir.onnx_cases import _n, model

    m = model([_n("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)],
              {"x": [1, 1, 5, 5]}, None)
    path = tmp_path / "ceil.onnx"
    onnx.save(m, str(path))
    with pytest.raises(UnsupportedOperator, match="ceil_mode"):
        load_onnx(path)


def test_unknown_attribute_is_never_ignored(tmp_path):
    from tests.ir.onnx_cases import _n, model

    node = _n("Relu", ["x"], ["y"])
    node.attribute.append(onnx.helper.make_attribute("mystery", 3))
    m = model([node], {"x": [1, 3]}, None)  # None: skip onnx.checker, which also rejects it
    path = tmp_path / "attr.onnx"
    onnx.save(m, str(path))
    with pytest.raises(UnsupportedOperator, match="mystery"):
        load_onnx(path)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ModelError, match="not found.*nope.onnx"):
        load_onnx(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(ModelError, match="bad.onnx"):
        load_onnx(bad)


def test_dynamic_dimension_needs_a_fixed_shape(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             ["N", "C"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "dyn.onnx"
    onnx.save(m, str(path))
    with pytest.raises(ModelError, match="dynamic dimension 'C' at axis 1"):
        load_onnx(path)
    assert load_onnx(path, input_shape=(1, 7)).input.shape == (1, 7)


NETWORKS = benchmark_networks() + example_networks()


@pytest.mark.parametrize("path", NETWORKS, ids=[p.name for p in NETWORKS])
def test_real_network_matches_onnxruntime_on_100_inputs(path):
    torch = pytest.importorskip("torch")
    from robustc.runtime.torch_module import to_torch

    graph = load_onnx(path)
    optimised = standard_passes().run(graph)
    rng = np.random.default_rng(3)
    xs = rng.uniform(0.0, 1.0, (100,) + graph.input.shape).astype(np.float32)
    ref = _ort(path.read_bytes(), xs)
    _close(evaluate(optimised, xs, batched=True), ref)
    _close(to_torch(optimised, device="cpu")(torch.tensor(xs)).detach().numpy(), ref)


def test_benchmark_networks_present_or_skipped():
    if not NETWORKS:
        pytest.skip("no networks: ../shared/benchmarks is absent and examples/ has none yet")
    assert any(p.suffix == ".onnx" for p in NETWORKS)
