"""The optimised linear bound of the ReLU-split search (alpha- and beta-CROWN on a chain).

:class:`Bounder` back-substitutes an objective through a :class:`~robustc.verify.relu_split.
chain.Chain` with a lower ReLU slope ``alpha`` per unstable neuron and row and a Lagrange
multiplier ``beta >= 0`` per phase decision; :func:`optimise_parameters` pushes the bound up
with projected Adam steps; :func:`tighten` gives the hidden layers' alpha-CROWN bounds. Any
``alpha`` in ``[0, 1]`` and ``beta >= 0`` give a valid bound, so the parameter search runs in
float32 and the bounds that count are computed in float64 and widened.
"""

from __future__ import annotations

import time

import numpy as np

from robustc.compiler.bound_types import widen
from robustc.compiler.crown.adam import Ascent
from robustc.verify.relu_split.chain import Chain
from robustc.verify.relu_split.options import ReluSplitOptions


class Bounder:
    """Back-substitution through a :class:`Chain` with ``alpha``/``beta`` parameters."""

    def __init__(self, ch: Chain, lower: np.ndarray, upper: np.ndarray, dtype=None):
        import torch

        self.torch = torch
        self.dtype = dtype or torch.float64
        cast = lambda a: as_float64(a).to(self.dtype)  # noqa: E731
        self.W = [cast(w) for w in ch.weights]
        self.b = [cast(b) for b in ch.biases]
        lo, hi = np.asarray(lower, np.float64).ravel(), np.asarray(upper, np.float64).ravel()
        self.center, self.radius = cast(0.5 * (lo + hi)), cast(0.5 * (hi - lo))
        self.x_lo, self.x_hi = as_float64(lo), as_float64(hi)
        self.args = (ch, lower, upper)
        self._single = None

    @property
    def single(self) -> Bounder:
        """A float32 twin, for the optimisation of the parameters only (any parameters
        give a valid bound; the bound that counts is computed again in float64)."""
        if self._single is None:
            self._single = Bounder(*self.args, dtype=self.torch.float32)
        return self._single

    def bound(self, obj_w, obj_b, lo: list, hi: list, signs: list | None, alpha: list,
              beta: list | None, want_coefs: bool = False):
        """Lower bounds of ``obj_w @ a_K + obj_b`` (``K = len(lo)`` hidden layers below).

        ``obj_w``: ``(R, n_K)``, or ``(B, R, n_K)`` with ``obj_b`` ``(B, R)`` for an
        objective per domain; ``lo``/``hi``: per layer ``(B, n_k)`` (decisions already
        clipped in); ``signs``: per layer ``(B, n_k)`` in ``{-1, 0, 1}`` (None: no
        decisions); ``alpha``/``beta``: per layer ``(B, R, n_k)``. Returns ``(lb (B, R),
        A (B, R, n_in), coefs)``: ``A`` the input coefficients and ``coefs[k]`` the
        coefficients on ``a_k`` (with ``want_coefs``).
        """
        torch = self.torch
        a = obj_w if obj_w.dim() == 3 else obj_w.unsqueeze(0)
        const = obj_b if obj_b.dim() == 2 else obj_b.unsqueeze(0)
        coefs: list = [None] * len(lo)
        for k in reversed(range(len(lo))):
            if want_coefs:
                coefs[k] = a
            # Slopes per domain and neuron ((B, 1, n_k)), shared by the rows; only the
            # lower slope of an unstable neuron (alpha) is per row.
            l, u = lo[k].unsqueeze(1), hi[k].unsqueeze(1)
            unstable = (l < 0) & (u > 0)
            active = (l >= 0).to(a.dtype)
            chord = torch.where(unstable, u / torch.where(unstable, u - l, 1.0), 0.0)
            upper_slope = chord + active
            lower_slope = torch.where(unstable, alpha[k], active)
            neg = a.clamp(max=0.0)
            c = (a - neg) * lower_slope + neg * upper_slope
            const = const - (neg * (chord * l)).sum(-1)
            if beta is not None:
                c = c - beta[k] * signs[k].unsqueeze(1)
            const = const + c @ self.b[k]
            a = c @ self.W[k]
        lb = const + a @ self.center - a.abs() @ self.radius
        return lb, a, coefs


def optimise_parameters(bounder: Bounder, obj, lo, hi, signs, alpha, beta, steps: int,
          options: ReluSplitOptions, deadline: float | None):
    """``steps`` projected Adam steps on ``alpha`` (and ``beta``); returns the parameters
    (float64) with the best bound seen per row (each row's bound depends on its own
    parameters). The steps run in float32 (:attr:`Bounder.single`): they only choose the
    parameters, and the caller bounds with them in float64."""
    torch = bounder.torch
    bounder = bounder.single
    single = lambda ts: None if ts is None else [t.to(torch.float32) for t in ts]  # noqa: E731
    obj, lo, hi, signs = single(obj), single(lo), single(hi), single(signs)
    alpha = [p.detach().to(torch.float32).requires_grad_(True) for p in alpha]
    groups = [(alpha, options.lr_alpha)]
    if beta is not None:
        beta = [p.detach().to(torch.float32).requires_grad_(True) for p in beta]
        groups.append((beta, options.lr_beta))
    opt = Ascent(groups)
    best = None
    best_alpha = [p.detach().clone() for p in alpha]
    best_beta = None if beta is None else [p.detach().clone() for p in beta]
    for _ in range(steps):
        lb, _, _ = bounder.bound(obj[0], obj[1], lo, hi, signs, alpha, beta)
        with torch.no_grad():
            if best is None:
                best = lb.detach().clone()
                improved = torch.ones_like(best, dtype=torch.bool)
            else:
                improved = lb > best
                best = torch.where(improved, lb, best)
            mask = improved.unsqueeze(-1)
            best_alpha = [torch.where(mask, p, q) for p, q in zip(alpha, best_alpha, strict=True)]
            if beta is not None:
                best_beta = [torch.where(mask, p, q) for p, q in zip(beta, best_beta, strict=True)]
        if deadline is not None and time.perf_counter() > deadline:
            break
        opt.zero_grad()
        lb.sum().backward()
        opt.step()
        with torch.no_grad():
            for p in alpha:
                p.clamp_(0.0, 1.0)
            for p in beta or ():
                p.clamp_(min=0.0)
    double = lambda ts: None if ts is None else [t.to(torch.float64) for t in ts]  # noqa: E731
    return double(best_alpha), double(best_beta)


def initial_alpha(lo, hi, rows: int) -> list:
    """CROWN's adaptive lower slope: 1 where ``u > -l``, else 0, for every row."""
    return [(h > -l).to(l.dtype).unsqueeze(1).expand(-1, rows, -1).clone()
            for l, h in zip(lo, hi, strict=True)]


def tighten(ch: Chain, lower: np.ndarray, upper: np.ndarray, pre_lo: list, pre_hi: list,
            steps: int, options: ReluSplitOptions = ReluSplitOptions(),
            deadline: float | None = None, first: int = 1) -> tuple[list, list]:
    """alpha-CROWN bounds of the hidden layers' pre-activations, layer by layer from
    ``first`` (the first hidden layer's interval bounds are exact already).

    ``pre_lo``/``pre_hi`` are valid bounds (``(n_k,)`` each, e.g. CROWN's); the result is
    their intersection with the optimised bounds (widened), so never looser.
    """
    import torch

    bounder = Bounder(ch, lower, upper)
    lo = [np.asarray(v, np.float64).copy() for v in pre_lo]
    hi = [np.asarray(v, np.float64).copy() for v in pre_hi]
    for k in range(max(first, 1), len(lo)):
        rows = np.flatnonzero((lo[k] < 0) & (hi[k] > 0))
        if rows.size == 0 or (deadline is not None and time.perf_counter() > deadline):
            continue
        w, b = ch.weights[k][rows], ch.biases[k][rows]
        obj = (torch.as_tensor(np.concatenate([w, -w])), torch.as_tensor(np.concatenate([b, -b])))
        tlo = [torch.as_tensor(v).unsqueeze(0) for v in lo[:k]]
        thi = [torch.as_tensor(v).unsqueeze(0) for v in hi[:k]]
        alpha = initial_alpha(tlo, thi, 2 * rows.size)
        alpha, _ = optimise_parameters(bounder, obj, tlo, thi, None, alpha, None, steps, options,
                                       deadline)
        with torch.no_grad():
            lb, _, _ = bounder.bound(obj[0], obj[1], tlo, thi, None, alpha, None)
        lb = lb[0].numpy()
        lo[k][rows] = np.maximum(lo[k][rows], widen_lower(lb[:rows.size]))
        hi[k][rows] = np.minimum(hi[k][rows], -widen_lower(lb[rows.size:]))
    return lo, hi


def as_float64(a):
    """A float64 (contiguous) torch tensor of ``a``."""
    import torch

    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float64))


def widen_lower(v: np.ndarray) -> np.ndarray:
    """A lower bound moved down by the pipeline's widening (absorbs float64 rounding)."""
    return widen(v, v)[0]


__all__ = ["Bounder", "optimise_parameters", "initial_alpha", "tighten", "as_float64",
           "widen_lower"]
