"""Metrics on hand-made cases; attacks stay in the input box; the CLI's reports agree with
onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robustc.runtime.attacks import ATTACKS, MultiLabel, Victim
from robustc.runtime.attacks.metrics import asr, basr, distortion, ssim
from robustc.runtime.replay import run_onnx

torch.set_num_threads(1)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_asr_and_basr_hand_made():
    target = np.array([[1, 0, 1, 0], [0, 0, 1, 1], [1, 1, 1, 1]], bool)
    decoded = np.array([[1, 0, 1, 0], [0, 1, 1, 1], [0, 0, 0, 1]], bool)
    assert asr(decoded, target) == pytest.approx(1 / 3)
    assert basr(decoded, target) == pytest.approx((4 + 3 + 1) / 12)
    assert asr(decoded, target, untargeted=True) == pytest.approx(2 / 3)


def test_distortion_closed_forms():
    x0 = np.zeros((2, 1, 4, 4))
    x_adv = x0.copy()
    x_adv[0, 0, 0, 0] = 0.4
    x_adv[1] = 0.1
    d = distortion(x0, x_adv)
    assert d["l0"].tolist() == [1, 16]
    assert d["l2"] == pytest.approx([0.4, 0.4])
    assert d["mse"] == pytest.approx([0.1, 0.1])
    assert d["linf"] == pytest.approx([0.4, 0.1])
    assert d["psnr"] == pytest.approx([20.0, 20.0])


def test_ssim_of_constant_images_matches_formula():
    a, b = np.full((8, 8), 0.3), np.full((8, 8), 0.6)
    c1 = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * 0.3 * 0.6 + c1) / (0.3**2 + 0.6**2 + c1))
    rng = np.random.default_rng(0)
    img = rng.uniform(size=(16, 24))
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img, np.clip(img + rng.normal(0, 0.2, img.shape), 0, 1)) < 0.9


@pytest.fixture(scope="module")
def victim():
    from robustc.compiler import load_onnx, standard_passes
    from robustc.runtime import datasets
    from robustc.runtime.torch_module import to_torch

    graph = standard_passes().run(load_onnx(str(EXAMPLES / "models" / "mlc_plain.onnx")))
    images, labels, _ = datasets.double_digits("test")
    x0 = torch.tensor(images[:4])[:, None]
    lower = torch.clamp(x0 - 0.05, min=0.0)
    upper = torch.clamp(x0 + 0.05, max=1.0)
    target = torch.tensor(labels[:4].astype(bool))
    target[:, 3] = ~target[:, 3]
    return Victim(to_torch(graph, device="cpu", logits=True), MultiLabel(10), lower, upper), \
        x0, target


@pytest.mark.parametrize("method,options", [
    ("jma", {"max_iter": 5, "step": 2.0}), ("mlcw", {"max_iter": 30, "binary_steps": 2}),
    ("pgd", {"steps": 10, "eps": 0.5, "norm": "l2"}), ("pgd", {"steps": 10, "eps": 0.5})])
def test_attacks_never_leave_the_box(victim, method, options):
    vic, x0, target = victim
    result = ATTACKS[method](**options).run(vic, x0, target)
    assert (result.x_adv >= vic.lower.numpy()).all()
    assert (result.x_adv <= vic.upper.numpy()).all()
    assert np.abs(result.x_adv - x0.numpy()).max() > 1e-3  # the attack did move
    logits = np.stack([run_onnx((str(EXAMPLES / "models" / "mlc_plain.onnx"),), x[None])[1]
                       .reshape(-1) for x in result.x_adv])
    reached = ((logits > 0) == target.numpy()).all(axis=1)
    assert (reached | ~result.success).all()  # every claim holds on onnxruntime


def test_cli_reports_agree_with_onnxruntime(tmp_path):
    from robustc.cli import main

    spec = EXAMPLES / "attack_jma.rspec"
    out = tmp_path / "out"
    code = main(["attack", str(spec), "-p", "ecoc_eight", "-p", "pgd_any", "-o", str(out),
                 "--device", "cpu"])
    book = np.load(EXAMPLES / "models" / "ecoc_codebook.npy")
    report = json.loads((out / "ecoc_eight.json").read_text())
    x_adv = np.load(out / "ecoc_eight_adv.npy")
    output, _ = run_onnx((str(EXAMPLES / "models" / "ecoc.onnx"),), x_adv[0][None])
    decoded = int(np.argmax(output.reshape(-1) @ book.T))
    assert report["images"][0]["decoded"] == [str(decoded)]
    assert report["images"][0]["success"] == (decoded == 8)
    assert (out / "ecoc_eight_0.png").exists() and (x_adv >= 0).all() and (x_adv <= 1).all()
    pgd = json.loads((out / "pgd_any.json").read_text())
    x_pgd = np.load(out / "pgd_any_adv.npy")
    d = np.load(EXAMPLES / "samples" / "digit_3.npy")
    assert np.abs(x_pgd - d.reshape(x_pgd.shape)).max() <= 0.1 + 1e-6  # within linf(d, eps)
    out_cls, _ = run_onnx((str(EXAMPLES / "models" / "digits_softmax.onnx"),), x_pgd[0][None])
    assert pgd["images"][0]["success"] == (int(np.argmax(out_cls)) != 3)
    assert code == (0 if report["images"][0]["success"] and pgd["images"][0]["success"] else 1)
