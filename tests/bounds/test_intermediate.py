"""alpha-CROWN on intermediate bounds (robustc.compiler.crown.intermediate) against sampled
and attacked activations (float64 interpreter) and against CROWN's own bounds.

On random graphs of every family the linear bounds cover (MLPs, leaky MLPs, convolutions
with max-pooling, branchy DAGs, residual networks): every tightened bound contains every
activation of uniformly sampled, corner and PGD-attacked inputs, no bound is looser than
CROWN's, and an objective bounded through the tightened relaxations is still below every
sampled value.
"""

from __future__ import annotations

import time

import numpy as np
from bounds_attack import attack, sample_box, violations
from bounds_helpers import networks, random_mlp
from hypothesis import given, settings

from robustc.compiler.crown.engine import Crown
from robustc.compiler.crown.intermediate import tighten_intermediate
from robustc.ir import Relu, evaluate

NETWORKS = networks(families=("mlp", "leaky_mlp", "conv", "branchy", "residual"),
                    out_maps=(None,), eps=(0.05, 0.3, 1.0))


class _Numpy:
    """The ``of(name)`` view of GraphBounds that ``violations`` reads (node shapes)."""

    def __init__(self, gb, graph):
        self.gb, self.graph = gb, graph

    def of(self, name):
        shape = self.graph[name].shape
        return (self.gb.lower[name][0].numpy().reshape(shape),
                self.gb.upper[name][0].numpy().reshape(shape))


def _points(graph, lo, hi, rng):
    return np.concatenate([sample_box(rng, lo, hi, 600, 150),
                           attack(graph, lo, hi, rng, 60, 12)])


@settings(max_examples=30, deadline=None)
@given(NETWORKS)
def test_tightened_bounds_hold_and_are_no_looser_than_crown(case):
    graph, lo, hi, rng = case
    crown = Crown(graph)
    box = crown.box(lo, hi)
    plain = crown.bounds(lo, hi)
    tight = crown.bounds(lo, hi)
    stats = tighten_intermediate(crown, box, tight, steps=8, lr=0.3)
    assert stats["complete"] and stats["unstable_after"] <= stats["unstable_before"]
    for node in graph.nodes:
        assert np.all(tight.lower[node.name].numpy() >= plain.lower[node.name].numpy())
        assert np.all(tight.upper[node.name].numpy() <= plain.upper[node.name].numpy())
    xs = _points(graph, lo, hi, rng)
    assert not violations(graph, _Numpy(tight, graph), xs)
    # an objective through the tightened relaxations: higher, and still a lower bound
    w = rng.normal(size=(3, graph.output.size))
    b = rng.normal(size=3)
    after = crown.objective(w, b, tight, box)[0].numpy()
    ys = evaluate(graph, xs.reshape((-1, *graph.input.shape)), batched=True)
    values = ys.reshape(len(xs), -1) @ w.T + b
    assert np.all(after <= values.min(axis=0) + 1e-9)


def _deep_mlp():
    """A random 4-hidden-layer MLP, a box of radius 0.5, its Crown and the box tensors."""
    rng = np.random.default_rng(4)
    graph = random_mlp(rng, [6, 30, 30, 30, 30, 3])
    centre = rng.normal(size=graph.input.shape)
    lo, hi = centre - 0.5, centre + 0.5
    crown = Crown(graph)
    return rng, graph, lo, hi, crown, crown.box(lo, hi)


def test_it_tightens_a_deep_mlp_and_stops_at_the_deadline():
    rng, graph, lo, hi, crown, box = _deep_mlp()
    tight = crown.bounds(lo, hi)
    stats = tighten_intermediate(crown, box, tight, steps=20)
    plain = crown.bounds(lo, hi)
    gain = sum(float((plain.upper[n] - plain.lower[n]).sum() - (tight.upper[n] -
                     tight.lower[n]).sum()) for n in plain.lower)
    assert stats["rows"] > 0 and gain > 0  # some interval got narrower
    assert not violations(graph, _Numpy(tight, graph), _points(graph, lo, hi, rng))
    late = crown.bounds(lo, hi)
    stats = tighten_intermediate(crown, box, late, steps=20, deadline=time.perf_counter() - 1)
    assert not stats["complete"] and stats["steps"] == 0
    for n in plain.lower:  # nothing changed, nothing lost
        assert np.array_equal(late.lower[n].numpy(), plain.lower[n].numpy())


def test_steps_are_fitted_so_that_every_node_is_reached_by_the_deadline(monkeypatch):
    """With a deadline that 20 steps on every node would overrun, the first node gets its
    20 steps and the later ones fewer, so that the last node is still tightened (its bounds
    matter most to a search); the bounds hold on sampled and attacked points. The clock is
    a fake one that each node advances by its work (rows times depth, per step)."""
    from robustc.compiler.crown import intermediate

    rng, graph, lo, hi, crown, box = _deep_mlp()
    clock = [0.0]
    real = intermediate._tighten_node

    def node(crown, tuner, name, rows, box, bounds, steps, *args):
        args = list(args)
        args[1] = None  # the real one runs without a deadline; the fake clock keeps it
        done = real(crown, tuner, name, rows, box, bounds, steps, *args)
        clock[0] += 1e-3 * (steps + 1) * rows.numel() * (crown.position[name] + 1)
        return done

    monkeypatch.setattr(intermediate, "_tighten_node", node)
    monkeypatch.setattr(intermediate.time, "perf_counter", lambda: clock[0])
    plain = crown.bounds(lo, hi)
    names = [n for n in crown.targets if not intermediate._first_order(crown, n)
             and any(isinstance(graph[u], Relu) for u in graph.consumers.get(n, ()))]
    work = [1e-3 * int(intermediate._open_rows(plain, n).numel()) * (crown.position[n] + 1)
            for n in names]
    assert len(work) == 3
    # the first node's 20 steps, then time for about 5 on each of the others
    deadline = 21 * work[0] + 6 * (work[1] + work[2])
    tight = crown.bounds(lo, hi)
    stats = tighten_intermediate(crown, box, tight, steps=20, deadline=deadline)
    assert stats["complete"], stats
    steps = stats["node_steps"]
    assert steps[0] == 20 and all(4 <= s < 20 for s in steps[1:]), steps
    assert clock[0] <= deadline
    assert not violations(graph, _Numpy(tight, graph), _points(graph, lo, hi, rng))
    # without a deadline every node takes every step
    free = crown.bounds(lo, hi)
    assert tighten_intermediate(crown, box, free, steps=20)["node_steps"] == [20] * 3
