"""The Z3 backend against HiGHS: same MILP answers, SMT-LIB round trip, exact mode."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from robustc.backends import highs, z3smt
from robustc.backends.milp.encode import encode
from robustc.backends.solve import FEASIBLE, INFEASIBLE, LIMIT, SolveOptions
from robustc.backends.z3exact import decide_exact, exact_margin, rigorous_bounds
from robustc.compiler.bounds import compute_bounds
from robustc.ir import evaluate
from robustc.ir.property import dnf, negate
from tests.differential.cases import random_case

z3 = pytest.importorskip("z3")


def _models(seed: int):
    case = random_case(seed)
    box = case.prop.boxes[0]
    bounds = compute_bounds(case.graph, box.lower, box.upper, "symbolic")
    return case, [encode(case.graph, bounds.lower, bounds.upper, box, atoms)
                  for atoms in dnf(negate(case.prop.condition))[:3]]


def test_import_robustc_does_not_import_z3():
    code = "import sys, robustc, robustc.backends, robustc.verify; print('z3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_real_literal_is_exact():
    for v in (0.1, -3.0, 1e-30, np.float32(0.3).item()):
        lit = z3smt.real_literal(v)
        term = z3.parse_smt2_string(f"(declare-fun a () Real)(assert (= a {lit}))")
        s = z3.Solver()
        s.add(term)
        assert s.check() == z3.sat
        assert Fraction(s.model()[z3.Real("a")].as_fraction()) == Fraction(v)


@pytest.mark.parametrize("seed", range(0, 40, 3))
def test_z3_agrees_with_highs_and_solutions_are_feasible(seed):
    _, models = _models(seed)
    for model in models:
        h = highs.solve(model, SolveOptions())
        z = z3smt.solve(model, SolveOptions(time_limit=20))
        if z.status == LIMIT:
            continue
        assert z.status == h.status
        if z.status == FEASIBLE:  # an independent check of the solution against the rows
            x = z.solution
            assert np.all(x >= model.lb - 1e-9) and np.all(x <= model.ub + 1e-9)
            ax = model.A @ x  # rows hold up to ROW_TOL, plus float64 rounding of A @ x
            # (Z3's exact witness is rounded to float64; scale the slack with |A| |x|)
            tol = z3smt.ROW_TOL + 1e-9 + 1e-12 * (abs(model.A) @ np.abs(x))
            assert np.all(ax >= model.row_lower - tol) and np.all(ax <= model.row_upper + tol)


@pytest.mark.parametrize("seed", range(1, 40, 4))
def test_smt2_file_parsed_back_gives_the_highs_answer(seed, tmp_path):
    _, models = _models(seed)
    for i, model in enumerate(models):
        path = tmp_path / f"m{i}.smt2"
        z3smt.write_smt2(model, path)
        s = z3.Solver()
        s.set("timeout", 10000)  # a model Z3 decides takes it ~0.1-5 s; the others ran past 20 s
        s.add(z3.parse_smt2_file(str(path)))
        answer = s.check()
        if answer == z3.unknown:
            continue
        expected = highs.solve(model, SolveOptions()).status
        assert (answer == z3.sat) == (expected == FEASIBLE), (seed, i)


def test_bool_binaries_give_the_same_answer():
    _, models = _models(7)
    for model in models:  # the second model is decided both ways in ~3 s; with bool binaries
        # Z3 runs past the limit on the first (past 20 s too), so that pair is not compared
        a = z3smt.solve(model, SolveOptions(time_limit=10)).status
        b = z3smt.solve(model, SolveOptions(time_limit=10), binaries="bool").status
        if LIMIT not in (a, b):
            assert a == b


@pytest.mark.parametrize("seed", range(0, 60, 3))
def test_rigorous_bounds_contain_sampled_values(seed):
    case = random_case(seed)
    box = case.prop.boxes[0]
    lower, upper = rigorous_bounds(case.graph, box)
    rng = np.random.default_rng(seed)
    xs = box.lower + (box.upper - box.lower) * rng.random((200,) + box.lower.shape)
    values = evaluate(case.graph, xs, batched=True, keep_all=True)
    for name, v in values.items():
        v = v.reshape(len(xs), -1)
        assert np.all(v >= lower[name] - 1e-12) and np.all(v <= upper[name] + 1e-12), name


@pytest.mark.parametrize("seed", [0, 3, 6, 12, 15, 21, 24, 27, 30, 33])
def test_exact_agrees_with_highs_and_its_witness_violates(seed):
    from robustc.ir.property import margin

    case = random_case(seed)
    box = case.prop.boxes[0]
    exact = decide_exact(case.graph, box, case.prop.condition, time_limit=20)
    if exact.status == LIMIT:
        pytest.skip("Z3 hit the time limit")
    cases = dnf(negate(case.prop.condition))
    bounds = compute_bounds(case.graph, box.lower, box.upper, "symbolic")
    statuses = {highs.solve(encode(case.graph, bounds.lower, bounds.upper, box, atoms, tol=0.0),
                            SolveOptions()).status for atoms in cases}
    if exact.status == INFEASIBLE:
        assert statuses == {INFEASIBLE}
    else:
        x = np.array([float(Fraction(v)) for v in exact.stats["input_exact"]])
        y = evaluate(case.graph, x.reshape(box.lower.shape)).reshape(1, -1)
        assert float(margin(case.prop.condition, y)[0]) <= 1e-9
        assert exact.objective <= 0
        assert box.contains(x.reshape(box.lower.shape))


def test_exact_margin_matches_float_margin():
    from robustc.ir.property import margin

    case = random_case(4)
    y = np.random.default_rng(0).normal(size=case.graph.output.size)
    ref = float(margin(case.prop.condition, y[None])[0])
    assert float(exact_margin(case.prop.condition, [Fraction(v) for v in y])) == \
        pytest.approx(ref, abs=1e-12)


def test_relu_forms_agree():
    case = random_case(3)
    box = case.prop.boxes[0]
    answers = {decide_exact(case.graph, box, case.prop.condition, relu=r, time_limit=20).status
               for r in ("bigm", "ite", "or")}
    answers.discard(LIMIT)
    assert len(answers) <= 1
