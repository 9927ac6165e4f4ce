"""ML-C&W (Song et al., ICDM 2018): the Carlini-Wagner L2 attack with a hinge per label.

Minimises ``||x - x0||_2^2 + c * hinge(z(x), target, confidence)`` over ``w`` with
``x = lower + (upper - lower) * (tanh(w) + 1) / 2`` (the tanh change of variables keeps
``x`` in the box), with Adam. The hinge is the encoding's (:meth:`Encoding.hinge`): per label
for multi-label (Song et al.), per code bit for ECOC (JMA paper, Sec. IV-B), C&W's
strongest-competitor margin for one-hot.

The outer loop is Carlini and Wagner's reference implementation (``l2_attack.py`` in
github.com/carlini/nn_robust_attacks, which Song et al.'s ML-C&W code and the MLA-LP
authors' PyTorch port follow), run per image:

* ``binary_steps`` rounds; each starts again from ``w(x0)`` with a fresh Adam state;
* after a round that found an adversarial example, ``c`` becomes the midpoint of its bounds
  (upper bound = ``c``); after one that did not, ``c`` grows tenfold until an upper bound is
  known, then bisects;
* with ``binary_steps >= 10`` the last round repeats the search at the upper bound;
* early abort: every ``max_iter // 10`` iterations the loss is compared with its value at
  the previous check, and the round stops when it has not decreased by 0.01 %
  (``loss > 0.9999 * previous``). The reference code checks the loss summed over its batch,
  whose default size is one image; here the rule is applied per image, so an image's
  result does not depend on the others in the batch, and aborted images stop computing.

Defaults are the JMA paper's ML-C&W setting (Tondi et al., Sec. VI-D: initial constant
``lambda = 0.01``, ``n_bs = 10`` binary-search steps, ``n_it,max = 1000``, confidence 0) and
Carlini-Wagner's learning rate 0.01 (the reference code's default; also the value in the
MLA-LP authors' ML-C&W settings). ``iterations`` follows the paper: the Adam updates of the
round that produced the returned example (the final ``lambda``); ``updates`` counts every
Adam update of every round.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustc.runtime.attacks.base import Attack, Deadline

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8  # Adam's defaults (TensorFlow and PyTorch)


@dataclass
class MLCW(Attack):
    """ML-C&W L2 with initial constant ``c``; see the module docstring."""

    max_iter: int = 1000
    binary_steps: int = 10
    c: float = 0.01
    learning_rate: float = 0.01
    confidence: float = 0.0
    abort_early: bool = True
    timeout: float | None = None
    name = "mlcw"
    norm = "l2"

    def _objective(self, victim, x, x0, target, untargeted, const):
        """Per-image loss, squared L2 distance and success of the points ``x``."""
        z = victim.logits(x)
        hinge = victim.hinge(z, target, untargeted, self.confidence)
        l2 = (x - x0).flatten(1).pow(2).sum(dim=1)
        return l2 + const * hinge, l2.detach(), victim.success(z.detach(), target, untargeted)

    def _run(self, victim, x0, target, untargeted):
        batch, dev = len(x0), x0.device
        lo, span = victim.lower, victim.upper - victim.lower
        unit = torch.where(span > 0, (x0 - lo) / span.clamp_min(1e-12), torch.zeros_like(x0))
        w0 = torch.atanh((unit * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        const = torch.full((batch,), float(self.c), device=dev)
        c_lo, c_hi = torch.zeros_like(const), torch.full_like(const, 1e10)
        best, best_l2 = x0.clone(), torch.full_like(const, float("inf"))
        iters = torch.zeros(batch, dtype=torch.long, device=dev)
        updates = torch.zeros(batch, dtype=torch.long, device=dev)
        deadline = Deadline(self.timeout)
        for outer in range(self.binary_steps):
            if deadline.passed():
                break
            if self.binary_steps >= 10 and outer == self.binary_steps - 1:
                const = c_hi.clone()  # the reference code's final repeat at the upper bound
            found, last, steps = self._round(victim, w0, x0, target, untargeted, const, best,
                                             best_l2, iters, deadline)
            updates += steps
            c_hi = torch.where(found, torch.minimum(c_hi, const), c_hi)
            c_lo = torch.where(found, c_lo, torch.maximum(c_lo, const))
            const = torch.where(c_hi < 1e9, (c_lo + c_hi) / 2, const * 10)
            never = torch.isinf(best_l2)
            best[never] = last[never]  # no adversarial example yet: show the last attempt
            iters[never] = steps[never]
        return best, iters, updates

    def _round(self, victim, w0, x0, target, untargeted, const, best, best_l2, iters,
               deadline):
        """One Adam run per image at constants ``const``, with per-image early abort.

        Updates ``best``/``best_l2``/``iters`` in place; returns which images found an
        adversarial example, the last iterates and the Adam updates each image ran.
        """
        batch, dev = len(x0), x0.device
        lo, span = victim.lower, victim.upper - victim.lower
        w = w0.clone()
        found = torch.zeros(batch, dtype=torch.bool, device=dev)
        steps = torch.zeros(batch, dtype=torch.long, device=dev)
        check = max(self.max_iter // 10, 1)
        previous = torch.full((batch,), float("inf"), device=dev)
        idx = torch.arange(batch, device=dev)
        # The active images' state, compacted; scattered back when the active set shrinks.
        wa, ma, va = w.clone(), torch.zeros_like(w), torch.zeros_like(w)
        x0a, ta, ca, loa, spa = x0, target, const, lo, span
        for it in range(self.max_iter):
            wv = wa.detach().requires_grad_(True)
            xa = loa + spa * (torch.tanh(wv) + 1) / 2
            loss, l2, ok = self._objective(victim, xa, x0a, ta, untargeted, ca)
            keep = None
            if self.abort_early and it % check == 0:
                stop = loss.detach() > previous[idx] * 0.9999
                previous[idx] = loss.detach()
                if deadline.passed():
                    stop = torch.ones_like(stop)
                if bool(stop.any()):
                    keep = ~stop
            (grad,) = torch.autograd.grad(loss.sum(), wv)
            if keep is not None:  # aborted images keep their last iterate and stop here
                w[idx[~keep]] = wa[~keep]
                idx = idx[keep]
                if len(idx) == 0:
                    break
                wa, ma, va, grad = wa[keep], ma[keep], va[keep], grad[keep]
                xa, l2, ok = xa[keep], l2[keep], ok[keep]
                x0a, ta, ca, loa, spa = x0[idx], target[idx], const[idx], lo[idx], span[idx]
            better = ok & (l2 < best_l2[idx])
            if bool(better.any()):
                hit = idx[better]
                best[hit], best_l2[hit] = xa.detach()[better], l2[better]
                iters[hit] = it
            found[idx[ok]] = True
            t = it + 1
            ma.mul_(_BETA1).add_(grad, alpha=1 - _BETA1)
            va.mul_(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
            denom = (va / (1 - _BETA2**t)).sqrt_().add_(_EPS)
            wa = wa - (self.learning_rate / (1 - _BETA1**t)) * ma / denom
            steps[idx] += 1
        if len(idx):
            w[idx] = wa
        with torch.no_grad():
            last = lo + span * (torch.tanh(w) + 1) / 2
        return found, last, steps
