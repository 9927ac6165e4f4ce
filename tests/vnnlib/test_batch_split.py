"""The batched input-split search against the per-part search and a plain MILP.

On small random ReLU networks (exported to ONNX, so counterexamples are replayed by
onnxruntime) the three must give the same verdict; a part stopped by a limit is never a
proof; graphs the batched bounds cannot handle take the per-part search.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from robustc.compiler.input_split import (
    PROVED,
    UNKNOWN,
    Callbacks,
    SplitOptions,
    branch_and_bound,
)
from robustc.ir import logits
from robustc.ir.property import And, Box, Linear, Property
from robustc.verify import NOT_ROBUST, ROBUST, Problem, VerifyOptions, verify
from tests.verify.nets import conv_onnx, mlp_onnx, save_and_load


def _condition(graph, box, rng, kind):
    """``y0 > t`` with ``t`` near the sampled minimum of ``y0`` (either side), or "output 0
    beats outputs 1 and 2 by ``t``"."""
    from robustc.ir import evaluate

    x = box.lower + (box.upper - box.lower) * rng.random((4000, *box.lower.shape))
    y = evaluate(graph, x, batched=True).reshape(len(x), -1)
    if kind == "threshold":
        t = float(y[:, 0].min()) + float(rng.choice([-0.05, 0.02]))
        return Linear(np.array([1.0, 0.0, 0.0]), -t)
    t = float(min((y[:, 0] - y[:, 1]).min(), (y[:, 0] - y[:, 2]).min())) + float(
        rng.choice([-0.05, 0.02]))
    return And((Linear(np.array([1.0, -1.0, 0.0]), -t), Linear(np.array([1.0, 0.0, -1.0]), -t)))


@pytest.mark.parametrize("seed", range(8))
def test_batched_split_agrees_with_per_part_and_milp(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "net.onnx"
    graph = save_and_load(mlp_onnx(rng, [3, 12, 12, 3]), path)
    box = Box(np.full((1, 3), -1.5), np.full((1, 3), 1.5))
    cond = _condition(graph, box, rng, "threshold" if seed % 2 else "beats")
    problem = Problem("p", graph, (str(path),), Property("p", (box,), cond))
    verdicts = {}
    for name, split in (("batched", SplitOptions(min_unstable=0, batch=16)),
                        ("per_part", SplitOptions(min_unstable=0, batch=0)),
                        ("milp", None)):
        result = verify(problem, VerifyOptions(attack=False, threads=1, split=split))
        assert result.verdict in (ROBUST, NOT_ROBUST), result.reason
        if result.verdict == NOT_ROBUST:
            assert result.counterexample.margin <= 0  # onnxruntime's margin (replayed)
            assert box.contains(result.counterexample.input)
        if name == "batched" and result.stats.get("split_parts"):
            assert result.stats["split_batches"] > 0
        verdicts[name] = result.verdict
    assert len(set(verdicts.values())) == 1, verdicts


def _callbacks(decide_status):
    return Callbacks(attack=lambda part: None, gradient=lambda part: np.ones(part.lower.shape),
                     decide=lambda part, bounds, cases: (decide_status, "stopped by a limit"),
                     check=lambda part, x: None)


def test_a_limit_is_never_a_proof(tmp_path):
    graph = logits(save_and_load(mlp_onnx(np.random.default_rng(1), [2, 8, 8, 2]),
                                 tmp_path / "n.onnx"))[0]
    box = Box(np.full((1, 2), -2.0), np.full((1, 2), 2.0))
    cases = [[Linear(np.array([1.0, 0.0]), 1e6)]]  # y0 >= -1e6: possible on every part
    options = SplitOptions(batch=8, batch_max_unstable=10**6)
    out = branch_and_bound(graph, box, cases, _callbacks(UNKNOWN), tol=1e-6, options=options)
    assert out.status == UNKNOWN and out.stats["exact"] >= 1
    out = branch_and_bound(graph, box, cases, _callbacks(PROVED), tol=1e-6, options=options,
                           deadline=time.perf_counter() - 1.0)
    assert out.status == UNKNOWN and "time limit" in out.reason
    few = SplitOptions(batch=8, batch_max_unstable=-1, max_parts=20)
    out = branch_and_bound(graph, box, cases, _callbacks(PROVED), tol=1e-6, options=few)
    assert out.status == UNKNOWN and "parts" in out.reason


def test_other_graphs_take_the_per_part_search(tmp_path):
    graph = logits(save_and_load(conv_onnx(np.random.default_rng(2)), tmp_path / "c.onnx"))[0]
    shape = tuple(graph.input.shape)
    box = Box(np.zeros(shape), np.full(shape, 0.1))
    cases = [[Linear(np.eye(3)[0], 1e6)]]
    out = branch_and_bound(graph, box, cases, _callbacks(PROVED), tol=1e-6,
                           options=SplitOptions(batch=64, max_unstable=10**6))
    assert out.status == PROVED and "batches" not in out.stats
