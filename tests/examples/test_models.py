"""Each committed example network matches its manifest, its PyTorch source and its numbers."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest

from robustc.runtime import datasets

from .helpers import (
    ALL_MODELS,
    DD64,
    DIGIT_MODELS,
    GENERATORS,
    MLC,
    MODELS,
    OUTPUT_OPS,
    PLAIN_OPS,
    manifest,
    run_onnx,
    torch_module,
)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_manifest_sha256_and_plain_graph(name: str) -> None:
    info = manifest(name)
    path = MODELS / info["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"]
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node if n.op_type != "Constant"]
    assert ops == info["ops"]
    assert set(ops[:-1]) <= PLAIN_OPS and ops[-1] in PLAIN_OPS | OUTPUT_OPS
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == info["input"]
    assert 13 <= model.opset_import[0].version <= 17


@pytest.mark.parametrize("name", ALL_MODELS)
def test_onnx_matches_pytorch(name: str) -> None:
    import torch

    info = manifest(name)
    module = torch_module(name)
    rng = np.random.default_rng(0)
    scale = 2.0 if name in GENERATORS else 1.0  # generators take noise in [-2, 2]
    inputs = (
        rng.uniform(-scale, scale, (16, *info["input"][1:]))
        if name in GENERATORS
        else rng.uniform(0, 1, (16, *info["input"][1:]))
    ).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(inputs)).numpy()
    got = run_onnx(name, inputs)
    assert got.shape == (16, *info["output"][1:])
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def exact_set_and_f1(logits: np.ndarray, labels: np.ndarray) -> tuple[float, list[float]]:
    """Exact-set accuracy and per-label F1 of ``logits > 0`` against multi-hot ``labels``."""
    pred = logits > 0
    true = labels.astype(bool)
    f1 = [2 * np.sum(pred[:, d] & true[:, d]) / (pred[:, d].sum() + true[:, d].sum())
          for d in range(10)]  # fmt: skip
    return float(np.mean((pred == true).all(1))), [float(v) for v in f1]


@pytest.mark.parametrize("name", MLC)
def test_multilabel_accuracy_reproduces(name: str) -> None:
    info = manifest(name)
    images, labels, _ = datasets.double_digits("test")
    accuracy, f1 = exact_set_and_f1(run_onnx(name, images), labels)
    assert accuracy == pytest.approx(info["exact_set_accuracy"], abs=1e-3)
    np.testing.assert_allclose(f1, info["per_label_f1"], atol=1e-3)
    assert info["labels"] == [str(d) for d in range(10)]
    assert set(info["pgd"]) == {"0.02", "0.05"}


@pytest.mark.parametrize("name", DD64)
def test_dd64_top2_accuracy_reproduces(name: str) -> None:
    """The 64x64 networks: the manifest's exact top-2 set accuracy and F1 on the whole test
    split, by onnxruntime; softmax outputs; the papers' architecture and ReLU count."""
    info = manifest(name)
    images, labels, _ = datasets.double_digits("test", layout=datasets.LARGE)
    out = run_onnx(name, images)
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-5)
    pred = np.zeros_like(labels)
    np.put_along_axis(pred, np.argsort(-out, axis=1)[:, :2], 1, axis=1)
    accuracy = float(np.mean((pred == labels).all(1)))
    assert accuracy == pytest.approx(info["exact_set_accuracy"], abs=1e-3)
    f1 = [2 * np.sum(pred[:, d] & labels[:, d]) / (pred[:, d].sum() + labels[:, d].sum())
          for d in range(10)]  # fmt: skip
    np.testing.assert_allclose(f1, info["per_label_f1"], atol=1e-3)
    assert info["input"] == [1, 1, 64, 64] and info["relus"] == 8 * 32 * 32 + 16 * 16 * 16
    assert info["ops"] == ["Conv", "Relu", "Conv", "Relu", "MaxPool", "Flatten", "Gemm",
                           "Softmax"]  # fmt: skip


@pytest.mark.parametrize("name", DIGIT_MODELS)
def test_digit_accuracy_reproduces(name: str) -> None:
    info = manifest(name)
    images, labels = datasets.digits("test")
    inputs = images.reshape(len(images), 64) if name == "fc_digits" else images
    out = run_onnx(name, inputs)
    if name == "ecoc":
        codebook = np.load(MODELS / "ecoc_codebook.npy")
        assert codebook.shape == (10, out.shape[1]) and set(np.unique(codebook)) == {-1, 1}
        assert (codebook @ codebook.T == out.shape[1] * np.eye(10)).all(), "not Hadamard rows"
        assert np.abs(out).max() <= 1 + 1e-6  # tanh; onnxruntime may round to 1.0000001
        pred = (out @ codebook.T).argmax(1)
    else:
        pred = out.argmax(1)
    if name == "digits_softmax":
        np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-5)
    assert float(np.mean(pred == labels)) == pytest.approx(info["test_accuracy"], abs=1e-3)


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_output_and_recognition(name: str) -> None:
    info = manifest(name)
    rng = np.random.default_rng(1)
    z = rng.uniform(-2, 2, (200, info["noise_dim"])).astype(np.float32)
    images = run_onnx(name, z)
    assert images.shape == (200, 1, 8, 8)
    assert images.min() >= 0.0 and images.max() <= 1.0
    recognised = np.mean(run_onnx("digits_softmax", images).argmax(1) == info["digit"])
    claimed = info["recognised_by_digits_softmax"]["uniform_box"]
    assert recognised >= min(claimed, 0.9) - 0.05
