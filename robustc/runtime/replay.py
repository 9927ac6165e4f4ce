"""Counterexample replay on the original ONNX model(s) with onnxruntime.

A witness is never reported on a solver's or an attack's word: it is cast to float32 (kept
inside the input box despite rounding), run through onnxruntime on the original ONNX file,
and checked against the property's condition on the network's logits. The logits tensor is
the input of the trailing Sigmoid/Softmax/Tanh nodes when the file has them; the replayer
exposes it as an extra output so conditions are checked on exactly what robustc lowered.

A composition (generator into classifier) replays as a chain of ONNX files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from robustc.errors import ModelError
from robustc.ir.property import Box, Condition, holds, margin

_OUTPUT_MAPS = ("Sigmoid", "Softmax", "Tanh", "Identity")


@dataclass(frozen=True)
class Replay:
    """What onnxruntime says about a witness."""

    input: np.ndarray      # float32, the input's shape, inside the box
    output: np.ndarray     # the network's output as the ONNX file returns it
    logits: np.ndarray     # the tensor the condition is about
    margin: float          # the condition's margin on the logits (negative: violated)
    violated: bool         # the condition does not hold (exactly, on finite float32 logits)


def logits_name(model) -> str:
    """The tensor before the trailing output maps (Sigmoid, Softmax, Tanh, Identity) of an
    ONNX model's first output: what robustc calls the network's logits."""
    producers = {out: node for node in model.graph.node for out in node.output}
    name = model.graph.output[0].name
    while name in producers and producers[name].op_type in _OUTPUT_MAPS:
        name = producers[name].input[0]
    return name


@lru_cache(maxsize=16)
def _session(path: str, mtime: float):
    import onnx
    import onnxruntime as ort

    model = onnx.load(path)
    logits = logits_name(model)
    outputs = [o.name for o in model.graph.output]
    if logits not in outputs:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(logits))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session, session.get_inputs()[0].name, outputs[0], logits


def run_onnx(paths: tuple[str, ...], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run ``x`` (float32, the first network's input shape) through the chain of files;
    returns the last network's (output, logits)."""
    value = x
    output = logits = None
    for path in paths:
        if not os.path.exists(path):
            raise ModelError(f"network file not found: {os.path.abspath(path)}")
        session, in_name, out_name, logits_out = _session(path, os.path.getmtime(path))
        shape = session.get_inputs()[0].shape
        static = [d if isinstance(d, int) else 1 for d in shape]
        feed = value.reshape(static) if np.prod(static) == value.size else value
        results = dict(zip([o.name for o in session.get_outputs()],
                           session.run(None, {in_name: feed.astype(np.float32)}), strict=True))
        output, logits = results[out_name], results[logits_out]
        value = output
    return output, logits


def inside_float32(x: np.ndarray, box: Box) -> np.ndarray:
    """``x`` clipped to ``box`` and cast to float32 without leaving the box."""
    x = np.clip(np.asarray(x, dtype=np.float64), box.lower, box.upper)
    x32 = x.astype(np.float32)
    low = x32.astype(np.float64) < box.lower
    x32[low] = np.nextafter(x32[low], np.float32(np.inf))
    high = x32.astype(np.float64) > box.upper
    x32[high] = np.nextafter(x32[high], np.float32(-np.inf))
    return x32


def replay(paths: tuple[str, ...], x: np.ndarray, box: Box, condition: Condition) -> Replay:
    """Replay witness ``x`` on the ONNX file(s); see :class:`Replay`."""
    x32 = inside_float32(x.reshape(box.lower.shape), box)
    output, logits = run_onnx(paths, x32)
    flat = np.asarray(logits, dtype=np.float64).reshape(1, -1)
    # NaN logits fail every comparison, so "not holds" would call them a violation: a
    # witness counts only when the network's answer on it is a number.
    violated = not bool(holds(condition, flat)[0]) and bool(np.isfinite(flat).all())
    return Replay(x32, np.asarray(output), np.asarray(logits), float(margin(condition, flat)[0]),
                  violated)
