"""The CROWN engine honours its deadline inside one back-substitution (issue 23, item 4).

One block of rows carried back through a large convolutional graph took tens of seconds,
and the deadline was read only between blocks and between alpha-CROWN's steps: a 128x128
conv net ran 44 s past ``--timeout 120``. Here a fake clock (``time.perf_counter``) jumps a
day ahead inside the first node's backward rule of a back-substitution, and the test counts
the backward rules applied after the jump: the engine must stop at the next node (none
applied), where before it finished the whole block (or step). No wall-clock time is
asserted.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from robustc.compiler.bound_types import BoundsTimeout
from robustc.compiler.crown.engine import Crown
from robustc.ir import Relu, evaluate
from tests.faults.test_deadline_phases import JumpingClock
from tests.verify.nets import conv_onnx, save_and_load


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """conv -> relu -> maxpool -> conv -> relu -> gemm on a 1x8x8 input."""
    path = tmp_path_factory.mktemp("crown_deadline") / "conv.onnx"
    return save_and_load(conv_onnx(np.random.default_rng(5), hw=(8, 8), channels=(1, 4, 4),
                                   classes=3), path)


@pytest.fixture
def clock(monkeypatch):
    fake = JumpingClock(time.perf_counter)
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


def _count_backward(monkeypatch, clock, crown: Crown, armed: dict) -> dict:
    """Wrap the linear nodes' backward rule of ``crown``: once ``armed['on']`` is set, its
    next call jumps the clock after it returns; ``counter['after']`` counts the calls
    started after the jump."""
    counter = {"after": 0, "calls": 0}
    real = crown.ops.backward

    def backward(node, a):
        counter["calls"] += 1
        if clock.jumped:
            counter["after"] += 1
        out = real(node, a)
        if armed.get("on"):
            clock.jump()
        return out

    monkeypatch.setattr(crown.ops, "backward", backward)
    return counter


def _box(graph, eps=0.3):
    x = np.random.default_rng(1).uniform(0, 1, graph.input.shape)
    return x - eps, x + eps


def test_without_a_jump_the_bounds_need_several_backward_rules_per_block(graph, monkeypatch,
                                                                          clock):
    """The oracle for the test below: untouched, one back-substitution applies the backward
    rule of several nodes (so stopping after the first is observable)."""
    crown = Crown(graph, entries=1 << 30)  # one block per node
    counter = _count_backward(monkeypatch, clock, crown, {})
    out = crown.bounds(*_box(graph), deadline=time.perf_counter() + 3600.0)
    blocks = sum(1 for n in graph.nodes if n.name in crown.targets)
    assert counter["calls"] > blocks and out.lower[graph.outputs[0]].shape[1] == 3


def test_crown_bounds_stop_inside_a_block(graph, monkeypatch, clock):
    crown = Crown(graph, entries=1 << 30)
    armed = {"on": True}
    counter = _count_backward(monkeypatch, clock, crown, armed)
    with pytest.raises(BoundsTimeout, match="time limit reached while bounding node"):
        crown.bounds(*_box(graph), deadline=time.perf_counter() + 3600.0)
    assert clock.jumped and counter["after"] == 0, counter


def test_alpha_crown_stops_inside_a_step_and_keeps_a_valid_bound(graph, monkeypatch, clock):
    """The jump happens inside the first Adam step's back-substitution: the step stops at
    the next node, no further step or final bound is computed, and the bound returned is
    CROWN's (valid for any slopes), equal to the one computed without a deadline."""
    crown = Crown(graph)
    lo, hi = _box(graph)
    w, b = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]]), np.zeros(2)
    with torch.no_grad():
        bounds = crown.bounds(lo, hi)
        tbox = crown.box(lo, hi)
        plain = crown.objective(w, b, bounds, tbox)
    assert any(bounds.relax[n.name][3].any() for n in graph.nodes
               if isinstance(n, Relu))  # alpha-CROWN has slopes to tune
    armed: dict = {}
    counter = _count_backward(monkeypatch, clock, crown, armed)
    real_tune = crown.tune

    def tune(*args, **kwargs):
        armed["on"] = True  # jump inside the first step
        return real_tune(*args, **kwargs)

    monkeypatch.setattr(crown, "tune", tune)
    got = crown.optimise(w, b, bounds, tbox, steps=20, deadline=time.perf_counter() + 3600.0)
    assert clock.jumped and counter["after"] == 0, counter
    assert torch.equal(got, plain)


def test_a_late_alpha_crown_raises_before_any_work(graph, monkeypatch, clock):
    crown = Crown(graph)
    lo, hi = _box(graph)
    with torch.no_grad():
        bounds = crown.bounds(lo, hi)
    counter = _count_backward(monkeypatch, clock, crown, {})
    clock.jump()
    with pytest.raises(BoundsTimeout):
        crown.optimise(np.eye(3)[:1], np.zeros(1), bounds, crown.box(lo, hi), steps=20,
                       deadline=time.perf_counter() - 1.0)
    assert counter["after"] == 0, counter


class SteppingClock:
    """``time.perf_counter`` that stands still except when :meth:`advance` is called."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_block_that_cannot_end_before_the_deadline_is_not_started(graph, monkeypatch):
    """Each block of rows takes 10 s (a clock advanced after each back-substitution) and
    the deadline is 15 s away: the second block would end past it, so it is not started
    (it was, and its bounds were thrown away at the next check)."""
    clock = SteppingClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    crown = Crown(graph, entries=2 * 4 * 8 * 8)  # one row per block
    real, blocks = crown.backsubstitute, []

    def backsubstitute(*args, **kwargs):
        blocks.append(1)
        out = real(*args, **kwargs)
        clock.advance(10.0)
        return out

    monkeypatch.setattr(crown, "backsubstitute", backsubstitute)
    with pytest.raises(BoundsTimeout):
        crown.bounds(*_box(graph), deadline=15.0)
    assert len(blocks) == 1, blocks


def test_a_pgd_step_that_cannot_end_before_the_deadline_is_not_started(graph, monkeypatch):
    """The same rule for the PGD attack: each step (a forward pass) takes 10 s, the
    deadline is 15 s away, the box is robust (no early stop): one step (two before)."""
    from robustc.ir.property import Box, output_gt
    from robustc.runtime.falsify import pgd_falsify
    from robustc.runtime.torch_module import to_torch

    clock = SteppingClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    inner, steps = to_torch(graph, dtype=torch.float32), []

    class Slow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            steps.append(1)
            clock.advance(10.0)
            return self.inner(x)

    x = np.random.default_rng(1).uniform(0, 1, graph.input.shape)
    y = evaluate(graph, x).ravel()
    top, second = np.argsort(-y)[:2]
    _, margin = pgd_falsify(graph, Box(x - 1e-6, x + 1e-6), output_gt(y.size, int(top),
                            int(second)), steps=50, restarts=2, module=Slow(), deadline=15.0)
    assert margin > 0 and len(steps) == 1, (margin, steps)
