"""The alpha-CROWN step before the MILPs (robustc.verify.alpha) against the MILP verdict.

On small CNNs with MaxPool (which the ReLU split does not take) the pipeline with and
without the step must give the same verdicts; the step must prove cases without a solver
somewhere, and it must never refute a case that has a counterexample.
"""

from __future__ import annotations

import numpy as np

from robustc.ir import evaluate
from robustc.ir.property import Box, Property, output_gt
from robustc.verify import NOT_ROBUST, ROBUST, Problem, VerifyOptions, verify
from tests.verify.nets import conv_onnx, save_and_load


def _problems(tmp_path, seed: int):
    rng = np.random.default_rng(seed)
    path = tmp_path / f"net{seed}.onnx"
    graph = save_and_load(conv_onnx(rng, hw=(6, 6), channels=(1, 3, 4), classes=4), path)
    x = rng.uniform(0, 1, graph.input.shape)
    y = evaluate(graph, x).ravel()
    top = int(np.argmax(y))
    for eps in (0.005, 0.05, 0.3):
        for other in range(y.size):
            if other != top:
                prop = Property("p", (Box(x - eps, x + eps),), output_gt(y.size, top, other))
                yield Problem(f"s{seed}e{eps}o{other}", graph, (str(path),), prop)


def test_same_verdicts_as_the_milp_and_proofs_without_a_solver(tmp_path):
    by_bounds = found = 0
    for seed in range(4):
        for problem in _problems(tmp_path, seed):
            base = dict(attack=False, threads=1, relu_split=None)
            milp = verify(problem, VerifyOptions(alpha_steps=0, **base))
            step = verify(problem, VerifyOptions(alpha_steps=20, **base))
            assert milp.verdict in (ROBUST, NOT_ROBUST), (problem.name, milp.reason)
            assert step.verdict == milp.verdict, (problem.name, step.reason, milp.reason)
            if step.stats.get("alpha_refuted"):
                assert step.stats["queries"] < milp.stats["queries"] or milp.stats["queries"] == 0
                by_bounds += step.verdict == ROBUST and step.stats["queries"] == 0
            found += milp.verdict == NOT_ROBUST
    assert by_bounds > 0 and found > 0  # both kinds of case were met
