"""Projected gradient ascent with Adam's update, without ``torch.optim``.

``torch.optim``'s optimisers import ``torch._dynamo`` the first time one is built (4.2 s on
this project's 2-core machine, more than the rest of a typical alpha-CROWN call on the
64x64 example networks), so every ``robustc verify`` process paid that once. The update
here is ``torch.optim.Adam(maximize=True)``'s with its defaults (betas 0.9 and 0.999,
eps 1e-8, no weight decay, no amsgrad), step for step; ``tests/bounds/test_crown.py``
checks it against ``torch.optim.Adam``.
"""

from __future__ import annotations

import math


class Ascent:
    """Adam ascent steps on groups of tensors: ``Ascent([(params, lr), ...])``; call
    :meth:`zero_grad`, back-propagate the objective, then :meth:`step` (which raises it)."""

    def __init__(self, groups, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        import torch

        self.torch = torch
        self.groups = [(list(params), float(lr)) for params, lr in groups if params]
        self.betas, self.eps, self.steps = betas, eps, 0
        self.moments = [[(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
                        for params, _ in self.groups]  # fmt: skip

    def zero_grad(self) -> None:
        """Forget the gradients of the last backward pass."""
        for params, _ in self.groups:
            for p in params:
                p.grad = None

    def step(self) -> None:
        """One Adam step up the gradients of the last backward pass (parameters without a
        gradient stay)."""
        b1, b2 = self.betas
        self.steps += 1
        correction1 = 1 - b1**self.steps
        correction2 = math.sqrt(1 - b2**self.steps)
        with self.torch.no_grad():
            for (params, lr), moments in zip(self.groups, self.moments, strict=True):
                for p, (m, v) in zip(params, moments, strict=True):
                    if p.grad is None:
                        continue
                    g = -p.grad  # ascent: Adam on the negated objective
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    denom = (v.sqrt() / correction2).add_(self.eps)
                    p.addcdiv_(m, denom, value=-lr / correction1)

    def take(self, index) -> dict:
        """Go on with the entries ``index`` (a long tensor) of every parameter's first
        dimension only: each parameter is replaced by a new leaf tensor of those entries, its
        moments by theirs (the later steps are the ones those entries would have taken).
        Returns ``{id(old parameter): new parameter}``."""
        new = {}
        with self.torch.no_grad():
            for g, ((params, lr), moments) in enumerate(zip(self.groups, self.moments,
                                                            strict=True)):
                kept = [p.detach()[index].clone().requires_grad_(True) for p in params]
                new.update((id(p), q) for p, q in zip(params, kept, strict=True))
                self.groups[g] = (kept, lr)
                self.moments[g] = [(m[index], v[index]) for m, v in moments]
        return new


__all__ = ["Ascent"]


def keep_best(best, lb, *kept: tuple[dict, dict]):
    """The elementwise best bound so far (``lb`` where it beats ``best``; ``lb`` itself
    when ``best`` is None), and for each ``(saved, current)`` pair of parameter dicts the
    rows of ``current`` where ``lb`` won copied into ``saved`` (rows: the last-but-one
    dimension of each parameter matches ``lb``'s last). Call under ``torch.no_grad()``."""
    import torch

    better = torch.ones_like(lb, dtype=torch.bool) if best is None else lb > best
    best = lb.detach() if best is None else torch.where(better, lb, best)
    mask = better.unsqueeze(-1)
    for saved, current in kept:
        for k, v in current.items():
            saved[k] = torch.where(mask, v, saved[k])
    return best

