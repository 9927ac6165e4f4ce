"""JMA's step search (the default) and its presets, in the spec and on the network."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from robustc.errors import SpecError
from robustc.runtime.attacks import JMA, MultiLabel, Victim
from robustc.runtime.attacks.jma import PRESETS

torch.set_num_threads(1)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def batch():
    """mlc_plain on 12 test images, targets flipping 2 labels each."""
    from robustc.compiler import load_onnx, standard_passes
    from robustc.runtime import datasets
    from robustc.runtime.torch_module import to_torch

    graph = standard_passes().run(load_onnx(str(EXAMPLES / "models" / "mlc_plain.onnx")))
    module = to_torch(graph, device="cpu", logits=True)
    images, labels, _ = datasets.double_digits("test")
    x0 = torch.tensor(images[:12])[:, None]  # (B, *input shape), input shape [1, 1, H, W]
    target = torch.tensor(labels[:12]).bool()
    rng = np.random.default_rng(0)
    for row in target:
        flip = torch.tensor(rng.choice(10, 2, replace=False))
        row[flip] = ~row[flip]
    victim = Victim(module, MultiLabel(10), torch.zeros_like(x0), torch.ones_like(x0))
    return victim, x0, target


def test_second_pass_only_adds_successes(batch):
    """One small-step iteration reaches few targets; the large-step pass that follows
    leaves those images as they were and only adds successes."""
    victim, x0, target = batch
    first = JMA(max_iter=1, fallback_step=None).run(victim, x0, target)
    both = JMA(max_iter=1).run(victim, x0, target)
    fast = JMA(max_iter=1, **PRESETS["fast"]).run(victim, x0, target)
    assert first.success.sum() < both.success.sum()
    assert (both.success >= first.success).all()
    assert np.array_equal(both.x_adv[first.success], first.x_adv[first.success])
    # the second pass is the fast preset from x0: the same points where the first failed
    redo = ~first.success
    assert np.allclose(both.x_adv[redo], fast.x_adv[redo], atol=1e-6)
    assert (both.iterations[redo] == first.iterations[redo] + fast.iterations[redo]).all()
    # every claimed success really decodes to the target on the module
    z = victim.logits(torch.tensor(both.x_adv))
    assert (victim.encoding.reached(z, target).numpy() == both.success).all()


def test_defaults_are_the_papers_setting():
    jma = JMA()
    assert (jma.step, jma.confidence, jma.max_iter, jma.search_steps) == (0.05, 0.0, 200, 6)
    fast = JMA(**PRESETS["fast"])
    assert (fast.step, fast.confidence, fast.fallback_step) == (1.0, 3.0, None)


def _spec(tmp_path: Path, using: str) -> Path:
    for part in ("models/mlc_plain.onnx", "samples/dd_0.npy"):
        (tmp_path / part).parent.mkdir(exist_ok=True)
        shutil.copy(EXAMPLES / part, tmp_path / part)
    path = tmp_path / "t.rspec"
    path.write_text('network plain = onnx("models/mlc_plain.onnx")\n'
                    'input x = npy("samples/dd_0.npy")\n'
                    'labels digits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]\n'
                    "decode plain as multilabel(logit > 0) over digits\n"
                    'attack a on plain:\n    target {"3", "7"} from x\n'
                    f"    using {using} norm l2\n")
    return path


@pytest.mark.parametrize("using, expect", [
    ("jma", {"step": 0.05, "confidence": 0.0, "fallback_step": 1.0}),
    ('jma(preset="fast")', {"step": 1.0, "confidence": 3.0, "fallback_step": None}),
    ('jma(preset="fast", confidence=1)', {"step": 1.0, "confidence": 1.0}),
    ("jma(step=0.2, fallback_step=0.5)", {"step": 0.2, "fallback_step": 0.5}),
])
def test_spec_presets_and_options(tmp_path, using, expect):
    from robustc import specs
    from robustc.analyses.attack import lower_attack, make_attack
    from robustc.compiler.spec_lower import SpecContext

    spec = specs.load(_spec(tmp_path, using))
    attack = make_attack(lower_attack(SpecContext(spec), spec.properties[0]), "l2")
    assert {k: getattr(attack, k) for k in expect} == expect


def test_unknown_preset_is_a_positioned_error(tmp_path):
    from robustc import specs

    with pytest.raises(SpecError, match=r"t.rspec:7:.*preset") as err:
        specs.load(_spec(tmp_path, 'jma(preset="slow")'))
    assert "search" in str(err.value) and "fast" in str(err.value)


@pytest.mark.parametrize("scale, ok", [(1.0, True), (3.0, False)])
def test_an_image_outside_its_domain_is_refused(tmp_path, scale, ok):
    """The attack would start from a clipped copy, another image: a positioned error
    naming the input and its range (1.0: the sample itself, inside [0, 1])."""
    from robustc import specs
    from robustc.analyses.attack import lower_attack
    from robustc.compiler.spec_lower import SpecContext

    path = _spec(tmp_path, "jma")
    x = np.load(tmp_path / "samples" / "dd_0.npy")
    np.save(tmp_path / "samples" / "dd_0.npy", x * scale)
    spec = specs.load(path)
    if ok:
        assert lower_attack(SpecContext(spec), spec.properties[0]).x0.max() <= 1.0
        return
    with pytest.raises(SpecError, match=r"t.rspec:5:.*input 'x' has values in \[0, 3\], "
                                        r"outside its domain \[0, 1\]"):
        lower_attack(SpecContext(spec), spec.properties[0])
