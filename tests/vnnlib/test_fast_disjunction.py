"""The VNN-LIB fast reader on boxes inside disjunctions (``(assert (or (and (>= X_0 ..)
(<= X_0 ..) ...) ...))``: ACAS Xu property 6, nn4sys, big output disjunctions), where runs
of input bounds inside an ``(and ...)`` are read as arrays and a command may span many
blocks: the same Query or the same positioned error as the general reader, in the default
blocks and in blocks of 64 to 256 characters (block edges inside the command, on long
lines before a ``(``), and the boxes as generated."""

from __future__ import annotations

from contextlib import nullcontext
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustc.compiler import vnnlib
from robustc.compiler.vnnlib import parse_vnnlib, to_properties
from robustc.errors import SpecError

SPACES = [" ", "  ", "\t", "\n", "\r\n", "\n    ", " ; a comment (and (<= X_0 9)) (\n",
          " ; \u03b5 \u2264 0.1 (\u00e9)\u00a0\n", "\n" + "; more than a small block\n" * 12]
NUMBERS = ["0", "0.5", "0.25", "1e-3", ".5", "5.", ".75E+2", "12345.678e-4", "7",
           "0.30000000000000004", "1" * 30, "2.5e-320"]

#: Atoms that only the general reader reads, or that are errors, and whether the file stays
#: valid (about X_i; n: the number of inputs).
ODD = {
    "output": lambda i, n: ("(<= Y_0 0.25)", True),
    "linear": lambda i, n: ("(>= (+ (* 2.0 Y_0) Y_1) -3)", True),
    "reversed": lambda i, n: (f"(<= -9 X_{i})", True),
    "product": lambda i, n: (f"(<= (* 2 X_{i}) 1)", False),
    "overflow": lambda i, n: (f"(<= X_{i} 1e999)", False),
    "undeclared": lambda i, n: (f"(>= X_{n + 3} 0)", False),
    "mixed": lambda i, n: (f"(<= X_{i} Y_0)", False),
    "strict": lambda i, n: (f"(< X_{i} 1)", False),
    "arity": lambda i, n: (f"(<= X_{i})", False),
    "empty": lambda i, n: ("(and)", False),
    "quote": lambda i, n: ('(<= X_0 "1")', False),
    "nbsp": lambda i, n: (f"(<=\u00a0X_{i} 0.5)", False),
    "accent": lambda i, n: (f"(<= X_{i}\u00e9 0.5)", False),
    "open": lambda i, n: (f"(<= X_{i} 0.5", False),
    "close": lambda i, n: (f"(<= X_{i} 0.5))", False),
    "long": lambda i, n: (f"(<= X_{i} 0.{'1' * 70})", True),
}


@st.composite
def disjunction_file(draw) -> tuple[str, list | None]:
    """``(text, boxes)``: a file whose input set is a disjunction of boxes (the bounds of
    each in any order and spacing, some inputs also bounded at the top level), and the
    boxes as ``[(lower, upper)]`` when the file is valid and its disjuncts hold input
    bounds only (else None)."""
    n = draw(st.integers(1, 25))
    k = draw(st.integers(1, 12))
    sp = draw(st.sampled_from(SPACES[:5]))
    lines = [f"(declare-const X_{i}{sp}Real)" for i in range(n)]
    lines += ["(declare-const Y_0 Real)", "(declare-const Y_1 Real)"]
    common = [np.full(n, -np.inf), np.full(n, np.inf)]
    for i in draw(st.lists(st.integers(0, n - 1), max_size=3)):  # top-level bounds too
        lines.append(f"(assert (<= X_{i} 100))")
        common[1][i] = 100.0
    boxes, disjuncts, valid, plain = [], [], True, True
    for _ in range(k):
        box = [common[0].copy(), common[1].copy()]
        atoms = []
        for i, op in draw(st.permutations([(i, op) for i in range(n) for op in (">=", "<=")])):
            text = draw(st.sampled_from(NUMBERS))
            text = ("-" if op == ">=" else draw(st.sampled_from(["", "+"]))) + text
            atoms.append(f"({op}{draw(st.sampled_from(SPACES))}X_{i} {text})")
            side, pick = (0, max) if op == ">=" else (1, min)
            box[side][i] = pick(box[side][i], float(text))
        if draw(st.integers(0, 5)) == 0:
            kind, i = draw(st.sampled_from(sorted(ODD))), draw(st.integers(0, n - 1))
            atom, ok = ODD[kind](i, n)
            atoms.insert(draw(st.integers(0, len(atoms))), atom)
            valid &= ok
            plain &= kind not in ("output", "linear")  # those make one property per box
            if kind == "reversed":
                box[0][i] = max(box[0][i], -9.0)
            if kind == "long":
                box[1][i] = min(box[1][i], float(atom.split()[-1][:-1]))
        joiner = draw(st.sampled_from(SPACES))
        disjuncts.append(f"(and{joiner}" + joiner.join(atoms) + ")")
        boxes.append(box)
    sep = draw(st.sampled_from(["\n    ", " ", "\r\n  "]))
    lines.append("(assert (or" + sep + sep.join(disjuncts) + "))")
    lines.append("(assert (or (and (>= Y_0 Y_1)) (and (<= Y_1 0.5))))")
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return end.join(lines) + end, (boxes if valid and plain else None)


def _read(text: str, fast: bool):
    """The Query (large output disjunctions as the general reader's formulas: see
    ``Query.as_formulas``) or the error message."""
    try:
        return parse_vnnlib(text, "or.vnnlib", fast=fast).as_formulas()
    except SpecError as exc:
        return str(exc)


@settings(max_examples=60, deadline=None)
@given(disjunction_file())
def test_disjunctions_of_boxes_agree_with_the_general_reader(case):
    text, boxes = case
    general = _read(text, False)
    assert _read(text, True) == general
    with patch.multiple(vnnlib, _BLOCK_MIN=64, _BLOCK_MAX=256):  # edges inside the (or ...)
        assert _read(text, True) == general
    if boxes is None:
        return
    (prop,) = to_properties(general, (len(boxes[0][0]),), 2)
    assert len(prop.boxes) == len(boxes)
    for got, (lower, upper) in zip(prop.boxes, boxes, strict=True):
        np.testing.assert_array_equal(got.lower, lower)
        np.testing.assert_array_equal(got.upper, upper)


def _two_boxes(n: int, sep: str = "\n") -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(n)]
    lines += ["(declare-const Y_0 Real)", "(declare-const Y_1 Real)", "(assert (or"]
    for d in range(2):
        lines.append("  (and " + " ".join(f"(>= X_{i} {-(i + d) / n!r}) (<= X_{i} {i / n!r})"
                                          for i in range(n)) + ")")
    lines += ["))", "(assert (>= Y_1 Y_0))"]
    return sep.join(lines) + sep


@pytest.mark.parametrize("sep", ["\n", " ", " ; \u03b5 = 1/255 (\u00e9)\n"])
def test_a_large_disjunction_is_read_as_arrays(sep):
    """Two boxes over 5,000 inputs, across many blocks (on lines, on one line, with a
    comment outside ASCII on each line): the bounds are read as arrays (the formula reader
    sees the disjunction, the two conjunctions and the output atom, not 20,000 bounds), the
    Query is the general reader's and the boxes are as written."""
    n = 5000
    text = _two_boxes(n, sep)
    with patch.object(vnnlib, "_formula", wraps=vnnlib._formula) as formula, \
            patch.multiple(vnnlib, _BLOCK_MIN=1024, _BLOCK_MAX=8192):
        fast = parse_vnnlib(text, "two.vnnlib")
    assert formula.call_count < 10
    assert fast == parse_vnnlib(text, "two.vnnlib", fast=False)
    (prop,) = to_properties(fast, (n,), 2)
    i = np.arange(n)
    for d, box in enumerate(prop.boxes):
        np.testing.assert_array_equal(box.lower, -(i + d) / n)
        np.testing.assert_array_equal(box.upper, i / n)


@pytest.mark.parametrize("bad, at, message", [
    ("(>= X_4999 1e999)", "1e999", "number 1e999 is out of range"),
    ("(>= X_5000 0)", "X", "undeclared variable or bad number 'X_5000'"),
    ("(>= X_7 \"0\")", '"', "unexpected character '\"'"),
])
def test_an_error_deep_in_a_large_disjunction_has_its_position(bad, at, message):
    """The last bound of the second box replaced by a bad one: the error names its line and
    column (of the text ``at``), as the general reader's."""
    text = _two_boxes(5000)
    last = text.rindex("(<= X_4999")
    text = text[:last] + bad + text[text.index(")", last) + 1:]
    line = text.count("\n", 0, last) + 1
    col = last - text.rindex("\n", 0, last) + bad.index(at)
    expected = f"two.vnnlib:{line}:{col}: {message}"
    for blocks in ({}, {"_BLOCK_MIN": 1024, "_BLOCK_MAX": 8192}):
        with patch.multiple(vnnlib, **blocks) if blocks else nullcontext():
            with pytest.raises(SpecError) as fast:
                parse_vnnlib(text, "two.vnnlib")
        assert str(fast.value).startswith(expected), str(fast.value)
    with pytest.raises(SpecError) as general:
        parse_vnnlib(text, "two.vnnlib", fast=False)
    assert str(fast.value) == str(general.value)


def test_a_box_of_a_disjunction_in_a_message_is_shown_as_written():
    """A conjunction of bounds used as a term: the message shows its text (read again from
    the file), as the general reader's."""
    text = ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
            "(assert (<= (and (>= X_0 0) (<= X_0 1)) 1))\n")
    assert _read(text, True) == _read(text, False)
    assert "'(and (>= X_0 0) (<= X_0 1))'" in _read(text, True)


def test_an_empty_box_in_a_disjunction_names_its_lines():
    """One disjunct's box crossed (lower above upper): dropped, the other kept; both crossed:
    the input set is empty, with the lines of both bounds."""
    head = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
    one = head + ("(assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1))\n"
                  "            (and (>= X_0 2)\n (<= X_0 1) (>= X_1 0) (<= X_1 1))))\n"
                  "(assert (>= Y_0 0))\n")
    (prop,) = to_properties(parse_vnnlib(one, "e.vnnlib"), (2,), 1)
    assert len(prop.boxes) == 1 and prop.boxes[0].upper[0] == 1.0
    both = one.replace("(and (>= X_0 0) (<= X_0 1)", "(and (>= X_0 3) (<= X_0 1)")
    with pytest.raises(SpecError, match=r"X_0 has lower bound 3 above its upper bound 1 "
                                        r"\(line 4\) \(and 1 more"):
        to_properties(parse_vnnlib(both, "e.vnnlib"), (2,), 1)


def _outputs(k: int) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(2)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(4)]
    lines += ["(assert (>= X_0 0))", "(assert (<= X_0 1))", "(assert (>= X_1 0))",
              "(assert (<= X_1 1))", "(assert (or"]
    for d in range(k):
        a, b = d % 4, (d + 1) % 4
        lines.append(f"  (and (>= Y_{a} Y_{b}) (<= Y_{b} {d / k!r}) (>= -{d}.5 Y_{a})\n"
                     f"       (<= (+ (* 2.0 Y_{a}) Y_{b}) {d}))")
    lines.append("))")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("bad, at, message", [
    (None, None, None),
    ("(>= Y_4 Y_1)", "Y_4", "undeclared variable or bad number 'Y_4'"),
    ("(<= Y_1 1e999)", "1e999", "number 1e999 is out of range"),
    ("(<= Y_1 X_0)", "(", "a constraint mixes inputs (X) and outputs (Y)"),
    ("(<= 1 2)", "(", "comparison of constants (no variable)"),
    ("(<= Y_1 (and Y_0))", "(and", "unsupported term '(and Y_0)'"),
])
def test_output_disjunctions_agree_with_the_general_reader(bad, at, message):
    """A disjunction of 3,000 conjunctions over outputs (comparisons of two atoms, read as
    one object each, and linear terms), with one bad atom near the end: the same Query or
    the same positioned error as the general reader, in default and small blocks."""
    text = _outputs(3000)
    if bad is not None:
        last = text.rindex("(>= Y_")
        text = text[:last] + bad + text[text.index(")", last) + 1:]
        line = text.count("\n", 0, last) + 1
        col = last - text.rindex("\n", 0, last) + bad.index(at)
    general = _read(text, False)
    for blocks in ({}, {"_BLOCK_MIN": 1024, "_BLOCK_MAX": 8192}):
        with patch.multiple(vnnlib, **blocks) if blocks else nullcontext():
            assert _read(text, True) == general
    if bad is None:
        (prop,) = to_properties(general, (2,), 4)
        assert len(general.assertions) == 1 and len(general.assertions[0].parts) == 3000
    else:
        assert general.startswith(f"or.vnnlib:{line}:{col}: {message}"), general


@pytest.mark.parametrize("gap", ["; comment\n" * 2000, "\n" * 5000, " " * 20000])
def test_blocks_without_a_token_inside_a_command(gap):
    """A command with more comments or spaces inside than a block holds (blocks of 64 to
    256 characters and the default ones): the same Query as the general reader."""
    text = ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (or (and (>= X_0 0)"
            f"\n{gap}(<= X_0 1)) (and {gap} (>= X_0 2) (<= X_0 3))))\n(assert (>= Y_0 0))\n")
    general = parse_vnnlib(text, "gap.vnnlib", fast=False)
    assert parse_vnnlib(text, "gap.vnnlib") == general
    with patch.multiple(vnnlib, _BLOCK_MIN=64, _BLOCK_MAX=256):
        assert parse_vnnlib(text, "gap.vnnlib") == general
    (prop,) = to_properties(general, (1,), 1)
    assert [(b.lower[0], b.upper[0]) for b in prop.boxes] == [(0.0, 1.0), (2.0, 3.0)]
