"""Helpers shared by the training scripts: seeding, ONNX export, manifests.

The scripts in this folder are not part of the installed package; they import the data
loaders from ``robustc.runtime.datasets`` and put their outputs in ``examples/models``.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
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
