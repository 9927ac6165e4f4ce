"""Bounded noise-space searches: they stay in the ball and find what exists there."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from robustc.runtime.noise_search import black_box_search, white_box_search  # noqa: E402


class _Linear(torch.nn.Module):
    """Logits (z_1 - a, 0): class 0 iff z_1 > a."""

    def forward(self, z):
        z = z.reshape(z.shape[0], -1)
        return torch.stack([z[:, 0] - 0.3, torch.zeros_like(z[:, 0])], dim=1)


@pytest.mark.parametrize("search", [white_box_search, black_box_search])
def test_search_is_bounded_and_finds_existing_witnesses(search):
    rng = np.random.default_rng(0)
    z0 = rng.uniform(-1, 1, size=(200, 1, 2))
    eps = 0.2
    z, m = search(_Linear(), z0, 0, eps, support=(-1.0, 1.0), steps=30, seed=1)
    assert np.all(np.abs(z - z0) <= eps + 1e-6)
    assert np.all((z >= -1 - 1e-6) & (z <= 1 + 1e-6))
    exists = z0[:, 0, 0] - eps <= 0.3
    found = m <= 0
    assert not np.any(found & ~exists)          # never a witness that cannot exist
    assert np.all(found[exists]) or search is black_box_search
    assert found[exists].mean() > 0.9           # the black-box search finds nearly all
    np.testing.assert_allclose(m, z[:, 0, 0] - 0.3, atol=1e-5)   # margins are replayable
