"""The symbolic bounds honour their deadline inside their expensive steps (issue 23, item 4).

On a 16-channel 128x128 conv net, ``robustc verify --timeout 60`` ran 53 s past the limit:
the sparse matrices of the convolutions (``prepare_linear_ops``, 12 s each under load)
were built without looking at the deadline, and one block of rows went back through the
whole graph between two looks. Now a convolution's matrix is built a block of output
channels at a time (``robustc.ir.linear.PART_ENTRIES``) with a check between blocks, and
the back-substitution checks before each node. A fake clock (``time.perf_counter``) jumps a
day ahead inside the first unit of work and the test counts the units done after the jump:
none. No wall-clock time is asserted.
"""

from __future__ import annotations

import time
from unittest.mock import patch

import numpy as np
import pytest

from robustc.compiler import bounds
from robustc.compiler.bound_types import BoundsTimeout
from robustc.ir import Conv, linear
from robustc.ir.interpret import evaluate
from tests.faults.test_deadline_phases import JumpingClock
from tests.verify.nets import conv_onnx, save_and_load


@pytest.fixture
def graph(tmp_path):
    """A fresh graph per test (the linear maps are cached per graph object)."""
    return save_and_load(conv_onnx(np.random.default_rng(5), hw=(8, 8), channels=(2, 4, 4),
                                   classes=3), tmp_path / "conv.onnx")


@pytest.fixture
def clock(monkeypatch):
    fake = JumpingClock(time.perf_counter)
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


def _count_after_jump(monkeypatch, clock, owner, name: str, armed=None) -> dict:
    """Wrap ``owner.name``: its first call (while ``armed['on']``, when given) jumps the
    clock after it returns; ``counter['after']`` counts the calls started after the jump
    on another first argument (another operator: the one that jumped may still finish its
    node's other side)."""
    counter = {"after": 0, "calls": 0}
    real = getattr(owner, name)
    jumped_on = []

    def wrapped(*args, **kwargs):
        counter["calls"] += 1
        if clock.jumped and not (args and jumped_on and args[0] is jumped_on[0]):
            counter["after"] += 1
        out = real(*args, **kwargs)
        if not clock.jumped and (armed is None or armed.get("on")):
            jumped_on.append(args[0] if args else None)
            clock.jump()
        return out

    monkeypatch.setattr(owner, name, wrapped)
    return counter


def test_a_convolution_built_in_parts_is_the_same_map(graph):
    """One output channel per part (PART_ENTRIES = 1) gives the matrix of one part, and
    both give the interpreter's output on random points."""
    conv = next(n for n in graph.nodes if isinstance(n, Conv))
    shapes = [graph[i].shape for i in conv.inputs]
    checks = []
    whole, offset = linear.affine_map(conv, shapes)
    with patch.object(linear, "PART_ENTRIES", 1):
        parts, offset_p = linear.affine_map(conv, shapes, lambda: checks.append(1))
    assert len(checks) == conv.weight.shape[0]  # one check per output channel
    assert (whole[0] != parts[0]).nnz == 0 and np.array_equal(offset, offset_p)
    x = np.random.default_rng(0).uniform(-1, 1, (5, int(np.prod(graph.input.shape))))
    src = graph[conv.inputs[0]]
    assert src.name == graph.input.name  # the first conv reads the input
    for row in x:
        want = evaluate(graph, row.reshape(graph.input.shape), keep_all=True)[conv.name]
        np.testing.assert_allclose(parts[0] @ row + offset_p, want.ravel(), atol=1e-5)


def test_preparing_the_maps_stops_inside_a_convolution(graph, monkeypatch, clock):
    monkeypatch.setattr(linear, "PART_ENTRIES", 1)
    counter = _count_after_jump(monkeypatch, clock, linear, "_csr")
    x = np.full(graph.input.shape, 0.5)
    with pytest.raises(BoundsTimeout, match="preparing the linear map of node"):
        bounds.symbolic_bounds(graph, x - 0.1, x + 0.1, deadline=time.perf_counter() + 3600)
    assert clock.jumped and counter["after"] == 0, counter


def test_a_block_of_the_symbolic_bounds_stops_at_the_next_node(graph, monkeypatch, clock):
    """The clock jumps in the first backward step of a block of the output's rows (which
    go back through the gemm, both convolutions and the pool to the input)."""
    x = np.full(graph.input.shape, 0.5)
    bounds.prepare_linear_ops(graph)  # the maps first (not part of this test)
    armed = {}
    real = bounds._backsubstitute

    def backsubstitute(graph_, prep, target, *args, **kwargs):
        armed["on"] = target == graph.outputs[0]
        return real(graph_, prep, target, *args, **kwargs)

    monkeypatch.setattr(bounds, "_backsubstitute", backsubstitute)
    untouched = _count_after_jump(monkeypatch, JumpingClock(time.perf_counter),
                                  bounds.LinearOp, "backward", armed)
    bounds.symbolic_bounds(graph, x - 0.3, x + 0.3)
    assert untouched["after"] >= 1  # oracle: the output's block has more steps to go
    counter = _count_after_jump(monkeypatch, clock, bounds.LinearOp, "backward", armed)
    with pytest.raises(BoundsTimeout, match="bounding node"):
        bounds.symbolic_bounds(graph, x - 0.3, x + 0.3, deadline=time.perf_counter() + 3600)
    assert clock.jumped and counter["after"] == 0, counter


def test_a_symbolic_block_that_cannot_end_before_the_deadline_is_not_started(graph,
                                                                             monkeypatch):
    """As for CROWN (test_crown_deadline.py): blocks of 10 s, a deadline 15 s away, one
    block started."""
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(bounds, "BLOCK_ENTRIES", 1)  # one row per block
    real, blocks = bounds._backsubstitute, []

    def backsubstitute(*args, **kwargs):
        blocks.append(1)
        out = real(*args, **kwargs)
        now[0] += 10.0
        return out

    monkeypatch.setattr(bounds, "_backsubstitute", backsubstitute)
    x = np.full(graph.input.shape, 0.5)
    with pytest.raises(BoundsTimeout, match="bounding node"):
        bounds.symbolic_bounds(graph, x - 0.3, x + 0.3, deadline=15.0)
    assert len(blocks) == 1, blocks
