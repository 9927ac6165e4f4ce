"""CROWN and alpha-CROWN on the graph (robustc.compiler.crown) against independent oracles.

* the numpy engine (robustc.compiler.bounds.symbolic_bounds, sparse affine maps): same
  bounds on every graph family, DAGs included;
* the ReLU-split chain bounder (robustc.verify.relu_split.bounder): same objective bound on
  chains;
* sampled and attacked activations (float64 interpreter): inside every bound, alpha-CROWN
  objectives included.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from bounds_attack import attack, sample_box, violations
from bounds_helpers import (
    networks,
    random_box,
    random_branchy,
    random_conv,
    random_mlp,
    random_residual,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from robustc.compiler.bound_types import BoundsTimeout
from robustc.compiler.bounds import BoundsError, symbolic_bounds
from robustc.compiler.crown.engine import Crown, crown_bounds
from robustc.errors import ShapeError, UnsupportedOperator
from robustc.ir import Relu, evaluate, logits
from robustc.verify.relu_split.bounder import Bounder, initial_alpha
from robustc.verify.relu_split.chain import chain

N_UNIFORM, N_CORNERS, N_TARGETS, STEPS = 800, 200, 60, 12
#: Five families, DAGs included; no output maps (the linear bounds stop at the logits).
CROWN_NETWORKS = networks(families=("mlp", "leaky_mlp", "conv", "branchy", "residual"),
                          out_maps=(None,), eps=(1e-3, 0.05, 0.3, 1.0))


def _same(a, b, name):
    """Equal up to the float widening: the numpy engine widens every node by
    ``WIDEN_REL * (1 + |b|)``, the graph engine not after exact nodes (selections, reshapes,
    masks: ``Crown.exact``), so it may be tighter by a few widenings, never looser."""
    a, b = np.asarray(a), np.asarray(b)
    assert np.all(np.abs(a - b) <= 1e-8 * (1 + np.abs(b))), name


@settings(max_examples=40, deadline=None)
@given(CROWN_NETWORKS)
def test_equal_to_the_numpy_engine_and_sound(case):
    graph, lo, hi, rng = case
    got = crown_bounds(graph, lo, hi)
    want = symbolic_bounds(graph, lo, hi)
    for name in want.lower:
        _same(got.lower[name], want.lower[name], name)
        _same(got.upper[name], want.upper[name], name)
        assert np.all(got.lower[name] >= want.lower[name] - 1e-12 * (1 + np.abs(want.lower[name])))
        assert np.all(got.upper[name] <= want.upper[name] + 1e-12 * (1 + np.abs(want.upper[name])))
    xs = np.concatenate([sample_box(rng, lo, hi, N_UNIFORM, N_CORNERS),
                         attack(graph, lo, hi, rng, N_TARGETS, STEPS)])
    assert not violations(graph, got, xs)


@settings(max_examples=25, deadline=None)
@given(CROWN_NETWORKS, st.integers(1, 4))
def test_alpha_crown_objectives_are_tighter_and_sound(case, rows):
    graph, lo, hi, rng = case
    crown = Crown(graph)
    box = crown.box(lo, hi)
    bounds = crown.bounds(lo, hi)
    w = rng.normal(size=(rows, graph.output.size))
    b = rng.normal(size=rows)
    plain = crown.objective(w, b, bounds, box)[0].numpy()
    best = crown.optimise(w, b, bounds, box, steps=15, lr=0.2)[0].numpy()
    assert np.all(best >= plain)
    xs = np.concatenate([sample_box(rng, lo, hi, N_UNIFORM, N_CORNERS),
                         attack(graph, lo, hi, rng, N_TARGETS, STEPS)])
    ys = evaluate(graph, xs.reshape((-1, *graph.input.shape)), batched=True)
    values = ys.reshape(len(xs), -1) @ w.T + b
    assert np.all(best <= values.min(axis=0) + 1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_objective_equals_the_chain_bounder_on_chains(seed):
    rng = np.random.default_rng(seed)
    graph = random_mlp(rng, [4, 10, 8, 6, 3])
    lo, hi = random_box(rng, graph.input.shape, 0.5)
    crown = Crown(graph)
    box = crown.box(lo, hi)
    bounds = crown.bounds(lo, hi)
    w, b = rng.normal(size=(5, 3)), rng.normal(size=5)
    ours = crown.objective(w, b, bounds, box)[0].numpy()
    ch = chain(graph)
    pre_lo = [bounds.lower[n] for n in ch.pre]
    pre_hi = [bounds.upper[n] for n in ch.pre]
    bounder = Bounder(ch, lo.ravel(), hi.ravel())
    obj_w = w @ ch.weights[-1]  # the bounder's objective reads the last hidden layer
    obj_b = w @ ch.biases[-1] + b
    theirs, _, _ = bounder.bound(torch.as_tensor(obj_w), torch.as_tensor(obj_b), pre_lo, pre_hi,
                                 None, initial_alpha(pre_lo, pre_hi, 5), None)
    np.testing.assert_allclose(ours, theirs[0].numpy(), rtol=1e-7, atol=1e-7)


def test_a_batch_of_boxes_is_at_least_as_tight_as_each_box_alone():
    rng = np.random.default_rng(3)
    graph = random_conv(rng, channels=2, size=8)
    boxes = [random_box(rng, graph.input.shape, 0.3) for _ in range(3)]
    lo = np.stack([b[0] for b in boxes])
    hi = np.stack([b[1] for b in boxes])
    batch = Crown(graph).bounds(lo, hi)
    for k, (l, h) in enumerate(boxes):
        one = crown_bounds(graph, l, h)
        for node in graph.nodes:
            assert np.all(batch.lower[node.name][k].numpy() >= one.lower[node.name].ravel()
                          - 1e-12)
            assert np.all(batch.upper[node.name][k].numpy() <= one.upper[node.name].ravel()
                          + 1e-12)
        xs = sample_box(rng, l, h, 300, 100)
        assert not violations(graph, batch.to_bounds(graph, "crown", 0.0, box=k), xs)


def test_no_convolution_matrix_is_built(monkeypatch):
    """The engine goes through conv2d/conv_transpose2d, never the sparse affine maps."""
    import robustc.ir.linear as linear

    def refuse(*args, **kwargs):
        raise AssertionError("affine_map called")

    monkeypatch.setattr(linear, "affine_map", refuse)
    rng = np.random.default_rng(0)
    graph = random_residual(rng, 2, 6)
    lo, hi = random_box(rng, graph.input.shape, 0.2)
    crown_bounds(graph, lo, hi)


def test_bad_input_is_named():
    rng = np.random.default_rng(0)
    graph = random_branchy(rng, n=3, out_map="sigmoid")
    with pytest.raises(UnsupportedOperator, match="output_map"):
        Crown(graph)
    plain = logits(graph)[0]
    crown = Crown(plain)
    with pytest.raises(ShapeError, match="expected"):
        crown.bounds(np.zeros(7), np.ones(7))
    with pytest.raises(BoundsError, match="empty"):
        crown.bounds(np.ones(plain.input.shape), np.zeros(plain.input.shape))
    with pytest.raises(BoundsTimeout, match="time limit"):
        crown.bounds(-np.ones(plain.input.shape), np.ones(plain.input.shape),
                     deadline=time.perf_counter() - 1.0)


def test_the_pipeline_decides_the_same_with_crown_bounds(tmp_path):
    from robustc.ir.property import Box, Property, output_gt
    from robustc.verify import ROBUST, UNKNOWN, Problem, VerifyOptions, verify
    from tests.verify.nets import conv_onnx, save_and_load

    rng = np.random.default_rng(5)
    path = tmp_path / "net.onnx"
    graph = save_and_load(conv_onnx(rng), path)
    x = rng.uniform(0, 1, graph.input.shape)
    y = evaluate(graph, x).ravel()
    top, other = int(np.argmax(y)), int(np.argsort(y)[-2])
    box = Box(x - 0.01, x + 0.01)
    prop = Property("p", (box,), output_gt(y.size, top, other))
    problem = Problem("p", graph, (str(path),), prop)
    verdicts = {m: verify(problem, VerifyOptions(attack=False, bounds=m)).verdict
                for m in ("symbolic", "crown")}
    assert verdicts["symbolic"] == verdicts["crown"] == ROBUST
    late = verify(problem, VerifyOptions(attack=False, bounds="crown", time_limit=1e-9))
    assert late.verdict == UNKNOWN and "time limit" in late.reason


def test_ascent_takes_torch_adams_steps():
    """robustc's Adam ascent (no torch.optim, whose first use imports torch._dynamo) takes
    exactly torch.optim.Adam(maximize=True)'s steps, in two groups with their own rates."""
    import torch

    from robustc.compiler.crown.adam import Ascent

    gen = torch.Generator().manual_seed(0)
    target = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    start = [torch.randn(3, 5, generator=gen, dtype=torch.float64) for _ in range(2)]

    def run(make):
        params = [p.clone().requires_grad_(True) for p in start]
        opt = make(params)
        for _ in range(25):
            opt.zero_grad()
            objective = -((params[0] - target) ** 2).sum() - (params[1] ** 4).sum()
            objective.backward()
            opt.step()
        return [p.detach() for p in params]

    ours = run(lambda ps: Ascent([([ps[0]], 0.1), ([ps[1]], 0.05)]))
    theirs = run(lambda ps: torch.optim.Adam([{"params": [ps[0]], "lr": 0.1},
                                              {"params": [ps[1]], "lr": 0.05}], maximize=True))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(ours[0], start[0])


@pytest.mark.parametrize("seed", range(40))
def test_conv_backward_is_the_adjoint_of_the_convolution(seed):
    """Every route of Operators.backward through a convolution (folded kernel product,
    transposed convolution cropping its own padding, cropped onto the padded input) gives
    the coefficients autograd gives for ``a . conv(x)`` (the convolution's adjoint), on
    random strides, asymmetric pads, dilations and groups."""
    from bounds_helpers import Builder

    from robustc.compiler.crown.operators import Operators

    rng = np.random.default_rng(seed)
    b = Builder(rng)
    groups = int(rng.choice([1, 2]))
    chans = groups * int(rng.integers(1, 4))
    size = int(rng.integers(5, 10))
    x = b.input((1, chans, size, size + int(rng.integers(0, 2))))
    pads = tuple(int(p) for p in rng.integers(0, 3, size=4))
    if seed % 4 == 0:  # symmetric padding: the fold and padding routes
        pads = (pads[0], pads[1], pads[0], pads[1])
    conv = b.conv(x, groups * int(rng.integers(1, 3)), tuple(int(k) for k in
                  rng.integers(1, 4, size=2)),
                  strides=tuple(int(s) for s in rng.integers(1, 3, size=2)), pads=pads,
                  dilations=tuple(int(d) for d in rng.integers(1, 3, size=2)), groups=groups)
    graph = b.graph(conv, "conv")
    node = graph[conv]
    ops = Operators(graph)
    a = torch.as_tensor(rng.normal(size=(2, 3, node.size)))
    (got,), _ = ops.backward(node, a)
    xs = torch.zeros(2, 3, *graph.input.shape[1:], dtype=torch.float64, requires_grad=True)
    top, left, bottom, right = node.pads
    ys = torch.nn.functional.conv2d(
        torch.nn.functional.pad(xs.reshape(6, *graph.input.shape[1:]), (left, right, top,
                                                                       bottom)),
        ops.consts[conv]["w"], stride=node.strides, dilation=node.dilations, groups=groups)
    (want,) = torch.autograd.grad((ys.reshape(2, 3, -1) * a).sum(), xs)
    torch.testing.assert_close(got, want.reshape(2, 3, -1), rtol=1e-12, atol=1e-12)


def test_conv_backward_routes_are_all_taken():
    """Each route of conv_route is one the test above can reach."""
    from robustc.compiler.crown.operators import conv_route
    from robustc.ir import Conv

    def route(chans, pads, strides=(1, 1)):
        node = Conv("c", ("x",), (1, 4, *[
            (7 + pads[i] + pads[i + 2] - 3) // strides[i] + 1 for i in (0, 1)]),
            weight=np.zeros((4, chans, 3, 3)), bias=None, strides=strides, pads=pads,
            dilations=(1, 1), groups=1)
        return conv_route(node, (1, chans, 7, 7))[0]

    assert route(1, (1, 1, 1, 1)) == "fold"
    assert route(8, (1, 1, 1, 1)) == "padding"
    assert route(8, (2, 0, 0, 2)) == "crop"


@pytest.mark.parametrize("seed", range(4))
def test_columns_give_the_bound_of_the_whole_layer(seed):
    """alpha and beta as Columns (values on some neurons: what Crown.tune and the
    intermediate bounds' steps pass) give backsubstitute's bound with the whole layers'
    tensors, and the bound still holds on sampled points; multipliers of the wrong sign
    change it (the test can fail)."""
    from robustc.compiler.crown.engine import Columns
    from robustc.ir import Relu

    rng = np.random.default_rng(seed)
    graph = random_conv(rng, channels=2, size=8) if seed % 2 else random_residual(rng, 2, 6)
    lo, hi = random_box(rng, graph.input.shape, 0.4)
    crown = Crown(graph)
    box = crown.box(lo, hi)
    bounds = crown.bounds(lo, hi)
    rows = 3
    w = torch.as_tensor(rng.normal(size=(1, rows, graph.output.size)))
    full_a, cols_a, full_b, cols_b = {}, {}, {}, {}
    for node in graph.nodes:
        if not isinstance(node, Relu):
            continue
        unstable = bounds.relax[node.name][3].any(0)
        alpha = torch.as_tensor(rng.uniform(node.alpha, 1.0, size=(1, rows, node.size)))
        full_a[node.name] = alpha
        cols_a[node.name] = Columns.of(alpha, unstable)
        picked = torch.as_tensor(rng.random(node.size) < 0.3)
        beta = torch.where(picked, torch.as_tensor(rng.uniform(0, 0.5, (1, rows, node.size))),
                           torch.zeros(1, rows, node.size, dtype=torch.float64))
        full_b[node.name] = beta
        cols_b[node.name] = Columns.of(beta, picked)
    with torch.no_grad():
        want = crown.backsubstitute(graph.outputs[0], w, box, bounds.relax, full_a)
        got = crown.backsubstitute(graph.outputs[0], w, box, bounds.relax, cols_a)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        want_b = crown.backsubstitute(graph.outputs[0], w, box, bounds.relax, full_a, full_b)
        got_b = crown.backsubstitute(graph.outputs[0], w, box, bounds.relax, cols_a, cols_b)
        torch.testing.assert_close(got_b, want_b, rtol=1e-12, atol=1e-12)
        wrong_b = {k: Columns(-c.values, c.index) for k, c in cols_b.items()}  # beta <= 0
        wrong = crown.backsubstitute(graph.outputs[0], w, box, bounds.relax, cols_a, wrong_b)
    xs = sample_box(rng, lo, hi, 500, 100)
    ys = evaluate(graph, xs.reshape((-1, *graph.input.shape)), batched=True)
    values = ys.reshape(len(xs), -1) @ w[0].numpy().T
    assert np.all(got[0].numpy() <= values.min(axis=0) + 1e-9)
    assert not torch.allclose(wrong, want_b)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_exact_nodes_and_a_repeated_box(seed):
    """Selections (with filled positions), masks (scales 0 and 1: a crop's constants, a
    max-pool gate), negations and reshapes are bounded exactly (``Crown.exact``: every
    bound is reached by an input of the box), and a batch of one box repeated (a branch
    and bound's domains, computed once up to the first clipped node) gets the bounds of
    the box alone, clipped domains included (up to rounding)."""
    from bounds_helpers import Builder

    from robustc.ir import ElementwiseAffine, Relu, Reshape, Select
    from robustc.ir.nodes import frozen_array

    rng = np.random.default_rng(seed)
    b = Builder(rng)
    cur = b.input((1, 12))
    index = rng.integers(-1, 12, size=(1, 15))
    cur = b.add(Select, (cur,), index=frozen_array(index, dtype=np.int64),
                fill=float(rng.normal()))
    scale = rng.integers(0, 2, size=(1, 15)).astype(float)
    shift = np.where(scale == 0, rng.normal(size=(1, 15)), 0.0)
    masked = b.add(ElementwiseAffine, (cur,), scale=frozen_array(scale),
                   shift=frozen_array(shift))
    neg = b.add(ElementwiseAffine, (masked,), scale=frozen_array(-scale),
                shift=frozen_array(np.zeros((1, 15))))
    cur = b.add(Relu, (b.dense(neg, 8),))
    cur = b.add(Reshape, (b.dense(cur, 6),), shape=(1, 6))
    graph = b.graph(b.dense(cur, 3), "exact")
    crown = Crown(graph)
    lo = rng.normal(size=(1, 12))
    hi = lo + rng.uniform(0, 0.5, size=(1, 12))
    box = crown.box(lo, hi)
    with torch.no_grad():
        one = crown.refine(box)
    # the exact nodes: their bounds are the values at the box's vertices that reach them
    values = {}
    for x in (lo, hi):
        for name, v in evaluate(graph, x, keep_all=True).items():
            values.setdefault(name, []).append(np.ravel(v))
    for name in (b.nodes[1].name, masked, neg):
        got_lo, got_hi = one.lower[name].numpy()[0], one.upper[name].numpy()[0]
        ends = np.stack(values[name])
        assert np.array_equal(got_lo, ends.min(0)) and np.array_equal(got_hi, ends.max(0))
    # the repeated box, its second half clipped: the same as each box alone
    n = 4
    relu_in = next(nd for nd in graph.nodes if isinstance(nd, Relu)).inputs[0]
    c_lo = one.lower[relu_in].expand(n, -1).clone()
    c_hi = one.upper[relu_in].expand(n, -1).clone()
    c_lo[2:] = torch.maximum(c_lo[2:], torch.zeros_like(c_lo[2:]))  # active decided
    clip = {relu_in: (c_lo, c_hi)}
    with torch.no_grad():
        many = crown.refine((box[0].expand(n, -1), box[1].expand(n, -1)), clip=clip)
        for k in (0, 2):
            alone = crown.refine(box, clip={relu_in: (c_lo[k:k + 1], c_hi[k:k + 1])})
            for name in alone.lower:
                assert many.lower[name].shape[0] == n
                # equal up to the batched products' rounding (far below the widening)
                torch.testing.assert_close(many.lower[name][k], alone.lower[name][0],
                                           rtol=1e-12, atol=1e-12)
                torch.testing.assert_close(many.upper[name][k], alone.upper[name][0],
                                           rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 4, 5, 6, 7, 8])  # 3: fewer than 2 raised
def test_tune_stops_the_boxes_it_is_told_to_and_steps_the_others_as_before(seed):
    """``Crown.tune(stop_at=...)``: boxes told to stop after the first step keep their
    starting slopes (the first step's bound is theirs); the boxes that go on, stepped
    without them (their Adam moments carried over), end where the whole batch ends
    without ``stop_at``; and the bounds of the parameters returned hold on sampled and
    attacked points."""
    rng = np.random.default_rng(seed)
    graph = (random_conv(rng, channels=2, size=8) if seed % 2 else
             random_residual(rng) if seed % 4 == 0 else random_mlp(rng, [5, 12, 10, 3]))
    boxes = [random_box(rng, graph.input.shape, 0.4) for _ in range(6)]
    lo, hi = np.stack([b[0] for b in boxes]), np.stack([b[1] for b in boxes])
    crown = Crown(graph)
    box, bounds = crown.box(lo, hi), crown.bounds(lo, hi)
    rows = 2
    w, b = rng.normal(size=(rows, graph.output.size)), rng.normal(size=rows)
    alpha = {name: relax[0].unsqueeze(1).expand(-1, rows, -1)
             for name, relax in bounds.relax.items()
             if isinstance(graph[name], Relu) and relax[3].any()}
    if not alpha:
        pytest.skip("no unstable ReLU in this box")
    whole, _ = crown.tune(w, b, bounds, box, alpha, steps=12, lr_alpha=0.3)
    with torch.no_grad():
        start = crown.objective(w, b, bounds, box, alpha).numpy()
        got_whole = crown.objective(w, b, bounds, box, whole).numpy()
    raised = np.flatnonzero((got_whole > start + 1e-6).any(1))
    if raised.size < 2:
        pytest.skip("the steps raise fewer than two boxes' bounds here")
    going = np.zeros(len(boxes), dtype=bool)
    going[raised[::2]] = True  # every other raised box goes on; the rest stop at once
    part, _ = crown.tune(w, b, bounds, box, alpha, steps=12, lr_alpha=0.3,
                         stop_at=lambda best: torch.as_tensor(~going))
    with torch.no_grad():
        got_part = crown.objective(w, b, bounds, box, part).numpy()
    np.testing.assert_allclose(got_part[~going], start[~going], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_part[going], got_whole[going], rtol=1e-9, atol=1e-9)
    for k in range(len(boxes)):
        xs = np.concatenate([sample_box(rng, lo[k], hi[k], 300, 100),
                             attack(graph, lo[k], hi[k], rng, 20, STEPS)])
        ys = evaluate(graph, xs.reshape((-1, *graph.input.shape)), batched=True)
        values = ys.reshape(len(xs), -1) @ w.T + b
        assert np.all(got_part[k] <= values.min(axis=0) + 1e-9)
