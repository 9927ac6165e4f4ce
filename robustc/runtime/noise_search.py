"""Bounded searches for realistic adversarial examples in the noise space of a generator.

A composed network ``C(G(z))`` (classifier after generator) is attacked in its *input*, the
noise ``z``: from a starting noise ``z0`` of class ``c``, find ``z'`` with
``|z' - z0|_inf <= eps`` (and inside the noise support, when bounded) such that
``C(G(z'))`` is not ``c``. Both searches stay inside that ball at every step; the search
described in the paper (Fijalkow and Gupta) has no such bound, so what it returns need not
be an eps-realistic adversarial example.

* :func:`white_box_search`: projected gradient descent on the margin
  ``logit_c - max_{j != c} logit_j`` (signed steps, random starts in the ball);
* :func:`black_box_search`: local search that only evaluates the network: at each step a
  few random moves from the current point, keep the one with the smallest margin.

Both are batched over many starting noises (one ball each) and deterministic given the
seed. The margin is positive iff ``c`` is the strict argmax (a tie counts as a change).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["argmax_margin", "ball", "black_box_search", "white_box_search"]


def argmax_margin(logits: torch.Tensor, label: int) -> torch.Tensor:
    """``logit_label - max_{j != label} logit_j`` per row of ``logits`` (shape ``(B, n)``)."""
    others = logits.clone()
    others[:, label] = -torch.inf
    return logits[:, label] - others.max(dim=1).values


def ball(z0: np.ndarray, eps: float, support: tuple[float, float] | None
         ) -> tuple[np.ndarray, np.ndarray]:
    """The L-inf ball of radius ``eps`` around each row of ``z0``, clipped to ``support``."""
    lo, hi = z0 - eps, z0 + eps
    if support is not None:
        lo, hi = np.maximum(lo, support[0]), np.minimum(hi, support[1])
    return lo, hi


def _margins(module: torch.nn.Module, z: torch.Tensor, label: int) -> torch.Tensor:
    return argmax_margin(module(z).reshape(z.shape[0], -1), label)


def white_box_search(module: torch.nn.Module, z0: np.ndarray, label: int, eps: float, *,
                     support: tuple[float, float] | None = None, steps: int = 20,
                     restarts: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Projected signed-gradient descent on the margin, inside each ball.

    ``module`` maps a batch of noises ``(B, *shape)`` to logits; ``z0`` has shape
    ``(B, *shape)``. Restart 0 starts at ``z0``, the others uniformly in the ball.
    Returns ``(z_best, margin_best)``: per row, the point of smallest margin seen (float64)
    and its margin; a margin <= 0 means the class changed.
    """
    lo_np, hi_np = ball(z0, eps, support)
    lo = torch.as_tensor(lo_np, dtype=torch.float32)
    hi = torch.as_tensor(hi_np, dtype=torch.float32)
    gen = torch.Generator().manual_seed(int(seed))
    start = torch.as_tensor(z0, dtype=torch.float32)
    best_z = start.clone()
    with torch.no_grad():
        best_m = _margins(module, best_z, label)
    step = max(eps, 1e-12) * 2.5 / max(steps, 1)
    for r in range(restarts):
        z = start.clone() if r == 0 else lo + (hi - lo) * torch.rand(lo.shape, generator=gen)
        for _ in range(steps + 1):
            z.requires_grad_(True)
            m = _margins(module, z, label)
            better = m.detach() < best_m
            best_m = torch.where(better, m.detach(), best_m)
            best_z[better] = z.detach()[better]
            (grad,) = torch.autograd.grad(m.sum(), z)
            z = torch.minimum(torch.maximum(z.detach() - step * grad.sign(), lo), hi)
    return best_z.double().numpy(), best_m.double().numpy()


def black_box_search(module: torch.nn.Module, z0: np.ndarray, label: int, eps: float, *,
                     support: tuple[float, float] | None = None, steps: int = 20,
                     candidates: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Greedy random local search on the margin, inside each ball (forward passes only).

    At each step, ``candidates`` moves of L-inf size ``eps / 4`` are drawn around the
    current point of each row and projected on its ball; the best is kept when it lowers
    the margin. Returns ``(z_best, margin_best)`` as :func:`white_box_search`.
    """
    lo, hi = ball(z0, eps, support)
    rng = np.random.default_rng(seed)
    batch, shape = z0.shape[0], z0.shape[1:]
    z = z0.astype(np.float64).copy()
    with torch.no_grad():
        m = _margins(module, torch.as_tensor(z, dtype=torch.float32), label).double().numpy()
        for _ in range(steps):
            moves = rng.uniform(-1.0, 1.0, size=(candidates, batch, *shape)) * (eps / 4)
            cand = np.clip(z[None] + moves, lo[None], hi[None])
            flat = torch.as_tensor(cand.reshape(candidates * batch, *shape), dtype=torch.float32)
            cm = _margins(module, flat, label).double().numpy().reshape(candidates, batch)
            pick = cm.argmin(axis=0)
            pick_m = cm[pick, np.arange(batch)]
            better = pick_m < m
            z[better] = cand[pick, np.arange(batch)][better]
            m[better] = pick_m[better]
    return z, m
