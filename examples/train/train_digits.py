"""Train the single-digit (8x8) example classifiers.

    python examples/train/train_digits.py --model softmax  # -> models/digits_softmax.*
    python examples/train/train_digits.py --model fc       # -> models/fc_digits.*
    python examples/train/train_digits.py --model ecoc     # -> models/ecoc.* + ecoc_codebook.npy

Data: ``robustc.runtime.datasets.digits`` (scikit-learn's digits, scaled to [0, 1]); for the
CNNs the training images are shifted by up to one pixel at random (zero fill) every epoch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import MODELS, count_relus, export_onnx, save_state, seed_everything, write_manifest
from models import EcocDigits, FullyConnected, SoftmaxDigits
from torch import nn
from torch.nn import functional as F

from robustc.runtime import datasets

NAMES = {"softmax": "digits_softmax", "fc": "fc_digits", "ecoc": "ecoc"}
ECOC_BITS = 16


def hadamard_codebook(n_bits: int = ECOC_BITS, n_classes: int = 10) -> np.ndarray:
    """Return ``[n_classes, n_bits]`` +-1 codewords: rows 1.. of the Sylvester Hadamard
    matrix of order ``n_bits`` (row 0, all ones, is skipped); any two differ in
    ``n_bits / 2`` bits."""
    matrix = np.ones((1, 1), dtype=np.int64)
    while len(matrix) < n_bits:
        matrix = np.block([[matrix, matrix], [matrix, -matrix]])
    return matrix[1 : n_classes + 1].astype(np.float32)


def random_shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift each 8x8 image by -1, 0 or +1 pixels in each direction, filling with zeros."""
    padded = F.pad(x, (1, 1, 1, 1))
    shifted = torch.stack(
        [padded[..., dy : dy + 8, dx : dx + 8] for dy in range(3) for dx in range(3)]
    )
    choice = torch.randint(0, 9, (len(x),), generator=gen)
    return shifted[choice, torch.arange(len(x))]


class Task:
    """One model family: how to build it, its loss, its decision, its export input."""

    def __init__(self, kind: str):
        self.kind = kind
        self.codebook = torch.from_numpy(hadamard_codebook())

    def build(self) -> nn.Module:
        """Return a fresh network."""
        return {"softmax": SoftmaxDigits, "fc": FullyConnected, "ecoc": EcocDigits}[self.kind]()

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Return the network input for images ``x`` ``[B, 1, 8, 8]``."""
        return x.reshape(len(x), 64) if self.kind == "fc" else x

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the training loss (cross-entropy; hinge on the codewords for ECOC)."""
        if self.kind == "ecoc":
            return F.relu(1 - model(x) * self.codebook[y]).sum(1).mean()
        logits = model.logits(x) if self.kind == "softmax" else model(x)
        return F.cross_entropy(logits, y)

    def decide(self, out: torch.Tensor) -> torch.Tensor:
        """Return the predicted class from the network's (ONNX) output."""
        return (out @ self.codebook.T).argmax(1) if self.kind == "ecoc" else out.argmax(1)


def train(task: Task, args: argparse.Namespace, gen: torch.Generator) -> nn.Module:
    """Train a fresh network of ``task`` on the train digits and return it (eval mode)."""
    images, labels = datasets.digits("train")
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    model = task.build()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    steps = args.epochs * -(-len(x) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps)
    for epoch in range(args.epochs):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(x), generator=gen).split(args.batch):
            xb = random_shift(x[batch], gen) if args.shift else x[batch]
            xb = task.prepare(xb)
            loss = task.loss(model, xb, y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(batch)
        if epoch % 20 == 19 or epoch == args.epochs - 1:
            print(f"epoch {epoch:3d} loss {total / len(x):.4f}", flush=True)
    return model.eval()


def evaluate(task: Task, model: nn.Module) -> dict:
    """Return test accuracy and per-class accuracy of ``model``."""
    images, labels = datasets.digits("test")
    with torch.no_grad():
        pred = task.decide(model(task.prepare(torch.from_numpy(images)))).numpy()
    per_class = [round(float(np.mean(pred[labels == d] == d)), 4) for d in range(10)]
    return {
        "test_images": len(labels),
        "test_accuracy": round(float(np.mean(pred == labels)), 4),
        "per_class_accuracy": per_class,
    }


def describe(task: Task) -> dict:
    """Return the manifest fields that say what the network computes."""
    if task.kind == "softmax":
        return {"architecture": "Conv3x3(8) ReLU, Conv3x3/2(16) ReLU, Dense(32) ReLU, "
                "Dense(10), Softmax", "input": [1, 1, 8, 8], "output": [1, 10],
                "output_meaning": "class probabilities; class = argmax"}  # fmt: skip
    if task.kind == "fc":
        return {"architecture": "Dense(32) ReLU x5, Dense(10)", "input": [1, 64],
                "output": [1, 10], "output_meaning": "logits; class = argmax",
                "input_meaning": "8x8 digit flattened row by row, in [0, 1]"}  # fmt: skip
    return {"architecture": "Conv3x3(8) ReLU, Conv3x3/2(16) ReLU, Dense(32) ReLU, "
            f"Dense({ECOC_BITS}), Tanh", "input": [1, 1, 8, 8], "output": [1, ECOC_BITS],
            "output_meaning": "per-bit outputs in (-1, 1); class = argmax_k output . C[k]",
            "codebook": "ecoc_codebook.npy", "codebook_shape": [10, ECOC_BITS],
            "codebook_rows": "row k is the +-1 codeword of class k (Hadamard rows 1..10)",
            "loss": "hinge: sum_i max(0, 1 - C[y, i] * output_i)"}  # fmt: skip


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(NAMES), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--wd", type=float, default=0.01)
    parser.add_argument(
        "--shift",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random 1-pixel shifts (default: on for the CNNs, off for fc)",
    )
    args = parser.parse_args()
    if args.shift is None:
        args.shift = args.model != "fc"
    return args


def main() -> None:
    """Train, evaluate and export one model with its state dict and manifest."""
    args = parse_args()
    started = time.time()
    gen = seed_everything(args.seed)
    task, name = Task(args.model), NAMES[args.model]
    model = train(task, args, gen)
    metrics = evaluate(task, model)
    print(metrics, flush=True)
    images, _ = datasets.digits("test")
    example = task.prepare(torch.from_numpy(images[:1]))
    if task.kind == "ecoc":
        np.save(MODELS / "ecoc_codebook.npy", hadamard_codebook())
    ops = export_onnx(model, example, MODELS / f"{name}.onnx")
    save_state(model, MODELS / f"{name}.pt")
    options = [f"--{k} {v}" for k, v in vars(args).items() if k != "shift"]
    options.append("--shift" if args.shift else "--no-shift")
    command = " ".join(["python", "examples/train/train_digits.py", *options])
    write_manifest(name, {
        "task": "single-digit classification of scikit-learn's 8x8 digits",
        **describe(task), "ops": ops, "relus": count_relus(model, example),
        "training_command": command, "seed": args.seed, "train_options": vars(args),
        **metrics,
    }, started)  # fmt: skip


if __name__ == "__main__":
    main()
