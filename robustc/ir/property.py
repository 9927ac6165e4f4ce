"""The property half of the IR: input sets and conditions on a network's outputs.

A :class:`Property` says: for every input in one of the ``boxes``, ``condition`` holds on
the network's output tensor (flattened, row-major). The compiler lowers every spec
condition into this small, solver-neutral language:

* :class:`Linear`: ``coeffs . y + const > 0`` (``strict``) or ``>= 0``;
* :class:`AtLeast`: at least ``k`` of several :class:`Linear` atoms hold (top-k membership,
  argmax);
* :class:`And`, :class:`Or`.

There is no ``Not``: :func:`negate` pushes negation into the atoms. Every condition has a
*margin*: positive when it holds, and for a :class:`Linear` atom the value ``coeffs . y +
const`` itself; ``And`` takes the minimum, ``Or`` the maximum, ``AtLeast`` the k-th largest.
Backends decide the *violation* ``negate(condition)``; replay evaluates :func:`holds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np

from robustc.errors import IRError, ShapeError


@dataclass(frozen=True, eq=False)
class Linear:
    """``coeffs . y + const > 0`` (strict) or ``>= 0``; ``coeffs`` is over flattened outputs."""

    coeffs: np.ndarray
    const: float = 0.0
    strict: bool = True
    label: str = ""

    def margin(self, y: np.ndarray) -> np.ndarray:
        """The margin on outputs ``y`` of shape ``(B, n)`` or ``(n,)``."""
        return np.asarray(y, dtype=np.float64) @ self.coeffs + self.const


@dataclass(frozen=True, eq=False)
class AtLeast:
    """At least ``k`` of ``atoms`` hold."""

    atoms: tuple[Linear, ...]
    k: int
    label: str = ""


@dataclass(frozen=True, eq=False)
class And:
    """All operands hold."""

    operands: tuple[Condition, ...]
    label: str = ""


@dataclass(frozen=True, eq=False)
class Or:
    """At least one operand holds."""

    operands: tuple[Condition, ...]
    label: str = ""


Condition = Linear | AtLeast | And | Or


def output_gt(n: int, i: int, j: int | None = None, value: float = 0.0, *, strict: bool = True,
              label: str = "") -> Linear:
    """``y_i > y_j`` (or ``y_i > value`` when ``j`` is None) over ``n`` outputs."""
    coeffs = np.zeros(n)
    coeffs[i] += 1.0
    if j is not None:
        coeffs[j] -= 1.0
    return Linear(coeffs, -float(value) if j is None else 0.0, strict, label)


def in_top_k(n: int, t: int, k: int, label: str = "") -> AtLeast:
    """Output ``t`` is among the ``k`` largest: fewer than ``k`` others reach ``y_t``.

    Ties count against ``t`` (a tie at the k-th place loses the label).
    """
    others = tuple(output_gt(n, t, j) for j in range(n) if j != t)
    return AtLeast(others, n - k, label or f"y{t} in top-{k}")


def negate(cond: Condition) -> Condition:
    """The negation of ``cond``, with the negation pushed into the atoms."""
    if isinstance(cond, Linear):
        return Linear(-cond.coeffs, -cond.const, not cond.strict, f"not {cond.label}".strip())
    if isinstance(cond, AtLeast):  # fewer than k hold == at least n-k+1 fail
        return AtLeast(tuple(negate(a) for a in cond.atoms), len(cond.atoms) - cond.k + 1,
                       f"not {cond.label}".strip())
    if isinstance(cond, And):
        return Or(tuple(negate(c) for c in cond.operands), f"not {cond.label}".strip())
    return And(tuple(negate(c) for c in cond.operands), f"not {cond.label}".strip())


def margin(cond: Condition, y: np.ndarray) -> np.ndarray:
    """Margin of ``cond`` on outputs ``y`` (``(B, n)`` gives ``(B,)``); positive iff it holds
    for strict atoms (a non-strict atom also holds at margin 0)."""
    y = np.asarray(y, dtype=np.float64)
    if isinstance(cond, Linear):
        return cond.margin(y)
    if isinstance(cond, AtLeast):
        if cond.k <= 0:
            return np.full(y.shape[:-1], np.inf)
        if cond.k > len(cond.atoms):
            return np.full(y.shape[:-1], -np.inf)
        ms = np.stack([a.margin(y) for a in cond.atoms], axis=-1)
        return -np.sort(-ms, axis=-1)[..., cond.k - 1]
    ms = np.stack([margin(c, y) for c in cond.operands], axis=-1)
    return ms.min(axis=-1) if isinstance(cond, And) else ms.max(axis=-1)


def holds(cond: Condition, y: np.ndarray) -> np.ndarray:
    """Exact truth of ``cond`` on outputs ``y`` (strict atoms need a positive margin)."""
    y = np.asarray(y, dtype=np.float64)
    if isinstance(cond, Linear):
        m = cond.margin(y)
        return m > 0 if cond.strict else m >= 0
    if isinstance(cond, AtLeast):
        count = sum(holds(a, y).astype(int) for a in cond.atoms) if cond.atoms else 0
        return np.asarray(count >= cond.k)
    parts = np.stack([holds(c, y) for c in cond.operands], axis=-1)
    return parts.all(axis=-1) if isinstance(cond, And) else parts.any(axis=-1)


MAX_DISJUNCTS = 4096


def dnf(cond: Condition) -> list[list[Linear | AtLeast]]:
    """``cond`` as a disjunction of conjunctions of atoms (raises beyond MAX_DISJUNCTS).

    ``AtLeast`` with ``k = 1`` is a disjunction and with ``k`` = all a conjunction, so they
    split into small cases (an argmax change is one case per competitor); other ``k`` stay
    atoms (encoded with selectors).
    """
    if isinstance(cond, AtLeast) and cond.atoms and cond.k == 1:
        return dnf(Or(cond.atoms, cond.label))
    if isinstance(cond, AtLeast) and cond.atoms and cond.k == len(cond.atoms):
        return dnf(And(cond.atoms, cond.label))
    if isinstance(cond, Linear | AtLeast):
        return [[cond]]
    if isinstance(cond, Or):
        out = [conj for c in cond.operands for conj in dnf(c)]
    else:
        parts = [dnf(c) for c in cond.operands]
        size = int(np.prod([len(p) for p in parts], dtype=np.float64))
        if size > MAX_DISJUNCTS:
            raise IRError(f"the condition expands to {size} cases (limit {MAX_DISJUNCTS})")
        out = [[a for conj in combo for a in conj] for combo in product(*parts)]
    if len(out) > MAX_DISJUNCTS:
        raise IRError(f"the condition expands to {len(out)} cases (limit {MAX_DISJUNCTS})")
    return out


def atoms_size(cond: Condition) -> int:
    """The number of outputs the condition's atoms refer to (their coefficient length)."""
    if isinstance(cond, Linear):
        return len(cond.coeffs)
    subs = cond.atoms if isinstance(cond, AtLeast) else cond.operands
    sizes = {atoms_size(c) for c in subs}
    if len(sizes) > 1:
        raise IRError(f"condition atoms disagree on the number of outputs: {sorted(sizes)}")
    return sizes.pop() if sizes else 0


@dataclass(frozen=True, eq=False)
class Box:
    """An input box ``lower <= x <= upper`` of the network input's shape."""

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self):
        if self.lower.shape != self.upper.shape:
            raise ShapeError(f"box bounds differ in shape: {self.lower.shape} vs "
                             f"{self.upper.shape}")
        if np.any(self.lower > self.upper):
            bad = np.argwhere(self.lower > self.upper)[0].tolist()
            raise ShapeError(f"empty input box: lower > upper at index {bad}")

    def contains(self, x: np.ndarray, tol: float = 0.0) -> bool:
        """Whether ``x`` lies in the box (up to ``tol``)."""
        return bool(np.all(x >= self.lower - tol) and np.all(x <= self.upper + tol))

    @property
    def perturbed(self) -> int:
        """Number of input values that may change."""
        return int(np.count_nonzero(self.upper > self.lower))


@dataclass(frozen=True, eq=False)
class Property:
    """For every input in one of ``boxes``, ``condition`` holds on the output ``output``.

    ``condition`` refers to the *logits*: the output tensor before any output map, which
    is how the compiler lowers decoders (a sigmoid threshold ``p`` becomes ``logit(p)``).
    ``meta`` carries what reports need (label names, decoding), never what solvers need.
    """

    name: str
    boxes: tuple[Box, ...]
    condition: Condition
    meta: dict = field(default_factory=dict)

    def check_against(self, input_shape: tuple[int, ...], n_outputs: int) -> None:
        """Raise ``ShapeError`` if the boxes or the condition do not fit the network."""
        for box in self.boxes:
            if tuple(box.lower.shape) != tuple(input_shape):
                raise ShapeError(f"property {self.name!r}: input box of shape "
                                 f"{list(box.lower.shape)}, the network expects "
                                 f"{list(input_shape)}")
        size = atoms_size(self.condition)
        if size != n_outputs:
            raise ShapeError(f"property {self.name!r}: the condition is over {size} outputs, "
                             f"the network has {n_outputs}")
