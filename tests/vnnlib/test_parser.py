"""VNN-LIB reader and writer: fragment, positions, semantics of sat/unsat, round trip."""

from __future__ import annotations

import numpy as np
import pytest

from robustc.compiler.vnnlib import format_vnnlib, parse_vnnlib, to_properties
from robustc.errors import EmptyInputSet, SpecError
from robustc.ir.property import Box, Property, holds, in_top_k, negate, output_gt

HEADER = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n" \
         "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"


def props(text: str, shape=(1, 2), n_out: int = 2) -> list[Property]:
    return to_properties(parse_vnnlib(text, "t.vnnlib"), shape, n_out)


def test_box_and_violation_are_negated_exactly():
    text = HEADER + "(assert (>= X_0 -1)) (assert (<= X_0 2.5))\n" \
                    "(assert (and (>= X_1 0) (<= X_1 1)))\n(assert (<= Y_1 Y_0))\n"
    (p,) = props(text)
    np.testing.assert_array_equal(p.boxes[0].lower, [[-1, 0]])
    np.testing.assert_array_equal(p.boxes[0].upper, [[2.5, 1]])
    # violation Y_1 <= Y_0 (ties included): the property holds exactly when Y_1 > Y_0
    ys = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(holds(p.condition, ys), [True, False, False])


def test_linear_terms_with_sums_products_and_negation():
    text = HEADER + "(assert (>= X_0 0)) (assert (<= X_0 1)) (assert (>= X_1 0))" \
                    "(assert (<= X_1 1))\n(assert (>= (+ (* 2 Y_0) (- Y_1) 3) (- 1 0.5)))\n"
    (p,) = props(text)
    ys = np.random.default_rng(0).normal(size=(200, 2)) * 3
    violated = 2 * ys[:, 0] - ys[:, 1] + 3 >= 0.5
    np.testing.assert_array_equal(holds(p.condition, ys), ~violated)


def test_disjunction_of_boxes_shares_one_property():
    box = "(and (>= X_0 {a}) (<= X_0 {b}) (>= X_1 0) (<= X_1 1))"
    text = HEADER + f"(assert (or {box.format(a=0, b=1)} {box.format(a=2, b=3)}))\n" \
                    "(assert (or (and (<= Y_0 0)) (and (<= Y_1 0))))\n"
    (p,) = props(text)
    assert [b.lower[0, 0] for b in p.boxes] == [0, 2]
    ys = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(holds(p.condition, ys), [True, False, False])


def test_mixed_disjuncts_give_one_property_per_output_case():
    text = HEADER + "(assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (>= Y_0 5))" \
                    " (and (>= X_0 1) (<= X_0 2) (>= X_1 0) (<= X_1 1) (>= Y_1 7))))\n"
    first, second = props(text)
    assert first.boxes[0].upper[0, 0] == 1 and second.boxes[0].lower[0, 0] == 1
    assert not holds(first.condition, np.array([[5.0, 0.0]]))[0]
    assert holds(second.condition, np.array([[5.0, 0.0]]))[0]


def test_input_shape_is_filled_in_flat_order():
    text = "".join(f"(declare-const X_{i} Real)" for i in range(6)) + \
        "(declare-const Y_0 Real)" + \
        "".join(f"(assert (>= X_{i} {i})) (assert (<= X_{i} {i + 0.5}))" for i in range(6)) + \
        "(assert (>= Y_0 0))"
    (p,) = to_properties(parse_vnnlib(text), (1, 2, 3, 1), 1)
    np.testing.assert_array_equal(p.boxes[0].lower.ravel(), np.arange(6))
    assert p.boxes[0].lower.shape == (1, 2, 3, 1)


def test_empty_box_disjunct_is_dropped_and_all_empty_is_an_error():
    text = HEADER + "(assert (or (and (>= X_0 1) (<= X_0 0) (>= X_1 0) (<= X_1 1))" \
                    " (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1))))(assert (>= Y_0 0))"
    (p,) = props(text)
    assert len(p.boxes) == 1
    empty = HEADER + "(assert (>= X_0 1)) (assert (<= X_0 0)) (assert (>= X_1 0))" \
                     "(assert (<= X_1 1)) (assert (>= Y_0 0))"
    with pytest.raises(EmptyInputSet, match=r"t.vnnlib: the input set is empty: X_0 has lower "
                                            r"bound 1 above its upper bound 0 \(line 5\)"):
        props(empty)


@pytest.mark.parametrize("body, where, what", [
    ("(assert (>= X_0 0)", "t.vnnlib:5:1", "never closed"),
    ("(assert (< X_0 0))", "t.vnnlib:5:9", "unsupported formula"),
    ("(assert (>= (* X_0 Y_0) 0))", "t.vnnlib:5:13", "product of two variable"),
    ("(assert (>= X_7 0))", "t.vnnlib:5:13", "undeclared variable"),
    ("(assert (>= (+ X_0 Y_0) 0))", "t.vnnlib:5:9", "mixes inputs"),
    ("(check-sat)", "t.vnnlib:5:1", "unsupported command"),
    ("(assert (>= (exp Y_0) 0))", "t.vnnlib:5:13", "unsupported term"),
    ("(assert (>= 1 0))", "t.vnnlib:5:9", "comparison of constants"),
    ("(assert (>= X_0 \"a\"))", "t.vnnlib:5:17", "unexpected character"),
    ("(assert (>= X_0 0)))", "t.vnnlib:5:20", "unbalanced"),
])
def test_errors_name_file_line_and_column(body, where, what):
    with pytest.raises(SpecError) as err:
        parse_vnnlib(HEADER + body, "t.vnnlib")
    assert str(err.value).startswith(where) and what in str(err.value)


@pytest.mark.parametrize("body, what", [
    ("(assert (>= X_0 0)) (assert (>= Y_0 0))", "X_0 has no finite"),
    ("(assert (>= (+ X_0 X_1) 0)) (assert (>= Y_0 0))", "single X_i"),
    ("(assert (>= X_0 0)) (assert (<= X_0 1)) (assert (>= X_1 0)) (assert (<= X_1 1))",
     "no output constraint"),
])
def test_semantic_errors_are_spec_errors(body, what):
    with pytest.raises(SpecError, match=what):
        props(HEADER + body)


def test_size_mismatch_with_the_network_is_reported():
    with pytest.raises(SpecError, match="declares 2 inputs"):
        props(HEADER + "(assert (>= Y_0 0))", shape=(1, 3))


def test_undeclared_gap_in_variable_indices():
    with pytest.raises(SpecError, match="X_1 is not declared"):
        parse_vnnlib("(declare-const X_0 Real)(declare-const X_2 Real)"
                     "(declare-const Y_0 Real)(assert (>= Y_0 0))", "g.vnnlib")


@pytest.mark.parametrize("make", [
    lambda: output_gt(4, 2, 1),
    lambda: output_gt(4, 0, None, 0.25, strict=False),
    lambda: in_top_k(4, 1, 2),
    lambda: negate(in_top_k(4, 3, 1)),
])
def test_export_round_trip_keeps_the_property(make):
    cond = make()
    rng = np.random.default_rng(1)
    boxes = (Box(-rng.random((1, 3)), rng.random((1, 3))),
             Box(np.full((1, 3), 2.0), np.full((1, 3), 3.0)))
    prop = Property("p", boxes, cond)
    (back,) = to_properties(parse_vnnlib(format_vnnlib(prop)), (1, 3), 4)
    for a, b in zip(back.boxes, boxes, strict=True):
        np.testing.assert_array_equal(a.lower, b.lower)
        np.testing.assert_array_equal(a.upper, b.upper)
    # Away from the boundary (ties), the exported property agrees with the original.
    ys = rng.integers(-3, 4, size=(500, 4)) + rng.random((500, 4)) * 0.5
    np.testing.assert_array_equal(holds(back.condition, ys), holds(cond, ys))


def _many_bounds(n: int) -> str:
    decls = "".join(f"(declare-const X_{i} Real)\n" for i in range(n))
    bounds = "".join(f"(assert (>= X_{i} {-i / n}))\n(assert (<= X_{i} {i / n}))\n"
                     for i in range(n))
    return decls + "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n" + bounds


def test_a_file_of_many_assertions_loads_whole():
    """40,002 assertions (about 1 MB; the reader copied a list per assertion before, so
    such files loaded in quadratic time): every bound lands in the one box."""
    n = 20000
    text = _many_bounds(n) + "(assert (>= Y_1 Y_0))\n"
    query = parse_vnnlib(text, "big.vnnlib")
    assert len(query.bounds) == 2 * n and len(query.assertions) == 1 and query.n_inputs == n
    (p,) = to_properties(query, (1, n), 2)
    (box,) = p.boxes
    np.testing.assert_allclose(box.lower.ravel(), -np.arange(n) / n)
    np.testing.assert_allclose(box.upper.ravel(), np.arange(n) / n)


def test_bounds_after_a_disjunction_reach_every_case_and_only_their_own():
    """A bound after a disjunction extends each case in place: both boxes get it, and the
    cases' own bounds stay apart."""
    text = ("".join(f"(declare-const X_{i} Real)\n" for i in range(3)) +
            "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
            "(assert (>= X_0 -1)) (assert (<= X_0 1)) (assert (>= X_1 0)) (assert (<= X_1 1))\n"
            "(assert (or (and (>= X_0 0.5)) (and (<= X_0 -0.5))))\n"
            "(assert (>= X_2 0)) (assert (<= X_2 0.25))\n(assert (>= Y_1 Y_0))\n")
    (p,) = props(text, shape=(1, 3))
    assert [b.lower.ravel().tolist() for b in p.boxes] == [[0.5, 0, 0], [-1, 0, 0]]
    assert [b.upper.ravel().tolist() for b in p.boxes] == [[1, 1, 0.25], [-0.5, 1, 0.25]]


@pytest.mark.parametrize("atom, col", [("(<= (* 1e200 1e200 X_0) 1)", 9),
                                       ("(<= X_0 (+ 1e308 1e308))", 9),
                                       ("(>= (* 1e300 1e300 0 X_1) 0)", 9)])
def test_a_coefficient_or_constant_that_overflows_is_a_positioned_error(atom, col):
    """Finite numbers whose product or sum overflows (an infinite coefficient bounded X_0
    at 0; a NaN one was ignored): an error at the comparison, from both readers."""
    text = HEADER + f"(assert {atom})\n(assert (>= Y_1 Y_0))\n"
    for fast in (True, False):
        with pytest.raises(SpecError, match=f"q.vnnlib:5:{col}: a coefficient or the "
                                            f"constant of this constraint is out of range"):
            parse_vnnlib(text, "q.vnnlib", fast=fast)
