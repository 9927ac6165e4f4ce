"""Grammar-aware fuzzing of specs and VNN-LIB files with Hypothesis (issue 23, item 6).

The existing fuzzers build text from the spec language's tokens and edit the examples
(``tests/specs/test_spec_fuzz.py``) and corrupt one fixed VNN-LIB file character by
character (``tests/vnnlib/test_fuzz.py``). These add:

* specs drawn from the spec grammar itself (``hypothesis.extra.lark.from_lark`` on
  ``robustc.specs.grammar.GRAMMAR``): every production, nested to any depth, so the checker
  sees well-formed programs it was not written against;
* VNN-LIB files drawn from the VNN-LIB fragment's structure (declarations in any order,
  missing, repeated or mistyped; input bounds present, absent, swapped or non-finite;
  ``and``/``or`` formulas over linear terms with odd numbers and operators outside the
  fragment), then optionally edited at the character level; the ones that load are also
  verified through the command line on a small network, and a ``robust`` verdict is
  checked against onnxruntime on sampled inputs.

The oracle: nothing escapes but robustc's own errors (``robustc.errors.Error``), a
command never gives a traceback or an undocumented exit code, and no case hangs (each
Hypothesis example has a deadline, generous for a loaded 2-core machine: a hang, not a
slow case, is what it catches). The default run is a fast subset; ``pytest --long``
runs the full size.
"""

from __future__ import annotations

import json
from datetime import timedelta

import lark
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from robustc.cli import main
from robustc.compiler.vnnlib import parse_vnnlib, to_properties
from robustc.errors import Error, SpecError
from robustc.ir.property import holds
from robustc.specs import check, format_spec, parse_text
from robustc.specs.grammar import GRAMMAR
from tests.cli.test_hardening import write_net

N_IN, N_OUT = 4, 3  # write_net's network: 4 inputs, 3 outputs
DEADLINE = timedelta(seconds=10)  # per example; a parse takes milliseconds


def _sizes(request, fast: int, full: int) -> int:
    return full if request.config.getoption("--long") else fast


def _fuzz(cases: int, deadline=DEADLINE):
    return settings(max_examples=cases, deadline=deadline, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


# ----------------------------------------------------------------------------- specs

NAMES = st.sampled_from(["x", "n", "r", "eps", "p", "m", "_a", "x2", "label", "classes"])
# Explicit strategies for the regular-expression terminals: Hypothesis's own (from_regex)
# made each example cost 0.3 s; these keep the lexer's corner cases (primes, exponents,
# escapes, comments) at a fraction of that.
TERMINALS = {
    "NAME": NAMES,
    "VAR": st.sampled_from(["x", "x'", "x''", "n", "r", "eps", "y_1"]),
    "NUMBER": st.sampled_from(["0", "1", "0.5", ".5", "3.", "1e3", "2E-2", "255", "1e999",
                               "9" * 40]),
    "STRING": st.sampled_from(['"n.onnx"', '"x.npy"', '""', '"a\\"b"', '"\\n"',
                               '"d/"', '"0"']),
    "COMMENT": st.sampled_from(["#", "# c", "#((", "#\u00e9"]),
    "WS": st.sampled_from([" ", "\n", "  ", "\t", "\n    ", "\r\n"]),
}
SPEC_GRAMMAR = from_lark(lark.Lark(GRAMMAR, start="start"), explicit=TERMINALS)


def _spec_survives(text: str, outcomes: dict) -> None:
    """Parse, check without files and round-trip through the formatter: only SpecError
    may escape, and a formatted spec parses back to the same AST."""
    try:
        spec = parse_text(text, filename="fuzz.rspec")
    except SpecError as exc:
        assert str(exc).startswith("fuzz.rspec:"), str(exc)
        outcomes["syntax"] += 1
        return
    outcomes["parsed"] += 1
    assert parse_text(format_spec(spec)) == spec
    try:
        check(spec, files=False)
        outcomes["checked"] += 1
    except SpecError as exc:
        assert exc.diagnostics and str(exc)


def test_specs_drawn_from_the_grammar(request):
    outcomes = {"parsed": 0, "syntax": 0, "checked": 0}

    @_fuzz(_sizes(request, 40, 2000))
    @given(SPEC_GRAMMAR)
    def case(text):
        _spec_survives(text, outcomes)

    case()
    # not vacuous: the grammar's sentences reach the checker, and some pass it
    assert outcomes["parsed"] > 5 and outcomes["syntax"] > 0, outcomes


# --------------------------------------------------------------------------- VNN-LIB

ODD_NUMBERS = ["1e999", "-1e999", "nan", "inf", ".5", "1.", "-0", "0.5e-3", "1/2", "#x10",
               "00012", "+3", "1e-400", "9" * 60]
PLAIN_NUMBERS = st.one_of(st.integers(-4, 4).map(str),
                          st.floats(-4, 4, allow_nan=False).map(lambda v: f"{v:.3g}"))


def _rarely(common, rare):
    """``common`` nine times in ten, else ``rare``: most files stay in the fragment (so they
    load and reach the verifier), the rest probe its edges."""
    return st.integers(0, 9).flatmap(lambda k: rare if k == 9 else common)


NUMBERS = _rarely(PLAIN_NUMBERS, st.sampled_from(ODD_NUMBERS))


def _var(prefix: str, n: int):
    return _rarely(st.integers(0, n - 1), st.just(n)).map(lambda i: f"{prefix}_{i}")


def _apply(op_args) -> str:
    op, args = op_args
    return f"({op} {' '.join(args)})"


def _terms(leaves):
    ops = _rarely(st.sampled_from(["+", "-"]), st.sampled_from(["*", "/", "abs", "ite"]))

    def extend(t):
        scaled = st.tuples(st.just("*"), st.tuples(PLAIN_NUMBERS, t)).map(_apply)
        return st.tuples(ops, st.lists(t, min_size=1, max_size=3)).map(_apply) | scaled
    return st.recursive(leaves, extend, max_leaves=6)


OUTPUT_TERMS = _terms(NUMBERS | _var("Y", N_OUT))
ANY_TERMS = _terms(NUMBERS | _var("Y", N_OUT) | _var("X", N_IN))
COMPARE = _rarely(st.sampled_from(["<=", ">="]), st.sampled_from(["<", "=", "distinct"]))
OUTPUT_ATOMS = st.tuples(COMPARE, st.tuples(
    st.tuples(_var("Y", N_OUT), OUTPUT_TERMS).map(lambda p: f"(+ {p[0]} {p[1]})"),
    OUTPUT_TERMS)).map(_apply)
ODD_ATOMS = st.tuples(COMPARE, st.lists(ANY_TERMS, min_size=1, max_size=3)).map(_apply)
JUNCTIONS = _rarely(st.sampled_from(["and", "or"]), st.sampled_from(["not", "=>", "xor"]))
FORMULAS = st.recursive(_rarely(OUTPUT_ATOMS, ODD_ATOMS),
                        lambda f: st.tuples(JUNCTIONS, st.lists(f, min_size=1, max_size=3))
                        .map(_apply), max_leaves=8)


@st.composite
def declarations(draw) -> list[str]:
    decls = [f"(declare-const X_{i} Real)" for i in range(N_IN)] + \
        [f"(declare-const Y_{j} Real)" for j in range(N_OUT)]
    kind = draw(_rarely(st.sampled_from(["plain", "plain", "shuffled"]),
                        st.sampled_from(["dropped", "repeated", "mistyped"])))
    if kind == "shuffled":
        decls = draw(st.permutations(decls))
    elif kind == "dropped":
        del decls[draw(st.integers(0, len(decls) - 1))]
    elif kind == "repeated":
        decls.append(draw(st.sampled_from(decls)))
    elif kind == "mistyped":
        i = draw(st.integers(0, len(decls) - 1))
        decls[i] = decls[i].replace("Real", draw(st.sampled_from(["Int", "Bool", "real", ""])))
    return list(decls)


@st.composite
def input_bounds(draw) -> list[str]:
    out = []
    for i in range(N_IN):
        lo = draw(st.floats(-1, 1, allow_nan=False))
        hi = lo + draw(st.sampled_from([0.0, 0.01, 0.1, 0.5, -0.1]))  # -0.1: an empty box
        lo_s, hi_s = f"{lo:.4g}", f"{hi:.4g}"
        shape = draw(_rarely(st.sampled_from(["two", "two", "and", "or"]),
                             st.sampled_from(["missing", "odd"])))
        if shape == "two":
            out += [f"(assert (>= X_{i} {lo_s}))", f"(assert (<= X_{i} {hi_s}))"]
        elif shape == "and":
            out.append(f"(assert (and (<= {lo_s} X_{i}) (>= {hi_s} X_{i})))")
        elif shape == "odd":
            out += [f"(assert (>= X_{i} {draw(st.sampled_from(ODD_NUMBERS))}))",
                    f"(assert (<= X_{i} {hi_s}))"]
        elif shape == "or":  # a disjunction of two boxes on this input
            out.append(f"(assert (or (and (>= X_{i} {lo_s}) (<= X_{i} {hi_s})) "
                       f"(and (>= X_{i} {hi_s}) (<= X_{i} {hi_s}))))")
    return out


EDITS = st.lists(st.tuples(st.sampled_from(["delete", "insert", "swap"]), st.floats(0, 1),
                           st.sampled_from(list("()XY_0123456789 .-+*<=>;\n") +
                                           ["assert", "and", "or", "Real", "\x00", "é"])),
                 max_size=3)
EDITS = _rarely(st.just([]), EDITS)


@st.composite
def vnnlib_files(draw) -> str:
    parts = draw(declarations()) + draw(input_bounds())
    parts += [f"(assert {f})" for f in draw(st.lists(FORMULAS, min_size=1, max_size=3))]
    text = "\n".join(parts) + "\n"
    for kind, where, piece in draw(EDITS):
        at = int(where * len(text))
        if kind == "delete":
            text = text[:at] + text[at + 1:]
        elif kind == "insert":
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + piece + text[at + 1:]
    return text


def _load(text: str):
    """The properties of ``text`` or None; only robustc's errors may escape, positioned."""
    try:
        return to_properties(parse_vnnlib(text, "fuzz.vnnlib"), (1, N_IN), N_OUT)
    except Error as exc:
        assert str(exc).startswith("fuzz.vnnlib"), str(exc)
        return None


def test_vnnlib_files_drawn_from_the_fragment(request):
    outcomes = {"loaded": 0, "refused": 0}

    @_fuzz(_sizes(request, 150, 3000))
    @given(vnnlib_files())
    def case(text):
        props = _load(text)
        outcomes["loaded" if props else "refused"] += 1
        for prop in props or ():
            assert prop.boxes
            for box in prop.boxes:  # validated: finite, non-empty boxes only
                assert np.all(np.isfinite(box.lower)) and np.all(np.isfinite(box.upper))
                assert np.all(box.lower <= box.upper)
            holds(prop.condition, np.zeros((1, N_OUT)))  # the condition evaluates

    case()
    assert outcomes["loaded"] > 10 and outcomes["refused"] > 10, outcomes


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzznet")
    return write_net(folder)


def _replay_violates(network, prop, samples: int = 200) -> bool:
    """Whether onnxruntime finds a sampled input of ``prop``'s boxes (their corners and
    uniform points) where the condition fails: the oracle of a ``robust`` verdict."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(network), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    rng = np.random.default_rng(0)
    for box in prop.boxes:
        lo, hi = box.lower.reshape(1, N_IN), box.upper.reshape(1, N_IN)
        corners = np.array(np.meshgrid(*[[0, 1]] * N_IN)).reshape(N_IN, -1).T
        points = np.concatenate([lo + (hi - lo) * rng.uniform(size=(samples, N_IN)),
                                 lo + (hi - lo) * corners])
        y = np.concatenate([sess.run(None, {name: p[None].astype(np.float32)})[0].reshape(1, -1)
                            for p in points])  # the network's batch size is 1
        if not np.all(holds(prop.condition, y.astype(np.float64))):
            return True
    return False


@pytest.mark.slow  # 5-40 s on a shared 2-core machine
def test_vnnlib_files_through_verify(request, tmp_path, network, capsys):
    """The files that load, verified by the command line: a documented exit code, one JSON
    line per property, no traceback; a robust verdict survives sampling on onnxruntime."""
    seen = {"robust": 0, "not_robust": 0, "unknown": 0, "error": 0}
    path = tmp_path / "q.vnnlib"

    @_fuzz(_sizes(request, 8, 100), deadline=timedelta(seconds=60))
    @given(vnnlib_files().filter(lambda text: _load(text) is not None))
    def case(text):
        path.write_text(text)
        code = main(["verify", str(path), "--network", str(network), "--json",
                     "--timeout", "20", "--threads", "1"])
        out = capsys.readouterr()
        assert "Traceback" not in out.err
        assert code in (0, 1, 2, 3), (code, out.err)
        lines = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
        assert lines, (code, out.out, out.err)
        for line in lines:
            seen[line["verdict"]] += 1
        if code == 0:  # every property robust: no sampled input may violate one
            for prop in _load(text):
                assert not _replay_violates(network, prop), text

    case()
    assert sum(seen.values()) >= 8 and seen["robust"] + seen["not_robust"] > 0, seen
