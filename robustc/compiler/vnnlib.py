"""VNN-LIB 1.0 import and export.

A VNN-LIB file declares real constants ``X_0 .. X_{n-1}`` (the network input, flattened in
row-major order whatever its ONNX shape) and ``Y_0 .. Y_{m-1}`` (the output, flattened),
and asserts a formula. The formula describes a **violation**: the file is ``sat`` when some
input satisfies every assertion, i.e. when a counterexample exists.

The fragment read here:

* ``(declare-const X_i Real)`` / ``(declare-const Y_j Real)``;
* ``(assert F)`` where ``F`` is ``(and F ...)``, ``(or F ...)``, ``(<= T T)`` or
  ``(>= T T)`` and a term ``T`` is a number, a variable, ``(+ T ...)``, ``(- T ...)`` or
  ``(* T ...)`` with at most one non-constant factor (so every atom is linear);
* an atom refers to inputs only (then it must bound a single ``X_i``) or outputs only.

Anything else is a :class:`~robustc.errors.SpecError` with ``file:line:col``.

Lowering to the property IR: the assertions are conjoined; the top-level bounds of single
inputs, nearly all of a large file, are kept as arrays (:class:`InputBounds`) and bound
every case's box (so is each run of consecutive bounds of single inputs among the operands
of an ``(and ...)``: one :class:`InputBounds` operand, the box of a disjunct); the other
input-dependent assertions are expanded into disjunctive normal form (at most
:data:`MAX_CASES` cases), each case intersecting its input bounds into a box and
collecting its output atoms. A violation atom ``T1 <= T2`` is ``Linear(c, d,
strict=False)`` with ``c . y + d = T2 - T1 >= 0``. A large output-only assertion ``(or (and
C ...) ...)`` (or another pair of junctions; :data:`CLAUSES_MIN` comparisons or more, of
the linear terms that :func:`~robustc.compiler.vnnlib_scan.clause_groups` reads) is read
by the fast reader as arrays (:class:`OutputClauses`) and lowered to an
:class:`~robustc.ir.property.OrClauses` / :class:`~robustc.ir.property.AndClauses` over
the same arrays: the same atoms, labels and junctions as the formula reader's, without an
object per atom. The robustc property is the
**negation** of the violation: ``negate`` turns each atom into ``T2 - T1 < 0`` (strict),
so "robust" = ``unsat`` and "not robust" = ``sat``, exactly. Cases with the same output
constraints share one :class:`~robustc.ir.property.Property` (ACAS Xu property 6: one
property, two boxes); a case whose box is empty (a lower bound above an upper bound) can
hold no counterexample and is dropped. When every case is empty the file is refused
(:class:`~robustc.errors.EmptyInputSet`, naming the variable and lines): "unsat" would be
true only vacuously, and reporting it as a proof would hide a mistake in the file.

Export (:func:`format_vnnlib`) writes a property's boxes and the negation of its condition.
VNN-LIB 1.0 has no strict comparison, so a strict violation atom ``m > 0`` is written
``m >= 0``: the exported violation region contains its boundary, which can only turn a
proof into a (boundary) counterexample, never the reverse.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations, product
from pathlib import Path
from typing import NamedTuple

import numpy as np

from robustc.compiler.onnx_import import load_onnx
from robustc.compiler.passes import standard_passes
from robustc.compiler.vnnlib_scan import (
    ATOM,
    LP,
    RP,
    DeclaredNames,
    Tokens,
    bound_atoms_of,
    clause_groups,
    comparisons,
    invalid,
    is_word,
    scan_block,
    tokenize_block,
)
from robustc.errors import EmptyInputSet, Error, SpecError
from robustc.files import write_text
from robustc.files.limits import check_file_size
from robustc.ir import logits
from robustc.ir.problem import Problem
from robustc.ir.property import (
    And,
    AndClauses,
    AndOfClauses,
    AtLeast,
    Box,
    Condition,
    Linear,
    LinearRows,
    Or,
    OrClauses,
    OrOfClauses,
    Property,
    atoms_size,
    negate,
)
from robustc.specs.parser import read_source

#: Most disjuncts the input constraints may expand into (boxes x output cases).
MAX_CASES = 4096

_VAR = re.compile(r"^([XY])_(\d+)$")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


class Pos(NamedTuple):
    """A position in a VNN-LIB file: 1-based line and column (a named tuple: one is made
    per token, and a tuple is several times cheaper to make than a frozen dataclass)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class SExpr(NamedTuple):
    """An s-expression: ``atom`` text, or a list of ``items``; with its position (a named
    tuple, like :class:`Pos`)."""

    pos: Pos
    atom: str | None = None
    items: tuple[SExpr, ...] = ()

    @property
    def head(self) -> str | None:
        """The first item's text when this is a list starting with an atom."""
        if self.atom is None and self.items and self.items[0].atom is not None:
            return self.items[0].atom
        return None


def _error(pos: Pos, message: str) -> SpecError:
    return SpecError(f"{pos}: {message}")


# --------------------------------------------------------------------------------------
# Tokenizer and s-expression reader


_TOKEN = re.compile(r'(?P<skip>\s+|;[^\n]*)|(?P<tok>\(|\)|[^\s();"|][^\s();]*)|(?P<bad>.)',
                    re.DOTALL)


def tokenize(text: str, file: str = "<string>") -> list[tuple[str, Pos]]:
    """The tokens of ``text`` (parentheses and atoms) with positions; comments dropped.
    One pass over the text (newlines are counted in the whitespace and comments only).

    Raises ``SpecError`` for a character that starts no token (e.g. a stray ``"``).
    """
    return list(_tokens(text, file))


def _tokens(text: str, file: str) -> Iterator[tuple[str, Pos]]:
    line, line_start = 1, 0
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "tok":
            yield m.group(), Pos(file, line, m.start() - line_start + 1)
        elif kind == "skip":
            line, line_start = _after_gap(m, line, line_start)
        else:
            raise _error(Pos(file, line, m.start() - line_start + 1),
                         f"unexpected character {m.group()!r}")


def _after_gap(m: re.Match, line: int, line_start: int) -> tuple[int, int]:
    """``(line, line_start)`` after the whitespace or comment matched by ``m``."""
    gap = m.group()
    newlines = gap.count("\n")
    if newlines:
        return line + newlines, m.start() + gap.rindex("\n") + 1
    return line, line_start


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a parse builds many small acyclic objects
    (a 1.5 MB file parsed in 0.96 s instead of 1.61 s; reference counting still frees
    them)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ReadTimeout(Error, TimeoutError):
    """The time limit passed while a VNN-LIB file was read or lowered to properties
    (``--timeout`` counts both): the caller's verdict is ``unknown``, with this message (it
    names the step and the line) as the reason."""


#: The steps that :func:`_in_time` names.
_READING, _LOWERING = "reading the VNN-LIB file", "lowering the VNN-LIB file to properties"


def _in_time(deadline: float | None, file: str, line: int, step: str = _READING) -> None:
    """Raise :class:`ReadTimeout` once ``deadline`` (``time.perf_counter``) has passed."""
    if deadline is not None and time.perf_counter() > deadline:
        raise ReadTimeout(f"{file}: time limit reached while {step} (at line {line})")


#: Deepest nesting of lists the readers take (VNN-COMP files nest 4 or 5 deep): a deeper
#: file is refused at the first ``(`` past it, instead of exhausting Python's recursion
#: limit when its formula is lowered.
MAX_NESTING = 100


def _nested(pos: Pos, depth: int) -> None:
    """Refuse a list opened at ``pos`` as the ``depth``-th open one."""
    if depth > MAX_NESTING:
        raise _error(pos, f"lists nested more than {MAX_NESTING} deep")


def read_sexprs(text: str, file: str = "<string>") -> list[SExpr]:
    """The top-level s-expressions of ``text``; raises ``SpecError`` on unbalanced parens."""
    return list(iter_sexprs(text, file))


def iter_sexprs(text: str, file: str = "<string>") -> Iterator[SExpr]:
    """:func:`read_sexprs` one top-level s-expression at a time, so that a caller that
    consumes each (the parser) holds one command's tree, not the file's. The tokens are
    read as they are needed, never held in a list."""
    stack: list[tuple[Pos, list[SExpr]]] = [(Pos(file, 1, 1), [])]
    for tok, pos in _tokens(text, file):
        if tok == "(":
            _nested(pos, len(stack))
            stack.append((pos, []))
        elif tok == ")":
            if len(stack) == 1:
                raise _error(pos, "unbalanced ')'")
            start, items = stack.pop()
            stack[-1][1].append(SExpr(start, items=tuple(items)))
        else:
            stack[-1][1].append(SExpr(pos, atom=tok))
        if len(stack) == 1 and stack[0][1]:
            yield stack[0][1].pop()
    if len(stack) > 1:
        raise _error(stack[-1][0], "'(' is never closed")


# --------------------------------------------------------------------------------------
# Formulas: linear atoms over named variables


@dataclass(frozen=True, slots=True)
class Atom:
    """``sum coeffs[v] * v + const >= 0`` over variables ``("X", i)`` / ``("Y", j)``."""

    coeffs: dict
    const: float
    pos: Pos

    def kinds(self) -> set[str]:
        """Which variable kinds (``"X"``, ``"Y"``) occur with a non-zero coefficient."""
        return {k for (k, _), c in self.coeffs.items() if c != 0.0}


@dataclass(frozen=True, slots=True)
class Junction:
    """``(and ...)`` or ``(or ...)`` of formulas."""

    op: str
    parts: tuple
    pos: Pos


Formula = Atom | Junction


class _Reread:
    """What the fast reader leaves in place of a list it has read (:class:`_Read`,
    :class:`_Cmp`): read again from its text and offset, as the general reader reads it,
    when a message or a check needs its items."""

    __slots__ = ()

    @property
    def items(self) -> tuple:
        return self.sexpr().items

    def sexpr(self) -> SExpr:
        """The list as the general reader reads it."""
        p = self.pos
        return _read_one(self.text, p.file, self.start, p.line, self.start - p.col + 1)[0]


class _Read(_Reread):
    """An ``(and ...)``, ``(or ...)``, ``(<= ...)`` or ``(>= ...)`` inside a command, as the
    fast reader leaves it among the items of an :class:`SExpr`: read by :func:`_formula` as
    soon as it is closed, into its formula or the ``SpecError`` that reading it raises (the
    formula reader raises it when it reaches this item, so that the first error is the
    general reader's), with the text and offset where it starts (to read it again for a
    message); the tree below it is not kept."""

    __slots__ = ("pos", "head", "result", "text", "start")
    atom = None

    def __init__(self, e: SExpr, declared: DeclaredNames, text: str, start: int):
        self.pos, self.head, self.text, self.start = e.pos, e.head, text, start
        try:
            self.result = _formula(e, declared)
        except SpecError as exc:
            self.result = exc.with_traceback(None)



class _Given(_Read):
    """A formula list that the array reader of clauses (:func:`_output_clauses`) has read:
    as a :class:`_Read`, with its formula given."""

    __slots__ = ()

    def __init__(self, pos: Pos, head: str, result, text: str, start: int):
        self.pos, self.head, self.result, self.text, self.start = pos, head, result, text, start


#: The lists that :class:`_Read` reads as soon as they are closed.
_FORMULAS = frozenset({"and", "or", "<=", ">="})


class _Cmp(_Reread):
    """A comparison of two atoms, ``(<= A B)`` / ``(>= A B)``, as the fast reader leaves it
    among the items of an :class:`SExpr` (one object where the general reader makes five):
    the position of its ``(``, the operator, the atoms' text, and the text and offset where
    it starts, to read it again as the general reader does (for an error or a message)."""

    __slots__ = ("pos", "op", "lhs", "rhs", "text", "start")
    atom = None

    def __init__(self, pos: Pos, op: str, lhs: str, rhs: str, text: str, start: int):
        self.pos, self.op, self.lhs, self.rhs, self.text, self.start = \
            pos, op, lhs, rhs, text, start

    @property
    def head(self) -> str:
        return self.op



class _Run:
    """Consecutive input bounds ``(<= X_i c)`` / ``(>= X_i c)`` inside an ``(and ...)``, as
    the fast reader leaves them among the items of an :class:`SExpr`: the columns of
    :class:`_BoundsBuilder` (what :func:`_formula` makes of each atom) and the text they
    span (read again only to show them in a message)."""

    __slots__ = ("columns", "text", "span")
    atom = None

    def __init__(self, columns: tuple, text: str, span: tuple[int, int]):
        self.columns, self.text, self.span = columns, text, span

    def sexprs(self) -> list[SExpr]:
        """The atoms as the general reader reads them."""
        return read_sexprs(self.text[self.span[0]:self.span[1]])


@dataclass(frozen=True, eq=False)
class InputBounds:
    """The top-level assertions that bound one input, ``coeff * X_index + const >= 0``
    (``(assert (<= X_i c))``: coefficient -1, constant ``c``), in file order, as arrays
    (one entry per assertion; ``line``/``col``: the position of its comparison). A large
    file is mostly these, so they are not kept as :class:`Atom` objects."""

    file: str
    index: np.ndarray
    coeff: np.ndarray
    const: np.ndarray
    line: np.ndarray
    col: np.ndarray

    def __len__(self) -> int:
        return int(self.index.size)

    def kinds(self) -> set[str]:
        """``{"X"}`` (as :meth:`Atom.kinds`: these bound inputs)."""
        return {"X"}

    def __eq__(self, other) -> bool:
        fields = ("index", "coeff", "const", "line", "col")
        return isinstance(other, InputBounds) and self.file == other.file and all(
            getattr(self, f).dtype == getattr(other, f).dtype
            and getattr(self, f).tobytes() == getattr(other, f).tobytes() for f in fields)

    __hash__ = None  # type: ignore[assignment]

    def atoms(self) -> Iterator[Atom]:
        """The bounds as :class:`Atom` s (what the formula reader makes of each)."""
        for i, c, k, line, col in zip(self.index.tolist(), self.coeff.tolist(),
                                      self.const.tolist(), self.line.tolist(),
                                      self.col.tolist(), strict=True):
            yield Atom({("X", i): c}, k, Pos(self.file, line, col))

    def apply(self, lower: np.ndarray, upper: np.ndarray) -> None:
        """Intersect the box ``[lower, upper]`` (flat, in place) with every bound."""
        value = -self.const / self.coeff
        up = self.coeff > 0
        np.maximum.at(lower, self.index[up], value[up])
        np.minimum.at(upper, self.index[~up], value[~up])

    def lines_of(self, i: int) -> set[int]:
        """The lines of the bounds on ``X_i``."""
        return set(self.line[self.index == i].tolist())


class _BoundsBuilder:
    """Collects :class:`InputBounds` in file order: blocks of arrays from the fast reader
    and single atoms from the formula reader."""

    _DTYPES = (np.int64, np.float64, np.float64, np.int64, np.int64)

    def __init__(self, file: str):
        self.file = file
        self.columns: list[list[np.ndarray]] = [[] for _ in self._DTYPES]
        self.pending: list[tuple] = []

    def add_atom(self, a: Atom) -> None:
        ((_, i), c), = a.coeffs.items()
        self.pending.append((i, c, a.const, a.pos.line, a.pos.col))

    def add_arrays(self, *columns: np.ndarray) -> None:
        self._flush()
        for parts, column, dtype in zip(self.columns, columns, self._DTYPES, strict=True):
            parts.append(np.asarray(column, dtype=dtype))

    def _flush(self) -> None:
        if self.pending:
            rows, self.pending = self.pending, []
            self.add_arrays(*(np.array(c) for c in zip(*rows, strict=True)))

    def empty(self) -> bool:
        return not self.pending and not any(p.size for p in self.columns[0])

    def build(self) -> InputBounds:
        """The bounds; each column is joined and its blocks freed before the next."""
        self._flush()
        joined = []
        for j, dtype in enumerate(self._DTYPES):
            parts, self.columns[j] = self.columns[j], []
            joined.append(parts[0] if len(parts) == 1 else
                          np.concatenate(parts) if parts else np.zeros(0, dtype=dtype))
            del parts
        return InputBounds(self.file, *joined)


@dataclass(frozen=True, eq=False)
class OutputClauses:
    """An output-only assertion ``(OUTER (INNER C ...) ...)`` of many comparisons ``C``
    (:data:`CLAUSES_MIN` or more; ``OUTER``, ``INNER``: ``and`` / ``or``), read as arrays by
    :func:`_output_clauses`: per comparison, in file order, its outputs and coefficients
    (rows ``indptr``/``indices``/``data``, as :class:`~robustc.ir.property.LinearRows`), its
    constant and the position of its ``(`` (``tags``: line and column, one row each);
    ``groups``: where each inner list's comparisons start (and the total at the end), and
    ``group_tags`` the position of its ``(``; ``pos``: the position of the outer list.
    Each comparison means what the formula reader's :class:`Atom` of it means; lowered to an
    :class:`~robustc.ir.property.OrClauses` / :class:`~robustc.ir.property.AndClauses`.

    ``top``: not one assertion but a run of consecutive top-level assertions, read by
    :func:`_assert_run`, that the formula reader reads as one formula each: ``"atoms"``,
    each ``(assert C)`` of one comparison (``and`` of one ``and`` group: their
    conjunction; the formula reader's :class:`Atom` s); ``"lists"``, each ``(assert (INNER
    C ...))`` (``and`` of one ``INNER`` group per assertion; its :class:`Junction` s);
    ``"nested"``, each ``(assert (OUTER (INNER C ...) ...))``, with the same ``OUTER`` and
    ``INNER`` throughout, as an ``and`` of groups that means the same (see
    :func:`_nested_groups`) or, where there is none (``or`` of ``and`` lists of several
    comparisons), as an ``and`` of ``parts`` (where each assertion's groups start), each
    a ``middle`` (``OUTER``) junction of its groups (lowered to an
    :class:`~robustc.ir.property.AndOfClauses`), and ``source`` = ``(OUTER, INNER, where
    each inner list's comparisons start, the position of each inner list, where each
    assertion's inner lists start, the position of each assertion's formula)`` to give
    the formula reader's formulas back."""

    outer: str
    inner: str
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    const: np.ndarray
    tags: np.ndarray
    groups: np.ndarray
    group_tags: np.ndarray
    pos: Pos
    top: str = ""
    source: tuple = ()
    parts: np.ndarray | None = None
    middle: str = ""

    def kinds(self) -> set[str]:
        """``{"Y"}`` (as :meth:`Atom.kinds`: these constrain outputs)."""
        return {"Y"}

    def junction(self) -> Junction:
        """The formula as the formula reader reads it: a :class:`Junction` of junctions of
        :class:`Atom` s (one object per atom: for tests and small files; for a ``top`` run,
        :meth:`atoms` are what the formula reader reads)."""
        return Junction(self.outer, self._lists(self.inner, self.groups, self.group_tags,
                                                self._atoms()), self.pos)

    def _atoms(self) -> list[Atom]:
        file, ptr = self.pos.file, self.indptr.tolist()
        index, data = self.indices.tolist(), self.data.tolist()
        return [Atom({("Y", j): c for j, c in zip(index[a:b], data[a:b], strict=True)},
                     float(k), Pos(file, line, col))
                for a, b, k, (line, col) in zip(ptr[:-1], ptr[1:], self.const.tolist(),
                                                self.tags.tolist(), strict=True)]

    def _lists(self, op: str, bounds: np.ndarray, tags: np.ndarray, parts: list) -> tuple:
        """``op`` junctions of the ``parts`` between consecutive ``bounds``, at ``tags``."""
        file, bounds = self.pos.file, bounds.tolist()
        return tuple(Junction(op, tuple(parts[a:b]), Pos(file, line, col))
                     for a, b, (line, col) in zip(bounds[:-1], bounds[1:], tags.tolist(),
                                                  strict=True))

    def atoms(self) -> tuple[Formula, ...]:
        """The assertions as the formula reader reads them: those of a ``top`` run (one
        :class:`Atom` or :class:`Junction` each); otherwise the one :meth:`junction`."""
        if not self.top:
            return (self.junction(),)
        if self.top == "nested":
            outer, inner, groups, group_tags, commands, command_tags = self.source
            lists = self._lists(inner, groups, group_tags, self._atoms())
            return self._lists(outer, commands, command_tags, list(lists))
        groups = self.junction().parts
        return groups if self.top == "lists" else tuple(a for g in groups for a in g.parts)

    def violation(self, n_outputs: int) -> Condition:
        """The formula as a robustc condition (what :func:`_violation` makes of the
        :class:`Junction` of :class:`Atom` s that the formula reader reads)."""
        rows = LinearRows(n_outputs, self.indptr, self.indices, self.data, self.const,
                          strict=False, prefix="vnnlib ", tags=self.tags)
        if self.parts is not None:
            junction = OrOfClauses if self.outer == "or" else AndOfClauses
            return junction(rows, self.groups, self.inner, self.parts, self.middle)
        junction = OrClauses if self.outer == "or" else AndClauses
        return junction(rows, self.groups, self.inner)


def _is_input_bound(f: Formula) -> bool:
    """Whether ``f`` bounds a single input (then it goes to :class:`InputBounds`)."""
    if not isinstance(f, Atom) or len(f.coeffs) != 1:
        return False
    ((kind, _), _), = f.coeffs.items()
    return kind == "X"


@dataclass(frozen=True)
class Query:
    """A parsed VNN-LIB file: its declared sizes and its assertions (a conjunction): the
    bounds of single inputs at the top level in ``bounds``, the others in ``assertions``
    (both in file order)."""

    file: str
    n_inputs: int
    n_outputs: int
    assertions: tuple[Formula, ...]
    bounds: InputBounds

    def as_formulas(self) -> Query:
        """This query with each :class:`OutputClauses` replaced by its :meth:`junction
        <OutputClauses.junction>`: what the general reader (``fast=False``) reads."""
        return dataclasses.replace(self, assertions=tuple(
            a for f in self.assertions
            for a in (f.atoms() if isinstance(f, OutputClauses) else (f,))))


def _term(e: SExpr, declared: DeclaredNames) -> tuple[dict, float]:
    """A linear term as ``(coeffs, const)``; raises ``SpecError`` if not linear."""
    text = e.atom
    if text is not None:
        term = _atom_term(text, declared)
        if term is not None:
            return term
        if _NUMBER.match(text):
            raise _error(e.pos, f"number {text} is out of range (it overflows to infinity)")
        raise _error(e.pos, f"undeclared variable or bad number {text!r}")
    op, args = e.head, e.items[1:]
    if op not in ("+", "-", "*") or not args:
        raise _error(e.pos, f"unsupported term {_show(e)!r} (expected a number, a variable, "
                            f"or +, -, * of terms)")
    terms = [_term(a, declared) for a in args]
    if op == "*":
        return _product(terms, e.pos)
    if op == "-" and len(terms) == 1:
        return _scale(terms[0], -1.0)
    first, rest = terms[0], terms[1:]
    sign = -1.0 if op == "-" else 1.0
    return _sum([first] + [_scale(t, sign) for t in rest])


def _atom_term(text: str, declared: DeclaredNames) -> tuple[dict, float] | None:
    """The term of an atom (a declared variable or a finite number), or None if it is
    neither (an error for :func:`_term` to name)."""
    var = _VAR.match(text)  # (no text is both a name and a number)
    if var is not None:
        key = (var.group(1), int(var.group(2)))
        return ({key: 1.0}, 0.0) if key in declared else None
    if _NUMBER.match(text):
        value = float(text)
        return ({}, value) if math.isfinite(value) else None
    return None


def _scale(t: tuple[dict, float], s: float) -> tuple[dict, float]:
    return {k: s * v for k, v in t[0].items()}, s * t[1]


def _sum(terms: list) -> tuple[dict, float]:
    coeffs: dict = {}
    for c, _ in terms:
        for k, v in c.items():
            coeffs[k] = coeffs.get(k, 0.0) + v
    return coeffs, float(sum(t[1] for t in terms))


def _product(terms: list, pos: Pos) -> tuple[dict, float]:
    variable = [t for t in terms if t[0]]
    if len(variable) > 1:
        raise _error(pos, "product of two variable terms (only linear constraints are allowed)")
    factors = [t[1] for t in terms if not t[0]]
    if len(factors) <= 2:  # the same product as numpy's, faster
        factor = float(math.prod(factors))
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # _formula names an overflow
            factor = float(np.prod(factors))
    return _scale(variable[0], factor) if variable else ({}, factor)


def _formula(e: SExpr, declared: DeclaredNames) -> Formula:
    if isinstance(e, _Read):
        if isinstance(e.result, SpecError):
            raise e.result
        return e.result
    if isinstance(e, _Cmp):
        lhs, rhs = _atom_term(e.lhs, declared), _atom_term(e.rhs, declared)
        if lhs is not None and rhs is not None:
            return _comparison(e.op, lhs, rhs, e.pos)
        e = e.sexpr()  # an error in a term: found as the general reader finds it
    op = e.head
    if op in ("and", "or"):
        if len(e.items) < 2:
            raise _error(e.pos, f"({op}) needs at least one operand")
        if op == "and":
            return Junction(op, _conjuncts(e.items[1:], declared, e.pos.file), e.pos)
        return Junction(op, tuple(_formula(a, declared) for a in e.items[1:]), e.pos)
    if op in ("<=", ">="):
        if len(e.items) != 3:
            raise _error(e.pos, f"({op} ...) takes exactly two terms")
        return _comparison(op, _term(e.items[1], declared), _term(e.items[2], declared), e.pos)
    raise _error(e.pos, f"unsupported formula {_show(e)!r} (expected and, or, <=, >=)")


def _comparison(op: str, lhs: tuple, rhs: tuple, pos: Pos) -> Atom:
    """The atom of ``(op lhs rhs)`` (terms as ``(coeffs, const)``)."""
    small, big = (lhs, rhs) if op == "<=" else (rhs, lhs)
    coeffs, const = _sum([big, _scale(small, -1.0)])
    atom = Atom({k: v for k, v in coeffs.items() if v != 0.0}, const, pos)
    if not all(map(math.isfinite, [const, *atom.coeffs.values()])):
        raise _error(pos, "a coefficient or the constant of this constraint is out of range "
                          "(it overflows)")
    kinds = atom.kinds()
    if not kinds:
        raise _error(pos, "comparison of constants (no variable)")
    if kinds == {"X", "Y"}:
        raise _error(pos, "a constraint mixes inputs (X) and outputs (Y)")
    return atom


def _conjuncts(items, declared: DeclaredNames, file: str) -> tuple:
    """The operands of an ``(and ...)`` as formulas, each run of consecutive bounds of
    single inputs joined into one :class:`InputBounds` (arrays: a large box inside a
    disjunction is mostly these); the fast reader's :class:`_Run` s are such bounds."""
    parts: list = []
    group = _BoundsBuilder(file)
    for a in items:
        if isinstance(a, _Run):
            group.add_arrays(*a.columns)
            continue
        f = _formula(a, declared)
        if _is_input_bound(f):
            group.add_atom(f)
            continue
        if not group.empty():
            parts.append(group.build())
            group = _BoundsBuilder(file)
        parts.append(f)
    if not group.empty():
        parts.append(group.build())
    return tuple(parts)


def _show(e: SExpr, limit: int = 40) -> str:
    if e.atom is not None:
        text = e.atom
    else:
        items = [s for i in e.items for s in (i.sexprs() if isinstance(i, _Run) else [i])]
        text = "(" + " ".join(_show(i, limit) for i in items) + ")"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _declare(e: SExpr, declared: DeclaredNames) -> None:
    if len(e.items) != 3 or e.items[1].atom is None or e.items[2].atom != "Real":
        raise _error(e.pos, "expected (declare-const NAME Real)")
    name = e.items[1]
    var = _VAR.match(name.atom)
    if var is None:
        raise _error(name.pos, f"variable {name.atom!r}: only X_<i> (inputs) and Y_<j> "
                               f"(outputs) are supported")
    key = (var.group(1), int(var.group(2)))
    if key in declared:
        raise _error(name.pos, f"{name.atom} is declared twice")
    declared.add(key)


def _count(declared: DeclaredNames, kind: str, file: str) -> int:
    idx = declared.indices(kind)
    gaps = np.flatnonzero(idx != np.arange(idx.size))
    if gaps.size:
        raise SpecError(f"{file}: {kind}_{int(gaps[0])} is not declared (the {kind} variables "
                        f"must be {kind}_0 .. {kind}_{int(idx[-1])})")
    if not idx.size:
        raise SpecError(f"{file}: no {kind}_i variable is declared")
    return int(idx.size)


def parse_vnnlib(text: str, file: str = "<string>", fast: bool = True,
                 deadline: float | None = None) -> Query:
    """Parse VNN-LIB text into a :class:`Query`; raises ``SpecError`` with ``file:line:col``
    for anything outside the supported fragment (see the module docstring).

    ``fast`` (the default) reads the two commands that make up nearly all of a large file,
    ``(declare-const X_i Real)`` and a bound ``(assert (<= X_i c))`` / ``(>= X_i c)``, by
    array operations over blocks of the text (:mod:`robustc.compiler.vnnlib_scan`); it
    builds the other commands from the blocks' tokens, with each run of input bounds inside
    an ``(and ...)`` (the boxes of a disjunction) read as arrays too, and hands them to the
    same formula reader; any command that would be an error (a variable declared twice or
    not yet, a number that overflows) goes through the formula reader atom by atom, so the
    result and every error are the same either way (tested against ``fast=False``).

    ``deadline`` (``time.perf_counter``): checked before each block of the fast reader and
    each command; :class:`ReadTimeout` once it has passed (a single command of the general
    reader, which reads what the fast reader does not, is not interrupted).
    """
    declared = DeclaredNames(len(text))  # shared by the fast reader and _query
    bounds = _BoundsBuilder(file)
    with _no_gc():
        commands = _scan(text, file, declared, bounds, deadline) if fast else \
            iter_sexprs(text, file)
        return _query(commands, file, declared, bounds, deadline)


#: Characters the fast reader scans at once: after a command that only the general reader
#: reads it starts again at the smallest block, and doubles up to the largest.
_BLOCK_MIN, _BLOCK_MAX = 1 << 12, 1 << 20


def _scan(text: str, file: str, declared: DeclaredNames, bounds: _BoundsBuilder,
          deadline: float | None = None) -> Iterator[SExpr]:
    """The commands of ``text`` that are not simple (see :mod:`~robustc.compiler.vnnlib_scan`),
    as :class:`SExpr` s in order; the simple ones go straight into ``declared`` and
    ``bounds`` (in file order: :func:`_query` handles each command yielded before the
    fast reader goes on). The others are built from the block's tokens by :func:`_build`,
    over as many blocks as they span."""
    at, line, line_start, end = 0, 1, 0, len(text)
    size = _BLOCK_MIN
    while at < end:
        _in_time(deadline, file, line)
        stop = _cut(text, at, at + size)
        cmds = scan_block(np.frombuffer(text[at:stop].encode("ascii", "replace"), np.uint8))
        origin = (at, line, line_start)
        yield from _block_commands(text, file, cmds, origin, declared, bounds)
        m = cmds.kind.size
        if cmds.rest == "end":
            upto = stop - at
        elif cmds.rest == "open" and m and stop < end:  # read it again in a larger block
            upto = int(cmds.end[m - 1])
        else:  # a command longer than the block, or a token outside any command
            start = int(cmds.tokens.start[cmds.after]) if cmds.after < cmds.tokens.kind.size \
                else stop - at
            got = _output_clauses(text, file, (at + start, *map(int, _line_at(
                cmds.newlines, start, origin))), declared, deadline)
            e, at, line, line_start = got or _read_rest(text, file, cmds, origin, stop,
                                                        declared, deadline)
            size = _BLOCK_MIN
            yield e
            continue
        line, line_start = map(int, _line_at(cmds.newlines, upto, origin))
        at += upto
        size = min(2 * size, _BLOCK_MAX)


def _block_commands(text: str, file: str, cmds, origin: tuple, declared: DeclaredNames,
                    bounds: _BoundsBuilder) -> Iterator[SExpr]:
    """The complete commands of a block: the simple ones that the general reader would
    accept into ``declared`` and ``bounds``, the others yielded as :class:`SExpr` s."""
    general = np.flatnonzero(invalid(cmds, declared)).tolist()
    runs = _runs(cmds, general)
    done, k = 0, 0
    while k < len(general):
        n = general[k]
        _take(cmds, done, n, declared, bounds, origin)
        if n in runs:  # many output comparisons (assert C), one after the other
            e = _assert_run(text, file, cmds, n, runs[n], origin, declared)
            if e is not None:
                yield e
                k += runs[n] - n
                done = runs[n]
                continue
        e = _command(text, file, cmds, n, origin, declared)
        yield e
        done, k = n + 1, k + 1
        if e.head == "declare-const":  # a name the fast reader did not know of
            later = np.flatnonzero(invalid(cmds.tail(done), declared)) + done
            general = general[:k] + later.tolist()
    _take(cmds, done, cmds.kind.size, declared, bounds, origin)


#: Fewest consecutive top-level output assertions ``(assert C)`` or ``(assert (INNER C
#: ...))`` in a block for :func:`_assert_run` to read them as arrays (fewer are read one by
#: one, into the formula reader's objects).
RUN_MIN = 256
_DEPTH_OF = np.array([0, 1, -1, 0], dtype=np.int64)  # by token kind: ( +1, ) -1


def _runs(cmds, general: list[int]) -> dict[int, int]:
    """The runs of at least :data:`RUN_MIN` consecutive commands among ``general`` (the
    block's commands that are not simple) that are no simple command refused and look
    alike (:func:`_shapes`): ``{first: stop}``."""
    if len(general) < RUN_MIN:
        return {}
    at = np.asarray(general)
    at = at[cmds.kind[at] == 0]
    if at.size < RUN_MIN:
        return {}
    shape = _shapes(cmds.tokens, cmds.first[at])
    new = np.ones(at.size, dtype=bool)
    new[1:] = (np.diff(at) != 1) | (shape[1:] != shape[:-1])
    starts = np.flatnonzero(new)
    stops = np.append(starts[1:], at.size)
    long = stops - starts >= RUN_MIN
    return dict(zip(at[starts[long]].tolist(), (at[stops[long] - 1] + 1).tolist(), strict=True))


def _shapes(toks, first: np.ndarray) -> np.ndarray:
    """A number per command (``first``: its first token) that tells ``(assert C)``,
    ``(assert (INNER C ...))`` and ``(assert (OUTER (INNER ...) ...))`` apart, with each
    junction's word, from its first six tokens."""
    size = toks.kind.size

    def word(t: np.ndarray) -> np.ndarray:  # 1: 'and', 2: 'or', 0: else
        t = np.minimum(t, size - 1)
        return is_word(toks, t, b"and") + 2 * is_word(toks, t, b"or")

    lists = (toks.kind[np.minimum(first + 2, size - 1)] == LP) & (first + 5 < size)
    nested = lists & (toks.kind[np.minimum(first + 4, size - 1)] == LP)
    return np.where(lists, word(first + 3), 0) * 3 + np.where(nested, word(first + 5), 0)


def _assert_run(text: str, file: str, cmds, n0: int, n1: int, origin: tuple,
                declared: DeclaredNames) -> SExpr | None:
    """Commands ``n0`` to ``n1 - 1`` of a block when all are ``(assert C)``, or all
    ``(assert (INNER C ...))``, or all ``(assert (OUTER (INNER C ...) ...))`` with the same
    ``OUTER`` and ``INNER`` (``and`` / ``or``), each ``C`` an output comparison that
    :func:`~robustc.compiler.vnnlib_scan.clause_groups` reads: one ``assert`` command whose
    formula is a ``top`` :class:`OutputClauses` (their conjunction, at the position of the
    first command's formula); None otherwise (then each is read as before, and any error
    is the formula reader's)."""
    toks = cmds.tokens
    t0, t1 = int(cmds.first[n0]), int(cmds.last[n1 - 1]) + 1
    if t0 + 5 >= t1 or not _plain(text, toks, t0, t1, origin):
        return None
    first, last = cmds.first[n0:n1], cmds.last[n0:n1]
    # each command: '(' 'assert' and one formula (what follows is the formula's items)
    kind = toks.kind[t0:t1]
    before = np.cumsum(_DEPTH_OF[kind]) - (kind == LP) + (kind == RP)
    level1 = np.flatnonzero((kind != RP) & (before == 1)) + t0
    if level1.size != 2 * (n1 - n0) or not is_word(toks, level1[0::2], b"assert").all() or \
            (level1[0::2] != first + 1).any():
        return None
    heads = [w for w in (b"and", b"or") if is_word(toks, np.array([t0 + 3]), w)[0]]
    keep = np.ones(t1 - t0, dtype=bool)
    source, extra = (), {}
    if not heads:  # each (assert C): groups of one comparison, headed 'assert'
        top, inner = "atoms", b"assert"
    elif toks.kind[t0 + 4] != LP or not (is_word(toks, np.array([t0 + 5]), b"and")[0] or
                                         is_word(toks, np.array([t0 + 5]), b"or")[0]):
        top, inner = "lists", heads[0]  # each (assert (INNER C ...)): groups (INNER C ...)
        if toks.kind[t0 + 2] != LP or not is_word(toks, first + 3, inner).all():
            return None
        keep[first - t0], keep[first + 1 - t0], keep[last - t0] = False, False, False
    else:  # each (assert (OUTER (INNER C ...) ...)): the groups (INNER C ...)
        top, outer = "nested", heads[0]
        inner = toks.block[toks.start[t0 + 5]:toks.end[t0 + 5]].tobytes()
        if (toks.kind[first + 2] != LP).any() or (toks.kind[last - 1] != RP).any() or \
                not is_word(toks, first + 3, outer).all():
            return None
        for k in (0, 1, 2, 3):
            keep[first + k - t0] = False
        keep[last - 1 - t0], keep[last - t0] = False, False
    index = np.flatnonzero(keep) + t0
    sub = Tokens(toks.start[index], toks.end[index], toks.kind[index], toks.block,
                 toks.newlines, toks.windows)
    clauses = clause_groups(sub, index.size, inner, declared)
    if clauses is None:
        return None
    of = np.searchsorted(first, index[clauses.opens], side="right") - 1  # each group's command
    per = np.bincount(of, minlength=n1 - n0)
    tags = _tags(sub, clauses.paren, origin)
    opens = _tags(sub, clauses.opens, origin)
    count = clauses.count
    indptr = np.zeros(count.size + 1, dtype=np.int64)
    np.cumsum(count, out=indptr[1:])
    bounds = np.zeros(clauses.sizes.size + 1, dtype=np.int64)
    np.cumsum(clauses.sizes, out=bounds[1:])
    if top == "atoms":  # one group: the conjunction of all
        if (per != 1).any() or (clauses.sizes != 1).any():  # (assert C C): the reader's error
            return None
        groups, group_tags, junction = np.array([0, count.size], dtype=np.int64), opens[:1], "and"
        at = tags[0]
    elif top == "lists":
        if (per != 1).any():
            return None
        groups, group_tags, junction, at = bounds, opens, inner.decode(), opens[0]
    else:
        if (per == 0).any():  # (OUTER) with no operand: the reader's error
            return None
        commands = np.zeros(n1 - n0 + 1, dtype=np.int64)
        np.cumsum(per, out=commands[1:])
        got = _nested_groups(outer.decode(), inner.decode(), bounds, commands, opens)
        groups, group_tags, junction = got or (bounds, opens, inner.decode())
        if got is None:  # three levels: 'and' of the assertions, each 'or' of 'and' lists
            extra = {"parts": commands, "middle": outer.decode()}
        at = _tags(toks, first[:1] + 2, origin)[0]
        source = (outer.decode(), inner.decode(), bounds, opens, commands,
                  _tags(toks, first + 2, origin))
    head = [Pos(file, *map(int, row)) for row in _tags(toks, np.array([t0, t0 + 1]), origin)]
    formula = OutputClauses("and", junction, indptr, clauses.index.astype(np.int32),
                            clauses.coeff, clauses.const, tags, groups, group_tags,
                            Pos(file, *map(int, at)), top=top, source=source, **extra)
    return SExpr(head[0], items=(SExpr(head[1], atom="assert"),
                                 _Given(formula.pos, "and", formula, text,
                                        origin[0] + int(toks.start[t0 + 2]))))


def _nested_groups(outer: str, inner: str, bounds: np.ndarray, commands: np.ndarray,
                   opens: np.ndarray) -> tuple | None:
    """The conjunction of assertions ``(OUTER (INNER C ...) ...)`` (inner list ``g`` over
    the comparisons ``bounds[g] .. bounds[g + 1] - 1``, assertion ``k`` over the inner lists
    ``commands[k] .. commands[k + 1] - 1``, ``opens``: the inner lists' positions) as an
    ``and`` of groups: ``(groups, group positions, the groups' junction)``; None when it is
    no such ``and`` (``OUTER`` ``or`` of ``and`` lists of several comparisons: then three
    levels).

    ``OUTER`` ``and``: the inner lists themselves; ``or`` of ``or`` lists: one ``or`` group
    per assertion; ``or`` of ``and`` lists of one comparison each: the same."""
    if outer == "and":
        return bounds, opens, inner
    if inner == "and" and (np.diff(bounds) != 1).any():
        return None
    return bounds[commands], opens[commands[:-1]], "or"


def _cut(text: str, at: int, want: int) -> int:
    """Where a block that starts at ``at`` (between tokens, outside a comment) ends, at
    ``want`` or after: after a newline, or, on a long line, before a ``(`` that no comment
    hides; the end of the text when there is none."""
    end = len(text)
    if want >= end:
        return end
    paren = text.find("(", want)
    paren = end if paren < 0 else paren
    newline = text.find("\n", want, paren)
    if newline >= 0:
        return newline + 1
    if paren == end:
        return end
    line_start = max(text.rfind("\n", at, want) + 1, at)
    if text.find(";", line_start, paren) < 0:
        return paren
    newline = text.find("\n", paren)  # in a comment: to its end
    return end if newline < 0 else newline + 1


#: A whitespace character outside ASCII (where the general reader's tokens, split at
#: Python's whitespace, differ from the blocks', split at ASCII whitespace).
_WIDE_SPACE = re.compile(r"[^\S\x00-\x7f]")


def _plain(text: str, toks, t0: int, t1: int, origin: tuple) -> bool:
    """Whether the tokens ``t0`` to ``t1 - 1`` of a block are as the general reader splits
    them: no whitespace outside ASCII among them (other characters outside ASCII are one
    ``?`` byte in the block, part of an atom or a comment as in the text), and no token
    starts with a ``"`` or ``|`` (the general reader's error)."""
    if t0 >= t1:  # only spaces and comments
        return True
    at = origin[0]
    first = toks.block[toks.start[t0:t1]]
    return _WIDE_SPACE.search(text, at + int(toks.start[t0]), at + int(toks.end[t1 - 1])) \
        is None and not ((first == 34) | (first == 124)).any()


def _command(text: str, file: str, cmds, n: int, origin: tuple,
             declared: DeclaredNames) -> SExpr:
    """Command ``n`` of a block (closed in it)."""
    toks = cmds.tokens
    t0, t1 = int(cmds.first[n]), int(cmds.last[n]) + 1
    if toks.end[t1 - 1] - toks.start[t0] >= _CLAUSES_MIN_CHARS:
        at = int(toks.start[t0])
        got = _output_clauses(text, file, (origin[0] + at, *map(int, _line_at(
            toks.newlines, at, origin))), declared)
        if got is not None:
            return got[0]
    if t1 - t0 >= _SMALL_COMMAND and _plain(text, toks, t0, t1, origin):
        return _build(text, file, toks, t0, t1, origin, [], declared)[0]
    line, line_start = map(int, _line_at(toks.newlines, toks.start[t0], origin))
    return _read_one(text, file, origin[0] + int(toks.start[t0]), line, line_start)[0]


#: Fewest tokens in a command for :func:`_command` to build it from the block's arrays
#: (:func:`_build`); a smaller one is read by the general reader, which is quicker there:
#: measured on ``(assert (or C ...))`` of k two-atom comparisons (5 tokens each), the
#: arrays take about 0.5 ms a command plus 30 us a comparison, the general reader 40-60
#: us a comparison (0.14 against 0.68 ms at k = 2, about equal at k = 30).
#: ``benchmarks/vnnlib_crossover.py`` (200 commands, best of 9, 2026-12-07): equal at
#: k = 30 (154 tokens, 0.714 / 0.704 ms a command), the arrays ahead from k = 35 (179
#: tokens, 0.806 / 0.826 ms; k = 100: 1.47 / 2.08 ms).
_SMALL_COMMAND = 150


#: Fewest comparisons in a command for :func:`_output_clauses` to keep it as arrays (a
#: smaller command is read as before, into :class:`Atom` s).
CLAUSES_MIN = 1000
#: Fewest characters of a command closed in a block for :func:`_output_clauses` to try it
#: (a comparison takes 12 or more).
_CLAUSES_MIN_CHARS = 12 * CLAUSES_MIN
#: Largest block of :func:`_output_clauses` (its arrays per token stay small).
_CLAUSES_BLOCK = 1 << 18
_CLAUSES = re.compile(r"(\()\s*(assert)\s*(\()\s*(and|or)(?=[\s(])")


def _output_clauses(text: str, file: str, origin: tuple, declared: DeclaredNames,
                    deadline: float | None = None) -> tuple | None:
    """The command at ``origin = (offset, line, line_start)`` when it is ``(assert (OUTER
    (INNER C ...) ...))`` with at least :data:`CLAUSES_MIN` output comparisons ``C`` that
    :func:`~robustc.compiler.vnnlib_scan.clause_groups` reads: ``(SExpr, end offset,
    line, line_start)`` with an :class:`OutputClauses` for its formula, read a block at a
    time (polling ``deadline`` before each); None for any other command (and for one that
    holds an error: the general reader reads it and names the error)."""
    head = _CLAUSES.match(text, origin[0])
    if head is None or not text[origin[0]:head.end()].isascii():
        return None
    where = [Pos(file, *map(int, _line_col(text, origin, head.start(g)))) for g in (1, 2, 3)]
    at = head.end()
    line, col = _line_col(text, origin, at)
    block = (at, line, at - col + 1)
    parts, size, inner = [], _BLOCK_MIN << 2, None
    while True:
        _in_time(deadline, file, block[1])
        got = _clause_block(text, block, size, inner, declared)
        if got is None:
            return None
        if got == "larger":
            size *= 2
            continue
        clauses, toks, upto, done, inner = got
        tags, opens = (_tags(toks, at, block) for at in (clauses.paren, clauses.opens))
        parts.append([clauses.sizes, clauses.count, clauses.index.astype(np.int32),
                      clauses.coeff, clauses.const, tags, opens])
        block = (block[0] + upto, *map(int, _line_at(toks.newlines, upto, block)))
        del clauses, toks
        if done:
            break
        size = min(2 * size, _CLAUSES_BLOCK)
    formula = _clauses_formula(parts, head.group(4), inner.decode(), where[2])
    if formula is None:
        return None
    e = SExpr(where[0], items=(SExpr(where[1], atom="assert"),
                               _Given(where[2], head.group(4), formula, text, head.start(3))))
    return e, *block


def _tags(toks, at: np.ndarray, origin: tuple) -> np.ndarray:
    """The line and column of the tokens ``at`` of a block: ``(len(at), 2)``, ``int32``."""
    line, line_start = _line_at(toks.newlines, toks.start[at], origin)
    return np.stack([line, origin[0] + toks.start[at] - line_start + 1], axis=1).astype(np.int32)


def _line_col(text: str, origin: tuple, offset: int) -> tuple[int, int]:
    """``(line, column)`` of ``offset`` (near ``origin``, on or after it)."""
    at, line, line_start = origin
    newlines = text.count("\n", at, offset)
    if newlines:
        line_start = text.rindex("\n", at, offset) + 1
    return line + newlines, offset - line_start + 1


def _clause_block(text: str, origin: tuple, size: int, inner: bytes | None,
                  declared: DeclaredNames):
    """The groups of comparisons in the block of about ``size`` characters at ``origin``
    (inside an ``(OUTER ...)``): ``(Clauses, tokens, offset after them, whether the command
    ends there, inner junction)``; ``"larger"`` when no group closes in the block; None
    when the text is not what :func:`_output_clauses` reads."""
    at = origin[0]
    stop = _cut(text, at, at + size)
    chunk = text[at:stop]
    if not chunk.isascii():
        return None
    toks = tokenize_block(np.frombuffer(chunk.encode("ascii"), np.uint8))
    kind = toks.kind
    depth = np.cumsum(np.where(kind == LP, 1, np.where(kind == RP, -1, 0)))
    out = np.flatnonzero(depth < 0)
    if _mentions_inputs(toks, int(out[0]) if out.size else kind.size):
        return None  # boxes (ACAS Xu property 6's layout), not output clauses
    if out.size:  # the OUTER list closes: then the assert, and the command ends
        t1 = int(out[0])
        if t1 + 1 >= kind.size or kind[t1 + 1] != RP:
            return None
        upto, done = int(toks.end[t1 + 1]), True
    else:
        closes = np.flatnonzero((kind == RP) & (depth == 0))
        if not closes.size:  # a group longer than the block: a larger one, up to a limit
            return None if stop == len(text) or size > 16 * _CLAUSES_BLOCK else "larger"
        t1 = int(closes[-1]) + 1
        upto, done = int(toks.end[t1 - 1]), False
    if inner is None:
        if t1 < 2 or kind[1] == LP or kind[1] == RP:
            return None
        inner = chunk[toks.start[1]:toks.end[1]].encode()
        if inner not in (b"and", b"or"):
            return None
    clauses = clause_groups(toks, t1, inner, declared)
    return None if clauses is None else (clauses, toks, upto, done, inner)


def _mentions_inputs(toks, t1: int) -> bool:
    """Whether an atom among the tokens ``0 .. t1 - 1`` of a block starts with ``X_``."""
    first = toks.start[:t1][toks.kind[:t1] == ATOM]
    first = first[first + 1 < toks.block.size]
    return bool(((toks.block[first] == ord("X")) & (toks.block[first + 1] == ord("_"))).any())


def _clauses_formula(parts: list, outer: str, inner: str, pos: Pos) -> OutputClauses | None:
    """The :class:`OutputClauses` of the blocks' groups ``parts`` (``(sizes, count, index,
    coeff, const, tags, group tags)`` of each block, emptied as each column is joined), or
    None when it has fewer than :data:`CLAUSES_MIN` comparisons."""
    if sum(part[1].size for part in parts) < CLAUSES_MIN:
        return None
    columns = []
    for j in range(7):
        columns.append(np.concatenate([part[j] for part in parts]))
        for part in parts:
            part[j] = None
    sizes, count, index, coeff, const, tags, opens = columns
    indptr = np.zeros(count.size + 1, dtype=np.int64)
    np.cumsum(count, out=indptr[1:])
    groups = np.zeros(sizes.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=groups[1:])
    return OutputClauses(outer, inner, indptr, index, coeff, const, tags, groups, opens, pos)


def _read_rest(text: str, file: str, cmds, origin: tuple, stop: int,
               declared: DeclaredNames, deadline: float | None = None) -> tuple:
    """The command (or stray token) that starts at token ``cmds.after`` of a block and is
    not closed in it, read from the block's tokens and as many blocks after it as it needs:
    ``(SExpr, end offset, line, line_start)``; errors as :func:`iter_sexprs`."""
    toks, t0, stack = cmds.tokens, cmds.after, []
    begin = origin[0] + int(toks.start[t0])
    line, line_start = map(int, _line_at(toks.newlines, toks.start[t0], origin))
    size = _BLOCK_MIN
    while True:
        _in_time(deadline, file, origin[1])
        if not _plain(text, toks, t0, toks.kind.size, origin):
            return _read_one(text, file, begin, line, line_start)
        e, last = _build(text, file, toks, t0, toks.kind.size, origin, stack, declared)
        if e is not None:
            offset = int(toks.end[last])
            return (e, origin[0] + offset, *map(int, _line_at(toks.newlines, offset, origin)))
        if stop == len(text):
            raise _error(stack[-1][0], "'(' is never closed")
        origin = (stop, *map(int, _line_at(toks.newlines, stop - origin[0], origin)))
        size = min(2 * size, _BLOCK_MAX)
        stop = _cut(text, origin[0], origin[0] + size)
        toks = tokenize_block(np.frombuffer(text[origin[0]:stop].encode("ascii", "replace"),
                                            np.uint8))
        t0 = 0


def _build(text: str, file: str, toks, t0: int, t1: int, origin: tuple, stack: list,
           declared: DeclaredNames) -> tuple:
    """Go on reading the s-expression whose open lists are ``stack`` (``(pos, items,
    offset)``, outermost first; empty to start one) with the tokens ``t0`` to ``t1 - 1`` of
    a block whose first character is at ``origin = (offset, line, line_start)``, as
    :func:`iter_sexprs` would; but each run of consecutive input bounds ``(<= X_i c)`` /
    ``(>= X_i c)`` inside an ``(and ...)`` (whose variable is declared and number finite)
    becomes one :class:`_Run` item, as arrays, with no Python object per token, another
    comparison of two atoms one :class:`_Cmp`, and a formula list a :class:`_Read` once it
    is closed. Returns ``(the s-expression, its last token)`` or ``(None, t1 - 1)`` when the
    tokens end first; raises ``SpecError`` for an unbalanced ``)``."""
    at = origin[0]
    rows, runs, compared = _pieces(text, toks, t0, t1, origin, len(stack), declared)
    for t, kind, s, e, line, col, r in rows:
        pos = Pos(file, line, col)
        if kind == LP:  # a list, a comparison or the first bound of a run: one level more
            _nested(pos, len(stack) + 1)
        if r == _COMPARISON:
            stack[-1][1].append(_Cmp(pos, *next(compared), text, at + s))
            continue
        if r >= 0:
            stack[-1][1].extend(runs.items(r, stack[-1][1], file))
            continue
        if kind == LP:
            stack.append((pos, [], at + s))
            continue
        if kind == RP:
            if not stack:
                raise _error(pos, "unbalanced ')'")
            start, items, offset = stack.pop()
            done = SExpr(start, items=tuple(items))
            if stack and done.head in _FORMULAS:
                done = _Read(done, declared, text, offset)
        else:
            done = SExpr(pos, atom=text[at + s:at + e])
        if not stack:
            return done, t
        stack[-1][1].append(done)
    return None, t1 - 1


#: The piece of :func:`_pieces` that is a comparison of two atoms (a token: -1, a run of
#: input bounds: its number).
_COMPARISON = -2


def _pieces(text: str, toks, t0: int, t1: int, origin: tuple, depth: int,
            declared: DeclaredNames) -> tuple:
    """The tokens ``t0`` to ``t1 - 1`` of a block (``depth``: the lists open before them)
    as :func:`_build` reads them: ``(rows, runs, compared)``, ``rows`` one ``(token, kind,
    start, end, line, column, piece)`` per token outside the comparisons, per run of valid
    input bounds (``piece``: its number in ``runs``, a :class:`_Runs`) and per other
    comparison (``piece``: :data:`_COMPARISON`; ``compared``: the text of its three atoms,
    in order), in order of their first token."""
    at = origin[0]
    compared = comparisons(toks, t0, t1, depth)
    paren, le, index, value = bound_atoms_of(toks, compared)
    keep = np.isfinite(value) & declared.declared("X", index)
    runs = _Runs(text, toks, origin, paren[keep], le[keep], index[keep], value[keep])
    compared = compared[~np.isin(compared, runs.paren)]  # the other comparisons
    covered = np.zeros(t1 - t0, dtype=bool)
    for j in range(5):
        covered[runs.paren - t0 + j] = True
        covered[compared - t0 + j] = True
    single = np.flatnonzero(~covered) + t0
    events = np.concatenate([single, compared, runs.paren[runs.firsts]])
    order = np.argsort(events, kind="stable")
    events = events[order]
    piece = np.concatenate([np.full(single.size, -1), np.full(compared.size, _COMPARISON),
                            np.arange(runs.firsts.size)])[order]
    starts = toks.start[events]
    lines, line_starts = _line_at(toks.newlines, starts, origin)
    rows = zip(events.tolist(), toks.kind[events].tolist(), starts.tolist(),
               toks.end[events].tolist(), lines.tolist(),
               (at + starts - line_starts + 1).tolist(), piece.tolist(), strict=True)
    parts = (compared[:, None] + np.arange(1, 4)).ravel()  # op, lhs, rhs of each
    texts = [text[at + s:at + e] for s, e in zip(toks.start[parts].tolist(),
                                                 toks.end[parts].tolist(), strict=True)]
    return rows, runs, iter(zip(texts[0::3], texts[1::3], texts[2::3], strict=True))


class _Runs:
    """The valid input bounds among a block's tokens (``paren``: the token of each one's
    ``(``), split into runs of consecutive ones, with the columns of
    :class:`_BoundsBuilder` (as :func:`_take` computes them)."""

    def __init__(self, text: str, toks, origin: tuple, paren, le, index, value):
        self.text, self.toks, self.origin, self.paren = text, toks, origin, paren
        cuts = np.flatnonzero(np.diff(paren) != 5) + 1
        self.firsts = np.concatenate([[0], cuts]).astype(np.int64) if paren.size else cuts
        self.stops = np.append(cuts, paren.size)
        line, line_start = _line_at(toks.newlines, toks.start[paren], origin)
        self.columns = (index, np.where(le, -1.0, 1.0), np.where(le, value, -value) + 0.0,
                        line, origin[0] + toks.start[paren] - line_start + 1)

    def items(self, r: int, siblings: list, file: str) -> list:
        """Run ``r`` as items of a list whose items so far are ``siblings``: one
        :class:`_Run` in an ``(and ...)``, else the general reader's s-expressions."""
        a, b = int(self.firsts[r]), int(self.stops[r])
        if not (siblings and siblings[0].atom == "and"):
            return _bound_sexprs(self.text, file, self.toks, self.paren[a:b], self.origin)
        at, start, end = self.origin[0], self.toks.start, self.toks.end
        span = (at + int(start[self.paren[a]]), at + int(end[self.paren[b - 1] + 4]))
        return [_Run(tuple(c[a:b] for c in self.columns), self.text, span)]


def _bound_sexprs(text: str, file: str, toks, paren: np.ndarray, origin: tuple) -> list:
    """The input bounds whose ``(`` are the tokens ``paren``, as the general reader's
    :class:`SExpr` s (a run that is not in an ``(and ...)``)."""
    at = origin[0]
    tok = paren[:, None] + np.arange(4)  # ( op name number
    starts = toks.start[tok]
    lines, line_starts = _line_at(toks.newlines, starts, origin)
    cols = at + starts - line_starts + 1
    out = []
    for s, e, line, col in zip(starts.tolist(), toks.end[tok].tolist(), lines.tolist(),
                               cols.tolist(), strict=True):
        pos = [Pos(file, ln, c) for ln, c in zip(line, col, strict=True)]
        out.append(SExpr(pos[0], items=tuple(SExpr(pos[j], atom=text[at + s[j]:at + e[j]])
                                             for j in (1, 2, 3))))
    return out


def _line_at(newlines: np.ndarray, offset, origin: tuple) -> tuple:
    """``(line, line_start)`` at ``offset`` (array or int) into a block whose first
    character is at ``origin = (at, line, line_start)``; ``newlines``: the block's."""
    at, line, line_start = origin
    before = np.searchsorted(newlines, offset)
    last = newlines[np.maximum(before - 1, 0)] if newlines.size else 0
    return line + before, np.where(before > 0, at + last + 1, line_start)


def _take(cmds, first: int, stop: int, declared: DeclaredNames, bounds: _BoundsBuilder,
          origin: tuple) -> None:
    """Declare the names and keep the bounds of the commands ``first`` to ``stop - 1`` of a
    block."""
    if stop <= first:
        return
    kind, index = cmds.kind[first:stop], cmds.index[first:stop]
    for name, is_y in (("X", False), ("Y", True)):
        mine = (kind == 1) & (cmds.name_y[first:stop] == is_y)
        if mine.any():
            declared.add_many(name, index[mine])
    b = np.flatnonzero(kind == 2) + first
    if b.size:
        paren, le, value = cmds.paren[b], cmds.le[b], cmds.value[b]
        line, line_start = _line_at(cmds.newlines, paren, origin)
        # what _formula makes of it: big - small >= 0 (0.0 + keeps the sign of zero as
        # _sum's does)
        bounds.add_arrays(cmds.index[b], np.where(le, -1.0, 1.0),
                          np.where(le, value, -value) + 0.0, line,
                          origin[0] + paren - line_start + 1)


def _read_one(text: str, file: str, at: int, line: int, line_start: int) -> tuple:
    """The s-expression that starts at offset ``at`` (line ``line`` starting at offset
    ``line_start``): ``(SExpr, end offset, line, line_start)``; errors as
    :func:`iter_sexprs`."""
    stack: list[tuple[Pos, list[SExpr]]] = []
    for m in _TOKEN.finditer(text, at):
        kind = m.lastgroup
        if kind == "skip":
            line, line_start = _after_gap(m, line, line_start)
            continue
        pos = Pos(file, line, m.start() - line_start + 1)
        if kind == "bad":
            raise _error(pos, f"unexpected character {m.group()!r}")
        tok = m.group()
        if tok == "(":
            _nested(pos, len(stack) + 1)
            stack.append((pos, []))
            continue
        if tok == ")":
            if not stack:
                raise _error(pos, "unbalanced ')'")
            start, items = stack.pop()
            done = SExpr(start, items=tuple(items))
        else:
            done = SExpr(pos, atom=tok)
        if not stack:
            return done, m.end(), line, line_start
        stack[-1][1].append(done)
    raise _error(stack[-1][0], "'(' is never closed")


def _query(commands: Iterator[SExpr], file: str, declared: DeclaredNames,
           bounds: _BoundsBuilder, deadline: float | None = None) -> Query:
    assertions = []
    for e in commands:
        _in_time(deadline, file, e.pos.line)
        if e.head == "declare-const":
            _declare(e, declared)
        elif e.head == "assert":
            if len(e.items) != 2:
                raise _error(e.pos, "(assert F) takes exactly one formula")
            f = _formula(e.items[1], declared)
            if _is_input_bound(f):
                bounds.add_atom(f)
            else:
                assertions.append(f)
        else:
            raise _error(e.pos, f"unsupported command {_show(e)!r} (expected declare-const "
                                f"or assert)")
    if not assertions and bounds.empty():
        raise SpecError(f"{file}: no assertion")
    return Query(file, _count(declared, "X", file), _count(declared, "Y", file),
                 tuple(assertions), bounds.build())


#: Memory per byte of a VNN-LIB file while it is read and lowered, for the ``--memory``
#: pre-check (robustc.files.limits). Measured (benchmarks/limits.py): files of
#: declarations and input bounds, at the top level or as boxes inside a disjunction, large
#: output disjunctions and runs of separate output assertions (:class:`OutputClauses`),
#: read as arrays, raise the peak RSS by 2.7-4.7x their size at 50 MB (4-5.5x at 10 MB,
#: plus about 20 MB of blocks); output constraints that the general reader reads (terms
#: beyond the array reader's), Python objects per atom, by about 56x, but are a few KB in
#: real files; which a file holds is known only once it is read.
VNNLIB_READ_OVERHEAD = 20.0


def read_vnnlib(path: str | Path, deadline: float | None = None) -> Query:
    """Parse a VNN-LIB file (UTF-8; a leading byte order mark is ignored); raises
    ``SpecError`` if it is missing, not text (with the position of the first bad byte) or
    malformed, :class:`ReadTimeout` once ``deadline`` (``time.perf_counter``) has passed."""
    check_file_size(path, "VNN-LIB file", VNNLIB_READ_OVERHEAD)
    return parse_vnnlib(read_source(path, "the VNN-LIB file"), str(path), deadline=deadline)


# --------------------------------------------------------------------------------------
# Lowering to the property IR


def _dnf(f: Formula, deadline: float | None = None) -> list[list[Atom]]:
    if not isinstance(f, Junction):  # an Atom or InputBounds: one conjunction
        return [[f]]
    _in_time(deadline, f.pos.file, f.pos.line, _LOWERING)
    parts = [_dnf(p, deadline) for p in f.parts]
    if f.op == "or":
        out = [conj for p in parts for conj in p]
    else:
        size = int(np.prod([len(p) for p in parts], dtype=np.float64))
        if size > MAX_CASES:
            raise _error(f.pos, f"the formula expands to {size} cases (limit {MAX_CASES})")
        out = [[a for conj in combo for a in conj] for combo in product(*parts)]
    if len(out) > MAX_CASES:
        raise _error(f.pos, f"the formula expands to {len(out)} cases (limit {MAX_CASES})")
    return out


def _kinds(f: Formula) -> set[str]:
    if not isinstance(f, Junction):
        return f.kinds()
    return set().union(*(_kinds(p) for p in f.parts))


def _output_atom(a: Atom, n_outputs: int) -> Linear:
    coeffs = np.zeros(n_outputs)
    for (_, j), c in a.coeffs.items():
        coeffs[j] += c
    return Linear(coeffs, a.const, strict=False, label=f"vnnlib {a.pos.line}:{a.pos.col}")


def _violation(f: Formula, n_outputs: int, deadline: float | None = None) -> Condition:
    """An output-only formula as a robustc condition (the violation, not negated); polls
    ``deadline`` at each junction."""
    if isinstance(f, OutputClauses):
        return f.violation(n_outputs)
    if isinstance(f, Atom):
        return _output_atom(f, n_outputs)
    _in_time(deadline, f.pos.file, f.pos.line, _LOWERING)
    parts = tuple(_violation(p, n_outputs, deadline) for p in f.parts)
    return And(parts) if f.op == "and" else Or(parts)


def _apply_input_atom(a: Atom, lower: np.ndarray, upper: np.ndarray) -> None:
    if len(a.coeffs) != 1:
        raise _error(a.pos, "an input constraint must bound a single X_i (a box); linear "
                            "combinations of inputs are not supported")
    ((_, i), c), = a.coeffs.items()
    value = -a.const / c  # c * X_i + const >= 0
    if c > 0:
        lower[i] = max(lower[i], value)
    else:
        upper[i] = min(upper[i], value)


def _case_box(atoms: list[Atom], query: Query, base: tuple, shape) -> Box | str:
    """The box of one case's input atoms within ``base`` (the box of ``query.bounds``), or
    (when it is empty) why, in words."""
    lower, upper = base[0].copy(), base[1].copy()
    file = query.file
    for a in atoms:
        if isinstance(a, InputBounds):
            a.apply(lower, upper)
        else:
            _apply_input_atom(a, lower, upper)
    unbounded = np.flatnonzero(~np.isfinite(lower) | ~np.isfinite(upper))
    if unbounded.size:
        raise SpecError(f"{file}: X_{unbounded[0]} has no finite lower and upper bound (every "
                        f"input needs a box)")
    crossed = np.flatnonzero(lower > upper)
    if crossed.size:  # an empty box: no counterexample here
        i = int(crossed[0])
        lines = sorted({a.pos.line for a in atoms
                        if not isinstance(a, InputBounds) and ("X", i) in a.coeffs}
                       .union(*(a.lines_of(i) for a in atoms if isinstance(a, InputBounds)))
                       | query.bounds.lines_of(i))
        return (f"X_{i} has lower bound {lower[i]:g} above its upper bound {upper[i]:g} "
                f"(line{'s' * (len(lines) > 1)} {', '.join(map(str, lines))})")
    return Box(lower.reshape(shape), upper.reshape(shape))


def _cases(query: Query, deadline: float | None = None
           ) -> tuple[list[tuple[list[Atom], list[Atom]]], list[Formula]]:
    """Input-dependent assertions expanded: ``[(input atoms, output atoms)]``; and the
    output-only assertions (kept as formulas, not expanded). Polls ``deadline`` at each
    assertion and junction.

    Linear in the file: an assertion with one conjunction extends every case's lists in
    place (each case owns its lists); only a disjunction copies them, into its cases.
    """
    cases: list[tuple[list[Atom], list[Atom]]] = [([], [])]
    global_outputs = []
    for f in query.assertions:
        _in_time(deadline, query.file, f.pos.line, _LOWERING)
        if isinstance(f, Atom):  # one conjunction of one atom (input bounds: query.bounds)
            if f.kinds() == {"Y"}:
                global_outputs.append(f)
            else:  # {"X"}: an atom never mixes kinds (_formula)
                for xs, _ in cases:
                    xs.append(f)
            continue
        if _kinds(f) == {"Y"}:
            global_outputs.append(f)
            continue
        conjunctions = _dnf(f, deadline)
        if len(conjunctions) == 1:
            xs_more = [a for a in conjunctions[0] if a.kinds() == {"X"}]
            ys_more = [a for a in conjunctions[0] if a.kinds() == {"Y"}]
            for xs, ys in cases:
                xs.extend(xs_more)
                ys.extend(ys_more)
            continue
        expanded = []
        for (xs, ys), conj in product(cases, conjunctions):
            expanded.append((xs + [a for a in conj if a.kinds() == {"X"}],
                             ys + [a for a in conj if a.kinds() == {"Y"}]))
        if len(expanded) > MAX_CASES:
            raise _error(getattr(f, "pos", Pos(query.file, 1, 1)),
                         f"the input constraints expand to {len(expanded)} cases "
                         f"(limit {MAX_CASES})")
        cases = expanded
    return cases, global_outputs


def _first_line(atoms: list) -> int:
    """The line of the first atom with a position (0 when none has one)."""
    return next((a.pos.line for a in atoms if isinstance(a, Atom)), 0)


def to_properties(query: Query, input_shape: tuple[int, ...], n_outputs: int,
                  name: str = "", deadline: float | None = None) -> list[Property]:
    """The robustc properties whose conjunction is "the query is unsat".

    ``input_shape`` is the network input's ONNX shape (its size must be the number of
    ``X_i``) and ``n_outputs`` the size of its output. Returns one property per distinct set
    of output constraints (in file order), each with its non-empty boxes. Raises
    ``SpecError`` on a size mismatch, an unbounded input or a formula outside the fragment,
    and :class:`~robustc.errors.EmptyInputSet` when every box is empty (lower > upper);
    :class:`ReadTimeout` (naming the lowering) once ``deadline`` (``time.perf_counter``)
    has passed: polled at each assertion, junction, case and property.
    """
    size = int(np.prod(input_shape))
    if size != query.n_inputs:
        raise SpecError(f"{query.file}: declares {query.n_inputs} inputs X_i, the network "
                        f"input {list(input_shape)} has {size} values")
    if n_outputs != query.n_outputs:
        raise SpecError(f"{query.file}: declares {query.n_outputs} outputs Y_j, the network "
                        f"has {n_outputs}")
    cases, outputs = _cases(query, deadline)
    base = np.full(size, -np.inf), np.full(size, np.inf)
    query.bounds.apply(*base)  # the bounds every case shares
    groups: dict[tuple, tuple[list[Box], list[Atom]]] = {}
    empty = []
    for xs, ys in cases:
        _in_time(deadline, query.file, _first_line(xs + ys), _LOWERING)
        box = _case_box(xs, query, base, input_shape)
        boxes = groups.setdefault(tuple(id(a) for a in ys), ([], ys))[0]
        if isinstance(box, Box):
            boxes.append(box)
        else:
            empty.append(box)
    # Keep the groups with a box. When every box is empty the query is vacuously unsat, but
    # an empty input set is almost surely a mistake in the file: an error, not a proof.
    groups = {k: g for k, g in groups.items() if g[0]}
    if not groups:
        raise EmptyInputSet(f"{query.file}: the input set is empty: {empty[0]}"
                            f"{f' (and {len(empty) - 1} more empty case(s))' * (len(empty) > 1)}"
                            f"; no input satisfies the input constraints, so there is nothing "
                            f"to verify")
    if not outputs and any(not ys for _, ys in groups.values()):
        raise SpecError(f"{query.file}: no output constraint: every input would be a "
                        f"counterexample")
    stem = name or Path(query.file).stem
    props = []
    for k, (boxes, ys) in enumerate(groups.values()):
        parts = [_violation(f, n_outputs, deadline) for f in list(ys) + outputs]
        violation = parts[0] if len(parts) == 1 else And(tuple(parts))
        label = stem if len(groups) == 1 else f"{stem}#{k}"
        props.append(Property(label, tuple(boxes), negate(violation),
                              {"source": "vnnlib", "file": query.file}))
    return props


def load_vnnlib(path: str | Path, input_shape: tuple[int, ...], n_outputs: int) -> list[Property]:
    """:func:`read_vnnlib` then :func:`to_properties`; raises ``SpecError``."""
    return to_properties(read_vnnlib(path), input_shape, n_outputs)


# --------------------------------------------------------------------------------------
# Export


def _num(v: float) -> str:
    return repr(float(v))


def _linear_text(atom: Linear) -> str:
    """``m >= 0`` for the atom's margin ``m`` (both strict and non-strict: see module doc)."""
    nz = np.flatnonzero(atom.coeffs)
    c = atom.coeffs
    if len(nz) == 2 and atom.const == 0 and sorted(c[nz]) == [-1.0, 1.0]:
        pos, neg = (nz[0], nz[1]) if c[nz[0]] > 0 else (nz[1], nz[0])
        return f"(>= Y_{pos} Y_{neg})"
    if len(nz) == 1 and abs(c[nz[0]]) == 1.0:
        op = ">=" if c[nz[0]] > 0 else "<="
        return f"({op} Y_{nz[0]} {_num(-atom.const * c[nz[0]])})"
    terms = " ".join(f"(* {_num(c[j])} Y_{j})" for j in nz)
    return f"(>= (+ {terms} {_num(atom.const)}) 0.0)"


def _formula_text(cond: Condition) -> str:
    if isinstance(cond, Linear):
        return _linear_text(cond)
    if isinstance(cond, AtLeast):  # at least k of the atoms: a disjunction of k-subsets
        subsets = list(combinations(cond.atoms, cond.k))
        if len(subsets) > MAX_CASES:
            raise SpecError(f"cannot export: 'at least {cond.k} of {len(cond.atoms)}' expands "
                            f"to {len(subsets)} cases (limit {MAX_CASES})")
        return "(or " + " ".join("(and " + " ".join(_linear_text(a) for a in s) + ")"
                                 for s in subsets) + ")"
    op = "and" if isinstance(cond, And) else "or"
    return f"({op} " + " ".join(_formula_text(c) for c in cond.operands) + ")"


def format_vnnlib(prop: Property) -> str:
    """The VNN-LIB text whose ``sat`` answer means ``prop`` is violated.

    Inputs are the box values flattened in row-major order. Raises ``SpecError`` when the
    property has no box or its condition cannot be written (an at-least expansion that is
    too large).
    """
    if not prop.boxes:
        raise SpecError(f"property {prop.name!r} has no input box to export")
    n_in, n_out = prop.boxes[0].lower.size, atoms_size(prop.condition)
    lines = [f"; robustc property {prop.name}: sat means the property is violated", ""]
    lines += [f"(declare-const X_{i} Real)" for i in range(n_in)] + [""]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)] + [""]
    boxes = [_box_atoms(b) for b in prop.boxes]
    if len(boxes) == 1:
        lines += [f"(assert {a})" for a in boxes[0]]
    else:
        lines.append("(assert (or")
        lines += ["    (and " + " ".join(atoms) + ")" for atoms in boxes]
        lines.append("))")
    lines += ["", f"(assert {_formula_text(negate(prop.condition))})", ""]
    return "\n".join(lines)


def _box_atoms(box: Box) -> list[str]:
    lo, hi = box.lower.ravel(), box.upper.ravel()
    return [a for i in range(lo.size)
            for a in (f"(>= X_{i} {_num(lo[i])})", f"(<= X_{i} {_num(hi[i])})")]


def write_vnnlib(prop: Property, path: str | Path) -> Path:
    """Write :func:`format_vnnlib` of ``prop`` to ``path`` (all or nothing); returns the path.
    Raises ``OutputError`` when it cannot be written."""
    return write_text(path, format_vnnlib(prop))


def vnnlib_problems(vnnlib: str | Path, network: str | Path | None,
                    deadline: float | None = None) -> list[Problem]:
    """The problems of a VNN-LIB file on ``network``; raises ``SpecError`` (bad file or no
    network), ``ModelError`` (bad network) or :class:`ReadTimeout` (``deadline`` passed
    while the file was read or lowered; loading the network is not interrupted)."""

    if not network:
        raise SpecError(f"{vnnlib}: a .vnnlib property needs --network NET.onnx")
    query = read_vnnlib(vnnlib, deadline)
    graph = standard_passes().run(load_onnx(str(network)))
    if logits(graph)[1]:
        raise SpecError(f"{network}: the network ends with an output activation (sigmoid, "
                        f"softmax or tanh); VNN-LIB constraints on its outputs are not linear")
    props = to_properties(query, tuple(graph.input.shape), graph.output.size,
                          deadline=deadline)
    return [Problem(p.name, graph, (str(network),), p, Path(network).name) for p in props]


__all__ = ["Query", "Pos", "MAX_CASES", "MAX_NESTING", "ReadTimeout", "tokenize", "read_sexprs",
           "iter_sexprs", "parse_vnnlib",
           "read_vnnlib", "to_properties", "load_vnnlib", "format_vnnlib", "write_vnnlib",
           "vnnlib_problems"]
