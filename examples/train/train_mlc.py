"""Train a multi-label double-digit classifier (no defence, L0 defence or PGD training).

    python examples/train/train_mlc.py --defence none   # -> examples/models/mlc_plain.*
    python examples/train/train_mlc.py --defence l0     # -> examples/models/mlc_l0.*
    python examples/train/train_mlc.py --defence pgd    # -> examples/models/mlc_pgd.*

Every epoch draws fresh pairs from the train source digits (seeded), so the network sees
many layouts of the same 1,258 source digits; the test split is the fixed one of
``robustc.runtime.datasets.double_digits("test")``.
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
from models import MultiLabelCNN
from torch import nn
from torch.nn import functional as F

from robustc.runtime import datasets

NAMES = {"none": "mlc_plain", "l0": "mlc_l0", "pgd": "mlc_pgd"}
EVAL_EPS = (0.02, 0.05)
EVAL_STEPS = 20


def black_rectangles(x: torch.Tensor, gen: torch.Generator, prob: float = 0.5) -> torch.Tensor:
    """L0 defence augmentation: with probability ``prob`` paint one random black rectangle
    (2..8 rows x 2..8 columns, anywhere on the canvas) on each image of ``x``."""
    n, _, height, width = x.shape
    rh = torch.randint(2, 9, (n, 1, 1), generator=gen)
    rw = torch.randint(2, 9, (n, 1, 1), generator=gen)
    top = torch.randint(0, height, (n, 1, 1), generator=gen)
    left = torch.randint(0, width, (n, 1, 1), generator=gen)
    rows = torch.arange(height).view(1, -1, 1)
    cols = torch.arange(width).view(1, 1, -1)
    inside = (rows >= top) & (rows < top + rh) & (cols >= left) & (cols < left + rw)
    chosen = torch.rand(n, 1, 1, generator=gen) < prob
    return x * ~(inside & chosen)[:, None]


def bce_of(model: nn.Module, y: torch.Tensor):
    """The summed multi-label BCE loss of the true label set ``y`` as a function of the
    input (what PGD maximises)."""
    return lambda adv: F.binary_cross_entropy_with_logits(model(adv), y, reduction="sum")


def predict_sets(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Return the predicted multi-hot sets (logit > 0) for ``x``, in batches of 500."""
    with torch.no_grad():
        return torch.cat([model(chunk) > 0 for chunk in x.split(500)]).to(torch.uint8)


def f1_per_label(pred: np.ndarray, true: np.ndarray) -> list[float]:
    """Return the F1 score of each of the 10 labels (0 where a label is never true nor
    predicted)."""
    scores = []
    for d in range(true.shape[1]):
        tp = int(np.sum((pred[:, d] == 1) & (true[:, d] == 1)))
        denom = int(np.sum(pred[:, d])) + int(np.sum(true[:, d]))
        scores.append(round(2 * tp / denom, 4) if denom else 0.0)
    return scores


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> dict:
    """Return exact-set accuracy, per-label F1 and PGD robust accuracy of ``model``."""
    model.eval()
    pred = predict_sets(model, x)
    true = y.to(torch.uint8)
    result = {
        "test_images": len(x),
        "exact_set_accuracy": round(float((pred == true).all(1).float().mean()), 4),
        "per_label_f1": f1_per_label(pred.numpy(), true.numpy()),
        "pgd": {},
    }
    gen = torch.Generator().manual_seed(seed)
    for eps in EVAL_EPS:
        adv = torch.cat([
            pgd_attack(bce_of(model, yb), xb, eps, EVAL_STEPS, gen)
            for xb, yb in zip(x.split(500), y.split(500), strict=True)
        ])  # fmt: skip
        robust = (predict_sets(model, adv) == true).all(1).float().mean()
        result["pgd"][str(eps)] = round(float(robust), 4)
    return result


def train_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    args: argparse.Namespace,
    epoch: int,
    gen: torch.Generator,
) -> float:
    """Train one epoch on freshly drawn pairs; return the mean loss."""
    model.train()
    info = datasets.draw_pairs("train", args.pairs, np.random.default_rng([args.seed, epoch]))
    images, labels, _ = datasets.render_pairs(info)
    x, y = torch.from_numpy(images), torch.from_numpy(labels).float()
    order = torch.randperm(len(x), generator=gen)
    total = 0.0
    for batch in order.split(args.batch):
        xb, yb = x[batch], y[batch]
        if args.defence == "l0":
            xb = black_rectangles(xb, gen)
        loss = F.binary_cross_entropy_with_logits(model(xb), yb)
        if args.defence == "pgd":
            eps = args.train_eps * min(1.0, (epoch + 1) / args.warmup)
            adv = pgd_attack(bce_of(model, yb), xb, eps, args.train_steps, gen)
            adv_loss = F.binary_cross_entropy_with_logits(model(adv), yb)
            loss = args.clean_weight * loss + (1 - args.clean_weight) * adv_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        total += float(loss.detach()) * len(batch)
    return total / len(x)


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_options(parser, NAMES, epochs=30, wd=0.05, train_eps=0.03, train_steps=3,
                         warmup=5)
    parser.add_argument("--channels", type=int, nargs=2, default=(4, 16))
    parser.add_argument("--stride", type=int, default=1, help="stride of the second conv")
    return parser.parse_args()


def main() -> None:
    """Train, evaluate, export ONNX + state dict + manifest."""
    args = parse_args()
    started = time.time()
    gen = seed_everything(args.seed)
    name = args.name or NAMES[args.defence]
    model = MultiLabelCNN(tuple(args.channels), datasets.CANVAS_SHAPE, args.stride)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    steps = args.epochs * -(-args.pairs // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps)
    images, labels, _ = datasets.double_digits("test")
    x_test, y_test = torch.from_numpy(images), torch.from_numpy(labels).float()
    for epoch in range(args.epochs):
        loss = train_epoch(model, opt, sched, args, epoch, gen)
        acc = (predict_sets(model.eval(), x_test) == y_test.to(torch.uint8)).all(1).float().mean()
        print(f"epoch {epoch:2d} loss {loss:.4f} test exact-set {float(acc):.4f}", flush=True)
    metrics = evaluate(model, x_test, y_test, args.seed)
    print(metrics, flush=True)
    example = x_test[:1]
    ops = export_onnx(model, example, MODELS / f"{name}.onnx")
    save_state(model, MODELS / f"{name}.pt")
    write_manifest(name, {
        "task": "multi-label double digits; label d present iff logit d > 0",
        "defence": args.defence,
        "architecture": f"Conv3x3({args.channels[0]}) ReLU, "
                        f"Conv6x6/{args.stride}({args.channels[1]}) ReLU, "
                        "MaxPool over the whole feature map, Dense(10)",
        "input": [1, 1, *datasets.CANVAS_SHAPE], "output": [1, 10],
        "labels": [str(d) for d in range(10)], "ops": ops,
        "relus": count_relus(model, example),
        "training_command": command_line("train_mlc.py", args),
        "seed": args.seed,
        "train_options": vars(args),
        **metrics,
        "pgd_attack": f"L-inf PGD on the BCE loss, {EVAL_STEPS} steps of 2.5*eps/{EVAL_STEPS}, "
                      "random start; a sample counts robust if its whole predicted label set "
                      "equals the true set",
    }, started)  # fmt: skip


if __name__ == "__main__":
    main()
