"""Every phase of ``verify`` polls the deadline (issue 23, item 6), checked with a fake clock.

Every deadline in robustc is a ``time.perf_counter()`` value (``Run.deadline``, the
``deadline`` arguments of the bounds, the attack and the split searches). The tests replace
``time.perf_counter`` with a clock that runs with the real one until a chosen function
inside one phase is first called, then jumps a day ahead: the deadline passes *inside*
that phase, at a known point, whatever the machine's speed. Each test then asserts that the
run ends ``unknown`` with a reason naming the time limit, and counts the work the phase did
after the jump (calls of the wrapped step) to show that it stopped at its next poll instead
of finishing its work. No wall-clock time is asserted.

HiGHS keeps its own clock (C++), which no Python patch reaches; for the solving phase the
test checks the time limit handed to HiGHS is the time the run has left, and that no
further solve starts once the deadline has passed during one.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from robustc.ir import evaluate
from robustc.ir.property import And, Box, Property, output_gt
from robustc.verify import UNKNOWN, Problem, VerifyOptions, verify
from tests.verify.nets import mlp_onnx, save_and_load

LIMIT = 600.0  # the run's time limit: never reached unless the fake clock jumps


class JumpingClock:
    """``time.perf_counter`` that jumps a day ahead on :meth:`jump` (once)."""

    def __init__(self, real):
        self.real, self.offset = real, 0.0

    def __call__(self) -> float:
        return self.real() + self.offset

    @property
    def jumped(self) -> bool:
        return self.offset > 0

    def jump(self) -> None:
        if not self.jumped:
            self.offset = 86400.0


@pytest.fixture
def clock(monkeypatch):
    fake = JumpingClock(time.perf_counter)
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


def _trip(monkeypatch, clock, owner, name, counter: dict, after_call: bool = False):
    """Wrap ``owner.name``: its first call jumps the clock (before the call, or after it
    with ``after_call``); ``counter['after']`` counts the calls that start after the jump."""
    real = getattr(owner, name)

    def wrapped(*args, **kwargs):
        if clock.jumped:
            counter["after"] = counter.get("after", 0) + 1
        elif not after_call:
            clock.jump()
        out = real(*args, **kwargs)
        clock.jump()
        return out

    monkeypatch.setattr(owner, name, wrapped)


@pytest.fixture(scope="module")
def problems(tmp_path_factory):
    """A 3-12-12-3 ReLU network and a box (eps 0.5) on which it is robust, the bounds leave
    the violation open and PGD finds nothing: every phase has work to do. ``one``: one
    violation case (top label above the runner-up), ``two``: two (above both others)."""
    path = tmp_path_factory.mktemp("deadline") / "mlp.onnx"
    graph = save_and_load(mlp_onnx(np.random.default_rng(3), [3, 12, 12, 3]), path)
    x = np.random.default_rng(7).uniform(0, 1, graph.input.shape)
    y = evaluate(graph, x).ravel()
    order = np.argsort(y)
    top, second, third = int(order[-1]), int(order[-2]), int(order[-3])
    box = (Box(x - 0.5, x + 0.5),)
    one = Property("one", box, output_gt(3, top, second))
    two = Property("two", box, And((output_gt(3, top, second), output_gt(3, top, third))))
    return {p.name: Problem(p.name, graph, (str(path),), p) for p in (one, two)}


def _options(**kw) -> VerifyOptions:
    base = {"attack": False, "threads": 1, "time_limit": LIMIT, "solver": "highs"}
    return VerifyOptions(**{**base, **kw})


def _assert_timed_out(result):
    assert result.verdict == UNKNOWN, (result.verdict, result.reason)
    assert "time limit" in result.reason, result.reason


def test_without_a_jump_the_problem_is_decided(problems):
    """The oracle for the tests below: untouched, every strategy used there decides
    (so an ``unknown`` below comes from the jump, not from the problem)."""
    for strategy in ("milp", "input-split", "relu-split"):
        for problem in problems.values():
            got = verify(problem, _options(strategy=strategy))
            assert got.verdict == "robust", (strategy, problem.name, got.reason)


def test_the_attack_polls_the_deadline(problems, clock, monkeypatch):
    from robustc.runtime import falsify

    counter, real = {}, falsify.to_torch

    class Counting(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            if clock.jumped:
                counter["after"] = counter.get("after", 0) + 1
            clock.jump()
            return self.inner(x)

    monkeypatch.setattr(falsify, "to_torch", lambda *a, **k: Counting(real(*a, **k)))
    result = verify(problems["one"], _options(attack=True, attack_steps=50))
    _assert_timed_out(result)
    assert counter.get("after", 0) <= 1, counter  # 50 PGD steps without the poll


@pytest.mark.parametrize("method", ["symbolic", "crown"])
def test_the_bounds_poll_the_deadline(problems, clock, monkeypatch, method):
    from robustc.compiler import bounds
    from robustc.compiler.crown import engine

    counter = {}
    if method == "symbolic":
        _trip(monkeypatch, clock, bounds, "_crown", counter)
    else:
        _trip(monkeypatch, clock, engine.Crown, "crown", counter)
    result = verify(problems["one"], _options(strategy="milp", bounds=method))
    _assert_timed_out(result)
    assert counter.get("after", 0) == 0, counter


def test_the_input_split_polls_the_deadline(problems, clock, monkeypatch):
    from robustc.compiler import batch_bounds

    counter = {}
    _trip(monkeypatch, clock, batch_bounds, "batch_symbolic_bounds", counter)
    result = verify(problems["one"], _options(strategy="input-split"))
    _assert_timed_out(result)
    assert counter.get("after", 0) == 0, counter


def test_the_relu_split_polls_the_deadline(problems, clock, monkeypatch):
    from robustc.verify.relu_split import bounder

    counter = {}
    _trip(monkeypatch, clock, bounder.Bounder, "bound", counter)
    result = verify(problems["one"], _options(strategy="relu-split"))
    _assert_timed_out(result)
    assert counter.get("after", 0) <= 1, counter


def test_building_the_milp_polls_the_deadline(problems, clock, monkeypatch):
    from robustc.backends import highs
    from robustc.verify import milp

    built, solved = {}, {}
    _trip(monkeypatch, clock, milp, "encode", built)
    _trip(monkeypatch, clock, highs, "solve", solved)
    result = verify(problems["one"], _options(strategy="milp"))
    _assert_timed_out(result)
    assert clock.jumped and solved.get("after", 0) == 0, solved  # no solve once late


def test_building_the_milp_stops_between_nodes(problems, clock, monkeypatch):
    """The deadline passes while the first ReLU layer is encoded: the second ReLU layer is
    never encoded and no solve starts (resnet_4b's model took 4 s to build on a loaded
    core, which ran 12 s past a 60 s limit when the build began late)."""
    from robustc.backends import highs
    from robustc.backends.milp import encode as enc

    relus, solved = {}, {}
    _trip(monkeypatch, clock, enc, "_relu", relus, after_call=True)
    _trip(monkeypatch, clock, highs, "solve", solved)
    result = verify(problems["one"], _options(strategy="milp"))
    _assert_timed_out(result)
    assert "building the MILP" in result.reason, result.reason
    assert relus.get("after", 0) == 0 and solved.get("after", 0) == 0, (relus, solved)


def test_solving_polls_the_deadline(problems, clock, monkeypatch):
    from robustc.backends import highs

    limits, solved = [], {}
    real_make = highs.make_highs

    def make(model, options):
        h = real_make(model, options)
        limits.append((options.time_limit, h.getOptionValue("time_limit")[1]))
        return h

    monkeypatch.setattr(highs, "make_highs", make)
    _trip(monkeypatch, clock, highs, "solve", solved, after_call=True)
    result = verify(problems["two"], _options(strategy="milp"))
    _assert_timed_out(result)
    assert solved.get("after", 0) == 0, solved  # the second case is never solved
    assert len(limits) == 1, limits
    given, in_highs = limits[0]
    assert 0 < given <= LIMIT and in_highs == pytest.approx(given)
