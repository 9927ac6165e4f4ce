"""What every bound engine returns and shares: :class:`Bounds`, :class:`BoundsError` and the
outward widening against float64 rounding (:func:`widen`). The engines are
:mod:`robustc.compiler.bounds` (interval, symbolic, LP; numpy) and
:mod:`robustc.compiler.crown` (CROWN, alpha-CROWN on the graph; PyTorch)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robustc.errors import Error

#: Relative outward widening applied to every computed bound: ``b -/+ WIDEN_REL * (1 + |b|)``.
WIDEN_REL = 1e-9

#: Relative tolerance of "largest lower bound" in a MaxPool window: both bound engines take
#: the first window input within ``POOL_TIE * (1 + |max|)`` of the largest lower bound
#: (:func:`robustc.compiler.bounds.near_top`).
POOL_TIE = 1e-9


class BoundsError(Error, ValueError):
    """An input box is empty or not finite, or an unknown bound method was asked for."""


@dataclass(frozen=True)
class Bounds:
    """Lower and upper bounds of every node (inputs included) of one graph over one box.

    ``lower[name]`` and ``upper[name]`` are float64 arrays of the node's shape; ``method``
    names how they were computed and ``time_s`` how long it took. ``relu_inputs`` maps each
    ReLU node to the node it reads.
    """

    lower: dict[str, np.ndarray]
    upper: dict[str, np.ndarray]
    method: str
    time_s: float
    relu_inputs: dict[str, str] = field(default_factory=dict, repr=False)

    def of(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` of node ``name``; raises ``KeyError`` for an unknown node."""
        return self.lower[name], self.upper[name]

    def unstable_relus(self) -> dict[str, np.ndarray]:
        """For each ReLU, a bool array (its shape): input lower bound < 0 < upper bound."""
        return {relu: (self.lower[src] < 0.0) & (self.upper[src] > 0.0)
                for relu, src in self.relu_inputs.items()}

    def num_unstable(self) -> int:
        """The number of unstable ReLU neurons."""
        return int(sum(mask.sum() for mask in self.unstable_relus().values()))


def widen(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``lo`` and ``hi`` moved outwards by ``WIDEN_REL * (1 + |b|)``."""
    return lo - WIDEN_REL * (1.0 + np.abs(lo)), hi + WIDEN_REL * (1.0 + np.abs(hi))


class BoundsTimeout(Error, TimeoutError):
    """The deadline passed while bounds were being computed (the verdict is ``unknown``)."""


__all__ = ["WIDEN_REL", "Bounds", "BoundsError", "BoundsTimeout", "widen"]
