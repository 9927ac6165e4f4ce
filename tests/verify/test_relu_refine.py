"""Hidden bounds refined by a branch and bound per neuron (robustc.verify.relu_split.refine).

Oracles: sampled and vertex inputs through a forward pass (the bounds must contain every
pre-activation), and the exact extreme values of each hidden neuron from a big-M MILP
written here with scipy's ``milp`` (the refined bounds must contain them, and come closer
to them than alpha-CROWN does). ``verify`` with the refinement forced must give the MILP's
verdict.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import Bounds as SciBounds
from scipy.optimize import LinearConstraint, milp

from robustc.compiler.bounds import compute_bounds
from robustc.verify import NOT_ROBUST, ROBUST, VerifyOptions, verify
from robustc.verify.relu_split.bounder import tighten
from robustc.verify.relu_split.chain import chain
from robustc.verify.relu_split.options import ReluSplitOptions
from robustc.verify.relu_split.refine import refine
from tests.verify.test_relu_split import _net, _pre_activations, _problem


def _setup(tmp_path, seed, sizes=(20, 24, 24, 16, 3), radius=1.0):
    rng, _, graph = _net(tmp_path, seed, list(sizes))
    ch = chain(graph)
    n = sizes[0]
    lo, hi = np.full(n, -radius), np.full(n, radius)
    bounds = compute_bounds(graph, lo.reshape(1, n), hi.reshape(1, n), "symbolic")
    pre = ([bounds.lower[k].ravel() for k in ch.pre], [bounds.upper[k].ravel() for k in ch.pre])
    t_lo, t_hi = tighten(ch, lo, hi, *pre, steps=30)
    return rng, ch, lo, hi, t_lo, t_hi


def _extremes(ch, lo, hi, pre_lo, pre_hi, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact min and max of every pre-activation of hidden layer ``k`` over the box, by a
    big-M MILP per neuron (variables: input, then per layer below ``k`` its
    pre-activations, activations and phase binaries; ``pre_lo``/``pre_hi`` must be valid)."""
    n_in = lo.size
    sizes = [w.shape[0] for w in ch.weights[:k]]
    n_var = n_in + 3 * sum(sizes)
    rows, r_lo, r_hi = [], [], []
    v_lo, v_hi = [lo], [hi]
    integrality = [np.zeros(n_in)]
    prev, start = np.arange(n_in), n_in
    for j, m in enumerate(sizes):
        z, a, d = start + np.arange(m), start + m + np.arange(m), start + 2 * m + np.arange(m)
        start += 3 * m
        l, u = pre_lo[j], pre_hi[j]
        v_lo += [l, np.zeros(m), np.zeros(m)]
        v_hi += [u, np.maximum(u, 0.0), np.ones(m)]
        integrality += [np.zeros(m), np.zeros(m), np.ones(m)]
        for i in range(m):
            row = np.zeros(n_var)  # z = W a_prev + b
            row[z[i]], row[prev] = 1.0, -ch.weights[j][i]
            rows.append(row)
            r_lo.append(ch.biases[j][i])
            r_hi.append(ch.biases[j][i])
            # a >= z;  a <= z - l (1 - d);  a <= u d
            for coef, bound in (({a[i]: 1, z[i]: -1}, (0, np.inf)),
                                ({a[i]: 1, z[i]: -1, d[i]: -l[i]}, (-np.inf, -l[i])),
                                ({a[i]: 1, d[i]: -max(u[i], 0.0)}, (-np.inf, 0))):
                row = np.zeros(n_var)
                for c, v in coef.items():
                    row[c] = v
                rows.append(row)
                r_lo.append(bound[0])
                r_hi.append(bound[1])
        prev = a
    cons = LinearConstraint(np.array(rows), r_lo, r_hi)
    box = SciBounds(np.concatenate(v_lo), np.concatenate(v_hi))
    integ = np.concatenate(integrality)
    w, b = ch.weights[k], ch.biases[k]
    out_lo, out_hi = np.empty(w.shape[0]), np.empty(w.shape[0])
    for i in range(w.shape[0]):
        for sign, out in ((1.0, out_lo), (-1.0, out_hi)):
            c = np.zeros(n_var)
            c[prev] = sign * w[i]
            res = milp(c, constraints=cons, bounds=box, integrality=integ,
                       options={"mip_rel_gap": 0.0})
            assert res.success, res.message
            out[i] = sign * res.fun + b[i]
    return out_lo, out_hi


@pytest.mark.parametrize("seed", range(3))
def test_refined_bounds_hold_and_are_tighter(tmp_path, seed):
    rng, ch, lo, hi, t_lo, t_hi = _setup(tmp_path, seed)
    stats = {}
    r_lo, r_hi = refine(ch, lo, hi, t_lo, t_hi, ReluSplitOptions(iterations=10), stats=stats)
    x = rng.uniform(lo, hi, (20000, lo.size))
    x[:4000] = np.where(rng.random((4000, lo.size)) < 0.5, lo, hi)  # vertices too
    for z, l, h, l0, h0 in zip(_pre_activations(ch, x), r_lo, r_hi, t_lo, t_hi, strict=True):
        assert np.all(z >= l[None] - 1e-9) and np.all(z <= h[None] + 1e-9)
        assert np.all(l >= l0) and np.all(h <= h0)
    width = lambda a, b: sum((v - u).sum() for u, v in zip(a, b, strict=True))  # noqa: E731
    assert width(r_lo, r_hi) < 0.85 * width(t_lo, t_hi)  # about 0.7 on these networks
    assert set(stats) == {"layer1", "layer2"}  # every layer above the first


@pytest.mark.parametrize("seed", range(2))
def test_refined_bounds_contain_the_exact_extremes(tmp_path, seed):
    """Layer by layer, the refined bounds contain the MILP's exact minimum and maximum of
    every neuron, and close more of alpha-CROWN's gap to them than they leave."""
    _, ch, lo, hi, t_lo, t_hi = _setup(tmp_path, seed, sizes=(10, 12, 12, 8, 2))
    r_lo, r_hi = refine(ch, lo, hi, t_lo, t_hi, ReluSplitOptions(iterations=20,
                                                                 refine_rounds=12))
    gap_alpha = gap_refined = 0.0
    for k in range(1, len(ch.hidden)):
        e_lo, e_hi = _extremes(ch, lo, hi, r_lo, r_hi, k)
        assert np.all(r_lo[k] <= e_lo + 1e-7) and np.all(r_hi[k] >= e_hi - 1e-7)
        gap_alpha += (e_lo - t_lo[k]).sum() + (t_hi[k] - e_hi).sum()
        gap_refined += (e_lo - r_lo[k]).sum() + (r_hi[k] - e_hi).sum()
    assert gap_refined < 0.25 * gap_alpha  # about 0.06 on these networks


def test_refinement_stops_at_until_and_stays_valid(tmp_path):
    """With ``until`` already past nothing is refined (the bounds come back unchanged)."""
    import time

    _, ch, lo, hi, t_lo, t_hi = _setup(tmp_path, 0)
    stats = {}
    r_lo, r_hi = refine(ch, lo, hi, t_lo, t_hi, until=time.perf_counter() - 1, stats=stats)
    assert not stats
    for a, b in zip(r_lo + r_hi, t_lo + t_hi, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(6))
def test_verify_with_refinement_agrees_with_milp(tmp_path, seed):
    """``refine_after=0``: the first search stops at once, the bounds are refined and the
    open cases searched again; the verdict is the MILP's."""
    problem, box = _problem(tmp_path, seed, "threshold" if seed % 2 else "beats")
    opts = ReluSplitOptions(min_unstable=0, refine_after=0.0, iterations=10)
    split = verify(problem, VerifyOptions(attack=False, threads=1, relu_split=opts))
    milp_ = verify(problem, VerifyOptions(attack=False, threads=1, relu_split=None))
    assert split.verdict in (ROBUST, NOT_ROBUST), split.reason
    assert split.verdict == milp_.verdict, (split.reason, milp_.reason)
    assert "relu_refine_s" in split.stats  # the refinement ran
    if split.verdict == NOT_ROBUST:
        assert split.counterexample.margin <= 0 and box.contains(split.counterexample.input)
