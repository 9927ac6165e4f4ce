"""The 28x28 global-robustness pair (examples/train/train_gen28.py): manifests, ONNX against the
saved PyTorch weights, the reported figures, and the example spec."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import onnx
import pytest

from robustc.runtime import datasets

from .helpers import MODELS, ROOT, TRAIN, manifest, run_onnx

GEN28 = tuple(f"gen28_digit{d}" for d in range(10))
NAMES = ("cls28", *GEN28)


def _train_module():
    if str(TRAIN) not in sys.path:
        sys.path.insert(0, str(TRAIN))
    import train_gen28

    return train_gen28


@pytest.mark.parametrize("name", NAMES)
def test_manifest_sha256_ops_and_size(name: str) -> None:
    info = manifest(name)
    path = MODELS / info["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"]
    assert path.stat().st_size == info["bytes"] < 5_000_000
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node if n.op_type != "Constant"] == info["ops"]
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == info["input"]
    if name in GEN28:
        assert info["ops"][-4:] == ["Tanh", "Mul", "Add", "Reshape"]   # Tanh, then the rescale
        assert info["noise_dim"] >= 32
        pt = MODELS / info["state"]
        assert hashlib.sha256(pt.read_bytes()).hexdigest() == info["state_sha256"]


@pytest.mark.parametrize("name", NAMES)
def test_onnx_matches_saved_weights(name: str) -> None:
    import torch

    T = _train_module()
    if name == "cls28":
        module = T.Classifier28()
        module.load_state_dict(torch.load(MODELS / "cls28.pt", weights_only=True))
        x = np.random.default_rng(0).uniform(0, 1, (8, 1, 28, 28)).astype(np.float32)
    else:
        decoder = T.Decoder()
        decoder.load_state_dict(torch.load(MODELS / "gen28.pt", weights_only=True))
        digit = manifest(name)["digit"]
        x = np.random.default_rng(digit).normal(size=(8, T.LATENT)).astype(np.float32)
        with torch.no_grad():  # the conditional decoder itself, class given as a one-hot
            onehot = torch.nn.functional.one_hot(torch.full((8,), digit), 10).float()
            direct = decoder(torch.from_numpy(x), onehot).numpy()
        np.testing.assert_allclose(run_onnx(name, x), direct, atol=1e-5)
        module = T.ClassDecoder(decoder, digit)
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_onnx(name, x), expected, atol=1e-5)


def test_classifier_accuracy_reproduces() -> None:
    info = manifest("cls28")
    for split in ("train", "test"):
        x, y = datasets.digits28(split)
        got = float(np.mean(run_onnx("cls28", x).argmax(1) == y))
        assert round(got, 4) == info["accuracy"][split]
    assert info["accuracy"]["test"] >= 0.9


@pytest.mark.parametrize("digit", [0, 8])
def test_generator_recognition_reproduces(digit: int) -> None:
    info = manifest(f"gen28_digit{digit}")
    z = np.random.default_rng([0, digit]).standard_normal((1000, 32)).astype(np.float32)
    images = run_onnx(f"gen28_digit{digit}", z)
    # the rescaled Tanh, in [0, 1] up to float32 rounding of 0.5 * tanh + 0.5
    assert images.min() >= -1e-6 and images.max() <= 1.0 + 1e-6
    got = float(np.mean(run_onnx("cls28", images).argmax(1) == digit))
    assert round(got, 4) == info["recognised_by_cls28"] >= 0.9


def test_digits28_is_the_64x64_layouts_digit_box() -> None:
    x, y = datasets.digits28("test")
    assert x.shape == (len(datasets.source_indices("test")), 1, 28, 28) and x.dtype == np.float32
    # the ink sits in the centred 20x20 part; the 4-pixel border is blank
    assert x[:, :, :4].max() == 0 and x[:, :, -4:].max() == 0 and x[:, :, :, :4].max() == 0
    # the same pixels as the 64x64 layout's digit a (its box starts at column 2)
    info = datasets.double_digits_info("test", layout=datasets.LARGE)
    images, _ = datasets.double_digits("test", layout=datasets.LARGE)[:2]
    (row, col), _ = info.corners[0]
    a_index = int(np.searchsorted(datasets.source_indices("test"), info.sources[0][0]))
    np.testing.assert_array_equal(images[0, 0, row:row + 28, col:col + 28], x[a_index, 0])


def test_example_spec_runs(tmp_path, capsys) -> None:
    from robustc.cli.main import main

    code = main(["global", str(ROOT / "examples" / "global_28.rspec"), "--set", "samples=300",
                 "--set", "robust_samples=8", "--verify-samples", "2", "--quiet", "--json",
                 "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert code in (0, 1, 3)
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["name"] for r in results] == ["correct_three", "robust_eight"]
    correct, robust = results
    # the correct count, independently: chunk 0's noise, generator then classifier
    z = np.random.default_rng([0, 0, 0]).standard_normal((300, 32)).astype(np.float32)
    logits = run_onnx("cls28", run_onnx("gen28_digit3", z))
    top = np.sort(logits, 1)
    assert correct["correct"] == int(np.sum((logits.argmax(1) == 3) & (top[:, -2] < top[:, -1])))
    assert robust["samples"] == 8 and robust["no_witness"] <= robust["correct"]
    assert robust["verified"] + bool(robust["verify_unavailable"]) * 2 == 2
    assert (tmp_path / "robust_eight.json").exists()


def test_torch_and_onnxruntime_runners_agree() -> None:
    """The 28x28 task by both forward runners: the same correct count on 1024 noises, and
    the count equals onnxruntime's, one sample at a time (written here)."""
    from dataclasses import replace

    from robustc import specs
    from robustc.analyses import global_robustness as G

    task = replace(G.global_tasks(specs.load(ROOT / "examples" / "global_28.rspec"),
                                  ["correct_three"])[0], samples=1024)
    chunk = G.plan(task)[0]
    counts = {}
    for t in (task, replace(task, graph=None, ir_reason="forced")):
        counts[G.forward_runner(t)] = G.run_chunk(t, chunk).correct
    z = G.chunk_noise(task, chunk).reshape(chunk.stop, 32).astype(np.float32)
    logits = run_onnx("cls28", run_onnx("gen28_digit3", z))
    top = np.sort(logits, 1)
    expected = int(np.sum((logits.argmax(1) == 3) & (top[:, -2] < top[:, -1])))
    assert counts["onnxruntime"] == expected
    if task.graph is not None:       # robustc's IR takes the Tanh generator
        assert counts["torch"] == expected
