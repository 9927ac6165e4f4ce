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


def _onnx_labels(network: str, x: np.ndarray) -> set[str]:
    """The label set onnxruntime decodes for one input of an example network (the oracle,
    written here from the spec's decoders, not robustc's)."""
    output, logits = run_onnx((str(EXAMPLES / "models" / f"{network}.onnx"),), x[None])
    output, logits = output.reshape(-1), logits.reshape(-1)
    if network == "mlc_plain":  # multilabel(logit > 0)
        return {str(i) for i in np.flatnonzero(logits > 0)}
    if network == "ecoc":  # the codeword nearest to the tanh outputs
        return {str(int(np.argmax(np.load(EXAMPLES / "models" / "ecoc_codebook.npy")
                                  @ output)))}
    return {str(int(np.argmax(logits)))}  # argmax


EXAMPLE_GOALS = {  # property: (network, input, source labels, target labels or None)
    "to_three_seven": ("mlc_plain", "dd_0", {"7", "8"}, {"3", "7"}),
    "to_one_seven": ("mlc_plain", "dd_0", {"7", "8"}, {"1", "7"}),
    "flip_two": ("mlc_plain", "dd_0", {"7", "8"}, None),
    "ecoc_eight": ("ecoc", "digit_3", {"3"}, {"8"}),
    "pgd_any": ("digits_softmax", "digit_3", {"3"}, None),
}


def test_the_example_succeeds_on_onnxruntime(tmp_path, capsys):
    """Every attack of examples/attack_jma.rspec reaches its goal, checked by running the
    adversarial inputs it wrote through onnxruntime; the reports and lines agree."""
    from robustc.cli import main

    out = tmp_path / "out"
    code = main(["attack", str(EXAMPLES / "attack_jma.rspec"), "-o", str(out),
                 "--device", "cpu"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split(":")[0] for line in lines] == list(EXAMPLE_GOALS)
    for line, (name, (network, sample, source, goal)) in zip(lines, EXAMPLE_GOALS.items(),
                                                             strict=True):
        x0 = np.load(EXAMPLES / "samples" / f"{sample}.npy")
        x_adv = np.load(out / f"{name}_adv.npy")
        assert x_adv.shape == (1,) + x0.shape and (x_adv >= 0).all() and (x_adv <= 1).all()
        assert _onnx_labels(network, x0) == source
        reached = _onnx_labels(network, x_adv[0])
        if name == "flip_two":  # the two labels whose logits are nearest the threshold
            logits = run_onnx((str(EXAMPLES / "models" / "mlc_plain.onnx"),), x0[None])[1]
            goal = source ^ {str(i) for i in np.argsort(np.abs(logits.reshape(-1)))[:2]}
        if goal is None:
            assert reached != source
        else:
            assert reached == goal
        report = json.loads((out / f"{name}.json").read_text())
        assert report["replayed_on"] == "onnxruntime"
        assert report["images"][0]["success"] and report["images"][0]["claimed"]
        assert set(report["images"][0]["decoded"]) == reached
        assert "1 of 1 image(s)" in line and "replayed on onnxruntime" in line
        rms = np.sqrt(np.mean((x_adv[0] - x0.astype(np.float64)) ** 2))
        assert report["metrics"]["mse"] == pytest.approx(rms, rel=1e-6)
        # the images' range is the domain [0, 1], also for pgd_any's narrower 'within' box
        assert report["metrics"]["psnr"] == pytest.approx(-20 * np.log10(rms), rel=1e-6)
        assert (out / f"{name}_0.png").exists()
    x_pgd = np.load(out / "pgd_any_adv.npy")
    d = np.load(EXAMPLES / "samples" / "digit_3.npy")
    assert np.abs(x_pgd - d.reshape(x_pgd.shape)).max() <= 0.1 + 1e-6  # within linf(d, eps)


def test_jma_stalls_on_one_seven_where_every_channel_is_off():
    """The example's comment on {1, 7}: from dd_0, JMA (fast preset, confidence 0.1) switches every
    channel of mlc_plain's global max-pool off within 20 iterations, where the logits are
    the dense layer's bias (read from the ONNX file), the Jacobian is zero and the target
    is not reached; the one channel with a large weight into label 1 is off at dd_0."""
    import onnx
    from onnx import numpy_helper

    from robustc.compiler import load_onnx, standard_passes
    from robustc.runtime.attacks.jma import PRESETS, scores_and_jacobian
    from robustc.runtime.torch_module import to_torch

    path = str(EXAMPLES / "models" / "mlc_plain.onnx")
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    module = to_torch(standard_passes().run(load_onnx(path)), device="cpu", logits=True)
    x0 = torch.tensor(np.load(EXAMPLES / "samples" / "dd_0.npy"))[None]
    conv1 = torch.nn.functional.conv2d(x0[0], torch.tensor(weights["features.0.weight"]),
                                       torch.tensor(weights["features.0.bias"])).relu()
    channels = torch.nn.functional.conv2d(conv1, torch.tensor(weights["features.2.weight"]),
                                          torch.tensor(weights["features.2.bias"]))
    assert int(np.argmax(weights["dense.weight"][1])) == 13
    assert weights["dense.weight"][1, 13] > 1.0 and channels[0, 13].max() < -2.0
    victim = Victim(module, MultiLabel(10), torch.zeros_like(x0), torch.ones_like(x0))
    target = torch.zeros(1, 10, dtype=torch.bool)
    target[0, [1, 7]] = True
    fast = {**PRESETS["fast"], "confidence": 0.1}  # one large step at a time, as before
    result = ATTACKS["jma"](max_iter=20, **fast).run(victim, x0, target)
    assert not result.success[0]
    _, logits = run_onnx((path,), result.x_adv)
    assert logits.reshape(-1) == pytest.approx(weights["dense.bias"], abs=1e-5)
    _, jac = scores_and_jacobian(victim, torch.tensor(result.x_adv))
    assert float(jac.abs().max()) == 0.0
