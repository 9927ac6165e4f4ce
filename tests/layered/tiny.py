"""A tiny multi-label network whose layered neighbourhoods an LP enumeration decides exactly.

The network is ``y = W2 relu(W1 x + b1) + b2`` on a 3 x 4 image, 4 hidden ReLUs, 2 labels;
label 0 is present iff ``y_0 > 0``. The oracle below is independent of robustc's solvers:
the minimum of ``y_0`` over a box is the minimum over the 16 activation patterns of one
scipy ``linprog`` each.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
from scipy.optimize import linprog

H, W, HIDDEN = 3, 4, 4
SEED = 3


def weights() -> dict[str, np.ndarray]:
    """The network's parameters (seeded) and the centre image ``x0`` (1, 1, 3, 4)."""
    rng = np.random.default_rng(SEED)
    w1 = rng.normal(size=(HIDDEN, H * W))
    b1 = rng.normal(size=HIDDEN) * 0.5
    w2 = rng.normal(size=(2, HIDDEN))
    x0 = rng.uniform(0.2, 0.8, size=(1, 1, H, W))
    hidden = np.maximum(w1 @ x0.ravel() + b1, 0)
    b2 = np.array([0.3 - w2[0] @ hidden, 0.0])  # y_0(x0) = 0.3: label 0 present
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "x0": x0}


def write_onnx(path: Path, p: dict[str, np.ndarray]) -> Path:
    """Write the network as ONNX (Flatten, Gemm, Relu, Gemm)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(p[k].astype(np.float32), k) for k in ("w1", "b1", "w2",
                                                                          "b2")]
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "w1", "b1"], ["z"], transB=1),
             helper.make_node("Relu", ["z"], ["h"]),
             helper.make_node("Gemm", ["h", "w2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, H, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def min_margin(p: dict[str, np.ndarray], lower: np.ndarray, upper: np.ndarray,
               stop_at: float = -np.inf) -> float:
    """The exact minimum of ``y_0`` over the box (LP per activation pattern); with
    ``stop_at``, the first pattern's minimum at or below it as soon as one is found (enough
    to decide whether the minimum is above ``stop_at``)."""
    w1, b1, w2, b2 = p["w1"], p["b1"], p["w2"], p["b2"]
    bounds = list(zip(lower.ravel(), upper.ravel(), strict=True))
    best = np.inf
    for pattern in product((0.0, 1.0), repeat=HIDDEN):
        on = np.array(pattern)
        # on: z_j >= 0  <=>  -w1_j x <= b1_j; off: z_j <= 0  <=>  w1_j x <= -b1_j
        sign = np.where(on > 0, -1.0, 1.0)
        a_ub = sign[:, None] * w1
        b_ub = np.where(on > 0, b1, -b1)
        c = (w2[0] * on) @ w1
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
        if res.status == 0:
            best = min(best, float(res.fun + (w2[0] * on) @ b1 + b2[0]))
            if best <= stop_at:
                break
    return best


def forward(p: dict[str, np.ndarray], xs: np.ndarray) -> np.ndarray:
    """``y_0`` of a batch of images (numpy)."""
    flat = xs.reshape(len(xs), -1)
    return np.maximum(flat @ p["w1"].T + p["b1"], 0) @ p["w2"][0] + p["b2"][0]
