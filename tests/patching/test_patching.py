"""Patch encodings and AIGENT on the paper's two-hidden-layer toy network.

Oracles: hand-computed minimal patches, scipy.optimize.linprog for the last-layer LP, the
IR interpreter and onnxruntime on exported ONNX files.
"""

from __future__ import annotations

import numpy as np
import pytest

from robustc.analyses.patch.algorithms import aigent, mod2adv, mod2adv_region, patched, solve_patch
from robustc.ir import Dense, Graph, Input, Relu, evaluate
from robustc.ir.property import holds, output_gt

W1 = np.array([[1.0, 1.0], [-1.0, 2.0]])
W2 = np.array([[2.0, 3.0], [1.0, 1.0]])
W3 = np.array([[2.0, -8.0], [-4.0, 5.0]])
X = np.array([0.5, 0.5])
COND = output_gt(2, 1, 0)           # o2 > o1


def toy() -> Graph:
    """AIGENT's Fig. 1 network: values <1, .5>, <3.5, 1.5>, <-5, -6.5> at <.5, .5>."""
    z = np.zeros(2)
    nodes = (Input("x", (), (2,)), Dense("l0", ("x",), (2,), weight=W1, bias=z),
             Relu("r0", ("l0",), (2,)), Dense("l1", ("r0",), (2,), weight=W2, bias=z),
             Relu("r1", ("l1",), (2,)), Dense("l2", ("r1",), (2,), weight=W3, bias=z))
    return Graph(nodes, ("x",), ("l2",), "toy").verify()


def test_toy_values_match_paper():
    assert np.allclose(evaluate(toy(), X), [-5.0, -6.5])


@pytest.mark.parametrize("norm,expected", [("l1", 1.5 / 3.5), ("linf", 1.5 / 10.0)])
def test_last_layer_minimal_patch_by_hand(norm, expected):
    # o2 - o1 = -1.5 + (dW21 - dW11) 3.5 + (dW22 - dW12) 1.5
    res = solve_patch(toy(), 2, [X], COND, norm=norm, margin=0.0)
    assert res.optimal
    assert res.objective == pytest.approx(expected, abs=1e-6)


def test_last_layer_lp_matches_linprog():
    from scipy.optimize import linprog

    a = np.array([3.5, 1.5])
    # variables: dW (4, row-major) and u (4) >= |dW|; minimise sum u
    c = np.r_[np.zeros(4), np.ones(4)]
    A_ub = [np.r_[a, -a, np.zeros(4)]]   # -(change of o2 - o1) <= -1.5
    b_ub = [-1.5]
    for i in range(4):
        e = np.zeros(8)
        e[i], e[4 + i] = 1, -1
        A_ub.append(e)
        b_ub.append(0)
        e = np.zeros(8)
        e[i], e[4 + i] = -1, -1
        A_ub.append(e)
        b_ub.append(0)
    ref = linprog(c, A_ub=np.array(A_ub), b_ub=b_ub, bounds=[(None, None)] * 8)
    res = solve_patch(toy(), 2, [X], COND, norm="l1", margin=0.0)
    assert res.objective == pytest.approx(ref.fun, abs=1e-6)


@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize("norm", ["l1", "linf"])
def test_marked_model_same_optimum_and_signs(k, norm):
    full = solve_patch(toy(), k, [X], COND, norm=norm, cap=10.0, marks=False)
    marked = solve_patch(toy(), k, [X], COND, norm=norm, cap=10.0, marks=True)
    assert marked.objective == pytest.approx(full.objective, rel=1e-5)
    both = (np.abs(full.dw) > 1e-6) & (np.abs(marked.dw) > 1e-6)
    if norm == "l1":   # ties may pick other weights; where both change one, signs agree
        assert np.array_equal(np.sign(full.dw[both]), np.sign(marked.dw[both]))


@pytest.mark.parametrize("k", [0, 1, 2])
def test_patched_network_satisfies_condition(k):
    g = toy()
    res = solve_patch(g, k, [X], COND, norm="l1", cap=10.0)
    assert res.found
    assert holds(COND, evaluate(patched(g, res), X)[None])[0]
    assert not holds(COND, evaluate(g, X)[None])[0]


def test_mod2adv_reproduces_paper_targets():
    # first-layer targets <1/8, 0> (paper, Eqns 3-5): x1 + x2 = 1/8, -x1 + 2 x2 <= 0;
    # both pixels must change, and the L1 change is 1 - 1/8 whatever the split.
    x = mod2adv(toy(), X, np.array([0.125, 0.0]), np.zeros(2), COND, max_delta=0.5)
    assert x is not None
    assert x.sum() == pytest.approx(0.125, abs=1e-6)
    assert -x[0] + 2 * x[1] <= 1e-6
    assert np.abs(x - X).sum() == pytest.approx(0.875, abs=1e-6)
    assert np.all((x >= 0) & (x <= 1))
    assert holds(COND, evaluate(toy(), x)[None])[0]


def test_aigent_finds_adversarial_input():
    res = aigent(toy(), X, COND, max_delta=0.5)
    assert res.status == "found"
    assert np.all(np.abs(res.x_adv - X) <= 0.5 + 1e-9)
    assert holds(COND, evaluate(toy(), res.x_adv)[None])[0]


def test_aigent_respects_domain_and_budget():
    # a budget too small: delta 0.05 cannot flip the toy network
    res = aigent(toy(), X, COND, max_delta=0.05)
    assert res.x_adv is None


def _phases_at(g, x):
    acts = evaluate(g, x, keep_all=True)
    return {r.name: np.asarray(acts[r.name]).ravel() > 0 for r in g.relus()}


def test_phase_fixed_lp_middle_layer_by_hand():
    # layer 1 with r1 kept active (z1 = <3.5, 1.5>): o2 - o1 = -6 z1'_1 + 13 z1'_2 = -1.5;
    # the cheapest L1 change raises z1'_2 by 1.5/13 through the weight of a_1 = 1 (the
    # largest input activation), so the minimum is 1.5/13 and equals the full MILP's.
    g = toy()
    res = solve_patch(g, 1, [X], COND, norm="l1", margin=0.0, phases=_phases_at(g, X))
    assert res.optimal and res.stats["phases_fixed"]
    assert res.objective == pytest.approx(1.5 / 13, abs=1e-7)
    full = solve_patch(g, 1, [X], COND, norm="l1", margin=0.0, cap=10.0)
    assert full.objective == pytest.approx(res.objective, abs=1e-6)
    out = evaluate(patched(g, res), X, keep_all=True)
    assert out["l2"][1] >= out["l2"][0] - 1e-9
    assert np.all(np.asarray(out["l1"]) > 0)          # the fixed phases hold


def test_phase_fixed_lp_infeasible_when_phases_forbid():
    # both r1 neurons fixed inactive: the outputs are 0 whatever the patch of layer 1
    g = toy()
    phases = _phases_at(g, X)
    phases["r1"] = np.array([False, False])
    res = solve_patch(g, 1, [X], COND, norm="l1", phases=phases)
    assert not res.found and res.status == "infeasible"


def test_radius_limit_and_optimality_certificate():
    # |z1' - z1| <= 0.05 per neuron gains at most (6 + 13) 0.05 < 1.5: no patch;
    # radius 1 keeps the optimum 1.5/13 <= 1 / max|a| = 1, so it is still proven optimal.
    g = toy()
    small = solve_patch(g, 1, [X], COND, norm="l1", margin=0.0, cap=10.0, radius=0.05)
    assert not small.found and small.status == "infeasible"
    res = solve_patch(g, 1, [X], COND, norm="l1", margin=0.0, cap=10.0, radius=1.0)
    assert res.optimal
    assert res.objective == pytest.approx(1.5 / 13, abs=1e-6)


def test_mod2adv_region_by_hand():
    # every ReLU kept active, the toy network is affine: o2 - o1 = 6 x1 - 9 x2, with
    # phase rows x1 + x2 >= 0, -x1 + 2 x2 >= 0, -x1 + 8 x2 >= 0, x2 >= 0. One pixel
    # suffices: x1 in (0.75, 1] (change 0.25) or x2 in [0.25, 1/3) (change 1/6, smaller).
    g = toy()
    x = mod2adv_region(g, X, _phases_at(g, X), COND, max_delta=0.5, margin=1e-6)
    assert x is not None
    assert x[0] == pytest.approx(0.5, abs=1e-9)
    assert x[1] == pytest.approx(1 / 3, abs=1e-4)
    vals = evaluate(g, x, keep_all=True)
    assert holds(COND, vals["l2"][None])[0]
    assert np.all(np.asarray(vals["l0"]) >= -1e-9) and np.all(np.asarray(vals["l1"]) >= -1e-9)


def test_mod2adv_region_respects_budget():
    # changes a = x1 - 0.5 and b = 0.5 - x2 need 6 a + 9 b > 1.5: with |a|, |b| <= 0.15
    # one pixel is not enough (0.9, 1.35) but two are; with 0.09 (at most 1.35) none
    g = toy()
    x = mod2adv_region(g, X, _phases_at(g, X), COND, max_delta=0.15)
    assert x is not None and np.count_nonzero(x != X) == 2
    assert np.all(np.abs(x - X) <= 0.15 + 1e-9)
    assert holds(COND, evaluate(g, x)[None])[0]
    assert mod2adv_region(g, X, _phases_at(g, X), COND, max_delta=0.09) is None


def test_aigent_region_finds_adversarial_input():
    g = toy()
    res = aigent(g, X, COND, max_delta=0.5, relax="region")
    assert res.status == "found"
    assert np.all(np.abs(res.x_adv - X) <= 0.5 + 1e-9)
    assert np.all((res.x_adv >= 0) & (res.x_adv <= 1))
    assert holds(COND, evaluate(g, res.x_adv)[None])[0]


def test_output_marks_follow_monotonicity():
    from robustc.analyses.patch.algorithms import target_atoms
    from robustc.backends.patch.marks import output_marks
    from robustc.ir.property import dnf, in_top_k

    y = np.array([[3.0, 1.0, 2.0, 0.0]])
    # "label 2 wins": raising y2 never hurts, lowering any other never hurts
    assert list(output_marks(dnf(in_top_k(4, 2, 1))[0], y)) == [-1, -1, 1, -1]
    # equality targets (both directions) leave a neuron unmarked; one-sided ones mark it
    atoms = target_atoms(np.array([1.0, 2.0, 0.5, 0.0]), np.array([0, 1, -1, 0]))
    assert list(output_marks(atoms, y)) == [0, 1, -1, 0]
