"""A top-k counterexample is described by the top-k label sets before and after, and the
set named after is the replayed output's top k."""

from __future__ import annotations

import numpy as np
import pytest

from robustc import specs
from robustc.cli.verify import describe
from robustc.compiler.spec_lower import verify_problems
from robustc.verify import NOT_ROBUST, VerifyOptions, verify
from tests.conftest import EXAMPLES


def test_top2_counterexample_names_both_label_sets():
    if not (EXAMPLES / "models" / "dd64_plain.onnx").exists():
        pytest.skip("example models are missing")
    (problem,) = verify_problems(specs.load(EXAMPLES / "dd64_verify.rspec"), ["keep_zero"])
    result = verify(problem, VerifyOptions(time_limit=120, threads=1))
    assert result.verdict == NOT_ROBUST
    y = np.asarray(result.counterexample.logits).ravel()
    after = sorted(str(i) for i in np.argsort(-y)[:2])
    assert "0" not in after  # the property was present("0")
    words = describe(problem, result)
    assert f"top 2 labels ['0', '2'] become {after}" in words
