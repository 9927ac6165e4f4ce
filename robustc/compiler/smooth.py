"""Sound bounds of the smooth activations (:class:`robustc.ir.nodes.Activation`).

Every kind is increasing, so its interval bounds are its values at the ends of the input's
interval. The linear relaxation on ``[l, u]`` is a pair of lines
``sl x + tl <= f(x) <= su x + tu`` (CROWN's tangent and chord bounds):

* convex kinds (softplus; ELU with ``0 < alpha <= 1``) and the convex part of the S-shaped
  kinds (sigmoid and tanh are convex on ``x <= 0``, concave on ``x >= 0``): below, the
  tangent at the middle of the interval; above, the chord from ``(l, f(l))`` to
  ``(u, f(u))``. On the concave part the two swap;
* an S-shaped kind on an interval that crosses 0: above, the line through ``(l, f(l))``
  tangent to ``f`` at some ``d >= 0`` (found by bisection, keeping a ``d`` whose tangent
  passes on or above ``(l, f(l))``: every such tangent lies above ``f`` on ``[l, oo)``);
  when ``d`` would lie beyond ``u`` the chord is above ``f`` and is used instead. Below,
  the mirror image: the line through ``(u, f(u))`` tangent at some ``d' <= 0``, or the chord.
* the constant line ``f(l)`` below (``f(u)`` above) where it encloses less area than the
  line above (its value at the middle of the interval is larger; smaller above), as for
  a wide interval that crosses 0 off-centre, and on a very narrow interval (width at most
  ``1e-9 (1 + |l| + |u|)``), and where an end is infinite (overflowed bounds).

The functions are the float64 interpreter's (:func:`robustc.ir.interpret.activation`), and
every intercept is moved outwards by ``RELAX_MARGIN (1 + |f(l)| + |f(u)| + (|sl| + |su|)
(|l| + |u|))``, far above the float64 rounding of the lines and of the functions
themselves, so the lines bound both the real function and the interpreter's values
(``tests/bounds/test_smooth.py`` checks them on fine grids, narrow, wide, one-sided and
saturated intervals included).
"""

from __future__ import annotations

import numpy as np

from robustc.compiler.bound_types import widen
from robustc.ir.interpret import activation

#: Relative outward move of every relaxation intercept (see the module docstring).
RELAX_MARGIN = 1e-12

#: Kinds convex on all of R (upper bound: the chord; lower bound: a tangent).
CONVEX = ("softplus", "elu")
#: Kinds convex on x <= 0 and concave on x >= 0, with their ranges.
S_SHAPED = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}

_BISECTIONS = 60


def value(kind: str, alpha: float, x) -> np.ndarray:
    """``f(x)`` in float64, exactly as the interpreter computes it."""
    return activation(kind, alpha, np.asarray(x, dtype=np.float64))


def derivative(kind: str, alpha: float, x) -> np.ndarray:
    """``f'(x)`` in float64 (ELU at 0: 1, a subgradient), overflow-free."""
    x = np.asarray(x, dtype=np.float64)
    if kind == "sigmoid":
        e = np.exp(-np.abs(x))
        return e / (1.0 + e) ** 2
    if kind == "tanh":
        e = np.exp(-2.0 * np.abs(x))
        return 4.0 * e / (1.0 + e) ** 2
    if kind == "softplus":
        return value("sigmoid", 1.0, x)
    if kind == "elu":
        return np.where(x >= 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))
    raise ValueError(f"unknown activation {kind!r}")


def output_range(kind: str, alpha: float) -> tuple[float, float]:
    """The closed range the interpreter's values lie in."""
    if kind in S_SHAPED:
        return S_SHAPED[kind]
    return (0.0, np.inf) if kind == "softplus" else (-alpha, np.inf)


def interval(kind: str, alpha: float, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of ``f`` on ``[lo, hi]`` (element-wise; ``f`` is increasing),
    widened outwards by ``WIDEN_REL`` and clipped to the range of ``f``."""
    out_lo, out_hi = widen(value(kind, alpha, lo), value(kind, alpha, hi))
    floor, ceil = output_range(kind, alpha)
    return np.clip(out_lo, floor, ceil), np.clip(out_hi, floor, ceil)


def _tangent(kind, alpha, at):
    slope = derivative(kind, alpha, at)
    return slope, value(kind, alpha, at) - slope * at


def _crossing_upper(kind, alpha, l, u, fl):
    """The line through ``(l, f(l))`` tangent at ``d in [0, u]`` (``l < 0 < u``), or the
    chord where ``d > u``: ``(slope, intercept, use_chord)``."""
    def gap(d):  # tangent at d, evaluated at l, minus f(l): increasing in d >= 0
        s, t = _tangent(kind, alpha, d)
        return s * l + t - fl
    use_chord = gap(u) < 0.0
    d_lo, d_hi = np.zeros_like(u), u.copy()
    for _ in range(_BISECTIONS):
        mid = 0.5 * (d_lo + d_hi)
        above = gap(mid) >= 0.0
        d_hi = np.where(above, mid, d_hi)
        d_lo = np.where(above, d_lo, mid)
    slope, icpt = _tangent(kind, alpha, d_hi)
    return slope, icpt, use_chord


def _crossing_lower(kind, alpha, l, u, fu):
    """The line through ``(u, f(u))`` tangent at ``d in [l, 0]`` (``l < 0 < u``), or the
    chord where ``d < l``: ``(slope, intercept, use_chord)``."""
    def gap(d):  # tangent at d, evaluated at u, minus f(u): increasing in d <= 0
        s, t = _tangent(kind, alpha, d)
        return s * u + t - fu
    use_chord = gap(l) > 0.0
    d_lo, d_hi = l.copy(), np.zeros_like(l)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (d_lo + d_hi)
        below = gap(mid) <= 0.0
        d_lo = np.where(below, mid, d_lo)
        d_hi = np.where(below, d_hi, mid)
    slope, icpt = _tangent(kind, alpha, d_lo)
    return slope, icpt, use_chord


def relaxation(kind: str, alpha: float, lo, hi) -> tuple[np.ndarray, ...]:
    """``(sl, tl, su, tu)``, float64 arrays of ``lo``'s shape, with
    ``sl x + tl <= f(x) <= su x + tu`` for every ``x`` in ``[lo, hi]`` (see the module
    docstring for the lines chosen)."""
    l = np.array(lo, dtype=np.float64, copy=True)
    u = np.array(hi, dtype=np.float64, copy=True)
    f_lo, f_hi = value(kind, alpha, l), value(kind, alpha, u)
    infinite = ~(np.isfinite(l) & np.isfinite(u))  # e.g. overflowed bounds: constant lines
    if infinite.any():  # lines are computed on [0, 1] there, then replaced
        l, u = np.where(infinite, 0.0, l), np.where(infinite, 1.0, u)
    fl, fu = value(kind, alpha, l), value(kind, alpha, u)
    width = u - l
    narrow = ~(width > 1e-9 * (1.0 + np.abs(l) + np.abs(u)))
    chord = np.where(narrow, 0.0, (fu - fl) / np.where(narrow, 1.0, width))
    chord_t = fl - chord * l
    mid = 0.5 * (l + u)
    tan_s, tan_t = _tangent(kind, alpha, mid)
    if kind in S_SHAPED:
        convex_part, concave_part = u <= 0.0, l >= 0.0
        sl = np.where(concave_part, chord, tan_s)
        tl = np.where(concave_part, chord_t, tan_t)
        su = np.where(concave_part, tan_s, chord)
        tu = np.where(concave_part, tan_t, chord_t)
        cross = ~(convex_part | concave_part | narrow)
        if cross.any():
            lc, uc = l[cross], u[cross]
            s, t, use = _crossing_upper(kind, alpha, lc, uc, fl[cross])
            su[cross] = np.where(use, chord[cross], s)
            tu[cross] = np.where(use, chord_t[cross], t)
            s, t, use = _crossing_lower(kind, alpha, lc, uc, fu[cross])
            sl[cross] = np.where(use, chord[cross], s)
            tl[cross] = np.where(use, chord_t[cross], t)
    elif kind in CONVEX:
        sl, tl, su, tu = tan_s, tan_t, chord, chord_t
    else:
        raise ValueError(f"unknown activation {kind!r}")
    # the constant lines f(l) <= f(x) <= f(u) (f is increasing) where they enclose less
    # area (the larger lower / smaller upper value at the middle), and on narrow intervals
    flat_lo = narrow | infinite | (sl * mid + tl < fl)
    flat_hi = narrow | infinite | (su * mid + tu > fu)
    fl, fu = np.where(infinite, f_lo, fl), np.where(infinite, f_hi, fu)
    sl, tl = np.where(flat_lo, 0.0, sl), np.where(flat_lo, fl, tl)
    su, tu = np.where(flat_hi, 0.0, su), np.where(flat_hi, fu, tu)
    finite = np.where(np.isfinite(fl), np.abs(fl), 0.0) + np.where(np.isfinite(fu),
                                                                     np.abs(fu), 0.0)
    margin = RELAX_MARGIN * (1.0 + finite + (np.abs(sl) + np.abs(su)) * (np.abs(l) + np.abs(u)))
    return sl, tl - margin, su, tu + margin


__all__ = ["RELAX_MARGIN", "CONVEX", "S_SHAPED", "value", "derivative", "output_range",
           "interval", "relaxation"]
