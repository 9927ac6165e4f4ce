"""The VNN-LIB reader's fast path (simple declarations and input bounds by regular
expression) gives the same Query, and the same error, as the general reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustc.compiler.vnnlib import MAX_NESTING, parse_vnnlib, to_properties
from robustc.errors import SpecError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "benchmarks"


def _both(text: str):
    """(fast result, general result): a Query or the error message."""
    out = []
    for fast in (True, False):
        try:
            out.append(parse_vnnlib(text, "q.vnnlib", fast=fast))
        except SpecError as exc:
            out.append(str(exc))
    return out


PIECES = [
    "(declare-const X_0 Real)", "(declare-const X_1 Real)", "(declare-const Y_0 Real)",
    "(declare-const Y_1 Real)", "( declare-const  X_2   Real )", "(declare-const X_0 Real)",
    "(assert (<= X_0 0.5))", "(assert (>= X_0 -0.25))", "(assert (<= X_1 1e-3))",
    "(assert (>= X_1 +.5))", "(assert (<= X_2 0))", "(assert (>= X_2 -0))",
    "(assert (<= X_0 1e999))", "(assert (<= X_7 1))", "(assert (<= X_0 0.5 ))",
    "(assert (<= 0.5 X_0))", "(assert (>= Y_0 Y_1))", "(assert (<= X_01 2))",
    "(assert\n (<= X_1 0.75))", "(assert (<= X_1 0.5) )", "; a comment (assert (<= X_0 9))",
    "(assert (or (and (<= Y_0 Y_1)) (and (>= Y_0 0.1))))", "(assert (<= X_0 0.5)",
    "(assert (<= X_0 0.5x))", "(assert (<= X_0 \"1\"))", ")", "(declare-const Z_0 Real)",
    "(assert (<= X_0 0.5)) (assert (>= X_0 0.1))", "(assert (<= (* 2 X_1) 1))",
    "(assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_1 0)\n(<= X_1 1e999))))",
    "(assert (and (<= X_0 0.5) (>= Y_0 1) (>= X_2 0) (<= X_1 2)))", "(assert (or (<= X_0 1)))",
    "(assert (or (and (<= X_0 0.5) (<= (and (>= X_1 0)) 1))))",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=14),
       st.sampled_from(["\n", " ", "\n\n", "\t"]))
def test_same_query_or_error_as_the_general_reader(pieces, sep):
    fast, general = _both(sep.join(pieces))
    assert fast == general


def test_a_typical_file_uses_the_fast_path_and_agrees():
    lines = [f"(declare-const X_{i} Real)" for i in range(50)] + ["(declare-const Y_0 Real)"]
    lines += [f"(assert (<= X_{i} {0.5 + i / 100}))\n(assert (>= X_{i} {-i / 7}))"
              for i in range(50)]
    lines.append("(assert (>= Y_0 0.25))")
    fast, general = _both("\n".join(lines))
    assert fast == general and fast.n_inputs == 50
    assert len(fast.bounds) == 100 and len(fast.assertions) == 1
    atom = list(fast.bounds.atoms())[3]  # 51 declaration lines, 2 per input after
    assert str(atom.pos) == "q.vnnlib:55:9" and atom.coeffs == {("X", 1): 1.0}
    assert atom.const == 1 / 7


def test_benchmark_files_agree():
    files = sorted(SHARED.glob("**/*.vnnlib"))[::9] if SHARED.exists() else []
    if not files:
        pytest.skip("../shared/benchmarks is absent")
    for path in files:
        fast, general = _both(path.read_text())
        assert fast == general, path


HEAD = ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
        "(assert (<= X_0 1))\n(assert (>= X_0 0))\n")


@pytest.mark.parametrize("inner", ["(<= Y_0 Y_1)", "(and (<= X_0 0.5) (>= X_0 0.1) (<= Y_0 Y_1))",
                                   "(<= (+ Y_0 Y_1) 1)"])
@pytest.mark.parametrize("depth", [MAX_NESTING - 2, MAX_NESTING + 1, 3000])
def test_deep_nesting_is_a_positioned_error_in_both_readers(inner, depth):
    """A formula nested past MAX_NESTING lists is refused at the first '(' past it (the
    general reader's position, the fast reader's too); one within it is lowered (3,000
    levels used to end in RecursionError when lowered)."""
    text = HEAD + "(assert " + "(or " * depth + inner + ")" * depth + ")\n"
    fast, general = _both(text)
    assert fast == general
    lists = 1 + depth + 1 + inner.count("(and") + inner.count("(+")  # assert, or's, inner
    if lists <= MAX_NESTING:
        props = to_properties(fast, (1, 1), 2)
        assert len(props) == 1
    else:
        line = text.splitlines()[5]
        col = [i for i, c in enumerate(line) if c == "("][MAX_NESTING] + 1  # all open
        assert fast == f"q.vnnlib:6:{col}: lists nested more than {MAX_NESTING} deep"
