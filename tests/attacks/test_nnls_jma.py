"""SCD NNLS against scipy.optimize.nnls; JMA on linear models against closed forms / a QP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize, nnls

from robustc.runtime.attacks import JMA, MultiLabel, OneHot, Victim
from robustc.runtime.attacks.nnls import kkt_violation, scd_nnls

torch.set_num_threads(1)


@pytest.mark.parametrize("rows,cols", [(12, 8), (5, 9), (30, 3)])
def test_scd_nnls_matches_scipy(rows, cols):
    rng = np.random.default_rng(rows)
    c = rng.normal(size=(16, rows, cols))
    d = rng.normal(size=(16, rows))
    h = torch.tensor(np.einsum("bmi,bmj->bij", c, c))
    f = torch.tensor(-np.einsum("bmi,bm->bi", c, d))
    x = scd_nnls(h, f, max_sweeps=20000, tol=1e-11).numpy()
    ref = np.stack([nnls(c[i], d[i])[0] for i in range(16)])
    residual = np.linalg.norm(np.einsum("bmi,bi->bm", c, x) - d, axis=1)
    ref_residual = np.stack([nnls(c[i], d[i])[1] for i in range(16)])
    assert np.abs(residual - ref_residual).max() < 1e-6
    if rows > cols:  # C has full column rank: the minimiser is unique
        assert np.abs(x - ref).max() < 1e-6
    assert (x >= 0).all()
    assert float(kkt_violation(h, f, torch.tensor(x)).max()) < 1e-6
    assert (ref == 0).any() and (ref > 0).any()  # the instances mix active and free bounds


def _linear_victim(w: np.ndarray, bias: np.ndarray, encoding):
    layer = torch.nn.Linear(w.shape[1], w.shape[0]).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(w))
        layer.bias.copy_(torch.tensor(bias))
    module = torch.nn.Sequential(layer).float()
    big = torch.full((4, w.shape[1]), 1e6)
    return Victim(module, encoding, -big, big)


def test_jma_linear_multilabel_is_min_norm_in_one_iteration():
    # Orthogonal rows of different norms: the constraints decouple, and the minimum-norm
    # perturbation is sum_j w_j (s_j kappa - z0_j) / ||w_j||^2 over the labels with
    # s_j z0_j < kappa (the others are inactive constraints).
    rng = np.random.default_rng(0)
    n, m, kappa = 6, 20, 0.5
    q, _ = np.linalg.qr(rng.normal(size=(m, n)))
    w, bias = q.T * rng.uniform(0.5, 3.0, size=(n, 1)), rng.normal(size=n)
    x0 = rng.normal(size=(4, m))
    z0 = x0 @ w.T + bias
    target = z0 > 0
    target[:, :3] = ~target[:, :3]  # flip three labels, keep three
    victim = _linear_victim(w, bias, MultiLabel(n, 0.0))
    attack = JMA(max_iter=5, confidence=kappa, search_steps=0, nnls_sweeps=20000)
    result = attack.run(victim, torch.tensor(x0, dtype=torch.float32), torch.tensor(target))
    sign = np.where(target, 1.0, -1.0)
    need = np.where(sign * z0 < kappa, sign * kappa - z0, 0.0)
    closed = need @ (w / (w**2).sum(axis=1, keepdims=True))
    assert (sign * z0 >= kappa).any()  # some constraints are inactive
    assert result.success.all()
    assert (result.iterations == 0).all()  # (v - 1) + search_steps with v = 1
    assert np.abs((result.x_adv - x0) - closed).max() < 1e-4 * np.abs(closed).max()


def _qp_oracle(c: np.ndarray, e: np.ndarray) -> np.ndarray:
    """min ||delta||^2 s.t. C delta >= e (SLSQP)."""
    res = minimize(lambda d: d @ d, np.zeros(c.shape[1]), jac=lambda d: 2 * d,
                   constraints=[{"type": "ineq", "fun": lambda d: c @ d - e,
                                 "jac": lambda d: c}], method="SLSQP",
                   options={"ftol": 1e-12, "maxiter": 500})
    return res.x


@pytest.mark.parametrize("encoding", ["multilabel", "onehot"])
def test_jma_linear_matches_qp_with_inactive_constraints(encoding):
    rng = np.random.default_rng(1)
    n, m, kappa = 5, 12, 0.3
    w, bias = rng.normal(size=(n, m)), rng.normal(size=n)
    x0 = rng.normal(size=(4, m))
    z0 = x0 @ w.T + bias
    if encoding == "multilabel":
        enc, target = MultiLabel(n, 0.0), z0 > 0
        target[:, 0] = ~target[:, 0]
        rows = np.stack([np.diag(np.where(t, 1.0, -1.0)) for t in target])
    else:
        enc = OneHot(n)
        cls = (z0.argmax(axis=1) + 1) % n
        target = np.eye(n, dtype=bool)[cls]
        rows = np.stack([np.eye(n)[[c]] - np.delete(np.eye(n), c, axis=0) for c in cls])
    victim = _linear_victim(w, bias, enc)
    attack = JMA(max_iter=5, confidence=kappa, search_steps=0, nnls_sweeps=20000)
    result = attack.run(victim, torch.tensor(x0, dtype=torch.float32), torch.tensor(target))
    assert result.success.all() and (result.iterations == 0).all()
    for i in range(4):
        g = rows[i] @ w
        bias_rows = rows[i] @ z0[i] if encoding == "onehot" else rows[i] @ z0[i]
        ref = _qp_oracle(g, kappa - bias_rows)
        assert np.abs((result.x_adv[i] - x0[i]) - ref).max() < 2e-3 * max(np.abs(ref).max(), 1)


def test_jma_binary_search_shrinks_towards_the_boundary():
    rng = np.random.default_rng(2)
    n, m = 4, 10
    w, bias = rng.normal(size=(n, m)), rng.normal(size=n)
    x0 = rng.normal(size=(4, m))
    z0 = x0 @ w.T + bias
    target = z0 <= 0
    victim = _linear_victim(w, bias, MultiLabel(n, 0.0))
    full = JMA(max_iter=3, confidence=1.0, search_steps=0).run(
        victim, torch.tensor(x0, dtype=torch.float32), torch.tensor(target))
    short = JMA(max_iter=3, confidence=1.0, search_steps=6).run(
        victim, torch.tensor(x0, dtype=torch.float32), torch.tensor(target))
    assert short.success.all() and (short.iterations == 6).all()
    n_full = np.linalg.norm(full.x_adv - x0, axis=1)
    n_short = np.linalg.norm(short.x_adv - x0, axis=1)
    assert (n_short < n_full).all()
    # On a linear model the margin-0 boundary lies at t* = (m0-share); the search lands within
    # 1/64 of the segment above it.
    z_adv = short.x_adv @ w.T + bias
    assert ((z_adv > 0) == target).all()
    back = x0 + (short.x_adv - x0) * (1 - 1 / 32)
    assert not (((back @ w.T + bias) > 0) == target).all(axis=1).all()
