"""Attacks on top-k classifiers (the 64x64 DOUBLE-MNIST networks decode their top 2).

The encoding is checked against brute force on random logits (decoding, the margin rows,
the nearest other top-k set), and spec attacks on ``dd64_plain`` against onnxruntime: every
reported success is a replayed top-2 set equal to the target, computed here independently.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from robustc.errors import SpecError
from robustc.runtime.attacks import TopK
from robustc.runtime.replay import run_onnx

torch.set_num_threads(1)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _top_set(z: np.ndarray, k: int) -> np.ndarray:
    """Oracle: the k largest entries, ties to the lower index (Python's sort is stable)."""
    out = np.zeros(z.shape, bool)
    for row, values in zip(out, z, strict=True):
        row[sorted(range(len(values)), key=lambda i: -values[i])[:k]] = True
    return out


@pytest.mark.parametrize("k", [1, 2, 3])
def test_decode_and_margins_agree_with_brute_force(k):
    rng = np.random.default_rng(k)
    z = rng.normal(size=(200, 6)).astype(np.float32)
    z[:20, 1] = z[:20, 4]  # ties: the lower index wins
    enc = TopK(6, k)
    decoded = enc.decode(torch.tensor(z)).numpy()
    assert (decoded == _top_set(z, k)).all()
    for target in (decoded, _top_set(rng.normal(size=z.shape), k)):
        margins = enc.margins(torch.tensor(z), torch.tensor(target)).numpy()
        assert margins.shape == (200, k * (6 - k))
        strict = np.array([min(zi[t]) > max(zi[~t]) for zi, t in zip(z, target, strict=True)])
        assert ((margins > 0).all(axis=1) == strict).all()
        # hinge is zero exactly when every target label beats every other one by confidence
        hinge = enc.hinge(torch.tensor(z), torch.tensor(target), 0.5).numpy()
        wide = np.array([min(zi[t]) - max(zi[~t]) >= 0.5 for zi, t in zip(z, target, strict=True)])
        assert ((hinge == 0) == wide).all()


def test_alternative_is_the_cheapest_swap():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(100, 7)).astype(np.float64)
    enc = TopK(7, 3)
    alt = enc.alternative(torch.tensor(z)).numpy()
    now = _top_set(z, 3)
    for zi, a, n in zip(z, alt, now, strict=True):
        assert a.sum() == 3 and (a ^ n).sum() == 2
        # brute force: the swap (i out, j in) that needs the smallest logit change
        cost = {(i, j): zi[i] - zi[j] for i, j in itertools.product(np.flatnonzero(n),
                                                                     np.flatnonzero(~n))}
        i, j = min(cost, key=cost.get)
        assert not a[i] and a[j]


def test_target_with_wrong_count_is_refused():
    with pytest.raises(SpecError, match="exactly 2 labels"):
        TopK(10, 2).check_target(np.eye(10, dtype=bool)[:1])


def _spec(tmp_path: Path, body: str) -> Path:
    for part in ("models/dd64_plain.onnx", "samples/dd64_1.npy"):
        (tmp_path / part).parent.mkdir(exist_ok=True)
        shutil.copy(EXAMPLES / part, tmp_path / part)
    path = tmp_path / "t.rspec"
    path.write_text(
        'network plain = onnx("models/dd64_plain.onnx")\n'
        'input x = npy("samples/dd64_1.npy") in [0, 1]\n'
        'labels digits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]\n'
        "decode plain as topk(2) over digits\n" + body)
    return path


def _problems(path: Path):
    from robustc import specs
    from robustc.analyses.attack import lower_attack
    from robustc.compiler.spec_lower import SpecContext
    from robustc.specs import ast as A

    spec = specs.load(path)
    ctx = SpecContext(spec)
    return [lower_attack(ctx, p) for p in spec.properties if isinstance(p, A.AttackProperty)]


def test_top2_attacks_replayed_on_onnxruntime(tmp_path):
    from robustc.analyses.attack import make_attack, run_problem

    path = _spec(tmp_path,
                 "attack swap_one on plain:\n    flip 2 labels from x\n    using jma norm l2\n"
                 "attack to_three_seven on plain:\n    target {\"3\", \"7\"} from x\n"
                 "    using mlcw(c=10, max_iter=300) norm l2\n"
                 "attack away on plain:\n    untargeted from x\n"
                 "    using pgd(steps=40, step_size=0.01, restarts=2) norm linf\n"
                 "    within linf(x, 0.1)\n")
    problems = _problems(path)
    x = np.load(EXAMPLES / "samples" / "dd64_1.npy").astype(np.float32)
    source = _top_set(run_onnx(problems[0].network.paths, x[None, None])[0].reshape(1, -1), 2)
    assert sorted(np.flatnonzero(source[0])) == [0, 2]  # the sample shows a 2 and a 0
    for problem in problems:
        assert (problem.source == source).all()
        assert problem.target.sum() == 2 or problem.untargeted
        report = run_problem(problem, make_attack(problem, "linf" if problem.method == "pgd"
                                                  else "l2"), threads=1)
        out, _ = run_onnx(problem.network.paths, report.x_adv[0][None])
        replayed = _top_set(np.asarray(out).reshape(1, -1), 2)[0]
        assert report.success[0], problem.name
        if problem.untargeted:
            assert (replayed != source[0]).any()
        else:
            assert (replayed == problem.target[0]).all()
        assert (report.x_adv >= problem.lower).all() and (report.x_adv <= problem.upper).all()
    # flip 2 under top 2 swaps the weaker present label (2 or 0) for the strongest absent one
    assert (problems[0].target ^ source).sum() == 2


@pytest.mark.parametrize("body, message", [
    ("attack same on plain:\n    target {\"0\", \"2\"} from x\n    using jma norm l2\n",
     "equals the input's current label set"),
    ("attack three on plain:\n    target {\"0\", \"2\", \"5\"} from x\n    using jma norm l2\n",
     "top-2 target names exactly 2 labels"),
    ("attack odd on plain:\n    flip 1 labels from x\n    using jma norm l2\n",
     "even m from 2 to 4"),
    ("attack many on plain:\n    flip 6 labels from x\n    using jma norm l2\n",
     "even m from 2 to 4"),
])
def test_bad_top2_targets_are_positioned_errors(tmp_path, body, message):
    path = _spec(tmp_path, body)
    with pytest.raises(SpecError, match=message) as err:
        _problems(path)
    assert "t.rspec:6" in str(err.value) or "t.rspec:7" in str(err.value)
