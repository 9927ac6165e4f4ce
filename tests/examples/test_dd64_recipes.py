"""``train_dd64.py --recipe bn / bn-distill``: the folded network is the BN network, in ONNX."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from robustc.runtime import datasets

from .helpers import DD64, TRAIN, manifest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")


def _train_modules():
    if str(TRAIN) not in sys.path:
        sys.path.insert(0, str(TRAIN))
    import common
    import models
    import train_dd64

    return common, models, train_dd64


def test_bn_network_folds_into_the_deployed_graph(tmp_path) -> None:
    """A BN network with trained-like statistics, folded and exported, gives the BN network's
    eval-mode probabilities on onnxruntime; the graph has the committed networks' nodes."""
    common, models, train_dd64 = _train_modules()
    torch.manual_seed(3)
    info = datasets.draw_pairs("test", 64, np.random.default_rng(0), datasets.LARGE)
    images, _, _ = datasets.render_pairs(info, datasets.LARGE)
    x = torch.from_numpy(images)
    net = models.DoubleMnistBN()
    with torch.no_grad():
        for norm in (net.features[1], net.features[4]):
            norm.weight.uniform_(0.5, 2.0)
            norm.bias.uniform_(-0.5, 0.5)
    net.train()
    for _ in range(5):  # running statistics from real images, away from (0, 1)
        net.logits(x * 3 + 0.1)
    folded, gap = train_dd64.fold_checked(net, x)
    assert gap < 1e-4
    ops = common.export_onnx(folded, x[:1], tmp_path / "folded.onnx")
    assert ops == manifest(DD64[0])["ops"]
    sess = ort.InferenceSession(str(tmp_path / "folded.onnx"), providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {"input": row[None]})[0] for row in images[:16]])
    with torch.no_grad():
        want = net.eval()(torch.from_numpy(images[:16])).numpy()
        plain = net.logits(torch.from_numpy(images[:16]))
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the statistics matter: the same weights without them compute something else
    net.features[1].reset_running_stats()
    net.features[4].reset_running_stats()
    with torch.no_grad():
        assert float((net.logits(torch.from_numpy(images[:16])) - plain).abs().max()) > 1e-2


def test_distill_loss_is_the_tempered_kl() -> None:
    """T^2 * KL(teacher_T || student_T), mean over the batch; zero for equal logits."""
    _, _, train_dd64 = _train_modules()
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(6, 10, generator=gen), torch.randn(6, 10, generator=gen)
    p = torch.softmax(teacher / 2.0, dim=1)
    q = torch.softmax(student / 2.0, dim=1)
    want = 4.0 * (p * (p.log() - q.log())).sum(1).mean()
    got = train_dd64.distill_loss(student, teacher, 2.0)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    assert float(train_dd64.distill_loss(teacher, teacher, 3.0)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--teacher-epochs", "3"], "--teacher-epochs needs --recipe bn-distill"),
        (["--recipe", "bn", "--temperature", "4"], "--temperature needs --recipe bn-distill"),
        (["--recipe", "bn", "--defence", "pgd"], "--recipe bn trains from scratch without PGD"),
        (["--recipe", "bn-distill", "--init", "dd64_plain"], "without PGD (--init"),
    ],
)
def test_recipe_option_errors(words: list[str], message: str, monkeypatch, capsys) -> None:
    """Options that do not fit the recipe stop before training, with a usage error."""
    _, _, train_dd64 = _train_modules()
    monkeypatch.setattr(sys, "argv", ["train_dd64.py", *words])
    with pytest.raises(SystemExit) as stop:
        train_dd64.parse_args()
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_distill_defaults_fill_in() -> None:
    """--recipe bn-distill without its options takes DISTILL_DEFAULTS; the default recipe
    leaves them unset (so the committed networks' training commands do not change)."""
    _, _, train_dd64 = _train_modules()
    argv = sys.argv
    try:
        sys.argv = ["train_dd64.py", "--recipe", "bn-distill", "--teacher-epochs", "7"]
        args = train_dd64.parse_args()
        sys.argv = ["train_dd64.py"]
        plain = train_dd64.parse_args()
    finally:
        sys.argv = argv
    assert args.teacher_epochs == 7 and args.temperature == 2.0
    assert tuple(args.teacher_channels) == train_dd64.DISTILL_DEFAULTS["teacher_channels"]
    assert plain.recipe is None and plain.teacher_channels is None


def test_data_option_trains_on_real_mnist_digits(monkeypatch) -> None:
    """--data mnist5k draws the training layouts from datasets.MNIST64 (real MNIST digits);
    without it the command line of the committed networks is unchanged (no --data word)."""
    common, models, train_dd64 = _train_modules()
    monkeypatch.setattr(sys, "argv", ["train_dd64.py", "--data", "mnist5k", "--pairs", "8",
                                      "--batch", "8"])  # fmt: skip
    args = train_dd64.parse_args()
    seen = []
    real_render = datasets.render_pairs
    monkeypatch.setattr(datasets, "render_pairs",
                        lambda info, layout: seen.append(layout) or real_render(info, layout))
    model = models.DoubleMnistCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    loss = train_dd64.train_epoch(model, opt, sched, args, 0, torch.Generator().manual_seed(0))
    assert seen == [datasets.MNIST64] and np.isfinite(loss)
    info = datasets.draw_pairs("train", 8, np.random.default_rng([args.seed, 0]),
                               datasets.MNIST64)  # fmt: skip
    assert np.isin(info.sources, datasets.source_indices("train", datasets.MNIST64)).all()
    monkeypatch.setattr(sys, "argv", ["train_dd64.py"])
    plain = train_dd64.parse_args()
    assert plain.data is None and "--data" not in common.command_line("train_dd64.py", plain)
