"""ML-C&W (Song et al. 2018): the Carlini-Wagner L2 attack with a hinge per label.

Minimises ``||x - x0||_2^2 + c * hinge(z(x), target, confidence)`` over ``w`` with
``x = lower + (upper - lower) * (tanh(w) + 1) / 2`` (the tanh change of variables keeps
``x`` in the box), with Adam. A binary search on ``c`` (per image) runs ``binary_steps``
rounds of at most ``max_iter`` steps: ``c`` shrinks after a round that found an adversarial
example and grows tenfold (or bisects) after one that did not. The hinge is the encoding's
(:meth:`Encoding.hinge`): per label for multi-label, per code bit for ECOC, C&W's margin for
one-hot. A round stops early when the loss has not improved by 0.01 % for a tenth of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustc.runtime.attacks.base import Attack, Deadline


@dataclass
class MLCW(Attack):
    """ML-C&W L2 with initial constant ``c``; see the module docstring."""

    max_iter: int = 1000
    binary_steps: int = 5
    c: float = 10.0
    learning_rate: float = 0.01
    confidence: float = 0.0
    timeout: float | None = None
    name = "mlcw"
    norm = "l2"

    def _loss(self, victim, x, x0, target, untargeted, const):
        z = victim.logits(x)
        if untargeted:
            hinge = torch.relu(victim.encoding.margins(z, target).min(dim=1).values
                               + self.confidence)
        else:
            hinge = victim.encoding.hinge(z, target, self.confidence)
        l2 = (x - x0).flatten(1).pow(2).sum(dim=1)
        return l2 + const * hinge, l2.detach(), victim.success(z.detach(), target, untargeted)

    def _run(self, victim, x0, target, untargeted):
        lo, span = victim.lower, victim.upper - victim.lower
        unit = torch.where(span > 0, (x0 - lo) / span.clamp_min(1e-12), torch.zeros_like(x0))
        w0 = torch.atanh((unit * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        batch = len(x0)
        const = torch.full((batch,), float(self.c), device=x0.device)
        c_lo, c_hi = torch.zeros_like(const), torch.full_like(const, float("inf"))
        best, best_l2 = x0.clone(), torch.full_like(const, float("inf"))
        iters = torch.zeros(batch, dtype=torch.long, device=x0.device)
        deadline = Deadline(self.timeout)
        for _ in range(self.binary_steps):
            if deadline.passed():
                break
            found, last = self._round(victim, w0, x0, target, untargeted, const, best, best_l2,
                                iters, deadline)
            c_hi = torch.where(found, torch.minimum(c_hi, const), c_hi)
            c_lo = torch.where(found, c_lo, torch.maximum(c_lo, const))
            const = torch.where(torch.isinf(c_hi), const * 10, (c_lo + c_hi) / 2)
            never = torch.isinf(best_l2)
            best[never] = last[never]  # no adversarial example yet: show the last attempt
        return best, iters

    def _round(self, victim, w0, x0, target, untargeted, const, best, best_l2, iters, deadline):
        """One Adam run at constants ``const``; updates ``best``/``best_l2``/``iters`` in
        place; returns which images found an adversarial example, and the last iterate."""
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.learning_rate)
        found = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
        check, previous = max(self.max_iter // 10, 1), float("inf")
        for step in range(self.max_iter):
            x = victim.lower + (victim.upper - victim.lower) * (torch.tanh(w) + 1) / 2
            loss, l2, ok = self._loss(victim, x, x0, target, untargeted, const)
            better = ok & (l2 < best_l2)
            best[better], best_l2[better] = x.detach()[better], l2[better]
            found |= ok
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
            iters += 1
            if step % check == check - 1:
                total = float(loss.detach().sum())
                if total > previous * 0.9999 or deadline.passed():
                    break
                previous = total
        with torch.no_grad():
            last = victim.lower + (victim.upper - victim.lower) * (torch.tanh(w) + 1) / 2
        return found, last
