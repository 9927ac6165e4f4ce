"""The VNN-LIB fast reader on large output-only assertions ``(assert (or (and C ...) ...))``
(and the other three junction pairs), which it keeps as arrays
(:class:`~robustc.compiler.vnnlib.OutputClauses`) and lowers to an
:class:`~robustc.ir.property.OrClauses` / :class:`~robustc.ir.property.AndClauses`: the
same Query (as the general reader's formulas) or the same positioned error as the general
reader, on generated files with linear terms, odd atoms, comments and block edges inside
the command (the size threshold lowered so that small files take the array path); the
lowered properties are the general reader's, atom for atom."""

from __future__ import annotations

import pickle
import re
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustc.compiler import vnnlib
from robustc.compiler.vnnlib import OutputClauses, parse_vnnlib, to_properties
from robustc.errors import IRError, SpecError
from robustc.ir.property import (
    And,
    AtLeast,
    Linear,
    _Clauses,
    dnf,
    holds,
    margin,
    negate,
)

M = 5  # outputs
NUMBERS = ["0", "0.5", "-0.25", "1e-3", ".5", "5.", "-.75E+2", "12345.678e-4", "7", "-0",
           "0.30000000000000004", "1" * 30, "2.5e-320", "1e300", "-3"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\n    ", " ; a comment (and (<= Y_0 9)) (\n"]
#: Atoms that the array reader leaves to the general reader (errors or unusual terms)...
ODD = ["(<= Y_0 1e999)", "(<= Y_0 X_0)", "(<= 1 2)", "(< Y_0 1)", "(<= (* Y_0 Y_1) 1)",
       "(<= (+) 1)", "(<= Y_9 0)", "(<= (+ Y_0 Y_0 Y_0) 1)", "(<= (* 0 Y_0) 1)",
       "(<= (* 0 Y_0) Y_1)", "(>= (+ 1 2 3 Y_0) 0)", "(<= (- (+ Y_0 1)) 2)",
       "(<= (* 2 3 Y_0) 1)", "(<= Y_0 0.5x)", "(<= Y_0 \"1\")", "(<= Y_0)", "(and)",
       "(<= Y_0 ; \u03b5\n 1)", "(<=\u00a0Y_0 1)", "(>= (+ 1e308 Y_0) -1e308)",
       "(<= (- Y_1 Y_1) 1)"]
#: ... and unusual atoms that it reads.
USUAL = ["(<= Y_01 Y_2)", "(>= (+ Y_0 (* -2 Y_1) 0.5 -0.5) Y_2)", "(<= (- Y_3) (- 1.5))",
         "(>=\n(+\n Y_4\n)\n-0)"]


@st.composite
def side(draw, outputs: list[int]) -> tuple[str, int]:
    """A side of a comparison over the outputs popped from ``outputs``: ``(text, number of
    numbers in it outside a product)``."""
    def leaf(allow_number=True):
        if allow_number and (not outputs or draw(st.booleans())):
            return draw(st.sampled_from(NUMBERS)), 1
        return f"Y_{outputs.pop()}", 0

    def product():
        y, f = f"Y_{outputs.pop()}", draw(st.sampled_from([n for n in NUMBERS if
                                                          float(n) != 0.0]))
        return (f"(* {f} {y})" if draw(st.booleans()) else f"(* {y} {f})"), 0

    kind = draw(st.sampled_from(["leaf", "leaf", "product", "+", "-"]))
    if kind == "leaf":
        return leaf()
    if kind == "product" and outputs:
        return product()
    items, numbers = [], 0
    for _ in range(draw(st.integers(1, 3))):
        text, n = product() if outputs and draw(st.booleans()) else leaf()
        items.append(text)
        numbers += n
    op = "-" if kind == "-" else "+"
    return f"({op} {' '.join(items)})", numbers


@st.composite
def comparison(draw) -> tuple[str, bool]:
    """An output comparison: ``(text, whether the array reader takes it)``."""
    outputs = draw(st.permutations(range(M)))
    outputs = list(outputs)
    (a, na), (b, nb) = draw(side(outputs)), draw(side(outputs))
    if len(outputs) == M:  # no output in it: make the second side one
        b, nb = f"Y_{outputs.pop()}", 0
    op = draw(st.sampled_from(["<=", ">="]))
    sp = draw(st.sampled_from(SPACES[:3]))
    return f"({op}{sp}{a}{sp}{b})", na <= 2 and nb <= 2


@st.composite
def clauses_file(draw) -> tuple[str, bool]:
    """``(text, whether the array reader reads its output assertion)``: two bounded inputs,
    an assertion ``(OUTER (INNER C ...) ...)`` of output comparisons, sometimes an odd
    atom, a group with the other inner junction, a comparison straight in the outer list
    or a comment outside ASCII."""
    outer, inner = draw(st.sampled_from(["or", "and"])), draw(st.sampled_from(["and", "or"]))
    plain, groups, heads = True, [], set()
    for _ in range(draw(st.integers(1, 8))):
        atoms = []
        for _ in range(draw(st.integers(1, 4))):
            text, ok = draw(comparison())
            atoms.append(text)
            plain &= ok
        if draw(st.integers(0, 9)) == 0:
            odd = draw(st.sampled_from(ODD + USUAL))
            atoms.insert(draw(st.integers(0, len(atoms))), odd)
            plain &= odd in USUAL
        head = inner
        if draw(st.integers(0, 19)) == 0:
            head = "or" if inner == "and" else "and"
        heads.add(head)
        sp = draw(st.sampled_from(SPACES))
        groups.append(f"({head}{sp}" + sp.join(atoms) + ")")
    plain &= len(heads) == 1
    if draw(st.integers(0, 19)) == 0:
        groups.insert(draw(st.integers(0, len(groups))), draw(comparison())[0])
        plain = False
    if draw(st.integers(0, 19)) == 0:
        groups.insert(draw(st.integers(0, len(groups))), "; \u00e9\u2264\n")
        plain = False
    sep = draw(st.sampled_from(SPACES))
    lines = ["; outputs", "(declare-const X_0 Real)", "(declare-const X_1 Real)"]
    lines += [f"(declare-const Y_{j} Real)" for j in range(M)]
    lines += ["(assert (>= X_0 0))", "(assert (<= X_0 1))", "(assert (>= X_1 -1))",
              "(assert (<= X_1 1))"]
    lines.append(f"(assert ({outer}{sep}" + sep.join(groups) + "))")
    if draw(st.booleans()):
        lines.append("(assert (<= Y_0 0.5))")
    return "\n".join(lines) + "\n", plain


def _read(text: str, fast: bool):
    try:
        return parse_vnnlib(text, "c.vnnlib", fast=fast)
    except SpecError as exc:
        return str(exc)


#: The array reader for any size of command, and blocks small enough to cut it.
SMALL = {"CLAUSES_MIN": 1, "_CLAUSES_MIN_CHARS": 0}
EDGES = dict(SMALL, _BLOCK_MIN=64, _BLOCK_MAX=256, _CLAUSES_BLOCK=128)


def canon(cond):
    """A condition as nested lists (the array forms through their operands)."""
    if isinstance(cond, Linear):
        return ["lin", cond.coeffs.tolist(), np.signbit(cond.coeffs).tolist(), cond.const,
                cond.strict, cond.label]
    if isinstance(cond, AtLeast):
        return ["atleast", cond.k, [canon(a) for a in cond.atoms], cond.label]
    return ["and" if isinstance(cond, And) else "or", [canon(c) for c in cond.operands],
            cond.label]


def _clauses_in(query) -> bool:
    return any(isinstance(f, OutputClauses) for f in query.assertions)


@settings(max_examples=150, deadline=None)
@given(clauses_file())
def test_output_clauses_agree_with_the_general_reader(case):
    text, plain = case
    general = _read(text, False)
    for blocks in (SMALL, EDGES):
        with patch.multiple(vnnlib, **blocks):
            fast = _read(text, True)
        if isinstance(general, str):
            assert fast == general
            continue
        assert fast.as_formulas() == general
        assert _clauses_in(fast) == plain
    if isinstance(general, str):
        return
    props = to_properties(general, (2,), M)
    assert [canon(p.condition) for p in to_properties(fast, (2,), M)] == \
        [canon(p.condition) for p in props]


def _groups(k: int, per: int = 2) -> str:
    rng = np.random.default_rng(k)
    out = []
    for _ in range(k):
        atoms = []
        for _ in range(per):
            a, b, c = rng.choice(M, 3, replace=False)
            atoms.append(f"(<= (+ (* {rng.normal():.6f} Y_{a}) Y_{b}) "
                         f"(- {rng.normal():.4f} Y_{c}))")
        out.append("(and " + " ".join(atoms) + ")")
    return out


def _file(groups: list[str], outer: str = "or", bounds_after: bool = False) -> str:
    head = "".join(f"(declare-const X_{i} Real)\n" for i in range(2))
    head += "".join(f"(declare-const Y_{j} Real)\n" for j in range(M))
    bounds = "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n(assert (<= X_1 1))\n"
    body = f"(assert ({outer}\n  " + "\n  ".join(groups) + "\n))\n"
    return head + (body + bounds if bounds_after else bounds + body)


def test_small_files_are_read_as_before():
    """Fewer comparisons than CLAUSES_MIN: the formula reader's objects, as before."""
    text = _file(_groups(vnnlib.CLAUSES_MIN // 2 - 1))
    fast = parse_vnnlib(text, "s.vnnlib")
    assert not _clauses_in(fast) and fast == parse_vnnlib(text, "s.vnnlib", fast=False)


@pytest.mark.parametrize("outer, bounds_after", [("or", False), ("and", True)])
def test_a_large_assertion_is_kept_as_arrays_and_lowered_the_same(outer, bounds_after):
    """6,000 comparisons (across blocks, and in one block of the scan), the input bounds
    before or after them: arrays, the general reader's Query, and a condition whose
    margins, truth and cases are the general one's on random outputs."""
    text = _file(_groups(3000), outer, bounds_after)
    fast = parse_vnnlib(text, "big.vnnlib")
    assert _clauses_in(fast)
    general = parse_vnnlib(text, "big.vnnlib", fast=False)
    assert fast.as_formulas() == general
    (got,), (want,) = to_properties(fast, (2,), M), to_properties(general, (2,), M)
    assert isinstance(got.condition, _Clauses) and not isinstance(want.condition, _Clauses)
    y = np.random.default_rng(0).normal(size=(64, M)) * 3
    for cond_got, cond_want in ((got.condition, want.condition),
                                (negate(got.condition), negate(want.condition))):
        np.testing.assert_allclose(margin(cond_got, y), margin(cond_want, y), atol=1e-12)
        np.testing.assert_array_equal(holds(cond_got, y), holds(cond_want, y))
    assert canon(got.condition) == canon(want.condition)
    for cond_got, cond_want in ((got.condition, want.condition),
                                (negate(got.condition), negate(want.condition))):
        try:
            cases = dnf(cond_want)
        except IRError as exc:  # 2 ** 3000 cases, or (OUTER and) 6,000 cases
            with pytest.raises(IRError, match=re.escape(str(exc))):
                dnf(cond_got)
            continue
        assert [[canon(a) for a in c] for c in dnf(cond_got)] == \
            [[canon(a) for a in c] for c in cases]
    again = pickle.loads(pickle.dumps(got.condition))
    np.testing.assert_array_equal(margin(again, y), margin(got.condition, y))


def test_an_error_deep_in_a_large_assertion_has_its_position():
    """A bad atom near the end of 6,000 comparisons: the general reader's positioned
    error."""
    groups = _groups(3000)
    groups[-2] = "(and (<= Y_1 1e999) (>= Y_0 Y_1))"
    text = _file(groups)
    with pytest.raises(SpecError) as general:
        parse_vnnlib(text, "bad.vnnlib", fast=False)
    with pytest.raises(SpecError) as fast:
        parse_vnnlib(text, "bad.vnnlib")
    assert str(fast.value) == str(general.value)
    assert str(fast.value).startswith(f"bad.vnnlib:{text.count(chr(10)) - 2}:")
    assert "number 1e999 is out of range" in str(fast.value)


def test_the_deadline_is_polled_per_block_of_a_large_assertion(monkeypatch):
    """A fake clock a day ahead from its third reading: the array reader stops early in
    the command, naming the reading and a line."""
    text = _file(_groups(20000))
    calls = []

    class Clock:
        @staticmethod
        def perf_counter():
            calls.append(1)
            return 86400.0 * (len(calls) >= 3)

    monkeypatch.setattr(vnnlib, "time", Clock)
    with pytest.raises(vnnlib.ReadTimeout, match="while reading the VNN-LIB file") as info:
        parse_vnnlib(text, "slow.vnnlib", deadline=1.0)
    line = int(str(info.value).rsplit("at line ", 1)[1].rstrip(")"))
    assert len(calls) == 3 and line < text.count("\n") // 2


def test_export_of_an_array_condition_reads_back_to_the_same_truth():
    """format_vnnlib walks the condition's operands: the exported file, read again (as
    arrays), holds where the original does."""
    text = _file(_groups(600))
    (prop,) = to_properties(parse_vnnlib(text, "big.vnnlib"), (2,), M)
    assert isinstance(prop.condition, _Clauses)
    (back,) = to_properties(parse_vnnlib(vnnlib.format_vnnlib(prop), "back.vnnlib"), (2,), M)
    assert isinstance(back.condition, _Clauses)
    y = np.random.default_rng(3).normal(size=(500, M)) * 3
    np.testing.assert_array_equal(holds(back.condition, y), holds(prop.condition, y))
    assert 0 < holds(prop.condition, y).mean() < 1


# --------------------------------------------------------------------------------------
# Runs of top-level assertions of one output comparison each, (assert C) (assert C) ...


@st.composite
def run_file(draw) -> tuple[str, bool]:
    """``(text, whether a run of two or more plain output assertions is in it, None for
    either)``: two bounded inputs and 1-12 top-level ``(assert C)`` of output comparisons,
    ``(assert (INNER C ...))`` of 1-3 or ``(assert (OUTER (INNER C ...) ...))``, sometimes
    an odd atom, an assertion of two formulas, an input bound, an assertion of another
    shape or a comment outside ASCII among them."""
    plain, body = True, []
    # (assert C), (assert (INNER C ..)) or (assert (OUTER (INNER C ..) ..))
    inner = draw(st.sampled_from([None, "and", "or"]))
    outer = draw(st.sampled_from([None, "and", "or"])) if inner else None

    def junction(op, sp, most=3):
        atoms = [draw(comparison()) for _ in range(draw(st.integers(1, most)))]
        return f"({op}{sp}" + sp.join(a for a, _ in atoms) + ")", \
            all(ok for _, ok in atoms), len(atoms)

    for _ in range(draw(st.integers(1, 12))):
        sp = draw(st.sampled_from(SPACES[:4]))
        if inner is None:
            text, ok = draw(comparison())
        elif outer is None:
            text, ok, _ = junction(inner, sp)
        else:
            groups = [junction(inner, sp, draw(st.sampled_from([1, 1, 3])))
                      for _ in range(draw(st.integers(1, 3)))]
            text = f"({outer}{sp}" + sp.join(g for g, _, _ in groups) + ")"
            ok = all(ok for _, ok, _ in groups)
        plain &= ok
        body.append(f"(assert{sp}{text})")
    kind = draw(st.integers(0, 15))
    at = draw(st.integers(0, len(body)))
    if kind == 0:
        odd = draw(st.sampled_from(ODD + USUAL))
        body.insert(at, f"(assert {odd})")
        # (assert (and)) has the shape of (assert (and C ..)), the others of (assert C)
        same_shape = (inner == "and" and outer is None) if odd == "(and)" else inner is None
        if same_shape:
            plain &= odd in USUAL  # (or it spoils the run)
    elif kind == 1:
        body.insert(at, "(assert (<= Y_0 1) (<= Y_1 2))")
        plain = False
    elif kind == 2:
        body.insert(at, "(assert (<= X_1 0.5))")  # a simple command: two runs
    elif kind in (4, 5):  # an assertion of another shape: two runs
        other = "or" if inner == "and" else "and"
        body.insert(at, f"(assert ({outer} ({other} (<= Y_0 Y_1))))" if kind == 5 and outer
                    else "(assert (<= Y_0 Y_1))" if inner else "(assert (and (<= Y_0 Y_1)))")
    elif kind == 3:
        body.insert(at, "; \u00e9\u2264\n")  # one '?' byte each in the blocks
    split = kind in (2, 4, 5) or (kind == 0 and not same_shape)
    if plain is None or (split and 0 < at < len(body) - 1):  # either run may be arrays
        plain = None
    else:
        plain &= len(body) - (split or kind == 3) >= 2
    lines = ["; outputs", "(declare-const X_0 Real)", "(declare-const X_1 Real)"]
    lines += [f"(declare-const Y_{j} Real)" for j in range(M)]
    lines += ["(assert (>= X_0 0))", "(assert (<= X_0 1))", "(assert (>= X_1 -1))",
              "(assert (<= X_1 1))"]
    sep = draw(st.sampled_from(SPACES))
    return "\n".join(lines) + "\n" + sep.join(body) + "\n", plain


def _agree(fast_props, general_props) -> None:
    """Same boxes, and conditions with the same margins (up to the order of a sum) and
    truth on random outputs."""
    assert len(fast_props) == len(general_props)
    y = np.random.default_rng(1).normal(size=(200, M)) * 3
    for got, want in zip(fast_props, general_props, strict=True):
        assert got.name == want.name and len(got.boxes) == len(want.boxes)
        for a, b in zip(got.boxes, want.boxes, strict=True):
            np.testing.assert_array_equal(a.lower, b.lower)
            np.testing.assert_array_equal(a.upper, b.upper)
        for c_got, c_want in ((got.condition, want.condition),
                              (negate(got.condition), negate(want.condition))):
            np.testing.assert_allclose(margin(c_got, y), margin(c_want, y), atol=1e-12)
            np.testing.assert_array_equal(holds(c_got, y), holds(c_want, y))


@settings(max_examples=150, deadline=None)
@given(run_file())
def test_runs_of_output_assertions_agree_with_the_general_reader(case):
    """Runs of two or more (RUN_MIN lowered; one assertion alone is read as before), in
    the default blocks and in blocks of 64 to 256 characters: the general reader's Query
    (its formulas in place of each run's arrays) or its positioned error; a run of plain
    comparisons read as arrays; lowered properties with the general ones' margins and
    truth."""
    text, plain = case
    general = _read(text, False)
    for blocks in ({}, {"_BLOCK_MIN": 64, "_BLOCK_MAX": 256}):
        with patch.multiple(vnnlib, RUN_MIN=2, **blocks):
            fast = _read(text, True)
        if isinstance(general, str):
            assert fast == general
            continue
        assert fast.as_formulas() == general
        if not blocks and plain is not None:
            assert _clauses_in(fast) == plain
        _agree(to_properties(fast, (2,), M), to_properties(general, (2,), M))


def _separate(k: int, shape: str) -> list[str]:
    """``k`` top-level output assertions of ``shape``, a template over ``C`` (each ``C`` a
    comparison, half with a linear term)."""
    rng = np.random.default_rng(k)

    def comparison(_) -> str:
        a, b, c = rng.choice(M, 3, replace=False)
        return (f"(<= (+ (* {rng.normal():.6f} Y_{a}) Y_{b}) {rng.normal():.4f})"
                if rng.random() < 0.5 else f"(>= Y_{a} Y_{c})")

    return [re.sub("C", comparison, shape) for _ in range(k)]


@pytest.mark.parametrize("shape, arrays", [
    ("(assert C)", "atoms"), ("(assert (or C C))", "lists"),
    ("(assert (or (and C) (and C) (and C)))", "nested"),
    ("(assert (and (or C C) (or C)))", "nested"),
    ("(assert (or (and C C) (and C)))", "nested")])
def test_many_separate_output_assertions_are_read_as_arrays(shape, arrays):
    """6,000 top-level output assertions (the RUN_MIN default, across blocks): arrays (an
    'or' of 'and' lists of several comparisons: three levels), the general reader's Query,
    the same lowered margins, and an export that reads back to the same truth; a bad number
    near the end gives the general reader's error and position."""
    head = "".join(f"(declare-const X_{i} Real)\n" for i in range(2))
    head += "".join(f"(declare-const Y_{j} Real)\n" for j in range(M))
    head += "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n(assert (<= X_1 1))\n"
    body = _separate(6000, shape)
    text = head + "\n".join(body) + "\n"
    fast = parse_vnnlib(text, "many.vnnlib")
    runs = [f for f in fast.assertions if isinstance(f, OutputClauses) and f.top]
    assert [f.top for f in runs] == [arrays] * len(runs) and len(runs) >= 2
    assert len(fast.assertions) < 1000
    assert all((f.parts is not None) == ("(and C C)" in shape) for f in runs)
    general = parse_vnnlib(text, "many.vnnlib", fast=False)
    assert len(general.assertions) == 6000 and fast.as_formulas() == general
    (got,), (want,) = to_properties(fast, (2,), M), to_properties(general, (2,), M)
    _agree([got], [want])
    (back,) = to_properties(parse_vnnlib(vnnlib.format_vnnlib(got), "back.vnnlib"), (2,), M)
    y = np.random.default_rng(2).normal(size=(300, M)) * 3
    np.testing.assert_array_equal(holds(back.condition, y), holds(got.condition, y))
    body[-3] = re.sub(r"\(>= Y_\d+|(?<=\)) -?\d+\.\d+\)", lambda m: "(>= 1e999" if
                      m.group().startswith("(") else " 1e999)", body[-3], count=1)
    text = head + "\n".join(body) + "\n"
    with pytest.raises(SpecError) as general_error:
        parse_vnnlib(text, "bad.vnnlib", fast=False)
    with pytest.raises(SpecError) as fast_error:
        parse_vnnlib(text, "bad.vnnlib")
    assert str(fast_error.value) == str(general_error.value)
    assert "number 1e999 is out of range" in str(fast_error.value)
