"""The ReLU split on the IR graph (robustc.verify.relu_split.graph) against forward passes,
sampled points and a second solver.

The MaxPool rewrite must compute the same function; every bound of a domain (hidden
bounds and the rows' lower bounds, under the domain's phase decisions) must hold on the
sampled points of that domain; ``verify`` with the graph search must give the MILP's verdict
on convolutional, max-pooled and residual networks for argmax, top-k and multi-label
properties, every counterexample replayed on onnxruntime.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustc.backends.milp.encode import MARGIN_TOL
from robustc.compiler.bounds import compute_bounds
from robustc.compiler.passes import maxpool_as_relus
from robustc.ir import MaxPool, evaluate, logits
from robustc.ir.property import And, Box, Property, dnf, in_top_k, negate, output_gt
from robustc.verify import NOT_ROBUST, ROBUST, Problem, VerifyOptions, verify
from robustc.verify.relu_split.graph import GraphSplit, Requirements
from robustc.verify.relu_split.options import ReluSplitOptions
from tests.bounds.bounds_helpers import random_conv, random_residual
from tests.verify.nets import conv_onnx, residual_onnx, save_and_load


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), family=st.sampled_from(["conv", "residual"]))
def test_maxpool_as_relus_computes_the_same_function(seed, family):
    rng = np.random.default_rng(seed)
    graph = random_conv(rng, channels=int(rng.integers(1, 3)), size=int(rng.integers(5, 9))) \
        if family == "conv" else random_residual(rng, channels=2, size=6)
    rewritten = maxpool_as_relus(graph)
    assert not any(isinstance(n, MaxPool) for n in rewritten.nodes)
    x = rng.normal(size=(16, *graph.input.shape)) * 2
    np.testing.assert_allclose(evaluate(rewritten, x, batched=True),
                               evaluate(graph, x, batched=True), rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), passes=st.booleans())
def test_maxpool_as_relus_with_bounds_is_the_same_function_on_the_box(seed, passes):
    """With valid bounds on a box, the windows keep only the elements that can be their
    maximum (and, before a ReLU, that can be positive): the network's output is unchanged
    at every sampled point of the box (and at its corners), with no more ReLUs. The
    standard passes move a ReLU that feeds a pool behind it (the pool then feeds the ReLU,
    as in the 64x64 example networks)."""
    from robustc.compiler.passes import standard_passes

    rng = np.random.default_rng(seed)
    graph = random_conv(rng, channels=int(rng.integers(1, 3)), size=int(rng.integers(5, 9)))
    if passes:
        graph = standard_passes().run(graph)
    x0 = rng.uniform(0, 1, size=graph.input.shape)
    eps = float(rng.uniform(0.01, 0.3))
    bounds = compute_bounds(graph, x0 - eps, x0 + eps, "symbolic")
    lo, hi = (x0 - eps).ravel(), (x0 + eps).ravel()
    pruned = maxpool_as_relus(graph, (bounds.lower, bounds.upper))
    full = maxpool_as_relus(graph)
    assert sum(n.op == "relu" for n in pruned.nodes) <= sum(n.op == "relu" for n in full.nodes)
    inside = lo + (hi - lo) * rng.uniform(size=(64, lo.size))
    corners = np.where(rng.uniform(size=(16, lo.size)) < 0.5, lo, hi)
    x = np.concatenate([inside, corners]).reshape(-1, *graph.input.shape)
    np.testing.assert_allclose(evaluate(pruned, x, batched=True),
                               evaluate(graph, x, batched=True), rtol=0, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(2, 16), data=st.data())
def test_spread_gives_each_window_k_minus_one_pairs_of_different_elements(size, data):
    """The max-pool tree of ``size`` leaves, windows of 1..size elements: every window's
    leaves hold all its elements; at each pair both sides hold disjoint element sets
    (counted as a pair of different elements) or the same single element; and a window
    of k elements has exactly k - 1 of the first kind."""
    from robustc.compiler.passes import _spread, _tree

    k = np.array(data.draw(st.lists(st.integers(1, size), min_size=1, max_size=8)))
    tree = _tree(size)
    leaf = np.zeros((len(k), size), dtype=np.int64)
    mixed: dict = {}
    _spread(tree, np.zeros(len(k), dtype=np.int64), k, leaf, mixed)
    for w in range(len(k)):
        assert set(leaf[w]) == set(range(k[w]))

    def elements(sub, w):
        return {int(leaf[w, sub])} if isinstance(sub, int) else \
            elements(sub[0], w) | elements(sub[1], w)

    pairs = np.zeros(len(k), dtype=np.int64)

    def walk(sub):
        if isinstance(sub, int):
            return
        for w in range(len(k)):
            left, right = elements(sub[0], w), elements(sub[1], w)
            if mixed[id(sub)][w]:
                assert not left & right
            else:
                assert left == right and len(left) == 1
        pairs[:] += mixed[id(sub)]
        walk(sub[0])
        walk(sub[1])

    walk(tree)
    assert np.array_equal(pairs, k - 1)


def test_requirements_refute_and_satisfy_top_k_cases():
    n = 4
    cond = in_top_k(n, 0, 2)  # label 0 in the top 2: violated when 2 others beat it
    req = Requirements(dnf(negate(cond)))
    y = np.array([[3.0, 1.0, 2.0, 0.0], [1.0, 3.0, 2.0, 0.0], [2.0, 1.0, 2.0, 2.0]])
    m = y @ np.stack([a.coeffs for a in req.atoms]).T + [a.const for a in req.atoms]
    violated = req.violation(m) >= 0
    truth = [(row[1:] >= row[0]).sum() >= 2 for row in y]
    assert list(violated) == truth
    # bounds: lb of -m above tol means the atom is impossible
    lb = np.full((1, len(req.atoms)), -1.0)
    assert req.refutation(lb).min() <= 0
    lb[0, :] = 1.0
    assert req.refutation(lb).min() > 0


def _argmax_box(rng, graph, radius):
    """A box of ``radius`` around a random centre and "the centre's argmax stays"."""
    centre = rng.normal(size=graph.input.shape)
    y0 = evaluate(graph, centre).ravel()
    top = int(np.argmax(y0))
    cond = And(tuple(output_gt(y0.size, top, j) for j in range(y0.size) if j != top))
    return centre - radius, centre + radius, cond


def _search(graph, lo, hi, cond, rounds=4, refresh=False, candidates=1, passes=False):
    g, _ = logits(graph)
    bounds = compute_bounds(g, lo, hi, "symbolic")
    search = GraphSplit(g, lo, hi, bounds, dnf(negate(cond)), MARGIN_TOL, None,
                        ReluSplitOptions(graph_refresh=refresh, graph_candidates=candidates))
    # every MaxPool is rewritten into ReLUs, so a round's bounds are the domains' own
    # (GraphSplit._clipped_bounds) unless told to pass over the graph (Crown.refine)
    assert search.relus_only
    search.relus_only = not passes
    search._root()
    for _ in range(rounds):
        if not search.heap:
            break
        search._round()
    return search


@pytest.mark.parametrize("refresh, candidates, passes",
                         [(False, 1, False), (False, 1, True), (True, 1, False), (False, 3, False)])
@pytest.mark.parametrize("seed", [2, 3, 6, 9])  # seeds whose root is not refuted at once
def test_every_domain_bound_holds_on_the_sampled_points_of_the_domain(seed, refresh,
                                                                      candidates, passes):
    """Every domain's bounds (the root tightened by alpha-CROWN on intermediate bounds,
    rows refuted in a parent not bounded again; BaBSR or filtered smart branching; a
    round's bounds the domains' own or from an interval pass over the graph) hold on the
    sampled points of that domain."""
    rng = np.random.default_rng(seed)
    graph = random_conv(rng, channels=1, size=7) if seed % 2 else random_residual(rng, 2, 5)
    lo, hi, cond = _argmax_box(rng, graph, 0.3)
    search = _search(graph, lo, hi, cond, refresh=refresh, candidates=candidates,
                     passes=passes)
    assert search.stats["domains"] > 1 and search.heap
    g = search.graph
    x = rng.uniform(lo, hi, size=(20000, *lo.shape))
    values = evaluate(g, x, batched=True, keep_all=True)
    pre = np.concatenate([values[r.inputs[0]].reshape(len(x), -1) for r in search.relus], 1)
    m = values[g.outputs[0]].reshape(len(x), -1) @ search.w_np.T + search.b_np
    checked = 0
    for _, _, d in search.heap:
        signs, d_lo, d_hi = (a[0] for a in search.unpack([d]))
        inside = np.all((signs == 0) | (signs * pre >= 0), axis=1)
        if not inside.any():
            continue
        checked += 1
        assert np.all(pre[inside] >= d_lo - 1e-9) and np.all(pre[inside] <= d_hi + 1e-9)
        assert np.all(-m[inside] >= d.lb - 1e-9)
    assert checked >= 3


@pytest.mark.parametrize("seed", [2, 8, 12, 13])
def test_domains_are_stored_compactly_and_restored_exactly(seed, monkeypatch):
    """A domain keeps copies (no view of its round's batch) on the neurons unstable at the
    root only, beta only on its decided neurons, alpha and beta only for the rows it
    leaves open; the parents a round restores (:meth:`GraphSplit._expand`,
    :meth:`GraphSplit.unpack`) equal the arrays the bound returned, every column, on the
    rows they keep (the steps never move alpha off those columns nor beta off the
    decisions), and the root's alpha and zero beta on the rows they refuted; their
    decisions and ReLU input bounds are the round's on every neuron (rounded outwards to
    float32)."""
    rng = np.random.default_rng(seed)
    graph = random_conv(rng, channels=1, size=7) if seed % 2 else random_residual(rng, 2, 5)
    lo, hi, cond = _argmax_box(rng, graph, 0.3)
    given, compared, dropped = {}, [0], [0]
    real_domain, real_expand = GraphSplit._domain, GraphSplit._expand

    def domain(self, measure, depth, choice, signs, lo, hi, alpha, beta, lb, rows):
        d = real_domain(self, measure, depth, choice, signs, lo, hi, alpha, beta, lb, rows)
        given[id(d)] = (rows, alpha.copy(), beta.copy(), signs.copy(), lo.copy(), hi.copy(),
                        lb.copy())
        for a in (d.signs, d.lo, d.hi, d.rows, d.alpha, d.beta, d.lb):
            assert a.base is None or a.base.nbytes == a.nbytes  # owns its memory
        return d

    def expand(self, parents, rows):
        alpha, beta = real_expand(self, parents, rows)
        every = np.arange(self.rows)
        full_a, full_b = real_expand(self, parents, every)
        np.testing.assert_array_equal(full_a[:, rows], alpha)
        np.testing.assert_array_equal(full_b[:, rows], beta)
        for i, d in enumerate(parents):
            if id(d) not in given:
                continue
            bounded, a, b, signs, d_lo, d_hi, lb = given[id(d)]
            s, u_lo, u_hi = (a[0] for a in self.unpack([d]))
            np.testing.assert_array_equal(s, signs)
            assert np.all(u_lo <= d_lo) and np.all(u_hi >= d_hi)
            np.testing.assert_allclose(u_lo, d_lo, rtol=1e-6, atol=1e-30)
            np.testing.assert_allclose(u_hi, d_hi, rtol=1e-6, atol=1e-30)
            open_ = lb[bounded] <= self.tol
            np.testing.assert_array_equal(full_a[i][bounded[open_]], a[open_])
            np.testing.assert_array_equal(full_b[i][bounded[open_]], b[open_])
            refuted = np.setdiff1d(every, bounded[open_])
            np.testing.assert_array_equal(full_a[i][refuted], self.alpha_fill[refuted])
            assert (full_b[i][refuted] == 0).all()
            compared[0] += 1
            dropped[0] += int((~open_).sum())
        return alpha, beta

    monkeypatch.setattr(GraphSplit, "_domain", domain)
    monkeypatch.setattr(GraphSplit, "_expand", expand)
    search = _search(graph, lo, hi, cond, rounds=4)
    # the seeds' searches have rounds whose domains refute some of the rows bounded
    assert compared[0] >= 3 and dropped[0] >= 1 and search.heap
    total = search.offsets[-1]
    assert all(d.lo.size < total and d.alpha.shape == (d.rows.size, d.lo.size)
               and d.beta.shape == (d.rows.size, (d.signs != 0).sum())
               for _, _, d in search.heap)


def test_a_queue_past_its_bytes_ends_the_search_unknown(monkeypatch):
    """The open domains' bytes (as stored, compactly) are counted; past ``QUEUE_BYTES``
    the search stops with ``unknown`` and that reason, leaving every case open."""
    from robustc.verify.relu_split import graph as module

    rng = np.random.default_rng(3)
    graph = random_conv(rng, channels=1, size=7)
    lo, hi, cond = _argmax_box(rng, graph, 1.0)
    g, _ = logits(graph)
    monkeypatch.setattr(module, "QUEUE_BYTES", 1)  # read when the search is made
    search = GraphSplit(g, lo, hi, compute_bounds(g, lo, hi, "symbolic"),
                        dnf(negate(cond)), MARGIN_TOL, None,
                        ReluSplitOptions(graph_rows=False))
    out = search.run()
    assert out.status == "unknown" and "outgrew" in out.reason, out
    assert search.queue_bytes == sum(d.nbytes for _, _, d in search.heap) > 1
    assert search.open_cases() == list(range(len(search.req.cases)))


def test_rounds_are_cut_to_the_time_left(monkeypatch):
    """A fake clock that advances 1 s per domain bounded and a deadline 300 s away: each
    round takes only the parents whose children fit in the time left, so the search stops
    within one child's cost of the deadline, and never past it (a round sized by the
    longest round so far stopped up to that round's time early). No wall-clock time."""
    import time

    rng = np.random.default_rng(3)
    graph = random_conv(rng, channels=1, size=7)
    lo, hi, cond = _argmax_box(rng, graph, 1.0)
    g, _ = logits(graph)
    bounds = compute_bounds(g, lo, hi, "symbolic")
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    real, sizes = GraphSplit.bound, []

    def bound(self, signs, *args, **kwargs):
        out = real(self, signs, *args, **kwargs)
        now[0] += signs.shape[0]
        sizes.append(signs.shape[0])
        return out

    monkeypatch.setattr(GraphSplit, "bound", bound)
    search = GraphSplit(g, lo, hi, bounds, dnf(negate(cond)), MARGIN_TOL, None,
                        ReluSplitOptions(graph_batch=64), deadline=300.0)
    out = search.run()
    assert out.status == "unknown" and "time limit" in out.reason, out
    assert 300.0 - 2.5 <= now[0] <= 300.0, (now[0], sizes)
    assert max(sizes) <= 128 and len(set(sizes[-3:])) > 1  # cut: not every round full


def _problem(tmp_path, model, name, eps, kind, rng):
    path = tmp_path / f"{name}.onnx"
    graph = save_and_load(model, path)
    x = rng.uniform(0, 1, graph.input.shape)
    y = evaluate(graph, x).ravel()
    order = np.argsort(-y)
    if kind == "argmax":
        cond = And(tuple(output_gt(y.size, int(order[0]), j) for j in range(y.size)
                         if j != order[0]))
    elif kind == "top2":
        cond = in_top_k(y.size, int(order[1]), 2)
    else:  # multi-label: the top two labels present (above a threshold), the last absent
        t = float((y[order[1]] + y[order[2]]) / 2)
        cond = And((output_gt(y.size, int(order[0]), value=t),
                    output_gt(y.size, int(order[1]), value=t),
                    output_gt(y.size, int(order[-1]), value=t).__class__(
                        -output_gt(y.size, int(order[-1])).coeffs, t, True)))
    prop = Property("p", (Box(x - eps, x + eps),), cond)
    return Problem(f"{name}-{kind}-{eps}", graph, (str(path),), prop)


@pytest.mark.parametrize("net, seeds", [("maxpool", (0, 3)), ("residual", (0, 2, 3))])
def test_the_graph_search_agrees_with_the_milp(tmp_path, net, seeds):
    verdicts, domains = set(), 0
    for seed in seeds:  # (residual seed 1 at eps 0.1, top-2: 200 s of MILP; left out)
        rng = np.random.default_rng(seed)
        model = conv_onnx(rng, hw=(8, 8), channels=(1, 3, 4), classes=4) if net == "maxpool" \
            else residual_onnx(rng, pool="max" if seed % 2 else "avg")
        for kind in ("argmax", "top2", "multilabel"):
            for eps in (0.03, 0.1):
                problem = _problem(tmp_path, model, f"{net}{seed}", eps, kind, rng)
                truth = verify(problem, VerifyOptions(attack=False, strategy="milp",
                                                      threads=1))
                got = verify(problem, VerifyOptions(attack=False, strategy="relu-split",
                                                    threads=1, time_limit=120))
                assert got.verdict == truth.verdict, (problem.name, got.reason)
                assert got.stats["queries"] == 0, problem.name  # decided without a MILP
                if got.verdict == NOT_ROBUST:
                    assert got.counterexample.margin < 0  # replayed on onnxruntime
                verdicts.add(got.verdict)
                domains = max(domains, got.stats["relu_split_domains"])
    assert verdicts == {ROBUST, NOT_ROBUST}
    assert domains > 10  # some property needed the branching


def test_auto_tries_each_case_by_milp_first_and_the_graph_search_takes_the_rest(tmp_path):
    import dataclasses

    rng = np.random.default_rng(3)
    model = conv_onnx(rng, hw=(8, 8), channels=(1, 3, 4), classes=4)
    problem = _problem(tmp_path, model, "probe", 0.1, "top2", rng)
    truth = verify(problem, VerifyOptions(attack=False, strategy="milp", threads=1))
    base = VerifyOptions(attack=False, threads=1, time_limit=120, alpha_steps=0)
    relu = dataclasses.replace(base.relu_split, min_unstable=0)
    probed = verify(problem, dataclasses.replace(base, relu_split=relu))
    assert probed.verdict == truth.verdict
    assert "milp_probe_s" in probed.stats and probed.stats["queries"] >= 1
    alone = verify(problem, dataclasses.replace(
        base, relu_split=dataclasses.replace(relu, milp_probe=0.0, milp_probe_topk=0.0)))
    assert alone.verdict == truth.verdict
    assert alone.stats["queries"] == 0 and alone.stats["relu_split_domains"] >= 1


@pytest.mark.slow  # 46 s under load
def test_filtered_smart_branching_and_plain_bounds_agree_with_the_milp(tmp_path):
    """The graph search with FSB (3 candidates) and with neither the root's alpha-CROWN
    intermediate bounds nor FSB gives the MILP's verdicts on a max-pooled CNN."""
    import dataclasses

    verdicts = set()
    rng = np.random.default_rng(0)
    model = conv_onnx(rng, hw=(8, 8), channels=(1, 3, 4), classes=4)
    for kind in ("argmax", "top2"):
        for eps in (0.03, 0.1):
            problem = _problem(tmp_path, model, "fsb", eps, kind, rng)
            truth = verify(problem, VerifyOptions(attack=False, strategy="milp", threads=1))
            for relu in (ReluSplitOptions(graph_candidates=3),
                         ReluSplitOptions(intermediate_steps=0)):
                options = VerifyOptions(attack=False, strategy="relu-split", threads=1,
                                        time_limit=120)
                got = verify(problem, dataclasses.replace(options, relu_split=relu))
                assert got.verdict == truth.verdict, (problem.name, relu, got.reason)
                assert got.stats["queries"] == 0, problem.name
                verdicts.add(got.verdict)
    assert verdicts == {ROBUST, NOT_ROBUST}



def _top2_against_milp(tmp_path, instances, stat: str, **search) -> tuple[set, int]:
    """Top-2 properties of max-pooled 8x8 CNNs (``(seed, eps)`` each) by the ReLU split
    with ``search`` overriding :class:`ReluSplitOptions`: each verdict equal to the MILP's,
    counterexamples replayed; returns the verdicts and the sum of the search's ``stat``."""
    import dataclasses

    verdicts, total = set(), 0
    for seed, eps in instances:
        rng = np.random.default_rng(seed)
        model = conv_onnx(rng, hw=(8, 8), channels=(1, 3, 4), classes=5)
        problem = _problem(tmp_path, model, f"top2_{seed}_{eps}", eps, "top2", rng)
        truth = verify(problem, VerifyOptions(attack=False, strategy="milp", threads=1))
        options = VerifyOptions(attack=False, strategy="relu-split", threads=1,
                                time_limit=120)
        options = dataclasses.replace(options, relu_split=dataclasses.replace(
            options.relu_split, **search))
        got = verify(problem, options)
        assert got.verdict == truth.verdict, (problem.name, got.reason)
        if got.verdict == NOT_ROBUST:
            assert got.counterexample.margin < 0
        verdicts.add(got.verdict)
        total += got.stats.get(f"relu_split_{stat}", 0)
    return verdicts, total


def test_the_pair_phase_agrees_with_the_milp_on_top2_properties(tmp_path):
    """With the pair phase on (``graph_pairs``: rows ``lam m_i + (1 - lam) m_j`` implied by
    two atoms, proved one by one), top-2 properties of max-pooled CNNs get the MILP's
    verdicts, counterexamples replayed; on the first two the row phase leaves a pair open
    and the pair phase runs (found by a session's scan of seeds 0-39: 2 of 80 such
    properties of these small networks need it)."""
    verdicts, pairs = _top2_against_milp(
        tmp_path, ((1, 0.03), (18, 0.04), (0, 0.03), (7, 0.1)), "pairs", graph_pairs=True)
    assert verdicts == {ROBUST, NOT_ROBUST}
    assert pairs >= 2


def test_a_row_stopped_for_the_pair_phase_is_resumed(tmp_path):
    """The row phase's last row stopped at once (``graph_row_share`` 0: its search ends at
    its share and waits for the pair phase) and resumed after it when the pair phase does
    not decide (``graph_pair_share`` 0): the MILP's verdicts still, counterexamples
    replayed, each resumed row counted (``rows_resumed``; properties of a session's scan of
    seeds 0-39 at eps 0.03, 0.06, 0.1 where the row phase has a row to prove and pairs
    follow it)."""
    verdicts, resumed = _top2_against_milp(
        tmp_path, ((0, 0.06), (25, 0.06), (5, 0.06), (28, 0.06)), "rows_resumed",
        graph_row_share=0.0, graph_pair_share=0.0)
    assert verdicts == {ROBUST, NOT_ROBUST}
    assert resumed == 4
