"""Shared helpers for the example tests: manifests, onnxruntime sessions, torch modules."""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "examples" / "models"
TRAIN = ROOT / "examples" / "train"
SAMPLES = ROOT / "examples" / "samples"
MLC = ("mlc_plain", "mlc_l0", "mlc_pgd")
DD64 = ("dd64_plain", "dd64_l0", "dd64_pgd")
DIGIT_MODELS = ("digits_softmax", "fc_digits", "ecoc")
GENERATORS = tuple(f"gen_digit{d}" for d in range(10))
ALL_MODELS = MLC + DD64 + DIGIT_MODELS + GENERATORS
PLAIN_OPS = {"Conv", "Relu", "MaxPool", "Flatten", "Reshape", "Gemm", "MatMul", "Add"}
OUTPUT_OPS = {"Sigmoid", "Softmax", "Tanh", "Clip"}


def manifest(name: str) -> dict:
    """Return the parsed manifest ``examples/models/<name>.json``."""
    return json.loads((MODELS / f"{name}.json").read_text())


@cache
def session(name: str):
    """Return a cached onnxruntime session for ``examples/models/<name>.onnx``."""
    import onnxruntime as ort

    return ort.InferenceSession(str(MODELS / f"{name}.onnx"), providers=["CPUExecutionProvider"])


def run_onnx(name: str, inputs: np.ndarray) -> np.ndarray:
    """Run the batch-1 ONNX model on each row of ``inputs`` and stack the outputs."""
    sess = session(name)
    feed = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {feed: row[None]})[0] for row in inputs])


def torch_module(name: str):
    """Rebuild the PyTorch module ``name`` was exported from and load its saved weights."""
    import torch

    if str(TRAIN) not in sys.path:
        sys.path.insert(0, str(TRAIN))
    import models

    info = manifest(name)
    if name in MLC:
        opts = info["train_options"]
        module = models.MultiLabelCNN(tuple(opts["channels"]), tuple(info["input"][2:]),
                                      opts.get("stride", 1))  # fmt: skip
    elif name in DD64:
        module = models.DoubleMnistCNN()
    elif name.startswith("gen_digit"):
        module = models.Generator(info["noise_dim"])
    else:
        module = {"digits_softmax": models.SoftmaxDigits, "fc_digits": models.FullyConnected,
                  "ecoc": models.EcocDigits}[name]()  # fmt: skip
    module.load_state_dict(torch.load(MODELS / f"{name}.pt", weights_only=True))
    return module.eval()
