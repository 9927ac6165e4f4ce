"""The network restricted to what a box moves (robustc.compiler.restrict): the same
function on the box, bounds of the original graph that hold for it, and the graph search's
verdicts with and without it held to the MILP's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from robustc.compiler.bounds import compute_bounds
from robustc.compiler.crown.engine import Crown
from robustc.compiler.passes import standard_passes
from robustc.compiler.restrict import restrict_to_box
from robustc.ir import evaluate, logits
from robustc.ir.property import Box, Property, in_top_k
from robustc.verify import Problem, VerifyOptions, verify
from robustc.verify.relu_split.options import ReluSplitOptions
from tests.bounds.bounds_helpers import random_conv, random_residual
from tests.verify.nets import conv_onnx, residual_onnx, save_and_load


def _patch_box(rng, shape, eps: float, side: int):
    """A box that moves a ``side`` x ``side`` patch (all channels) at a random place of a
    random point, the rest fixed."""
    x = rng.uniform(0, 1, shape)
    _, _, h, w = shape
    r, c = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    lo, hi = x.copy(), x.copy()
    lo[:, :, r:r + side, c:c + side] -= eps
    hi[:, :, r:r + side, c:c + side] += eps
    return x, lo, hi


def _points(rng, lo, hi, n=40):
    lo, hi = lo.ravel(), hi.ravel()
    inside = lo + (hi - lo) * rng.uniform(size=(n, lo.size))
    corners = np.where(rng.uniform(size=(n // 4, lo.size)) < 0.5, lo, hi)
    return np.concatenate([inside, corners])


def test_restricted_graphs_compute_the_same_function_on_their_box():
    """Random CNNs (strides, pads, dilations, groups, max-pools with and without padding,
    leaky ReLUs) and residual blocks, on boxes that move one patch: the restricted graph's
    outputs equal the original's at sampled points and corners (1e-9), its input is the
    patch's crop (every free input kept), and :meth:`embed` maps its points back."""
    restricted = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        graph = random_conv(rng, channels=int(rng.integers(1, 3)),
                            size=int(rng.integers(10, 15))) if seed % 3 else \
            random_residual(rng, channels=2, size=int(rng.integers(8, 13)))
        if seed % 2:
            graph = standard_passes().run(graph)
        _, lo, hi = _patch_box(rng, graph.input.shape, float(rng.uniform(0.01, 0.3)),
                               int(rng.integers(1, 4)))
        r = restrict_to_box(graph, lo.ravel(), hi.ravel(), max_share=1.0)
        if r is None:  # every family above is covered: only a crop of the whole input
            assert np.all(hi > lo)
            continue
        restricted += 1
        r.graph.verify()
        free = np.flatnonzero(hi.ravel() > lo.ravel())
        assert set(free) <= set(r.input_index)
        assert r.graph.input.size < graph.input.size
        xs = _points(rng, lo, hi)
        want = evaluate(graph, xs.reshape(-1, *graph.input.shape), batched=True)
        small = xs[:, r.input_index]
        got = evaluate(r.graph, small.reshape(-1, *r.graph.input.shape), batched=True)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(r.embed(small), xs)
    assert restricted >= 35


def _pool_net(rng, size=16):
    """The 64x64 examples' shape in small: conv (stride 2, pad 1) -> ReLU -> conv (pad 1)
    -> max-pool 2 -> ReLU -> flatten -> dense, after the standard passes."""
    from robustc.ir import MaxPool, Relu, Reshape
    from tests.bounds.bounds_helpers import Builder

    b = Builder(rng)
    cur = b.input((1, 1, size, size))
    cur = b.conv(cur, 3, (3, 3), strides=(2, 2), pads=(1, 1, 1, 1))
    cur = b.add(Relu, (cur,))
    cur = b.conv(cur, 4, (3, 3), pads=(1, 1, 1, 1))
    cur = b.add(MaxPool, (cur,), kernel=(2, 2), strides=(2, 2))
    cur = b.add(Relu, (cur,))
    cur = b.add(Reshape, (cur,), shape=(1, int(np.prod(b.shapes[cur]))))
    graph = b.graph(b.dense(cur, 5), "pool")
    return standard_passes().run(graph)


def test_cut_bounds_hold_on_the_restricted_graph():
    """Symbolic bounds of the original graph, cut down (:meth:`Restricted.cut`: the kept
    nodes and the regions the windows read) and CROWN's bounds of the restricted graph
    both hold at sampled and corner points of the box, for every restricted node; the
    cut bounds of a window's region are exactly its constants outside the crop."""
    for seed in range(6):
        rng = np.random.default_rng(seed)
        graph = _pool_net(rng)
        _, lo, hi = _patch_box(rng, graph.input.shape, 0.1, 3)
        r = restrict_to_box(graph, lo.ravel(), hi.ravel())
        assert r is not None
        bounds = compute_bounds(graph, lo, hi, "symbolic")
        cut_lo, cut_hi = r.cut(bounds.lower), r.cut(bounds.upper)
        assert any("/region" in name for name in cut_lo)
        small_lo, small_hi = (a.ravel()[r.input_index] for a in (lo, hi))
        crown = Crown(r.graph)
        with torch.no_grad():
            gb = crown.bounds(small_lo.reshape(r.graph.input.shape),
                              small_hi.reshape(r.graph.input.shape))
        xs = _points(rng, small_lo, small_hi, 200)
        values = evaluate(r.graph, xs.reshape(-1, *r.graph.input.shape), batched=True,
                          keep_all=True)
        for node in r.graph.nodes:
            v = values[node.name].reshape(len(xs), -1)
            tol = 1e-9 * (1 + np.abs(v))
            if node.name in cut_lo:
                assert np.all(v >= cut_lo[node.name] - tol), node.name
                assert np.all(v <= cut_hi[node.name] + tol), node.name
            assert np.all(v >= gb.lower[node.name][0].numpy() - tol), node.name
            assert np.all(v <= gb.upper[node.name][0].numpy() + tol), node.name


@pytest.mark.parametrize("family", ["conv", "residual"])
def test_the_graph_search_on_the_restricted_graph_agrees_with_the_milp(tmp_path, family):
    """Top-2 properties over a moved patch of 10x10 CNNs (a max-pool, and a residual
    block): the graph search with the restriction (recorded in its statistics) and
    without it give the MILP's verdicts; counterexamples are replayed on onnxruntime
    on the original input."""
    verdicts, restricted = set(), 0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        model = conv_onnx(rng, hw=(10, 10), channels=(1, 3, 3), classes=4) \
            if family == "conv" else residual_onnx(rng, hw=(10, 10), classes=4, pool="max")
        graph = save_and_load(model, tmp_path / f"{family}{seed}.onnx")
        for eps in (0.1, 0.4):
            x, lo, hi = _patch_box(rng, graph.input.shape, eps, 3)
            y = evaluate(graph, x).ravel()
            cond = in_top_k(y.size, int(np.argsort(-y)[1]), 2)
            problem = Problem(f"{family}{seed}-{eps}", graph,
                              (str(tmp_path / f"{family}{seed}.onnx"),),
                              Property("p", (Box(lo, hi),), cond))
            truth = verify(problem, VerifyOptions(attack=False, strategy="milp", threads=1))
            options = VerifyOptions(attack=False, strategy="relu-split", threads=1,
                                    time_limit=120)
            on = verify(problem, options)
            off = verify(problem, dataclasses.replace(
                options, relu_split=ReluSplitOptions(graph_restrict=False)))
            assert on.verdict == off.verdict == truth.verdict, (problem.name, on.reason)
            if on.verdict == "not_robust":
                assert on.counterexample.margin < 0
                assert Box(lo, hi).contains(on.counterexample.input.reshape(lo.shape), 1e-6)
            restricted += on.stats.get("relu_split_restricted_inputs", 0) > 0
            verdicts.add(truth.verdict)
    assert restricted >= 4
    assert len(verdicts) >= 1


def test_a_box_moving_most_of_the_input_is_not_restricted():
    rng = np.random.default_rng(0)
    graph = _pool_net(rng)
    x = rng.uniform(0, 1, graph.input.shape)
    assert restrict_to_box(graph, (x - 0.1).ravel(), (x + 0.1).ravel()) is None
    assert restrict_to_box(graph, x.ravel(), x.ravel()) is None  # nothing moves
    _, lo, hi = _patch_box(rng, graph.input.shape, 0.1, 3)
    assert restrict_to_box(graph, lo.ravel(), hi.ravel()) is not None
    # the logits of a graph with a softmax output (not covered) are what the search uses
    assert restrict_to_box(logits(graph)[0], lo.ravel(), hi.ravel()) is not None
