"""The graph search's row phase (robustc.verify.relu_split.graph, ``graph_rows``) and the
narrow neurons the CROWN engine leaves alone, against sampled and attacked points, the
numpy interpreter and the MILP.

A row proved alone must hold on every sampled and gradient-attacked point of the box; a
search stopped in the row phase may only call the cases the proved rows refute settled;
rows a point satisfies are left to the joint tree; the verdicts with the row phase are the
MILP's. Skipping the intermediate tightening of ReLU inputs narrower than ``NARROW`` (a
rewritten max-pool's repeated window element) changes no bound by more than that width.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from robustc.backends.milp.encode import MARGIN_TOL
from robustc.compiler.bounds import compute_bounds
from robustc.ir import evaluate, logits
from robustc.ir.property import Box, Property, dnf, negate
from robustc.verify import NOT_ROBUST, ROBUST, Problem, VerifyOptions, verify
from robustc.verify.relu_split.graph import GraphSplit
from robustc.verify.relu_split.options import ReluSplitOptions
from tests.bounds.bounds_attack import sample_box, torch_eval
from tests.verify.nets import conv_onnx
from tests.verify.test_graph_split import _problem


def _instance(tmp_path, seed: int, kind: str, eps: float, classes: int = 6):
    """A max-pooled CNN (8x8, ``classes`` outputs), an input drawn after it, and the
    argmax or top-2 (second label) condition there (test_graph_split's problems)."""
    rng = np.random.default_rng(seed)
    model = conv_onnx(rng, hw=(8, 8), channels=(1, 3, 4), classes=classes)
    problem = _problem(tmp_path, model, f"net{seed}", eps, kind, rng)
    (box,) = problem.prop.boxes
    return problem.graph, box.lower, box.upper, problem.prop.condition


def _search(graph, lo, hi, cond, options=None, deadline=None, check=None):
    g, _ = logits(graph)
    bounds = compute_bounds(g, lo, hi, "symbolic")
    return GraphSplit(g, lo, hi, bounds, dnf(negate(cond)), MARGIN_TOL, check,
                      options or ReluSplitOptions(), deadline=deadline)


def _largest_margins(search, lo, hi, rows, rng) -> np.ndarray:
    """Per row of ``rows``: the largest margin ``m_r`` over 3,000 uniform points, 300
    corners, the centre and 24 x 30 projected sign-gradient steps on ``m_r`` itself
    (float64 PyTorch evaluation of the IR written apart from robustc, margins by the numpy
    interpreter)."""
    graph = search.graph
    points = [sample_box(rng, lo, hi, 3000, 300)]
    lo_t, hi_t = torch.as_tensor(lo), torch.as_tensor(hi)
    for r in rows:
        x = torch.as_tensor(rng.uniform(lo, hi, size=(24, *lo.shape)))
        w = torch.as_tensor(search.w_np[r])
        for step in range(30):
            x.requires_grad_(True)
            y = torch_eval(graph, x)[graph.outputs[0]].reshape(len(x), -1)
            (grad,) = torch.autograd.grad((y @ w).sum(), x)
            with torch.no_grad():
                size = 0.3 * (1 - step / 30) * (hi_t - lo_t)
                x = torch.minimum(torch.maximum(x + size * grad.sign(), lo_t), hi_t)
            points.append(x.detach().numpy().copy())
    xs = np.concatenate(points)
    y = evaluate(graph, xs, batched=True).reshape(len(xs), -1)
    m = y @ search.w_np.T + search.b_np
    return m[:, rows].max(axis=0)


def test_rows_proved_alone_hold_on_sampled_and_attacked_points(tmp_path):
    """Seed 8, argmax at eps 0.1: four rows open at the root, each proved by a tree of its
    own; no sampled or attacked point reaches a proved row's atom, and the joint search
    alone proves the same property."""
    graph, lo, hi, cond = _instance(tmp_path, 8, "argmax", 0.1)
    search = _search(graph, lo, hi, cond)
    out = search.run()
    assert out.status == "proved", out.reason
    assert search.stats["root_open_rows"] >= 2 and len(search.proved_rows) >= 2
    assert search.stats["rows_proved"] == len(search.proved_rows)
    worst = _largest_margins(search, lo, hi, search.proved_rows, np.random.default_rng(0))
    assert np.all(worst < -MARGIN_TOL), worst
    joint = _search(graph, lo, hi, cond, ReluSplitOptions(graph_rows=False))
    assert joint.run().status == "proved"
    assert "rows_tried" not in joint.stats or joint.stats["rows_tried"] == 0


def test_a_stop_in_the_row_phase_settles_only_what_the_proved_rows_refute(tmp_path,
                                                                          monkeypatch):
    """A fake clock that advances 1 s per domain bounded and a deadline that falls in the
    row phase: the search is unknown, and every case it no longer calls open has its row
    refuted on all sampled and attacked points (the rows proved so far); the others are
    open."""
    import time

    graph, lo, hi, cond = _instance(tmp_path, 8, "argmax", 0.1)
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    real = GraphSplit.bound

    def bound(self, signs, *args, **kwargs):
        out = real(self, signs, *args, **kwargs)
        now[0] += signs.shape[0]
        return out

    monkeypatch.setattr(GraphSplit, "bound", bound)
    # rounds of at most 2 parents, each row may take all the time left: the first row's
    # tree takes more than 40 s of this clock
    search = _search(graph, lo, hi, cond, ReluSplitOptions(graph_batch=2, graph_row_share=1.0),
                     deadline=40.0)
    out = search.run()
    assert out.status == "unknown" and "time limit" in out.reason, out
    assert search.stats["rows_tried"] >= 1 and search.goal is not search.req
    open_ = search.open_cases()
    settled = [c for c in range(len(search.req.cases)) if c not in open_]
    assert open_  # not every row was proved
    rows = [search.req.cases[c][0][1][0] for c in settled]  # one atom per argmax case
    assert set(rows) <= set(search.proved_rows) | set(
        np.flatnonzero(search.root_domain.lb > MARGIN_TOL).tolist())
    if rows:
        worst = _largest_margins(search, lo, hi, rows, np.random.default_rng(1))
        assert np.all(worst < -MARGIN_TOL), worst


def test_rows_a_point_satisfies_are_left_to_the_joint_tree(tmp_path):
    """Top-2 of the second label: the first label's row holds at the input, so the row
    phase never searches it; the search still proves or refutes the property as the MILP
    does (replayed counterexample)."""
    for seed, eps in ((3, 0.1), (4, 0.1)):
        graph, lo, hi, cond = _instance(tmp_path, seed, "top2", eps)
        search = _search(graph, lo, hi, cond)
        search._root()
        targets = search._row_targets()
        y = evaluate(search.graph, (0.5 * (lo + hi))[None], batched=True).reshape(1, -1)
        held = np.flatnonzero((y @ search.w_np.T + search.b_np)[0] >= 0)
        assert held.size and search.possible[held].all()
        assert not set(targets) & set(held.tolist())


def test_the_row_phase_agrees_with_the_milp(tmp_path):
    """Argmax and top-2 properties of max-pooled CNNs with several rows open at the root:
    ``verify`` with the graph search alone (row phase on) gives the MILP's verdict, every
    counterexample replayed on onnxruntime, and the row phase proved rows on some."""
    verdicts, proved = set(), 0
    for seed, kind, eps in ((8, "argmax", 0.1), (0, "argmax", 0.06), (3, "top2", 0.03),
                            (5, "argmax", 0.1)):
        graph, lo, hi, cond = _instance(tmp_path, seed, kind, eps)
        problem = Problem(f"rows{seed}-{kind}-{eps}", graph,
                          (str(tmp_path / f"net{seed}.onnx"),),
                          Property("p", (Box(lo, hi),), cond))
        truth = verify(problem, VerifyOptions(attack=False, strategy="milp", threads=1))
        options = VerifyOptions(attack=False, strategy="relu-split", threads=1, time_limit=120)
        got = verify(problem, options)
        assert got.verdict == truth.verdict, (problem.name, got.reason)
        if got.verdict == NOT_ROBUST:
            assert got.counterexample.margin < 0
        verdicts.add(got.verdict)
        proved += got.stats.get("relu_split_rows_proved", 0)
        off = verify(problem, dataclasses.replace(
            options, relu_split=ReluSplitOptions(graph_rows=False)))
        assert off.verdict == truth.verdict, (problem.name, off.reason)
    assert ROBUST in verdicts
    assert proved >= 2


def test_narrow_relu_inputs_are_not_tightened_and_no_bound_moves_by_more(monkeypatch):
    """A conv -> max-pool -> ReLU graph (the 64x64 examples' shape) rewritten as pairwise
    maxima on a small box, without the rewrite's gates (:func:`_ungated`): windows with one
    candidate give ReLU inputs of width ~1e-9 (an element minus itself, widened).
    tighten_intermediate skips them (fewer rows than unstable neurons) and every node's
    bounds stay within NARROW of the bounds with every unstable row tightened; sampled
    activations stay inside both."""
    import robustc.compiler.crown.engine as engine
    import robustc.compiler.crown.intermediate as intermediate
    from robustc.compiler.crown.engine import Crown
    from robustc.compiler.passes import maxpool_as_relus, standard_passes

    graph, lo, hi, _ = _instance_pool()
    g, _ = logits(standard_passes().run(graph))
    bounds = compute_bounds(g, lo, hi, "symbolic")
    rewritten = _ungated(maxpool_as_relus(g, (bounds.lower, bounds.upper)))
    results = []
    for narrow in (engine.NARROW, -1.0):
        monkeypatch.setattr(engine, "NARROW", narrow)
        monkeypatch.setattr(intermediate, "NARROW", narrow)
        crown = Crown(rewritten)
        box = crown.box(lo, hi)
        with torch.no_grad():
            gb = crown.refine(box, within=crown.interval(*box), unstable_only=True)
        stats = intermediate.tighten_intermediate(crown, box, gb, steps=5)
        results.append((gb, stats))
    (skip, s_skip), (full, s_full) = results
    assert s_skip["rows"] < s_full["rows"]
    xs = sample_box(np.random.default_rng(0), lo, hi, 500, 100)
    values = evaluate(rewritten, xs, batched=True, keep_all=True)
    for node in rewritten.nodes:
        a_lo, a_hi = skip.lower[node.name][0].numpy(), skip.upper[node.name][0].numpy()
        b_lo, b_hi = full.lower[node.name][0].numpy(), full.upper[node.name][0].numpy()
        assert np.all(np.abs(a_lo - b_lo) <= 1e-6) and np.all(np.abs(a_hi - b_hi) <= 1e-6)
        v = values[node.name].reshape(len(xs), -1)
        assert np.all(v >= a_lo - 1e-9) and np.all(v <= a_hi + 1e-9), node.name


def test_gated_max_trees_have_one_unstable_relu_per_extra_candidate():
    """The max-pool rewrite on the same instance: every ReLU input that is not a difference
    of two different candidates is exactly 0 (no narrow unstable inputs), the unstable ReLUs
    of the trees are at most the candidates beyond the first of each window, and sampled
    activations lie within CROWN's bounds of the rewritten graph (the exact zeros
    included); the ungated tree has the narrow inputs instead."""
    from robustc.compiler.crown.engine import NARROW, Crown
    from robustc.compiler.passes import _pool_candidates, maxpool_as_relus, standard_passes
    from robustc.ir import MaxPool, Relu
    from robustc.ir.linear import pool_index

    graph, lo, hi, _ = _instance_pool()
    g, _ = logits(standard_passes().run(graph))
    bounds = compute_bounds(g, lo, hi, "symbolic")
    (pool,) = [n for n in g.nodes if isinstance(n, MaxPool)]
    _, count = _pool_candidates(pool_index(pool, g[pool.inputs[0]].shape),
                                np.ravel(bounds.lower[pool.inputs[0]]),
                                np.ravel(bounds.upper[pool.inputs[0]]), relu_after=True)
    assert count.min() == 1 and count.max() >= 3  # windows of 1 element and of several
    xs = sample_box(np.random.default_rng(0), lo, hi, 500, 100)
    narrow = []
    rewritten = maxpool_as_relus(g, (bounds.lower, bounds.upper))
    for variant in (rewritten, _ungated(rewritten)):
        crown = Crown(variant)
        box = crown.box(lo, hi)
        with torch.no_grad():
            gb = crown.refine(box, within=crown.interval(*box), unstable_only=True)
        values = evaluate(variant, xs, batched=True, keep_all=True)
        tree = [n for n in variant.nodes if isinstance(n, Relu) and "/max" in n.name]
        unstable = small = 0
        for node in tree:
            l, u = gb.lower[node.inputs[0]][0].numpy(), gb.upper[node.inputs[0]][0].numpy()
            unstable += int(((l < 0) & (u > 0)).sum())
            small += int(((l < 0) & (u > 0) & (u - l <= NARROW)).sum())
        for node in variant.nodes:
            v = values[node.name].reshape(len(xs), -1)
            assert np.all(v >= gb.lower[node.name][0].numpy()), node.name
            assert np.all(v <= gb.upper[node.name][0].numpy()), node.name
        narrow.append((unstable, small))
    (gated, gated_small), (ungated, ungated_small) = narrow
    assert gated_small == 0 and gated <= int((count - 1).sum())
    assert ungated_small > 0 and ungated > gated


def _ungated(graph):
    """``graph`` (a max-pool rewrite) with every gate removed: each tree ReLU reads its
    difference directly (the same function; an element minus itself is then 0 widened to
    +-1e-9, as the rewrite gave before its gates)."""
    gates = {n.name: n.inputs[0] for n in graph.nodes if n.name.endswith(".gate")}
    nodes = [dataclasses.replace(n, inputs=tuple(gates.get(i, i) for i in n.inputs))
             for n in graph.nodes if n.name not in gates]
    return graph.replace_nodes(nodes)


def _instance_pool():
    """conv(1->4, k3, stride 2) -> ReLU -> MaxPool(2) -> dense(6) on a 10x10 input, a box
    of +-0.05 around a random point (31 narrow and 20 wide unstable ReLU inputs after
    CROWN)."""
    from robustc.ir import MaxPool, Relu, Reshape
    from tests.bounds.bounds_helpers import Builder

    rng = np.random.default_rng(2)
    b = Builder(rng)
    cur = b.input((1, 1, 10, 10))
    cur = b.conv(cur, 4, (3, 3), strides=(2, 2), pads=(1, 1, 1, 1))
    cur = b.add(Relu, (cur,))
    cur = b.add(MaxPool, (cur,), kernel=(2, 2), strides=(2, 2))
    cur = b.add(Reshape, (cur,), shape=(1, int(np.prod(b.shapes[cur]))))
    graph = b.graph(b.dense(cur, 6), "pool")
    x = rng.uniform(0, 1, graph.input.shape)
    return graph, x - 0.05, x + 0.05, None
