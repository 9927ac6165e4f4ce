"""ReLU splitting (robustc.verify.relu_split.search) against forward passes and a second solver.

The chain form must compute the network; the alpha-CROWN and beta-CROWN bounds must hold
on sampled points (of the domain, for bounds under phase decisions); ``verify`` with ReLU
splitting must give the MILP's verdict on random networks with more inputs than the input
split takes, every counterexample replayed on onnxruntime; an undecided search is never a
proof.
"""

from __future__ import annotations

import numpy as np
import pytest

from robustc.compiler.bounds import compute_bounds
from robustc.ir import evaluate
from robustc.ir.property import And, Box, Linear, Property
from robustc.verify import NOT_ROBUST, ROBUST, Problem, VerifyOptions, verify
from robustc.verify.cases import FOUND, PROVED, UNKNOWN, margin_graph
from robustc.verify.relu_split.bounder import Bounder, tighten
from robustc.verify.relu_split.chain import chain
from robustc.verify.relu_split.options import ReluSplitOptions
from robustc.verify.relu_split.search import decide_cases, decide_one_case
from tests.verify.nets import conv_onnx, mlp_onnx, save_and_load

SIZES = [20, 24, 24, 16, 3]  # 20 inputs: more than the input split's 16, so ReLUs split


def _net(tmp_path, seed, sizes=SIZES):
    rng = np.random.default_rng(seed)
    path = tmp_path / "net.onnx"
    return rng, path, save_and_load(mlp_onnx(rng, sizes), path)


def _pre_activations(ch, x):
    """Every hidden layer's pre-activations on flat inputs ``x`` (forward pass)."""
    out, a = [], x
    for w, b in zip(ch.weights[:-1], ch.biases[:-1], strict=True):
        z = a @ w.T + b
        out.append(z)
        a = np.maximum(z, 0.0)
    return out


def test_chain_computes_the_network(tmp_path):
    rng, _, graph = _net(tmp_path, 0)
    ch = chain(graph)
    assert ch is not None and ch.hidden == [24, 24, 16]
    x = rng.uniform(-1, 1, (50, 20))
    want = evaluate(graph, x.reshape(50, 1, 20), batched=True).reshape(50, -1)
    np.testing.assert_allclose(ch.forward(x), want, rtol=1e-5, atol=1e-5)


def test_chain_rejects_other_graphs(tmp_path):
    rng = np.random.default_rng(1)
    assert chain(save_and_load(conv_onnx(rng), tmp_path / "conv.onnx")) is None  # MaxPool
    leaky = save_and_load(mlp_onnx(rng, [4, 5, 2], alpha=0.1), tmp_path / "leaky.onnx")
    assert chain(leaky) is None


@pytest.mark.parametrize("seed", range(3))
def test_tightened_bounds_hold_and_are_tighter(tmp_path, seed):
    rng, _, graph = _net(tmp_path, seed)
    ch = chain(graph)
    lo, hi = np.full(20, -1.0), np.full(20, 1.0)
    bounds = compute_bounds(graph, lo.reshape(1, 20), hi.reshape(1, 20), "symbolic")
    pre_lo = [bounds.lower[n].ravel() for n in ch.pre]
    pre_hi = [bounds.upper[n].ravel() for n in ch.pre]
    t_lo, t_hi = tighten(ch, lo, hi, pre_lo, pre_hi, steps=30)
    x = rng.uniform(lo, hi, (20000, 20))
    x[:2000] = np.where(rng.random((2000, 20)) < 0.5, lo, hi)  # vertices too
    for z, l, h, l0, h0 in zip(_pre_activations(ch, x), t_lo, t_hi, pre_lo, pre_hi,
                               strict=True):
        assert np.all(z >= l[None] - 1e-9) and np.all(z <= h[None] + 1e-9)
        assert np.all(l >= l0) and np.all(h <= h0)
    width = lambda a, b: sum((v - u).sum() for u, v in zip(a, b, strict=True))  # noqa: E731
    assert width(t_lo, t_hi) < 0.99 * width(pre_lo, pre_hi)


@pytest.mark.parametrize("seed", range(3))
def test_beta_bound_holds_on_the_domain(tmp_path, seed):
    """Random phase decisions, random alpha in [0, 1] and beta >= 0: the bound of ``-y0``
    is below its value at every sampled input that satisfies the decisions."""
    import torch

    rng, _, graph = _net(tmp_path, seed)
    ch = chain(graph)
    lo, hi = np.full(20, -1.0), np.full(20, 1.0)
    bounds = compute_bounds(graph, lo.reshape(1, 20), hi.reshape(1, 20), "symbolic")
    pre_lo = [bounds.lower[n].ravel().copy() for n in ch.pre]
    pre_hi = [bounds.upper[n].ravel().copy() for n in ch.pre]
    x0 = rng.uniform(lo, hi)  # decisions taken as at x0, so the domain is not empty
    x = np.clip(x0 + rng.uniform(-0.4, 0.4, (40000, 20)), lo, hi)
    x[:20000] = rng.uniform(lo, hi, (20000, 20))
    zs, z0 = _pre_activations(ch, x), _pre_activations(ch, x0[None])
    signs, keep = [], np.ones(len(x), dtype=bool)
    for k, (l, h) in enumerate(zip(pre_lo, pre_hi, strict=True)):
        s = np.zeros(l.size)
        for j in rng.choice(np.flatnonzero((l < 0) & (h > 0)), 2, replace=False):
            s[j] = 1.0 if z0[k][0, j] >= 0 else -1.0
            keep &= s[j] * zs[k][:, j] >= 0
            l[j], h[j] = (max(l[j], 0.0), h[j]) if s[j] > 0 else (l[j], min(h[j], 0.0))
        signs.append(s)
    assert keep.sum() > 100
    bounder = Bounder(ch, lo, hi)
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))[None]  # noqa: E731
    obj = (torch.as_tensor(-ch.weights[-1][:1]), torch.as_tensor(-ch.biases[-1][:1]))
    alpha = [t(rng.random((1, n))) for n in ch.hidden]
    beta = [t(rng.exponential(1.0, (1, n))) for n in ch.hidden]
    lb, _, _ = bounder.bound(*obj, [t(v) for v in pre_lo], [t(v) for v in pre_hi],
                             [t(s) for s in signs], alpha, beta)
    assert float(lb[0, 0]) <= float((-ch.forward(x[keep])[:, 0]).min()) + 1e-9


def _problem(tmp_path, seed, kind):
    rng, path, graph = _net(tmp_path, seed, [20, 16, 12, 3])  # small enough for a quick MILP
    box = Box(np.full((1, 20), -0.2), np.full((1, 20), 0.2))
    y = evaluate(graph, rng.uniform(-0.2, 0.2, (4000, 1, 20)), batched=True).reshape(4000, -1)
    shift = float(rng.choice([-0.3, 0.02]))
    if kind == "threshold":
        cond = Linear(np.array([1.0, 0.0, 0.0]), -(float(y[:, 0].min()) + shift))
    else:
        t = float(min((y[:, 0] - y[:, 1]).min(), (y[:, 0] - y[:, 2]).min())) + shift
        cond = And((Linear(np.array([1.0, -1.0, 0.0]), -t),
                    Linear(np.array([1.0, 0.0, -1.0]), -t)))
    return Problem("p", graph, (str(path),), Property("p", (box,), cond)), box


@pytest.mark.parametrize("seed", range(8))
def test_relu_split_agrees_with_milp(tmp_path, seed):
    problem, box = _problem(tmp_path, seed, "threshold" if seed % 2 else "beats")
    split = verify(problem, VerifyOptions(attack=False, threads=1,
                                          relu_split=ReluSplitOptions(min_unstable=0)))
    milp = verify(problem, VerifyOptions(attack=False, threads=1, relu_split=None))
    assert split.verdict in (ROBUST, NOT_ROBUST), split.reason
    assert split.verdict == milp.verdict, (split.reason, milp.reason)
    assert split.stats.get("relu_split_domains", 0) > 0 and milp.stats["queries"] > 0
    if split.verdict == NOT_ROBUST:
        assert split.counterexample.margin <= 0  # onnxruntime's margin (replayed)
        assert box.contains(split.counterexample.input)


def test_search_splits_and_is_never_a_proof_when_cut_short(tmp_path):
    """A case the root bounds leave open: the full search proves it after splitting, a
    search limited to one domain answers unknown, and verify then falls back to the MILP."""
    for seed in range(40):
        problem, box = _problem(tmp_path, seed, "threshold")
        graph = problem.graph
        milp = verify(problem, VerifyOptions(attack=False, threads=1, relu_split=None))
        if milp.verdict != ROBUST:
            continue
        cond = problem.prop.condition
        atom = Linear(-cond.coeffs, -cond.const)  # the violation m >= 0
        ch = chain(margin_graph(graph, [atom]))
        lo, hi = box.lower.ravel(), box.upper.ravel()
        bounds = compute_bounds(graph, box.lower, box.upper, "symbolic")
        pre = ([bounds.lower[n].ravel() for n in ch.pre], [bounds.upper[n].ravel() for n in ch.pre])
        opts = ReluSplitOptions(root_iterations=0, iterations=5)
        out = decide_one_case(ch, lo, hi, *pre, [0], tol=1e-5, check=lambda x: None,
                              options=opts)
        if out.stats["domains"] == 1:
            continue  # proved at the root: look for a harder case
        assert out.status == PROVED
        short = decide_one_case(ch, lo, hi, *pre, [0], tol=1e-5, check=lambda x: None,
                                options=ReluSplitOptions(root_iterations=0, iterations=5,
                                                         max_domains=0))
        assert short.status == UNKNOWN
        result = verify(problem, VerifyOptions(attack=False, threads=1, relu_split=ReluSplitOptions(
            min_unstable=0, root_iterations=0, iterations=5, max_domains=0)))
        assert result.verdict == ROBUST and result.stats["queries"] > 0  # decided by MILP
        return
    pytest.fail("no random case needed splitting")


def test_cases_take_turns(tmp_path):
    """Two violated cases, the first one never confirmed by ``check`` (so it can neither be
    proved nor found): the second case's counterexample is still found, and the first
    case is stopped open because of it, not left to run to the deadline first."""
    rng, _, graph = _net(tmp_path, 3)
    ch = chain(margin_graph(graph, [Linear(np.array([1.0, 0.0, 0.0]), 0.0),
                                    Linear(np.array([0.0, 1.0, 0.0]), 0.0)]))
    lo, hi = np.full(20, -1.0), np.full(20, 1.0)
    y = ch.forward(rng.uniform(lo, hi, (4000, 20)))
    t0, t1 = np.quantile(y[:, 0], 0.5), np.quantile(y[:, 1], 0.9)
    ch.biases[-1] = ch.biases[-1] - np.array([t0, t1])  # case i: y_i >= t_i, both violated
    bounds = compute_bounds(graph, lo.reshape(1, 20), hi.reshape(1, 20), "symbolic")
    pre = ([bounds.lower[n].ravel() for n in ch.pre], [bounds.upper[n].ravel() for n in ch.pre])
    seen = []

    def check(x):
        seen.append(x)
        return x if ch.forward(x[None])[0, 1] >= 0 else None

    import time
    outs = decide_cases(ch, lo, hi, *pre, [[0], [1]], tol=1e-6, check=check,
                        options=ReluSplitOptions(root_iterations=5, iterations=5),
                        deadline=time.perf_counter() + 120)
    assert outs[1].status == FOUND and ch.forward(outs[1].witness[None])[0, 1] >= 0
    assert outs[0].status == UNKNOWN and "another case" in outs[0].reason
    assert any(ch.forward(x[None])[0, 0] >= 0 for x in seen)  # case 0 was tried too


def test_children_keep_the_parents_bound(tmp_path):
    """A child's domain lies inside its parent's: a parent bound above the child's own
    optimised bound is kept (and a child whose inherited bound refutes it is closed)."""
    from robustc.verify.relu_split.bounder import Bounder
    from robustc.verify.relu_split.search import Search

    rng, _, graph = _net(tmp_path, 4)
    ch = chain(graph)
    lo, hi = np.full(20, -1.0), np.full(20, 1.0)
    bounds = compute_bounds(graph, lo.reshape(1, 20), hi.reshape(1, 20), "symbolic")
    pre_lo = np.concatenate([bounds.lower[n].ravel() for n in ch.pre])[None]
    pre_hi = np.concatenate([bounds.upper[n].ravel() for n in ch.pre])[None]
    search = Search(ch, Bounder(ch, lo, hi), np.array([0]), 1e-6, lambda x: None,
                     ReluSplitOptions(), None, {})
    alpha = np.full((1, 1, pre_lo.shape[1]), 0.5, np.float32)
    args = (np.zeros(pre_lo.shape, np.int8), pre_lo, pre_hi, alpha, np.zeros_like(alpha), 3)
    own = search.bound(*args).lb[0, 0]
    assert own < 0  # not refuted on its own
    assert search.bound(*args, inherited=np.array([[own + 0.5]])).lb[0, 0] == own + 0.5
    kept = search.bound(*args, inherited=np.array([[own - 0.5]]))
    assert kept.lb[0, 0] == own and kept.choice[0] >= 0
    closed = search.bound(*args, inherited=np.array([[1.0]]))
    assert closed.choice[0] == -1  # refuted by the inherited bound: nothing to split
