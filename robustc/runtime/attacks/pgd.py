"""PGD for any output encoding: targeted (minimise the encoding's hinge on the target's
margins) or untargeted (drive the smallest margin of the source label vector below zero),
in an L-inf or L2 ball of radius ``eps`` intersected with the input box.

The first restart starts at the input, the others at a uniform random point of the ball
(L-inf) or a random direction at a random radius (L2). An image stops as soon as a step
reaches the goal; that point is its adversarial example.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustc.runtime.attacks.base import Attack, Deadline, Victim


@dataclass
class PGD(Attack):
    """Projected gradient descent; ``step_size`` defaults to ``2.5 * eps / steps``."""

    steps: int = 40
    step_size: float | None = None
    restarts: int = 1
    eps: float = 0.1
    norm: str = "linf"
    confidence: float = 0.0
    seed: int = 0
    timeout: float | None = None
    name = "pgd"

    def __post_init__(self):
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"PGD supports the linf and l2 norms, not {self.norm}")

    def _loss(self, victim: Victim, x, target, untargeted):
        z = victim.logits(x)
        loss = victim.hinge(z, target, untargeted, self.confidence)
        return loss, victim.success(z.detach(), target, untargeted)

    def _run(self, victim, x0, target, untargeted):
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        lower = torch.maximum(victim.lower, x0 - self.eps) if self.norm == "linf" else None
        upper = torch.minimum(victim.upper, x0 + self.eps) if self.norm == "linf" else None
        best, done = x0.clone(), torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
        iters = torch.full((len(x0),), self.steps * self.restarts, device=x0.device)
        alpha = self.step_size or 2.5 * self.eps / max(self.steps, 1)
        deadline = Deadline(self.timeout)
        for restart in range(self.restarts):
            x = x0.clone() if restart == 0 else self._random_start(victim, x0, gen)
            for step in range(self.steps + 1):
                idx = torch.nonzero(~done).flatten()
                if len(idx) == 0 or deadline.passed():
                    return best, iters
                xi = x[idx].detach().requires_grad_(True)
                loss, hit = self._loss(victim, xi, target[idx], untargeted)
                best[idx[hit]] = xi[hit].detach()
                iters[idx[hit]] = restart * self.steps + step
                done[idx[hit]] = True
                if step == self.steps:
                    break
                (grad,) = torch.autograd.grad(loss.sum(), xi)
                x[idx] = self._project(victim, x0, xi.detach() - alpha * self._unit(grad), idx,
                                       lower, upper)
        return best, iters

    def _unit(self, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return grad.sign()
        norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
        return grad / norms.reshape((-1,) + (1,) * (grad.dim() - 1))

    def _project(self, victim, x0, x, idx, lower, upper):
        if self.norm == "linf":
            return torch.minimum(torch.maximum(x, lower[idx]), upper[idx])
        delta = x - x0[idx]
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        factor = torch.clamp(self.eps / norms, max=1.0)
        return victim.clip(x0[idx] + delta * factor.reshape((-1,) + (1,) * (x.dim() - 1)), idx)

    def _random_start(self, victim, x0, gen):
        noise = torch.rand(x0.shape, generator=gen).to(x0.device) * 2 - 1
        if self.norm == "l2":
            flat = noise.flatten(1)
            radius = torch.rand(len(x0), generator=gen).to(x0.device) * self.eps
            noise = (flat / flat.norm(dim=1, keepdim=True) * radius[:, None]).reshape(x0.shape)
            return victim.clip(x0 + noise)
        return victim.clip(x0 + self.eps * noise)
