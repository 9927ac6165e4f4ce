"""Every verify property of every example spec gets the verdict its file documents.

Each example spec lists its expected verdicts in a comment block::

    # Expected verdicts (checked by tests/verify/test_examples.py):
    #   keep_seven: robust
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from robustc import specs
from robustc.compiler.spec_lower import verify_problems
from robustc.ir.property import holds
from robustc.runtime.replay import run_onnx
from robustc.specs.ast import VerifyProperty
from robustc.verify import NOT_ROBUST, VerifyOptions, verify
from tests.conftest import EXAMPLES

SPECS = sorted(EXAMPLES.glob("*.rspec"))
VERDICT = re.compile(r"^#\s+(\w+):\s+(robust|not robust|unknown)\b", re.M)


def _expected(path) -> dict[str, str]:
    text = path.read_text()
    if "Expected verdicts" not in text:
        return {}
    block = text.split("Expected verdicts", 1)[1]
    return {name: verdict.replace(" ", "_") for name, verdict in VERDICT.findall(block)}


def _verify_names(path) -> list[str]:
    return [p.name for p in specs.parse(path).properties if isinstance(p, VerifyProperty)]


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_every_verify_property_documents_its_verdict(path):
    missing = set(_verify_names(path)) - set(_expected(path))
    assert not missing, f"{path.name}: no expected verdict documented for {sorted(missing)}"


CASES = [(path, name) for path in SPECS for name in _verify_names(path)]


@pytest.mark.parametrize("path,name", CASES, ids=[f"{p.name}:{n}" for p, n in CASES])
def test_example_property_gets_its_documented_verdict(path, name):
    if not (EXAMPLES / "models" / "mlc_plain.onnx").exists():
        pytest.skip("example models are missing")
    for problem in verify_problems(specs.load(path), [name]):  # a data set: every element
        result = verify(problem, VerifyOptions(time_limit=300))
        assert result.verdict == _expected(path)[name], f"{problem.name}: {result.reason}"
        if result.verdict == NOT_ROBUST:  # an independent replay of the reported witness
            cex = result.counterexample
            _, logits = run_onnx(problem.onnx_paths, cex.input)
            assert problem.prop.boxes[0].contains(cex.input)
            assert not holds(problem.prop.condition, np.asarray(logits).reshape(1, -1))[0]
