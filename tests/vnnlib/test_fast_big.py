"""The VNN-LIB fast reader (blocks of text scanned by array operations,
robustc.compiler.vnnlib_scan) against the general reader on generated files large enough
to span many blocks (the first block is 4 KB and blocks double), with the shapes of real
files mixed in: declarations and input bounds with any spacing, line breaks inside a
command, comments, CRLF line ends, numbers of every syntax, and commands only the general
reader takes (output constraints, disjunctions, products, overflowing numbers, duplicate or
missing declarations, stray characters, non-ASCII spaces and digits), read in the default
blocks and in blocks of 64 to 256 characters (so that block edges fall everywhere). The two
readers must give the same Query or the same error; for files without an error, the box is
also checked against the bounds as generated."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from robustc.compiler import vnnlib
from robustc.compiler.vnnlib import parse_vnnlib, to_properties
from robustc.errors import SpecError

SPACES = [" ", "  ", "\t", " \t ", "\n", "\r\n", "\n ; a comment (assert (<= X_0 9))\n"]
#: Numbers without a sign (a ">=" bound gets a "-", a "<=" bound maybe a "+": every lower
#: bound is <= 0 <= every upper bound, so the box is never empty).
NUMBERS = ["0", "0.5", "0.25", "1e-3", ".5", "5.", ".75E+2", "12345.678e-4", "7",
           "0.30000000000000004", "1" * 30, "2.5e-320", "3E-0"]


@st.composite
def bound(draw, i: int, op: str) -> tuple[str, float]:
    """The text of a bound ``op`` on ``X_i`` with random spacing, and its number."""
    text = draw(st.one_of(st.sampled_from(NUMBERS), st.floats(0, 1e6).map(repr)))
    text = ("-" if op == ">=" else draw(st.sampled_from(["", "+"]))) + text
    a, b, c = (draw(st.sampled_from(SPACES)) for _ in range(3))
    return f"({a}assert ({op}{b}X_{i}{c}{text}){a})", float(text)


@st.composite
def big_file(draw) -> tuple[str, list | None]:
    """``(text, expected)``: ``expected`` is ``[lower, upper]`` (arrays) when the file is
    made of declarations, bounds and output constraints only, else None."""
    n = draw(st.integers(1, 60))
    sp = draw(st.sampled_from(SPACES[:4]))  # the file's usual spacing
    lines = [f"(declare-const X_{i}{sp}Real)" for i in range(n)]
    lines += ["(declare-const Y_0 Real)", "(declare-const Y_1 Real)"]
    box = [np.full(n, -np.inf), np.full(n, np.inf)]
    extra = draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from([">=", "<="])),
                          max_size=20))
    for i, op in draw(st.permutations([(i, op) for i in range(n) for op in (">=", "<=")]
                                      + extra)):
        text, value = draw(bound(i, op))
        lines.append(text)
        if op == ">=":
            box[0][i] = max(box[0][i], value)
        else:
            box[1][i] = min(box[1][i], value)
    valid = True
    for _ in range(draw(st.integers(0, 6))):  # what only the general reader reads
        kind = draw(st.sampled_from(["output", "or", "product", "overflow", "twice", "undeclared",
                                     "stray", "nbsp", "digit", "long"]))
        piece, ok = _general(kind, draw(st.integers(0, n - 1)), n)
        lines.insert(draw(st.integers(n + 2, len(lines))), piece)  # after the names
        valid &= ok
    lines.append("(assert (or (and (>= Y_0 Y_1)) (and (<= Y_1 0.5))))")
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return end.join(lines) + end, (box if valid else None)


def _general(kind: str, i: int, n: int) -> tuple[str, bool]:
    """A command of kind ``kind`` about ``X_i``, and whether the file stays valid."""
    return {
        "output": ("(assert (<= Y_0 0.25))", True),
        "or": (f"(assert (or (and (>= X_{i} -9) (<= X_{i} 9)) (and (>= X_{i} 0))))", False),
        "product": (f"(assert (<= (* 2 X_{i}) 1))", False),
        "overflow": (f"(assert (<= X_{i} 1e999))", False),
        "twice": (f"(declare-const X_{i} Real)", False),
        "undeclared": (f"(assert (>= X_{n + 3} 0))", False),
        "stray": ('(assert (<= X_0 "1"))', False),
        "nbsp": (f"(assert (<=\u00a0X_{i} 0.5))", False),
        "digit": (f"(assert (<= X_{i} \u0663))", False),  # an Arabic-Indic 3
        "long": (f"(assert (<= X_{i} 0.{'1' * 70}))", False),
    }[kind]


def _read(text: str, fast: bool):
    try:
        return parse_vnnlib(text, "big.vnnlib", fast=fast)
    except SpecError as exc:
        return str(exc)


@settings(max_examples=30, deadline=None)
@given(big_file())
def test_the_fast_reader_agrees_on_big_mixed_files(case):
    text, expected = case
    fast, general = _read(text, True), _read(text, False)
    assert fast == general
    with patch.multiple(vnnlib, _BLOCK_MIN=64, _BLOCK_MAX=256):  # many block edges
        assert _read(text, True) == general
    if expected is None:
        return
    (prop,) = to_properties(fast, (len(expected[0]),), 2)
    (box,) = prop.boxes
    assert np.array_equal(box.lower, expected[0]) and np.array_equal(box.upper, expected[1])


def test_a_file_of_blocks_with_general_commands_between_them():
    """Many blocks (40,000 bounds, 1.3 MB) with a general command every 4,000 bounds:
    same Query as the general reader, and every bound lands in the box."""
    n = 20_000
    lines = [f"(declare-const X_{i} Real)" for i in range(n)]
    lines += ["(declare-const Y_0 Real)", "(declare-const Y_1 Real)"]
    for i in range(n):
        lines += [f"(assert (>= X_{i} {-i / n!r}))", f"(assert (<= X_{i} {i / n!r}))"]
        if i % 2000 == 0:
            lines.append("(assert (or (and (>= Y_0 Y_1)) (and (<= Y_1 0.5))))")
    text = "\n".join(lines)
    fast = parse_vnnlib(text, "many.vnnlib")
    assert len(fast.bounds) == 2 * n and len(fast.assertions) == 10
    assert fast == parse_vnnlib(text, "many.vnnlib", fast=False)
    (prop,) = to_properties(fast, (n,), 2)
    np.testing.assert_array_equal(prop.boxes[0].lower, -np.arange(n) / n)
    np.testing.assert_array_equal(prop.boxes[0].upper, np.arange(n) / n)
