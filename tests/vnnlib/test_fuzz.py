"""Fuzz tests: random formulas against a brute-force evaluation of the VNN-LIB semantics,
and random corruptions of valid files, which must give SpecError (never another error)."""

from __future__ import annotations

import numpy as np
import pytest

from robustc.compiler.vnnlib import parse_vnnlib, to_properties
from robustc.errors import SpecError
from robustc.ir.property import holds

N_IN, N_OUT = 2, 3


def random_term(rng, depth: int) -> tuple[str, np.ndarray, float]:
    """A random linear term over Y and its (coeffs, const), computed independently."""
    kind = rng.integers(0, 5 if depth < 3 else 2)
    if kind == 0:
        v = float(rng.integers(-4, 5)) / 2
        return repr(v), np.zeros(N_OUT), v
    if kind == 1:
        j = int(rng.integers(N_OUT))
        c = np.zeros(N_OUT)
        c[j] = 1
        return f"Y_{j}", c, 0.0
    parts = [random_term(rng, depth + 1) for _ in range(int(rng.integers(1, 4)))]
    if kind == 2:
        return "(+ " + " ".join(p[0] for p in parts) + ")", sum(p[1] for p in parts), \
            sum(p[2] for p in parts)
    if kind == 3:
        if len(parts) == 1:
            return f"(- {parts[0][0]})", -parts[0][1], -parts[0][2]
        c = parts[0][1] - sum(p[1] for p in parts[1:])
        return "(- " + " ".join(p[0] for p in parts) + ")", c, \
            parts[0][2] - sum(p[2] for p in parts[1:])
    k = float(rng.integers(-3, 4))
    t = parts[0]
    return f"(* {k!r} {t[0]})", k * t[1], k * t[2]


def random_formula(rng, depth: int = 0):
    """A random and/or formula over Y atoms, with a numpy evaluator."""
    if depth >= 2 or rng.random() < 0.4:
        (ta, ca, ka), (tb, cb, kb) = random_term(rng, 0), random_term(rng, 0)
        if not np.any(ca - cb):
            ca = ca + np.eye(N_OUT)[0]
            ta = f"(+ Y_0 {ta})"
        op = "<=" if rng.random() < 0.5 else ">="
        sign = 1.0 if op == "<=" else -1.0  # ta <= tb  <=>  (cb - ca).y + kb - ka >= 0

        def ev(y, c=sign * (cb - ca), k=sign * (kb - ka)):
            return y @ c + k >= 0
        return f"({op} {ta} {tb})", ev
    op = "and" if rng.random() < 0.5 else "or"
    parts = [random_formula(rng, depth + 1) for _ in range(int(rng.integers(1, 4)))]

    def ev(y, parts=parts, op=op):
        vals = np.stack([p[1](y) for p in parts])
        return vals.all(0) if op == "and" else vals.any(0)
    return f"({op} " + " ".join(p[0] for p in parts) + ")", ev


HEADER = "".join(f"(declare-const X_{i} Real)\n" for i in range(N_IN)) + \
    "".join(f"(declare-const Y_{j} Real)\n" for j in range(N_OUT)) + \
    "(assert (and (>= X_0 0) (<= X_0 1)))\n(assert (>= X_1 -1))\n(assert (<= X_1 1))\n"


def test_random_formulas_match_brute_force_semantics():
    rng = np.random.default_rng(7)
    ys = rng.integers(-4, 5, size=(300, N_OUT)).astype(float) + \
        rng.choice([0.0, 0.25, 0.5], size=(300, N_OUT))
    for _ in range(300):
        text, ev = random_formula(rng)
        props = to_properties(parse_vnnlib(HEADER + f"(assert {text})\n"), (1, N_IN), N_OUT)
        assert len(props) == 1
        # sat at y  <=>  the robustc property does not hold at y (ties included)
        np.testing.assert_array_equal(~holds(props[0].condition, ys), ev(ys), err_msg=text)


def test_corrupted_files_raise_spec_error_only():
    rng = np.random.default_rng(3)
    base = HEADER + "(assert (or (and (<= Y_0 Y_1)) (and (>= (+ Y_2 (* 2 Y_1)) 0.5))))\n"
    alphabet = list("()XY_0123456789 .-+*<=>;\nandor\"") + ["assert", "declare-const", "Real"]
    for _ in range(2000):
        chars = list(base)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(len(chars)))
            action = rng.integers(3)
            if action == 0:
                del chars[pos]
            elif action == 1:
                chars.insert(pos, str(rng.choice(alphabet)))
            else:
                chars[pos] = str(rng.choice(alphabet))
        text = "".join(chars)
        try:
            props = to_properties(parse_vnnlib(text, "f.vnnlib"), (1, N_IN), N_OUT)
        except SpecError as exc:
            assert str(exc).startswith("f.vnnlib"), str(exc)
            continue
        assert props, text


@pytest.mark.parametrize("seed", range(3))
def test_whitespace_and_comments_do_not_matter(seed):
    rng = np.random.default_rng(seed)
    text, _ = random_formula(rng)
    plain = HEADER + f"(assert {text})"
    noisy = "; comment (assert\n" + plain.replace(" ", "  \t").replace(")", " ;c\n)")
    a = to_properties(parse_vnnlib(plain), (1, N_IN), N_OUT)[0]
    b = to_properties(parse_vnnlib(noisy), (1, N_IN), N_OUT)[0]
    ys = rng.normal(size=(100, N_OUT))
    np.testing.assert_array_equal(holds(a.condition, ys), holds(b.condition, ys))
