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


#: Specs whose whole ``robustc verify SPEC`` run is also a sample of README.md or docs/:
#: their properties are checked on that one run (the ``verify_cli_run`` fixture), not again.
SAMPLED = {"dd64_verify.rspec", "double_digits_verify.rspec"}


@pytest.mark.parametrize("path,name", CASES, ids=[f"{p.name}:{n}" for p, n in CASES])
def test_example_property_gets_its_documented_verdict(path, name, verify_cli_run):
    if not (EXAMPLES / "models" / "mlc_plain.onnx").exists():
        pytest.skip("example models are missing")
    if path.name in SAMPLED:
        _, records = verify_cli_run(str(path.relative_to(EXAMPLES.parent)))
        results = {r["name"]: r["result"] for r in records}
    for problem in verify_problems(specs.load(path), [name]):  # a data set: every element
        if path.name in SAMPLED:
            result = results[problem.name]
            verdict, reason = result["verdict"], result["reason"]
            cex = result.get("counterexample")
            cex_input = np.asarray(cex["input"]) if cex else None
        else:
            result = verify(problem, VerifyOptions(time_limit=300))
            verdict, reason = result.verdict, result.reason
            cex_input = result.counterexample.input if result.counterexample else None
        assert verdict == _expected(path)[name], f"{problem.name}: {reason}"
        if verdict == NOT_ROBUST:  # an independent replay of the reported witness
            cex_input = cex_input.astype(problem.prop.boxes[0].lower.dtype)
            _, logits = run_onnx(problem.onnx_paths, cex_input)
            assert problem.prop.boxes[0].contains(cex_input)
            assert not holds(problem.prop.condition, np.asarray(logits).reshape(1, -1))[0]
