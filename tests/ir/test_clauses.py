"""Conditions of many atoms kept as arrays (:class:`~robustc.ir.property.OrClauses`,
:class:`~robustc.ir.property.AndClauses` over :class:`~robustc.ir.property.LinearRows`, and
one level more, :class:`~robustc.ir.property.AndOfClauses` /
:class:`~robustc.ir.property.OrOfClauses`)
against the same condition built as a tree of :class:`~robustc.ir.property.Linear`,
``And`` and ``Or`` from the same numbers (the oracle): margins, truth, negation, cases,
size, and the operands a consumer that reads the tree sees."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

from robustc.errors import IRError
from robustc.ir.property import (
    MAX_DISJUNCTS,
    And,
    AndClauses,
    AndOfClauses,
    Linear,
    LinearRows,
    Or,
    OrClauses,
    OrOfClauses,
    atoms_size,
    dnf,
    holds,
    margin,
    negate,
)


def both(outer: str, inner: str, sizes: list[int], n: int = 6, seed: int = 0,
         strict: bool = False):
    """``(arrays, tree)``: the same condition, groups of ``sizes`` atoms over ``n`` outputs
    with 1 to 3 non-zero coefficients each."""
    rng = np.random.default_rng(seed)
    k = sum(sizes)
    dense = np.zeros((k, n))
    for row in dense:
        cols = rng.choice(n, rng.integers(1, 4), replace=False)
        row[cols] = rng.integers(-3, 4, cols.size) + rng.choice([0.0, 0.5], cols.size)
        row[cols[row[cols] == 0]] = 1.0
    const = rng.normal(size=k).round(2)
    tags = np.stack([np.arange(k) + 10, np.full(k, 3)], axis=1)
    indptr = np.concatenate([[0], np.cumsum((dense != 0).sum(1))])
    cols = np.nonzero(dense)
    rows = LinearRows(n, indptr, cols[1], dense[cols], const, strict, "src ", tags)
    groups = np.concatenate([[0], np.cumsum(sizes)])
    arrays = (OrClauses if outer == "or" else AndClauses)(rows, groups, inner)
    atoms = [Linear(dense[i], float(const[i]), strict, f"src {i + 10}:3") for i in range(k)]
    junction = {"and": And, "or": Or}
    tree = junction[outer](tuple(junction[inner](tuple(atoms[a:b]))
                                 for a, b in zip(groups[:-1], groups[1:], strict=True)))
    return arrays, tree


def canon(cond):
    if isinstance(cond, Linear):
        return ("lin", tuple(cond.coeffs.tolist()), tuple(np.signbit(cond.coeffs).tolist()),
                cond.const, cond.strict, cond.label)
    return ("and" if isinstance(cond, And) else "or", tuple(canon(c) for c in cond.operands),
            cond.label)


COMBOS = [(o, i) for o in ("or", "and") for i in ("and", "or")]


@pytest.mark.parametrize("outer, inner", COMBOS)
@pytest.mark.parametrize("strict", [False, True])
def test_arrays_mean_what_the_tree_means(outer, inner, strict):
    arrays, tree = both(outer, inner, [1, 3, 2, 1, 4], strict=strict)
    _same_meaning(arrays, tree, seed=1)


def _same_meaning(arrays, tree, seed: int) -> None:
    """``arrays`` and ``tree`` (and their negations, once and twice) agree on margins,
    truth, operands, cases and size on integer outputs (many exact ties at margin 0); both
    answers occur for an operand, so the comparisons are not vacuous."""
    y = np.random.default_rng(seed).integers(-3, 4, size=(400, 6)).astype(float)
    for a, t in ((arrays, tree), (negate(arrays), negate(tree)),
                 (negate(negate(arrays)), negate(negate(tree)))):
        assert isinstance(a, Or) == isinstance(t, Or)
        np.testing.assert_allclose(margin(a, y), margin(t, y), atol=1e-12)
        np.testing.assert_array_equal(holds(a, y), holds(t, y))
        np.testing.assert_array_equal(holds(a, y[0]), holds(t, y[0]))
        assert canon(a) == canon(t)  # labels, strictness and -0.0 included
        assert [[canon(x) for x in c] for c in dnf(a)] == [[canon(x) for x in c] for c in dnf(t)]
        assert atoms_size(a) == atoms_size(t) == 6
    assert any(0 < holds(part, y).mean() < 1 for part in tree.operands)


@pytest.mark.parametrize("outer, inner, sizes", [
    ("or", "and", [1] * (MAX_DISJUNCTS + 1)), ("or", "or", [3] * (MAX_DISJUNCTS // 3 + 1)),
    ("and", "or", [2] * 13), ("and", "or", [2] * 2000), ("or", "or", [MAX_DISJUNCTS + 2]),
    ("and", "or", [1, MAX_DISJUNCTS + 1, 2])])
def test_too_many_cases_is_the_same_error(outer, inner, sizes):
    arrays, tree = both(outer, inner, sizes)
    with pytest.raises(IRError) as want:
        dnf(tree)
    with pytest.raises(IRError, match=re.escape(str(want.value))):
        dnf(arrays)
    assert "operands" not in arrays.__dict__  # refused from the sizes, no atom built


def test_pickled_and_bad_groups():
    arrays, _ = both("or", "and", [2, 2])
    assert arrays.operands  # built, then not pickled
    again = pickle.loads(pickle.dumps(arrays))
    assert "operands" not in again.__dict__ and canon(again) == canon(arrays)
    with pytest.raises(IRError, match="non-empty runs"):
        OrClauses(arrays.rows, np.array([0, 2, 2, 4]), "and")
    with pytest.raises(IRError, match="inner junction"):
        OrClauses(arrays.rows, arrays.groups, "xor")


JUNCTION = {"and": And, "or": Or}


def both3(outer: str, middle: str, inner: str, parts: list[list[int]], seed: int = 0,
          strict: bool = False):
    """``(arrays, tree)`` with three levels: part ``k`` a ``middle`` junction of groups of
    ``parts[k]`` atoms (the atoms of :func:`both`)."""
    sizes = [n for part in parts for n in part]
    flat, _ = both("and", inner, sizes, seed=seed, strict=strict)
    bounds = np.concatenate([[0], np.cumsum([len(part) for part in parts])])
    arrays = (OrOfClauses if outer == "or" else AndOfClauses)(flat.rows, flat.groups, inner,
                                                              bounds, middle)
    groups = flat.operands  # the inner junctions as a tree, in order
    tree = JUNCTION[outer](tuple(JUNCTION[middle](tuple(groups[a:b]))
                                 for a, b in zip(bounds[:-1], bounds[1:], strict=True)))
    return arrays, tree


COMBOS3 = [(o, m, i) for o in ("or", "and") for m in ("and", "or") for i in ("and", "or")]


@pytest.mark.parametrize("outer, middle, inner", COMBOS3)
@pytest.mark.parametrize("strict", [False, True])
def test_three_levels_mean_what_the_tree_means(outer, middle, inner, strict):
    arrays, tree = both3(outer, middle, inner, [[1, 3], [2], [1, 1, 2]], strict=strict)
    _same_meaning(arrays, tree, seed=2)


@pytest.mark.parametrize("outer, middle, inner, parts", [
    ("or", "or", "and", [[1] * 3000, [1] * 2000]), ("and", "or", "or", [[2] * 40] * 2),
    ("and", "and", "or", [[2] * 13]), ("or", "and", "or", [[1, MAX_DISJUNCTS + 1], [2]]),
    ("and", "or", "and", [[1] * 70, [1] * 70])])
def test_three_levels_too_many_cases_is_the_same_error(outer, middle, inner, parts):
    arrays, tree = both3(outer, middle, inner, parts)
    with pytest.raises(IRError) as want:
        dnf(tree)
    with pytest.raises(IRError, match=re.escape(str(want.value))):
        dnf(arrays)
    assert "operands" not in arrays.__dict__


def test_three_levels_pickled_and_bad_parts():
    arrays, _ = both3("and", "or", "and", [[2, 1], [1]])
    assert arrays.operands
    again = pickle.loads(pickle.dumps(arrays))
    assert "operands" not in again.__dict__ and canon(again) == canon(arrays)
    with pytest.raises(IRError, match="parts must split"):
        AndOfClauses(arrays.rows, arrays.groups, "and", np.array([0, 0, 3]), "or")
    with pytest.raises(IRError, match="middle junction"):
        AndOfClauses(arrays.rows, arrays.groups, "and", arrays.parts, "xor")
