"""Batched sequential coordinate-wise NNLS (Franc, Hlavac and Navara, CAIP 2005).

Solves ``min_x 1/2 x^T H x + f^T x  s.t.  x >= 0`` for a batch of positive semidefinite
``H`` ``(B, r, r)`` and ``f`` ``(B, r)``. The classic NNLS ``min ||C x - d||^2, x >= 0`` is
the case ``H = C^T C``, ``f = -C^T d``. Each sweep updates one coordinate at a time in closed
form, keeping the gradient ``mu = H x + f`` up to date:

    x_k <- max(0, x_k - mu_k / H_kk),    mu <- mu + (x_k_new - x_k_old) H[:, k]

and stops when the KKT conditions (``mu >= 0``, ``x >= 0``, ``x_k mu_k = 0``) hold to ``tol``
for every problem of the batch.
"""

from __future__ import annotations

import torch


def kkt_violation(h: torch.Tensor, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The largest KKT violation per problem ``(B,)``: ``|mu_k|`` where ``x_k > 0``,
    ``max(0, -mu_k)`` where ``x_k = 0``."""
    mu = torch.einsum("brk,bk->br", h, x) + f
    return torch.where(x > 0, mu.abs(), torch.relu(-mu)).amax(dim=1)


def scd_nnls(h: torch.Tensor, f: torch.Tensor, *, max_sweeps: int = 500,
             tol: float = 1e-7) -> torch.Tensor:
    """The minimiser ``x >= 0`` of ``1/2 x^T H x + f^T x``, batched; shape ``(B, r)``.

    ``tol`` is relative to the scale of ``f``. A coordinate whose ``H_kk`` is zero (a
    constraint the Jacobian cannot move) stays at zero.
    """
    r = f.shape[1]
    x = torch.zeros_like(f)
    mu = f.clone()
    diag = torch.diagonal(h, dim1=1, dim2=2)
    usable = diag > 1e-12 * diag.amax(dim=1, keepdim=True).clamp_min(1e-30)
    # 1 / H_kk, and 0 for a constraint the Jacobian cannot move: its x_k stays 0.
    inv = torch.where(usable, 1.0 / torch.where(usable, diag, torch.ones_like(diag)),
                      torch.zeros_like(diag))
    columns = [h[:, :, k] for k in range(r)]
    scale = f.abs().amax(dim=1).clamp_min(1e-12)
    for sweep in range(max_sweeps):
        for k in range(r):
            new = torch.relu(x[:, k] - mu[:, k] * inv[:, k])
            mu = mu.addcmul(columns[k], (new - x[:, k])[:, None])
            x[:, k] = new
        if sweep % 5 == 4 or sweep == max_sweeps - 1:
            mu_ok = mu * usable
            viol = torch.where(x > 0, mu_ok.abs(), torch.relu(-mu_ok)).amax(dim=1)
            if bool((viol <= tol * scale).all()):
                break
    return x
