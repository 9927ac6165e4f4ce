"""JMA: the Jacobian-induced Mahalanobis-distance attack (Guo et al., Algorithm 1).

Each iteration linearises the decoder's score space at the current point ``x``: with the
Jacobian ``J`` of the scores (``torch.func.jacrev``, all images of the batch at once) and the
target's margin rows ``G s + h > 0`` (see :mod:`.encodings`), the constraints on a score
displacement ``d`` are ``A d <= b`` with ``A = -G`` and ``b = G s + h - confidence``. The
minimum-norm input perturbation reaching that region is ``delta = -J^T A^T lambda`` where
``lambda >= 0`` minimises ``1/2 lambda^T A J J^T A^T lambda + b^T lambda`` (Theorem 1), solved
by the sequential coordinate-wise NNLS. For multi-label outputs the rows are the paper's
simplified form (Sec. V-B): ``A = -diag(c_t)``, one row per label.

When ``clip(x + delta)`` reaches the target, a binary search of ``search_steps`` steps between
``x`` and ``x + delta`` (clipped at every step) keeps the closest point that still reaches it;
otherwise ``x`` moves by ``step`` along ``delta / ||delta||`` (clipped) and the Jacobian is
recomputed. Iterations are counted as in the paper: ``(v - 1) + search_steps``.

The paper assumes ``J`` has full row rank. The example multi-label networks end in a global
max-pool, so logits fed only by inactive channels have a zero gradient and ``J J^T`` is
singular; the dual then has no minimiser along directions of ``lambda`` that ``J^T A^T``
maps to zero. Those directions do not change ``delta``, so the coordinate-wise solver
stops when ``delta`` has settled (``nnls_stall``), at its KKT tolerance (``nnls_tol``,
relative), or after ``nnls_sweeps`` sweeps, whichever is first (see :mod:`.nnls`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustc.runtime.attacks.base import Attack, Deadline, Victim
from robustc.runtime.attacks.nnls import scd_nnls


def scores_and_jacobian(victim: Victim, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores ``(B, n)`` and their Jacobian ``(B, n, m)`` with respect to the inputs.

    Images are independent, so the Jacobian of the batch-summed scores holds every image's
    Jacobian; ``jacrev`` vmaps the ``n`` backward passes.
    """
    def summed(inputs: torch.Tensor):
        s = victim.encoding.scores(victim.logits(inputs))
        return s.sum(dim=0), s

    jac, s = torch.func.jacrev(summed, has_aux=True)(x)
    return s.detach(), jac.reshape(jac.shape[0], x.shape[0], -1).transpose(0, 1).detach()


def jma_direction(jac: torch.Tensor, g: torch.Tensor, margins: torch.Tensor,
                  confidence: float, sweeps: int = 500, tol: float = 1e-7,
                  stall: float = 0.0) -> torch.Tensor:
    """The perturbation ``delta = -J^T A^T lambda`` ``(B, m)`` of Theorem 1 for margin rows
    ``g`` ``(B, r, n)`` with current margins ``(B, r)``, under the linearisation ``J``.

    Computed in the Jacobian's dtype (float32 in the attack: the NNLS stops at a relative
    tolerance far above float32 rounding, and every success is re-checked on the network).
    """
    ajac = torch.einsum("brn,bnm->brm", -g, jac)  # A J, (B, r, m)
    h = ajac @ ajac.transpose(1, 2)                # A J J^T A^T
    lam = scd_nnls(h, (margins - confidence).to(jac.dtype), max_sweeps=sweeps, tol=tol,
                   stall=stall)
    return -torch.einsum("brm,br->bm", ajac, lam)


@dataclass
class JMA(Attack):
    """JMA with ``max_iter`` iterations, L2 step ``step`` (the paper's epsilon), target
    margin ``confidence`` on the scores, and ``search_steps`` binary-search steps.

    The defaults are the paper's experimental setting (Sec. VII: confidence 0, n_bs = 6,
    n_it,max = 200, its smallest step 0.05) with a step search: images the small steps do
    not carry to the target within ``max_iter`` iterations are attacked again from the
    clean input with ``fallback_step`` and ``fallback_confidence`` (1.0 and 3.0, one
    Jacobian step for most images); their iterations add up. ``PRESETS["fast"]`` is the
    large step alone (robustc's default before: speed over distortion).
    """

    max_iter: int = 200
    step: float = 0.05
    confidence: float = 0.0
    search_steps: int = 6
    nnls_sweeps: int = 40
    nnls_tol: float = 1e-3
    nnls_stall: float = 1e-2
    timeout: float | None = None
    fallback_step: float | None = 1.0
    fallback_confidence: float | None = 3.0
    name = "jma"
    norm = "l2"

    def _run(self, victim, x0, target, untargeted):
        deadline = Deadline(self.timeout)  # one time limit for both passes
        best, iters = self._attack(victim, x0, target, untargeted, self.step, self.confidence,
                                   deadline)
        if self.fallback_step is None:
            return best, iters
        # Step search: images the small steps did not carry to the target start again from
        # x0 with the larger step (and its confidence); their iterations add up.
        with torch.no_grad():
            failed = torch.nonzero(~victim.success(victim.logits(best), target, untargeted))
        failed = failed.flatten()
        if len(failed) == 0 or deadline.passed():
            return best, iters
        confidence = self.confidence if self.fallback_confidence is None \
            else self.fallback_confidence
        sub = Victim(victim.module, victim.encoding, victim.lower[failed], victim.upper[failed])
        again, more = self._attack(sub, x0[failed], target[failed], untargeted,
                                   self.fallback_step, confidence, deadline)
        best[failed] = again
        iters[failed] += more
        return best, iters

    def _attack(self, victim, x0, target, untargeted, step, confidence, deadline):
        goal = victim.encoding.alternative(victim.logits(x0)) if untargeted else target
        x, best = x0.clone(), x0.clone()
        done = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
        iters = torch.full((len(x0),), self.max_iter, dtype=torch.long, device=x0.device)
        for it in range(1, self.max_iter + 1):
            idx = torch.nonzero(~done).flatten()
            if len(idx) == 0 or deadline.passed():
                break
            delta = self._delta(victim, x[idx], goal[idx], confidence).reshape(x[idx].shape)
            trial = victim.clip(x[idx] + delta, idx)
            with torch.no_grad():
                hit = victim.success(victim.logits(trial), target[idx], untargeted)
            won, lost = idx[hit], idx[~hit]
            if len(won):
                best[won] = self._search(victim, x[won], trial[hit] - x[won], target[won],
                                         untargeted, won)
                done[won] = True
                iters[won] = it - 1 + self.search_steps
            d = delta[~hit].flatten(1)
            unit = d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)
            x[lost] = victim.clip(x[lost] + step * unit.reshape(x[lost].shape), lost)
        best[~done] = x[~done]
        return best, iters

    def _delta(self, victim, x, goal, confidence):
        s, jac = scores_and_jacobian(victim, x)
        g, h = victim.encoding.margin_rows(goal)
        margins = torch.einsum("brn,bn->br", g, s) + h
        return jma_direction(jac, g, margins, confidence, self.nnls_sweeps,
                             self.nnls_tol, self.nnls_stall)

    @torch.no_grad()
    def _search(self, victim, start, delta, target, untargeted, idx):
        """The point nearest ``start`` on ``[start, start + delta]`` (binary search, clipped)
        that still meets the goal; ``start + delta`` itself meets it."""
        shape = (-1,) + (1,) * (start.dim() - 1)
        lo = torch.zeros(len(start), device=start.device)
        hi = torch.ones(len(start), device=start.device)
        for _ in range(self.search_steps):
            mid = (lo + hi) / 2
            point = victim.clip(start + mid.reshape(shape) * delta, idx)
            ok = victim.success(victim.logits(point), target, untargeted)
            hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
        return victim.clip(start + hi.reshape(shape) * delta, idx)


#: The settings behind ``jma(preset="search" | "fast")``: ``search`` is :class:`JMA`'s
#: defaults; ``fast`` one large step (1.0) with confidence 3.0 and no second pass.
PRESETS: dict[str, dict] = {
    "search": {},
    "fast": {"step": 1.0, "confidence": 3.0, "fallback_step": None},
}
