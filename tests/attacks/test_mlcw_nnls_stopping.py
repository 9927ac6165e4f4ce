"""ML-C&W's reference schedule (per-image early abort, batch independence) and the NNLS
stopping rules (frozen problems, stall on an unbounded dual, float32 accuracy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from robustc.runtime.attacks import MLCW, MultiLabel, Victim
from robustc.runtime.attacks.nnls import kkt_violation, scd_nnls

torch.set_num_threads(1)


def _victim(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n, m = 4, 12
    layer = torch.nn.Linear(m, n)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(rng.normal(size=(n, m)), dtype=torch.float32))
        layer.bias.copy_(torch.tensor(rng.normal(size=n) * 0.1, dtype=torch.float32))
    x0 = torch.tensor(rng.uniform(0.2, 0.8, size=(batch, m)), dtype=torch.float32)
    with torch.no_grad():
        target = layer(x0) <= 0  # flip every label
    victim = Victim(torch.nn.Sequential(layer), MultiLabel(n, 0.0),
                    torch.zeros(batch, m), torch.ones(batch, m))
    return victim, x0, target


def test_mlcw_defaults_are_the_papers_setting():
    a = MLCW()
    assert (a.c, a.binary_steps, a.max_iter, a.learning_rate, a.confidence) == \
        (0.01, 10, 1000, 0.01, 0.0)
    assert a.abort_early


def test_mlcw_per_image_result_does_not_depend_on_the_batch():
    victim, x0, target = _victim(4)
    attack = MLCW(max_iter=200, binary_steps=4, c=1.0)
    together = attack.run(victim, x0, target)
    for i in range(4):
        single = Victim(victim.module, victim.encoding, victim.lower[i:i + 1],
                        victim.upper[i:i + 1])
        alone = attack.run(single, x0[i:i + 1], target[i:i + 1])
        assert alone.success[0] == together.success[i]
        assert alone.updates[0] == together.updates[i]
        assert np.abs(alone.x_adv[0] - together.x_adv[i]).max() < 1e-5


def test_mlcw_early_abort_stops_rounds_and_counts_updates():
    # With a tiny constant, Adam's first steps raise ||delta||^2 more than the hinge falls:
    # the loss at a check exceeds the previous check's and the round aborts there.
    victim, x0, target = _victim(4, seed=1)
    full = MLCW(max_iter=1500, binary_steps=2, c=1e-4, abort_early=False).run(
        victim, x0, target)
    short = MLCW(max_iter=1500, binary_steps=2, c=1e-4).run(victim, x0, target)
    assert (full.updates == 3000).all()
    assert (short.updates < 3000).all()
    assert (short.updates % 150 == 0).all()  # aborts happen at checks, every 1500 // 10
    # iterations (the paper's): updates of the round that produced the returned point
    assert (short.iterations <= 1500).all() and (short.iterations <= short.updates).all()
    assert ((short.x_adv >= 0) & (short.x_adv <= 1)).all()


def test_nnls_stopped_problems_are_frozen():
    rng = np.random.default_rng(3)
    c = rng.normal(size=(6, 9, 5))
    d = rng.normal(size=(6, 9))
    h = torch.tensor(np.einsum("bmi,bmj->bij", c, c))
    f = torch.tensor(-np.einsum("bmi,bm->bi", c, d))
    both, sweeps = scd_nnls(h, f, max_sweeps=2000, tol=1e-9, return_sweeps=True)
    for i in range(6):
        alone = scd_nnls(h[i:i + 1], f[i:i + 1], max_sweeps=2000, tol=1e-9)
        assert torch.allclose(alone[0], both[i], atol=1e-12)
    assert (sweeps < 2000).all()
    ref = np.stack([nnls(c[i], d[i])[0] for i in range(6)])
    assert np.abs(both.numpy() - ref).max() < 1e-6


def test_nnls_float32_meets_a_loose_tolerance():
    rng = np.random.default_rng(4)
    c = rng.normal(size=(8, 10, 6))
    d = rng.normal(size=(8, 10))
    h = torch.tensor(np.einsum("bmi,bmj->bij", c, c), dtype=torch.float32)
    f = torch.tensor(-np.einsum("bmi,bm->bi", c, d), dtype=torch.float32)
    x = scd_nnls(h, f, max_sweeps=500, tol=1e-3)
    assert x.dtype == torch.float32 and (x >= 0).all()
    assert float((kkt_violation(h.double(), f.double(), x.double())
                  / f.abs().amax(dim=1).double()).max()) < 2e-3


@pytest.mark.parametrize("stall", [1e-2, 1e-3])
def test_nnls_stall_stops_an_unbounded_dual_with_settled_delta(stall):
    # JMA's dual with a rank-deficient Jacobian: row 1 of A J is minus row 0 and both margins
    # are negative (row . d <= -1 and row . d >= 1: the linearised target is out of reach),
    # so lambda grows along e_0 + e_1, which A J^T maps to zero, while delta settles. KKT
    # never holds; the stall rule ends the solve before max_sweeps.
    rng = np.random.default_rng(5)
    row = rng.normal(size=7)
    other = rng.normal(size=(2, 7))
    aj = torch.tensor(np.stack([row, -row, *other]))[None]      # (1, 4, 7)
    h = aj @ aj.transpose(1, 2)
    b = torch.tensor([[-1.0, -1.0, -0.5, 0.3]], dtype=torch.float64)  # rows 0, 1 clash
    x, sweeps = scd_nnls(h, b, max_sweeps=5000, tol=1e-9, stall=stall, return_sweeps=True)
    used = int(sweeps[0])
    assert used < 5000 and used % 4 == 0
    # What the rule promises: four more sweeps move delta by at most stall * ||delta||.
    more = scd_nnls(h, b, max_sweeps=used + 4, tol=1e-9)
    delta, delta_more = -(aj[0].T @ x[0]), -(aj[0].T @ more[0])
    assert float((delta - delta_more).norm()) <= stall * float(delta.norm()) + 1e-12
    assert float(x.sum()) > 1.0  # lambda is on its way out along the ray
