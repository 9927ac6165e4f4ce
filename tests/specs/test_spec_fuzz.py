"""Fuzzing: no input ever escapes as anything but SpecError (20,000+ cases in total).

Two sources: random text built from the language's own tokens and arbitrary characters,
and random edits of the example specs (which keep most of the text valid, so parsing
gets deep before it fails). When a case parses, it must also survive checking, and
formatting it must give text that parses back to the same AST.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustc.errors import SpecError
from robustc.specs import check, format_spec, parse_text
from robustc.specs.grammar import GRAMMAR
from tests.specs.spec_helpers import EXAMPLES

EXAMPLE_TEXTS = [p.read_text() for p in sorted(EXAMPLES.glob("*.rspec"))]
WORDS = sorted(set(re.findall(r'"([^"]+)"', GRAMMAR))) + [
    "x", "x'", "eps", "0", "1.5", "-", "\"4\"", "[", "]", "{", "}", "\n", " ", "#", "'",
    "1e999", "9" * 400, "\\", '"', "\t", "(" * 50, "[" * 40]
# 20,000 cases in total. Lark parses a whole example in ~7 ms, so most mutations edit one
# paragraph (a statement with its comments) of an example and 2,000 edit whole files.
# Small cases come in batches (one Hypothesis example = BATCH texts) to save overhead.
RANDOM_CASES, PARAGRAPH_CASES, FILE_CASES, BATCH = 10_000, 8_000, 2_000, 10
PARAGRAPHS = [p for text in EXAMPLE_TEXTS for p in text.split("\n\n") if p.strip()]


def _fuzz(cases: int):
    return settings(max_examples=cases, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def _survives(text: str) -> None:
    """Parse; if that works, check and round-trip. Only SpecError may escape."""
    try:
        spec = parse_text(text, filename="fuzz.rspec")
    except SpecError as exc:
        assert exc.diagnostics and str(exc)
        return
    assert parse_text(format_spec(spec)) == spec
    try:
        check(spec, files=False)
    except SpecError as exc:
        assert exc.diagnostics and str(exc).startswith(("fuzz.rspec:", "<command line>:"))


token_soup = st.lists(st.sampled_from(WORDS) | st.text(max_size=2), max_size=25).map(" ".join)
raw_text = st.text(max_size=40)


@_fuzz(RANDOM_CASES // BATCH)
@given(st.lists(token_soup | raw_text, min_size=BATCH, max_size=BATCH))
def test_fuzz_random_text(texts):
    for text in texts:
        _survives(text)


edits = st.lists(st.tuples(st.sampled_from(["delete", "insert", "duplicate", "swap"]),
                           st.floats(0, 1), st.integers(1, 12), st.sampled_from(WORDS)),
                 min_size=1, max_size=3)


def _mutate(text: str, plan) -> str:
    for kind, where, length, word in plan:
        at = int(where * len(text))
        if kind == "delete":
            text = text[:at] + text[at + length:]
        elif kind == "insert":
            text = text[:at] + word + text[at:]
        elif kind == "duplicate":
            text = text[:at] + text[at:at + length] + text[at:]
        else:
            text = text[:at] + text[at + length:at + 2 * length] + text[at:at + length] \
                + text[at + 2 * length:]
    return text


@_fuzz(PARAGRAPH_CASES // BATCH)
@given(st.lists(st.tuples(st.sampled_from(PARAGRAPHS), edits), min_size=BATCH,
                max_size=BATCH))
def test_fuzz_mutated_example_statements(cases):
    for text, plan in cases:
        _survives(_mutate(text, plan))


@_fuzz(FILE_CASES)
@given(st.sampled_from(EXAMPLE_TEXTS), edits)
def test_fuzz_mutated_example_files(text, plan):
    _survives(_mutate(text, plan))


def test_fuzz_case_count():
    assert RANDOM_CASES + PARAGRAPH_CASES + FILE_CASES >= 20_000
    assert len(PARAGRAPHS) > 30


def test_mutations_do_reach_success_and_semantic_errors():
    """The mutation fuzzer is not vacuous: single deletions still parse sometimes."""
    outcomes = {"parsed": 0, "syntax": 0}
    for text in EXAMPLE_TEXTS:
        for at in range(0, len(text), 97):
            try:
                parse_text(_mutate(text, [("delete", at / len(text), 1, "")]))
                outcomes["parsed"] += 1
            except SpecError:
                outcomes["syntax"] += 1
    assert outcomes["parsed"] > 10 and outcomes["syntax"] > 10, outcomes
