"""The batched input-split search against the per-part search and a plain MILP.

On small random ReLU networks (exported to ONNX, so counterexamples are replayed by
onnxruntime) the three must give the same verdict; a part stopped by a limit is never a
proof; graphs the batched bounds cannot handle take the per-part search.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from robustc.ir import logits
from robustc.ir.property import And, Box, Linear, Property
from robustc.verify import NOT_ROBUST, ROBUST, Problem, VerifyOptions, verify
from robustc.verify.cases import PROVED, UNKNOWN
from robustc.verify.input_split.search import Callbacks, SplitOptions, branch_and_bound
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


def _slab_onnx(offset: float):
    """``y = relu(x0 - 0.9995) - 0.01 |x1 - 0.3| - offset`` on three inputs: for a small
    ``offset`` it is positive only in a thin slab on the face ``x0 = 1`` (where gradients
    that start inside the box are zero in ``x0``)."""
    from onnx import TensorProto, helper, numpy_helper

    w1 = np.array([[1, 0, 0], [0, 1, 0], [0, -1, 0]], np.float32)
    b1 = np.array([-0.9995, -0.3, 0.3], np.float32)
    w2 = np.array([[1, -0.01, -0.01], [0, 0, 0]], np.float32)
    b2 = np.array([-offset, 0], np.float32)
    inits = [numpy_helper.from_array(a, n) for n, a in (("W1", w1), ("b1", b1), ("W2", w2),
                                                        ("b2", b2))]
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "slab", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("offset", [1e-4, 6e-4])
def test_local_search_finds_thin_violations_and_never_fakes_one(tmp_path, offset):
    path = tmp_path / "slab.onnx"
    graph = save_and_load(_slab_onnx(offset), path)
    box = Box(np.zeros((1, 3)), np.ones((1, 3)))
    cond = Linear(np.array([-1.0, 0.0]), 0.0)            # the property: y0 <= 0
    problem = Problem("slab", graph, (str(path),), Property("slab", (box,), cond))
    split = SplitOptions(min_unstable=0, batch=16, search_after=0.0, search_share=0.5)
    result = verify(problem, VerifyOptions(attack=False, threads=1, split=split))
    if offset > 5e-4:           # y0 <= 0.0005 - offset < 0 everywhere: a proof
        assert result.verdict == ROBUST, result.reason
        return
    assert result.verdict == NOT_ROBUST, result.reason
    x = result.counterexample.input.ravel()
    assert box.contains(result.counterexample.input)
    # the forward pass (float64, written out here) agrees: inside the slab, y0 > 0
    y0 = max(x[0] - 0.9995, 0) - 0.01 * abs(x[1] - 0.3) - offset
    assert y0 > 0 and x[0] > 0.9995 + offset


def test_local_search_reaches_a_thin_region_on_a_face(tmp_path):
    from robustc.ir.property import dnf, negate
    from robustc.verify.cases import case_atoms, margin_graph
    from robustc.verify.input_split.search import LocalSearch, _case_table

    graph = save_and_load(_slab_onnx(1e-4), tmp_path / "slab.onnx")
    cases = dnf(negate(Linear(np.array([-1.0, 0.0]), 0.0)))
    atoms = case_atoms(cases)
    search = LocalSearch(margin_graph(graph, atoms), _case_table(cases, atoms),
                         np.zeros(3), np.ones(3), seed=3, samples=2000)
    x = None
    for _ in range(100):
        x = search.run(0.05)
        if x is not None:
            break
    assert x is not None
    assert max(x[0] - 0.9995, 0) - 0.01 * abs(x[1] - 0.3) - 1e-4 > 0  # inside the slab
    first = search.offered
    again = search.run(0.2)                     # a point is offered again only if better
    assert again is None or search.offered > first
