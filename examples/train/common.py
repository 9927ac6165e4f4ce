"""Helpers shared by the training scripts: seeding, ONNX export, manifests.

The scripts in this folder are not part of the installed package; they import the data
loaders from ``robustc.runtime.datasets`` and put their outputs in ``examples/models``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

EXAMPLES = Path(__file__).resolve().parents[1]
REPO = EXAMPLES.parent
MODELS = EXAMPLES / "models"
SAMPLES = EXAMPLES / "samples"
DATA = EXAMPLES / "data"
OPSET = 13
# Ops robustc's importer is meant to lower; everything an exported graph uses must be here.
PLAIN_OPS = {
    "Conv", "Relu", "MaxPool", "Flatten", "Reshape", "Gemm", "MatMul", "Add",
    "Sigmoid", "Softmax", "Tanh", "Clip",
}  # fmt: skip
OUTPUT_ONLY_OPS = {"Sigmoid", "Softmax", "Tanh", "Clip"}

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch, make torch deterministic on 1 thread; return a
    torch generator seeded with ``seed`` for data order and augmentation."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # 2 threads on 2 shared cores is ~10x slower here
    torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(seed)


def sha256(path: Path) -> str:
    """Return the hex sha256 of the file at ``path``."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> list[str]:
    """Export ``model`` (in eval mode) to ``path`` with a fixed batch of 1 and return the
    graph's op types in order. Raises ``RuntimeError`` if an op is outside ``PLAIN_OPS`` or
    an output-only op is not the last node."""
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model, (example,), str(path), input_names=["input"], output_names=["output"],
        opset_version=OPSET, do_constant_folding=True, dynamo=False,
    )  # fmt: skip
    graph = onnx.load(str(path)).graph
    ops = [node.op_type for node in graph.node if node.op_type != "Constant"]
    bad = sorted(set(ops) - PLAIN_OPS)
    late = [op for op in ops[:-1] if op in OUTPUT_ONLY_OPS]
    if bad or late:
        raise RuntimeError(f"{path.name}: unexpected ops {bad}, output ops not last: {late}")
    return ops


def save_state(model: nn.Module, path: Path) -> None:
    """Save ``model``'s float32 state dict to ``path`` (a few KB; tests compare it to ONNX)."""
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, path)


def write_manifest(name: str, fields: dict[str, Any], started: float) -> Path:
    """Write ``models/<name>.json`` with the ONNX file's sha256, size, train time and
    ``fields``; return its path."""
    onnx_path = MODELS / f"{name}.onnx"
    manifest = {
        "name": name,
        "file": onnx_path.name,
        "sha256": sha256(onnx_path),
        "bytes": onnx_path.stat().st_size,
        "opset": OPSET,
        **fields,
        "train_seconds": round(time.time() - started, 1),
        "torch": torch.__version__,
        # the weights depend on these too (docs/examples.md, "Rebuilding")
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    path = MODELS / f"{name}.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def count_relus(model: nn.Module, example: torch.Tensor) -> int:
    """Return the number of scalar ReLU activations ``model`` computes for ``example``."""
    total = 0

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        total += output[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        model(example)
    for handle in handles:
        handle.remove()
    return total


def add_training_options(parser: argparse.ArgumentParser, names: dict[str, str], *,
                         epochs: int, wd: float, train_eps: float, train_steps: int,
                         warmup: int) -> None:
    """The options both multi-label training scripts take (``--defence`` from ``names``),
    with that script's defaults."""
    parser.add_argument("--defence", choices=sorted(names), default="none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--pairs", type=int, default=10_000, help="fresh pairs per epoch")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-2, help="peak of the one-cycle schedule")
    parser.add_argument("--wd", type=float, default=wd, help="AdamW weight decay")
    parser.add_argument("--train-eps", type=float, default=train_eps)
    parser.add_argument("--train-steps", type=int, default=train_steps)
    parser.add_argument("--clean-weight", type=float, default=0.5,
                        help="PGD training loss = w * clean loss + (1 - w) * adversarial loss")
    parser.add_argument("--warmup", type=int, default=warmup, help="epochs to ramp PGD eps up")
    parser.add_argument("--name", default=None, help="output name (default from --defence)")


def command_line(script: str, args: argparse.Namespace) -> str:
    """Return the command that reproduces a run of ``examples/train/<script>``."""
    words = ["python", f"examples/train/{script}"]
    for key, value in vars(args).items():
        if value is not None:
            values = value if isinstance(value, (list, tuple)) else [value]
            words += [f"--{key.replace('_', '-')}", *map(str, values)]
    return " ".join(words)


def pgd_attack(
    loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float, steps: int,
    gen: torch.Generator,
) -> torch.Tensor:  # fmt: skip
    """L-inf PGD from a random start that maximises ``loss_fn(adv)``; returns images within
    ``eps`` of ``x`` and inside [0, 1]."""
    step = 2.5 * eps / steps
    adv = (x + (torch.rand(x.shape, generator=gen) * 2 - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(adv), adv)
        adv = adv.detach() + step * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv.detach()
