"""Differential soundness suite: HiGHS, Gurobi, Z3 (MILP and exact) and sampling + PGD.

One test per random case (see ``cases.py`` for what is drawn, ``oracles.py`` for the
oracles and what counts as a disagreement). The number of cases is ``--cases N`` on the
pytest command line (default 300), or the ``ROBUSTC_DIFF_CASES`` environment variable;
``--cases-start S`` (``ROBUSTC_DIFF_START``) shifts the seeds for long runs. A failing case
is saved (network.onnx, property.pkl/.npz, case.json with the reproduction command) under
``tmp_path``, whose path the failure message prints.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from robustc.ir import evaluate
from robustc.runtime.replay import run_onnx
from tests.differential.cases import export_onnx, random_case
from tests.differential.oracles import disagreement, run_case, save_case

DEFAULT_CASES = 300


def _option(config, name: str, env: str, default: int) -> int:
    value = config.getoption(name, default=None)
    return int(value if value is not None else os.environ.get(env, default))


def pytest_generate_tests(metafunc):
    if "diff_seed" in metafunc.fixturenames:
        n = _option(metafunc.config, "--cases", "ROBUSTC_DIFF_CASES", DEFAULT_CASES)
        start = _option(metafunc.config, "--cases-start", "ROBUSTC_DIFF_START", 0)
        metafunc.parametrize("diff_seed", range(start, start + n))


@pytest.mark.parametrize("seed", range(12))
def test_onnx_export_matches_the_interpreter(seed, tmp_path):
    """The replay oracle is only as good as the export: onnxruntime vs evaluate()."""
    case = random_case(seed)
    path = export_onnx(case.graph, tmp_path / "net.onnx")
    rng = np.random.default_rng(seed)
    for _ in range(5):
        x = rng.uniform(-2, 2, case.graph.input.shape).astype(np.float32)
        _, logits = run_onnx((str(path),), x)
        expected = evaluate(case.graph, x.astype(np.float64))
        np.testing.assert_allclose(logits.ravel(), expected.ravel(), rtol=1e-5, atol=1e-5)


def test_differential(diff_seed, tmp_path):
    """Every oracle's definite verdict agrees; no oracle reports an error."""
    case = random_case(diff_seed)
    verdicts = run_case(case, tmp_path)
    why = disagreement(verdicts)
    if why:
        saved = save_case(case, verdicts, why, tmp_path / "failed")
        pytest.fail(f"case {diff_seed} ({case.family}, {case.input_set}, "
                    f"{case.condition_kind}): {why}: {verdicts}; saved under {saved}")
