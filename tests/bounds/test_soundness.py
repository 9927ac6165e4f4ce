"""Soundness of interval and symbolic bounds on random networks and boxes.

Every activation of sampled inputs (uniform, box corners, the centre) and of
gradient-attacked inputs must lie inside the bounds; symbolic bounds must lie inside
interval bounds. Counts are in the module constants.
"""

from __future__ import annotations

import numpy as np
import pytest
from bounds_attack import attack, sample_box, violations
from bounds_helpers import networks, random_box, random_conv, random_mlp
from hypothesis import given, settings

from robustc.compiler.bounds import (
    Bounds,
    BoundsError,
    compute_bounds,
    interval_bounds,
    symbolic_bounds,
)
from robustc.errors import ShapeError

N_UNIFORM, N_CORNERS = 1500, 500  # sampled inputs per case
N_TARGETS, STEPS = 120, 15  # attacked neurons per case, PGD steps (all iterates checked)


def assert_inside(inner: Bounds, outer: Bounds) -> None:
    for name in outer.lower:
        assert np.all(inner.lower[name] >= outer.lower[name]), name
        assert np.all(inner.upper[name] <= outer.upper[name]), name


def assert_sound(graph, bounds_list, lo, hi, rng) -> None:
    xs = np.concatenate([sample_box(rng, lo, hi, N_UNIFORM, N_CORNERS),
                         attack(graph, lo, hi, rng, N_TARGETS, STEPS)])
    for bounds in bounds_list:
        assert all(b.shape == graph[n].shape for n, b in bounds.lower.items())
        bad = violations(graph, bounds, xs)
        assert not bad, f"{bounds.method} bounds of {graph.name} violated: {bad}"


@settings(max_examples=60, deadline=None)
@given(networks())
def test_interval_and_symbolic_contain_sampled_and_attacked_activations(case):
    graph, lo, hi, rng = case
    ib, sb = interval_bounds(graph, lo, hi), symbolic_bounds(graph, lo, hi)
    assert set(ib.lower) == set(sb.lower) == {n.name for n in graph.nodes}
    assert_inside(sb, ib)
    assert sb.num_unstable() <= ib.num_unstable()
    assert_sound(graph, [ib, sb], lo, hi, rng)


def test_the_check_can_fail():
    """Bounds shrunk by 2% of their width at one node are caught by sampling and attacks."""
    rng = np.random.default_rng(1)
    graph = random_mlp(rng, [4, 6, 6, 2])
    lo, hi = random_box(rng, graph.input.shape, 0.5)
    sb = symbolic_bounds(graph, lo, hi)
    first = graph.layers()[0].name  # an affine map of the box: its bounds are attained
    low, up = sb.of(first)
    shrunk = {**sb.upper, first: up - 0.02 * (up - low)}
    bad = Bounds(sb.lower, shrunk, "shrunk", 0.0, sb.relu_inputs)
    xs = np.concatenate([sample_box(rng, lo, hi, 100, 10), attack(graph, lo, hi, rng, 30, 10)])
    assert violations(graph, bad, xs)
    assert not violations(graph, sb, xs)


def test_symbolic_strictly_tighter_on_a_deep_network():
    rng = np.random.default_rng(3)
    graph = random_mlp(rng, [5, 20, 20, 20, 20, 20, 3])
    lo, hi = random_box(rng, graph.input.shape, 0.3)
    ib, sb = interval_bounds(graph, lo, hi), symbolic_bounds(graph, lo, hi)
    assert 0 < sb.num_unstable() < ib.num_unstable()
    out = graph.outputs[0]
    assert np.all(sb.upper[out] - sb.lower[out] < ib.upper[out] - ib.lower[out])


def test_degenerate_box_gives_the_point():
    rng = np.random.default_rng(4)
    graph = random_conv(rng)
    x = rng.normal(size=graph.input.shape)
    sb = symbolic_bounds(graph, x, x)
    assert not violations(graph, sb, x[None])
    out = graph.outputs[0]
    assert np.all(sb.upper[out] - sb.lower[out] < 1e-6)
    assert sb.num_unstable() == 0


def test_box_broadcasts_and_unstable_helpers():
    rng = np.random.default_rng(5)
    graph = random_mlp(rng, [3, 4, 2])
    ib = interval_bounds(graph, -1.0, np.ones(3))
    assert ib.lower["x"].shape == (1, 3)
    masks = ib.unstable_relus()
    relu = graph.relus()[0].name
    assert set(masks) == {relu} and masks[relu].shape == graph[relu].shape
    assert ib.num_unstable() == int(masks[relu].sum())


def test_wrong_shape_box_raises():
    graph = random_mlp(np.random.default_rng(6), [3, 4, 2])
    with pytest.raises(ShapeError, match=r"shape \[4\], expected \[1, 3\]"):
        symbolic_bounds(graph, np.zeros(4), np.ones(4))
    with pytest.raises(ShapeError, match=r"expected \[1, 3\]"):
        interval_bounds(graph, np.zeros((1, 3)), np.ones((3, 1)))


def test_empty_or_infinite_box_raises():
    graph = random_mlp(np.random.default_rng(7), [3, 4, 2])
    with pytest.raises(BoundsError, match="lower > upper"):
        compute_bounds(graph, np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.5, 1.0]))
    with pytest.raises(BoundsError, match="not finite"):
        compute_bounds(graph, np.full(3, -np.inf), np.ones(3))
    with pytest.raises(BoundsError, match="unknown bound method"):
        compute_bounds(graph, np.zeros(3), np.ones(3), method="magic")


@settings(max_examples=40, deadline=None)
@given(networks())
def test_refining_only_relevant_neurons_loses_nothing(case):
    """Symbolic bounds refine only the neurons whose bounds can matter; refining every
    neuron (the reference algorithm) gives the same graph-output and unstable-ReLU
    bounds up to rounding, and the same stable/unstable split."""
    import robustc.compiler.bounds as mod

    graph, lo, hi, _ = case
    fast = symbolic_bounds(graph, lo, hi)
    original = mod._rows_to_refine
    mod._rows_to_refine = lambda graph, prep, node, lo, hi: np.arange(node.size)
    try:
        full = symbolic_bounds(graph, lo, hi)
    finally:
        mod._rows_to_refine = original
    out = graph.output.name
    scale = 1e-6 * (1.0 + np.abs(full.upper[out]) + np.abs(full.lower[out]))
    assert np.all(np.abs(fast.lower[out] - full.lower[out]) <= scale)
    assert np.all(np.abs(fast.upper[out] - full.upper[out]) <= scale)
    for name, mask in full.unstable_relus().items():
        assert np.array_equal(mask, fast.unstable_relus()[name]), name
