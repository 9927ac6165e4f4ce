"""Batched symbolic bounds (robustc.compiler.batch_bounds) against the per-box bounds.

For random Dense/ReLU (and leaky ReLU, reshape) networks and random batches of boxes, every
node's batched bounds must equal ``compute_bounds(..., "symbolic")`` of each box to 1e-9,
contain the activations of sampled inputs, and the outputs' linear upper bounds must hold on
those samples. The batched forward pass and gradients are checked against the interpreter
and finite differences; an ACAS Xu margin graph is compared when the shared benchmarks are
present.
"""

from __future__ import annotations

import numpy as np
import pytest
from bounds_helpers import Builder, random_conv, random_mlp

from robustc.compiler.batch_bounds import batch_symbolic_bounds, forward, gradient, supports
from robustc.compiler.bounds import BoundsError, compute_bounds
from robustc.ir import Relu, Reshape, evaluate
from tests.conftest import shared_benchmarks

SEEDS = range(12)


def _boxes(rng: np.random.Generator, shape: tuple, batch: int, eps: float):
    """``batch`` boxes around random centres; some of them degenerate in some inputs."""
    centre = rng.normal(size=(batch, *shape))
    radius = rng.uniform(0.0, eps, size=(batch, *shape))
    radius[rng.random(size=radius.shape) < 0.1] = 0.0
    return centre - radius, centre + radius


def _network(rng: np.random.Generator):
    kind = rng.integers(3)
    widths = [int(rng.integers(1, 6))] + [int(rng.integers(2, 14)) for _ in
                                          range(int(rng.integers(1, 5)))] + [3]
    if kind < 2:
        return random_mlp(rng, widths, leaky=bool(kind))
    b = Builder(rng)  # a reshape in the middle and a dense layer after the last ReLU
    cur = b.add(Relu, (b.dense(b.input((1, widths[0])), 6),))
    cur = b.add(Reshape, (cur,), shape=(2, 3))
    cur = b.add(Reshape, (b.dense(cur, 4),), shape=(1, 8))
    cur = b.add(Relu, (b.dense(cur, 5),), alpha=0.1)
    return b.graph(b.dense(cur, 3), "reshaped")


def _close(a, b):
    return np.all(np.abs(a - b) <= 1e-9 * (1.0 + np.abs(b)))


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_per_box_bounds(seed):
    rng = np.random.default_rng(seed)
    graph = _network(rng)
    shape = tuple(graph.input.shape)
    lo, hi = _boxes(rng, shape, 9, eps=float(rng.choice([0.05, 0.5, 3.0])))
    bb = batch_symbolic_bounds(graph, lo, hi)
    counts = bb.num_unstable()
    for b in range(lo.shape[0]):
        ref = compute_bounds(graph, lo[b], hi[b], "symbolic")
        for node in graph.nodes:
            assert _close(bb.lower[node.name][b], ref.lower[node.name].ravel()), node.name
            assert _close(bb.upper[node.name][b], ref.upper[node.name].ravel()), node.name
        assert counts[b] == ref.num_unstable()
        part = bb.part(b)
        assert part.lower[graph.outputs[0]].shape == ref.lower[graph.outputs[0]].shape
        assert part.num_unstable() == ref.num_unstable()


@pytest.mark.parametrize("seed", SEEDS)
def test_sound_on_samples(seed):
    rng = np.random.default_rng(100 + seed)
    graph = _network(rng)
    shape = tuple(graph.input.shape)
    lo, hi = _boxes(rng, shape, 6, eps=1.0)
    bb = batch_symbolic_bounds(graph, lo, hi)
    out = graph.outputs[0]
    a, c = bb.linear_upper[out]
    for b in range(lo.shape[0]):
        t = rng.random(size=(400, *shape))
        t[:50] = rng.integers(0, 2, size=(50, *shape))  # corners
        x = lo[b] + (hi[b] - lo[b]) * t
        values = evaluate(graph, x, batched=True, keep_all=True)
        for node in graph.nodes:
            v = values[node.name].reshape(x.shape[0], -1)
            assert np.all(v >= bb.lower[node.name][b] - 1e-12), node.name
            assert np.all(v <= bb.upper[node.name][b] + 1e-12), node.name
        y = values[out].reshape(x.shape[0], -1)
        linear = x.reshape(x.shape[0], -1) @ a[b].T + c[b]
        assert np.all(y <= linear + 1e-9 * (1 + np.abs(linear)))


def test_linear_upper_attains_upper_bound_at_its_vertex():
    rng = np.random.default_rng(7)
    graph = random_mlp(rng, [3, 8, 8, 2])
    lo, hi = _boxes(rng, (1, 3), 5, eps=0.7)
    bb = batch_symbolic_bounds(graph, lo, hi)
    a, c = bb.linear_upper[graph.outputs[0]]
    flo, fhi = lo.reshape(5, -1), hi.reshape(5, -1)
    for b in range(5):
        vertex = np.where(a[b] > 0, fhi[b], flo[b])  # (outputs, n_in)
        best = np.einsum("on,on->o", a[b], vertex) + c[b]
        ref = compute_bounds(graph, lo[b], hi[b], "symbolic")
        crown_only = best + 1e-9 * (1 + np.abs(best))  # the widened concretisation
        assert np.all(ref.upper[graph.outputs[0]].ravel() <= crown_only + 1e-12)


def test_forward_and_gradient():
    rng = np.random.default_rng(3)
    graph = random_mlp(rng, [4, 9, 7, 3], leaky=True)
    x = rng.normal(size=(20, 4))
    np.testing.assert_allclose(forward(graph, x), evaluate(graph, x.reshape(20, 1, 4),
                                                           batched=True).reshape(20, -1))
    w = rng.normal(size=(20, 3))
    g = gradient(graph, x, w)
    h = 1e-6
    for i in range(4):
        step = np.zeros(4)
        step[i] = h
        fd = ((forward(graph, x + step) - forward(graph, x - step)) * w).sum(axis=1) / (2 * h)
        np.testing.assert_allclose(g[:, i], fd, rtol=1e-4, atol=1e-6)


def test_unsupported_graphs_and_bad_boxes():
    rng = np.random.default_rng(0)
    conv = random_conv(rng)  # MaxPool: left to the per-box bounds
    assert not supports(conv)
    with pytest.raises(ValueError):
        batch_symbolic_bounds(conv, np.zeros((1, *conv.input.shape)),
                              np.ones((1, *conv.input.shape)))
    mlp = random_mlp(rng, [2, 4, 1])
    assert supports(mlp)
    with pytest.raises(BoundsError):
        batch_symbolic_bounds(mlp, np.ones((2, 1, 2)), np.zeros((2, 1, 2)))


def test_acasxu_margin_graph():
    from robustc.compiler.vnnlib import vnnlib_problems
    from robustc.ir import logits
    from robustc.ir.property import dnf, negate
    from robustc.verify.cases import MARGIN_NODE, case_atoms, margin_graph

    acas = shared_benchmarks() / "vnncomp2021" / "benchmarks" / "acasxu"
    (problem,) = vnnlib_problems(acas / "prop_3.vnnlib",
                                 acas / "ACASXU_run2a_1_1_batch_2000.onnx")
    graph, _ = logits(problem.graph)
    mgraph = margin_graph(graph, case_atoms(dnf(negate(problem.prop.condition))))
    assert supports(mgraph)
    box = problem.prop.boxes[0]
    rng = np.random.default_rng(0)
    n = 16
    t, w = rng.random((n, *box.lower.shape)), rng.random((n, *box.lower.shape)) ** 3
    lo = box.lower + (box.upper - box.lower) * t * (1 - w)
    hi = lo + (box.upper - lo) * w
    bb = batch_symbolic_bounds(mgraph, lo, hi)
    for b in range(n):
        ref = compute_bounds(mgraph, lo[b], hi[b], "symbolic")
        for node in mgraph.nodes:
            assert _close(bb.lower[node.name][b], ref.lower[node.name].ravel())
            assert _close(bb.upper[node.name][b], ref.upper[node.name].ravel())
        assert bb.num_unstable()[b] == ref.num_unstable()
    assert bb.upper[MARGIN_NODE].shape == (n, 4)
