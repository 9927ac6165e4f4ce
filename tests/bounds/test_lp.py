"""LP tightening: sound on random networks, inside the symbolic bounds, and tighter on some."""

from __future__ import annotations

import numpy as np
import pytest
from bounds_helpers import random_box, random_conv, random_mlp
from hypothesis import given, settings
from test_soundness import assert_inside, assert_sound, networks

pytest.importorskip("highspy", reason="LP tightening needs highspy")

from robustc.compiler.bounds import compute_bounds, lp_tighten, symbolic_bounds  # noqa: E402


@settings(max_examples=30, deadline=None)
@given(networks())
def test_lp_bounds_contain_sampled_and_attacked_activations(case):
    graph, lo, hi, rng = case
    sb = symbolic_bounds(graph, lo, hi)
    lb = lp_tighten(graph, sb)
    assert lb.method == "lp"
    assert_inside(lb, sb)
    assert lb.num_unstable() <= sb.num_unstable()
    assert_sound(graph, [lb], lo, hi, rng)


def test_lp_strictly_tighter_than_symbolic_somewhere():
    tighter = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        graph = random_mlp(rng, [4, 12, 12, 12, 3])
        lo, hi = random_box(rng, graph.input.shape, 0.5)
        sb, lb = symbolic_bounds(graph, lo, hi), compute_bounds(graph, lo, hi, "lp")
        out = graph.outputs[0]
        tighter += bool(np.any(lb.upper[out] - lb.lower[out] < sb.upper[out] - sb.lower[out]
                               - 1e-6))
    assert tighter >= 3


def test_lp_on_conv_with_maxpool_is_sound_and_tighter_or_equal():
    rng = np.random.default_rng(11)
    graph = random_conv(rng, channels=2, size=8)
    lo, hi = random_box(rng, graph.input.shape, 0.2)
    sb = symbolic_bounds(graph, lo, hi)
    lb = lp_tighten(graph, sb)
    assert_inside(lb, sb)
    assert_sound(graph, [lb], lo, hi, rng)


def test_zero_time_limit_keeps_symbolic_bounds():
    rng = np.random.default_rng(12)
    graph = random_mlp(rng, [4, 10, 10, 2])
    lo, hi = random_box(rng, graph.input.shape, 1.0)
    sb = symbolic_bounds(graph, lo, hi)
    lb = lp_tighten(graph, sb, time_limit=0.0)
    assert lb.num_unstable() == sb.num_unstable()
    assert_inside(lb, sb)
