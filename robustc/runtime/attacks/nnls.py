"""Batched sequential coordinate-wise NNLS (Franc, Hlavac and Navara, CAIP 2005).

Solves ``min_x 1/2 x^T H x + f^T x  s.t.  x >= 0`` for a batch of positive semidefinite
``H`` ``(B, r, r)`` and ``f`` ``(B, r)``. The classic NNLS ``min ||C x - d||^2, x >= 0`` is
the case ``H = C^T C``, ``f = -C^T d``. Each sweep updates one coordinate at a time in closed
form, keeping the gradient ``mu = H x + f`` up to date:

    x_k <- max(0, x_k - mu_k / H_kk),    mu <- mu + (x_k_new - x_k_old) H[:, k]

A problem stops (its ``x`` is frozen, so its answer does not depend on the rest of the
batch) when either

* the KKT conditions (``mu >= 0``, ``x >= 0``, ``x_k mu_k = 0``) hold to ``tol`` relative
  to ``max |f|``: the solution; or
* the last 4 sweeps changed ``C x`` by at most ``stall`` times ``||C x||`` (norms
  ``sqrt(dx^T H dx)`` and ``sqrt(x^T H x)``): the part of ``x`` that ``H`` sees has
  stopped moving. For JMA, ``C x`` is the perturbation ``delta``; when the linearised
  target is out of reach (``H`` singular, the dual unbounded) ``x`` grows along a ray that
  ``H`` maps to zero while ``delta`` settles, and KKT never holds;

or after ``max_sweeps`` sweeps. ``stall=0`` disables the second rule. The rules are checked
every 4 sweeps (and after the last).
"""

from __future__ import annotations

import torch

_CHECK_EVERY = 4  # sweeps between two checks of the stopping rules


def kkt_violation(h: torch.Tensor, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The largest KKT violation per problem ``(B,)``: ``|mu_k|`` where ``x_k > 0``,
    ``max(0, -mu_k)`` where ``x_k = 0``."""
    mu = torch.einsum("brk,bk->br", h, x) + f
    return torch.where(x > 0, mu.abs(), torch.relu(-mu)).amax(dim=1)


def scd_nnls(h: torch.Tensor, f: torch.Tensor, *, max_sweeps: int = 500,
             tol: float = 1e-7, stall: float = 0.0,
             return_sweeps: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The minimiser ``x >= 0`` of ``1/2 x^T H x + f^T x``, batched; shape ``(B, r)``, in
    the dtype of ``f``. With ``return_sweeps`` also the sweeps each problem ran ``(B,)``.

    A coordinate whose ``H_kk`` is zero (a constraint the Jacobian cannot move) stays at
    zero. See the module docstring for the stopping rules.
    """
    batch, r = f.shape
    h = h.to(f.dtype)
    diag = torch.diagonal(h, dim1=1, dim2=2)
    usable = diag > 1e-12 * diag.amax(dim=1, keepdim=True).clamp_min(1e-30)
    # -1 / H_kk, and 0 for a constraint the Jacobian cannot move: its x_k stays 0. A stopped
    # problem gets 0 everywhere, so its steps are max(0, x_k) - x_k = 0.
    neg_inv = torch.where(usable, -1.0 / torch.where(usable, diag, torch.ones_like(diag)),
                          torch.zeros_like(diag))
    scale = (tol * f.abs().amax(dim=1)).clamp_min(torch.finfo(f.dtype).tiny)
    # Coordinates first, so that the loop below indexes contiguous rows and needs no views.
    mu_t = f.T.clone(memory_format=torch.contiguous_format)    # (r, B): mu = H x + f
    columns = h.permute(2, 1, 0).contiguous().unbind(0)        # r of (r, B): H[b, :, k]
    coords = [torch.zeros(batch, dtype=f.dtype, device=f.device) for _ in range(r)]
    inv = neg_inv.T.contiguous().unbind(0)
    active = torch.ones(batch, dtype=torch.bool, device=f.device)
    sweeps = torch.zeros(batch, dtype=torch.long, device=f.device)
    start = torch.zeros_like(f)
    for sweep in range(1, max_sweeps + 1):
        for k in range(r):
            # x_k_new = max(0, x_k - mu_k / H_kk)
            step = torch.addcmul(coords[k], mu_t[k], inv[k]).clamp_min_(0).sub_(coords[k])
            mu_t.addcmul_(columns[k], step)
            coords[k].add_(step)
        if sweep % _CHECK_EVERY and sweep != max_sweeps:
            continue
        sweeps += active.to(torch.long) * _CHECK_EVERY
        x, mu = torch.stack(coords, dim=1), mu_t.T
        seen = torch.where(usable, mu, torch.zeros_like(mu))
        done = torch.where(x > 0, seen.abs(), torch.relu(-seen)).amax(dim=1) <= scale
        if stall > 0:
            dx = x - start
            moved = torch.einsum("bi,bij,bj->b", dx, h, dx)
            size = (x * (mu - f)).sum(dim=1)  # x^T H x
            # (plus rounding: a delta that settles at zero is settled too)
            noise = torch.finfo(f.dtype).eps * diag.amax(dim=1) * (x * x).sum(dim=1)
            done |= moved <= stall * stall * size + noise
            start = x
        active &= ~done
        if not bool(active.any()):
            break
        inv = (neg_inv * active[:, None]).T.contiguous().unbind(0)
    sweeps.clamp_(max=max_sweeps)
    x = torch.stack(coords, dim=1)
    return (x, sweeps) if return_sweeps else x
