"""The property half of the IR: input sets and conditions on a network's outputs.

A :class:`Property` says: for every input in one of the ``boxes``, ``condition`` holds on
the network's output tensor (flattened, row-major). The compiler lowers every spec
condition into this small, solver-neutral language:

* :class:`Linear`: ``coeffs . y + const > 0`` (``strict``) or ``>= 0``;
* :class:`AtLeast`: at least ``k`` of several :class:`Linear` atoms hold (top-k membership,
  argmax);
* :class:`And`, :class:`Or`;
* :class:`AndClauses`, :class:`OrClauses`: an ``And`` / ``Or`` of groups, each an ``And`` /
  ``Or`` of atoms kept as arrays (:class:`LinearRows`), for conditions of many atoms (a
  VNN-LIB file of 300,000 output constraints); their ``operands`` are built as the objects
  above only when a consumer asks for them, while :func:`negate`, :func:`margin`,
  :func:`holds`, :func:`dnf` and :func:`atoms_size` work on the arrays;
* :class:`AndOfClauses`, :class:`OrOfClauses`: one level more, an ``And`` / ``Or`` of
  parts, each an ``AndClauses`` / ``OrClauses`` over the same arrays (many assertions
  ``(or (and C C) ...)``), handled the same way.

There is no ``Not``: :func:`negate` pushes negation into the atoms. Every condition has a
*margin*: positive when it holds, and for a :class:`Linear` atom the value ``coeffs . y +
const`` itself; ``And`` takes the minimum, ``Or`` the maximum, ``AtLeast`` the k-th largest.
Backends decide the *violation* ``negate(condition)``; replay evaluates :func:`holds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
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


@dataclass(frozen=True, eq=False)
class LinearRows:
    """``k`` :class:`Linear` atoms as arrays, one row each (compressed sparse rows): atom
    ``i`` is ``sum(data[p] * y[indices[p]]) + const[i]`` over ``p`` in ``indptr[i] ..
    indptr[i + 1] - 1`` ``> 0`` (``strict``) or ``>= 0``, over ``n`` outputs; no output
    occurs twice in one row. Its label is ``prefix`` followed by ``tags[i, 0]:tags[i, 1]``
    (a source position), or ``prefix`` alone when ``tags`` is None. ``fill``: the value of
    the coefficients not listed (``-0.0`` after an odd number of negations, as
    ``-coeffs`` gives for a :class:`Linear`)."""

    n: int
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    const: np.ndarray
    strict: bool = True
    prefix: str = ""
    tags: np.ndarray | None = None
    fill: float = 0.0

    def __len__(self) -> int:
        return int(self.const.size)

    def dense(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """The coefficients of atoms ``lo .. hi - 1`` as a dense ``(hi - lo, n)`` array."""
        hi = len(self) if hi is None else hi
        a, b = int(self.indptr[lo]), int(self.indptr[hi])
        out = np.full((hi - lo, self.n), self.fill)
        rows = np.repeat(np.arange(hi - lo), np.diff(self.indptr[lo:hi + 1]))
        out[rows, self.indices[a:b]] = self.data[a:b]
        return out

    def label(self, i: int) -> str:
        """The label of atom ``i``."""
        return self.prefix if self.tags is None else \
            f"{self.prefix}{self.tags[i, 0]}:{self.tags[i, 1]}"

    def atoms(self) -> list[Linear]:
        """Every atom as a :class:`Linear` (one object each: for consumers of small
        conditions)."""
        out, step = [], 1 << 16
        for lo in range(0, len(self), step):
            hi = min(lo + step, len(self))
            coeffs = self.dense(lo, hi)
            out += [Linear(coeffs[i - lo], float(self.const[i]), self.strict, self.label(i))
                    for i in range(lo, hi)]
        return out

    def rows(self, lo: int, hi: int) -> LinearRows:
        """Atoms ``lo .. hi - 1`` (views of these arrays)."""
        a, b = int(self.indptr[lo]), int(self.indptr[hi])
        return LinearRows(self.n, self.indptr[lo:hi + 1] - a, self.indices[a:b], self.data[a:b],
                          self.const[lo:hi], self.strict, self.prefix,
                          None if self.tags is None else self.tags[lo:hi], self.fill)

    def negated(self) -> LinearRows:
        """The negations of the atoms (as :func:`negate` of each)."""
        prefix = ("not " + self.prefix).strip() if self.tags is None else "not " + self.prefix
        return LinearRows(self.n, self.indptr, self.indices, -self.data, -self.const,
                          not self.strict, prefix, self.tags, -self.fill)

    def margins(self, y: np.ndarray) -> np.ndarray:
        """The atoms' margins on outputs ``y`` of shape ``(..., n)``: ``(..., k)``, computed
        in chunks of rows (a margin may differ from :meth:`Linear.margin` in its last bits:
        the sums are ordered by the matrix product)."""
        y = np.asarray(y, dtype=np.float64)
        step = 1 << 16
        parts = [y @ self.dense(lo, min(lo + step, len(self))).T
                 + self.const[lo:lo + step] for lo in range(0, len(self), step)]
        return np.concatenate(parts, axis=-1) if parts else np.zeros(y.shape[:-1] + (0,))


class _LazyOperands:
    """Pickling for a condition whose ``operands`` are a cached property: they are rebuilt
    after unpickling, not pickled."""

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "operands"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


class _Clauses(_LazyOperands):
    """An outer junction of ``len(groups) - 1`` inner junctions (``inner``: ``"and"`` or
    ``"or"``), group ``g`` over the atoms ``groups[g] .. groups[g + 1] - 1`` of ``rows``
    (every group non-empty); ``label`` and ``inner_label`` as for :class:`And` /
    :class:`Or`."""

    def __init__(self, rows: LinearRows, groups: np.ndarray, inner: str, label: str = "",
                 inner_label: str = ""):
        if inner not in ("and", "or"):
            raise IRError(f"clauses: inner junction {inner!r} (expected 'and' or 'or')")
        if groups.size < 2 or groups[0] != 0 or groups[-1] != len(rows) or \
                np.any(np.diff(groups) <= 0):
            raise IRError("clauses: the groups must split the atoms into non-empty runs")
        for name, value in (("rows", rows), ("groups", groups), ("inner", inner),
                            ("label", label), ("inner_label", inner_label)):
            object.__setattr__(self, name, value)

    @cached_property
    def operands(self) -> tuple:
        """The groups as :class:`And` / :class:`Or` of :class:`Linear` (built on first use)."""
        junction = And if self.inner == "and" else Or
        atoms = self.rows.atoms()
        bounds = self.groups.tolist()
        return tuple(junction(tuple(atoms[a:b]), self.inner_label)
                     for a, b in zip(bounds[:-1], bounds[1:], strict=True))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self.groups) - 1} {self.inner} groups of "
                f"{len(self.rows)} atoms over {self.rows.n} outputs, label={self.label!r})")

    def margins(self, y: np.ndarray) -> np.ndarray:
        """The groups' margins on ``y``: ``(..., groups)``."""
        m = self.rows.margins(y)
        reduce = np.minimum if self.inner == "and" else np.maximum
        return reduce.reduceat(m, self.groups[:-1], axis=-1)

    def truths(self, y: np.ndarray) -> np.ndarray:
        """Whether each group holds on ``y``: ``(..., groups)``."""
        m = self.rows.margins(y)
        atom = m > 0 if self.rows.strict else m >= 0
        reduce = np.logical_and if self.inner == "and" else np.logical_or
        return reduce.reduceat(atom, self.groups[:-1], axis=-1)


class AndClauses(_Clauses, And):
    """An :class:`And` of groups of atoms kept as arrays (see :class:`LinearRows`)."""


class OrClauses(_Clauses, Or):
    """An :class:`Or` of groups of atoms kept as arrays (see :class:`LinearRows`)."""


class _Parts(_LazyOperands):
    """An outer junction of ``len(parts) - 1`` parts, part ``k`` a ``middle`` junction
    (``"and"`` / ``"or"``) of the groups ``parts[k] .. parts[k + 1] - 1`` of a
    :class:`_Clauses` layout (``rows``, ``groups``, ``inner``): three levels of junctions
    over atoms kept as arrays (a VNN-LIB file of many assertions ``(or (and C C) ...)``).
    Its ``operands`` are :class:`AndClauses` / :class:`OrClauses` over views of the rows,
    built on first use; ``label`` is the outer junction's, ``middle_label`` and
    ``inner_label`` those of the parts and the groups."""

    def __init__(self, rows: LinearRows, groups: np.ndarray, inner: str, parts: np.ndarray,
                 middle: str, label: str = "", middle_label: str = "", inner_label: str = ""):
        _Clauses(rows, groups, inner)  # checks the groups
        if middle not in ("and", "or"):
            raise IRError(f"clauses: middle junction {middle!r} (expected 'and' or 'or')")
        if parts.size < 2 or parts[0] != 0 or parts[-1] != groups.size - 1 or \
                np.any(np.diff(parts) <= 0):
            raise IRError("clauses: the parts must split the groups into non-empty runs")
        for name, value in (("rows", rows), ("groups", groups), ("inner", inner),
                            ("parts", parts), ("middle", middle), ("label", label),
                            ("middle_label", middle_label), ("inner_label", inner_label)):
            object.__setattr__(self, name, value)

    @cached_property
    def operands(self) -> tuple:
        """The parts as :class:`AndClauses` / :class:`OrClauses` (built on first use)."""
        junction = AndClauses if self.middle == "and" else OrClauses
        groups, parts = self.groups, self.parts.tolist()
        return tuple(junction(self.rows.rows(int(groups[a]), int(groups[b])),
                              groups[a:b + 1] - groups[a], self.inner, self.middle_label,
                              self.inner_label)
                     for a, b in zip(parts[:-1], parts[1:], strict=True))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self.parts) - 1} {self.middle} parts of "
                f"{len(self.groups) - 1} {self.inner} groups of {len(self.rows)} atoms over "
                f"{self.rows.n} outputs, label={self.label!r})")

    def _reduce(self, m: np.ndarray, ops: tuple) -> np.ndarray:
        inner = ops[0] if self.inner == "and" else ops[1]
        middle = ops[0] if self.middle == "and" else ops[1]
        g = inner.reduceat(m, self.groups[:-1], axis=-1)
        return middle.reduceat(g, self.parts[:-1], axis=-1)

    def margins(self, y: np.ndarray) -> np.ndarray:
        """The parts' margins on ``y``: ``(..., parts)``."""
        return self._reduce(self.rows.margins(y), (np.minimum, np.maximum))

    def truths(self, y: np.ndarray) -> np.ndarray:
        """Whether each part holds on ``y``: ``(..., parts)``."""
        m = self.rows.margins(y)
        return self._reduce(m > 0 if self.rows.strict else m >= 0,
                            (np.logical_and, np.logical_or))


class AndOfClauses(_Parts, And):
    """An :class:`And` of parts, each an :class:`AndClauses` / :class:`OrClauses` over one
    array layout (see :class:`_Parts`)."""


class OrOfClauses(_Parts, Or):
    """An :class:`Or` of parts, each an :class:`AndClauses` / :class:`OrClauses` over one
    array layout (see :class:`_Parts`)."""


Condition = Linear | AtLeast | And | Or


def _not(label: str) -> str:
    return f"not {label}".strip()


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
    if isinstance(cond, _Clauses):
        flip = AndClauses if isinstance(cond, Or) else OrClauses
        return flip(cond.rows.negated(), cond.groups, "or" if cond.inner == "and" else "and",
                    _not(cond.label), _not(cond.inner_label))
    if isinstance(cond, _Parts):
        flip = AndOfClauses if isinstance(cond, Or) else OrOfClauses
        other = {"and": "or", "or": "and"}
        return flip(cond.rows.negated(), cond.groups, other[cond.inner], cond.parts,
                    other[cond.middle], _not(cond.label), _not(cond.middle_label),
                    _not(cond.inner_label))
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
    if isinstance(cond, _Clauses | _Parts):
        ms = cond.margins(y)
        return ms.min(axis=-1) if isinstance(cond, And) else ms.max(axis=-1)
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
    if isinstance(cond, _Clauses | _Parts):
        parts = cond.truths(y)
        return parts.all(axis=-1) if isinstance(cond, And) else parts.any(axis=-1)
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
    if isinstance(cond, _Clauses):
        _clauses_cases(cond)  # refuse a large expansion before building any atom
    if isinstance(cond, _Parts):
        _parts_cases(cond)
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
        with np.errstate(over="ignore"):
            size = float(np.prod([len(p) for p in parts], dtype=np.float64))
        if size > MAX_DISJUNCTS:
            raise IRError(f"the condition expands to {_count(size)} cases (limit "
                          f"{MAX_DISJUNCTS})")
        out = [[a for conj in combo for a in conj] for combo in product(*parts)]
    if len(out) > MAX_DISJUNCTS:
        raise IRError(f"the condition expands to {len(out)} cases (limit {MAX_DISJUNCTS})")
    return out


def asks_several(cases: list) -> bool:
    """Whether a case of ``cases`` (:func:`dnf`'s) asks for at least ``k > 1`` of its
    atoms (top-k decoding: "two labels beat b"), which no single atom can decide."""
    return any(isinstance(a, AtLeast) and a.k > 1 for case in cases for a in case)


def _clauses_cases(cond: _Clauses) -> None:
    """Raise ``IRError`` as :func:`dnf` of ``cond``'s operands would (inner groups first),
    from the group sizes alone."""
    _junction_cases(np.diff(cond.groups), cond.inner, isinstance(cond, Or))


def _junction_cases(sizes: np.ndarray, inner: str, is_or: bool) -> float:
    """The cases of an ``Or`` (``is_or``) or ``And`` of groups of ``sizes`` atoms, each an
    ``inner`` junction, as :func:`dnf` counts them; ``IRError`` where it would raise."""
    if inner == "or" and sizes.max() > MAX_DISJUNCTS:
        size = int(sizes[np.argmax(sizes > MAX_DISJUNCTS)])
        raise IRError(f"the condition expands to {size} cases (limit {MAX_DISJUNCTS})")
    if is_or:
        count = int(sizes.sum()) if inner == "or" else sizes.size
        if count > MAX_DISJUNCTS:
            raise IRError(f"the condition expands to {count} cases (limit {MAX_DISJUNCTS})")
        return float(count)
    if inner == "or":
        with np.errstate(over="ignore"):
            size = float(np.prod(sizes, dtype=np.float64))
        if size > MAX_DISJUNCTS:
            raise IRError(f"the condition expands to {_count(size)} cases (limit "
                          f"{MAX_DISJUNCTS})")
        return size
    return 1.0


def _parts_cases(cond: _Parts) -> None:
    """Raise ``IRError`` as :func:`dnf` of ``cond``'s operands would (parts first, in
    order), from the group and part sizes alone."""
    sizes = np.diff(cond.groups)
    bounds = cond.parts.tolist()
    counts = [_junction_cases(sizes[a:b], cond.inner, cond.middle == "or")
              for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    with np.errstate(over="ignore"):
        size = float(np.sum(counts) if isinstance(cond, Or) else np.prod(counts))
    if size > MAX_DISJUNCTS:
        raise IRError(f"the condition expands to {_count(size)} cases (limit "
                      f"{MAX_DISJUNCTS})")


def _count(size: float) -> str:
    """A number of cases as an integer (beyond a float's range: in words)."""
    return str(int(size)) if np.isfinite(size) else "more than 1e308"


def atoms_size(cond: Condition) -> int:
    """The number of outputs the condition's atoms refer to (their coefficient length)."""
    if isinstance(cond, _Clauses | _Parts):
        return cond.rows.n
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
