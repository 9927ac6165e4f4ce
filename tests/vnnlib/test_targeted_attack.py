"""The PGD falsifier on VNN-COMP instances whose counterexamples earlier attacks missed.

MNIST-FC 2022 256x4 prop_6 at eps 0.05: only complete verifiers found a counterexample in
VNN-COMP 2022; the targeted starts find one, untargeted descent with the same budget does
not. 256x4 prop_8 at eps 0.05: the ground truth's independent PGD found one; a constant
step of ``2.5 * radius / steps`` stayed at margin +0.04, the cosine-decayed step finds it."""

from __future__ import annotations

from robustc.compiler.vnnlib import vnnlib_problems
from robustc.runtime.falsify import pgd_falsify
from robustc.runtime.replay import replay
from tests.conftest import shared_benchmarks

MNIST = "vnncomp2022_benchmarks/benchmarks/mnist_fc"


def _problem(net: str, prop: str):
    base = shared_benchmarks() / MNIST
    (problem,) = list(vnnlib_problems(base / f"vnnlib/{prop}.vnnlib",
                                      base / f"onnx/mnist-net_{net}.onnx"))
    return problem


def test_targeted_starts_find_what_untargeted_descent_misses():
    problem = _problem("256x4", "prop_6_0.05")
    box, cond = problem.prop.boxes[0], problem.prop.condition
    x, m = pgd_falsify(problem.graph, box, cond, seed=0, device="cpu", targeted=True,
                       start=(box.lower + box.upper) / 2)
    assert m < 0
    rep = replay(problem.onnx_paths, x, box, cond)      # onnxruntime, float32
    assert rep.violated and box.contains(rep.input)
    # the same budget without the targeted starts stays on the robust side
    _, m_plain = pgd_falsify(problem.graph, box, cond, seed=0, device="cpu",
                             start=(box.lower + box.upper) / 2)
    assert m_plain > 0 > m


def test_decaying_step_finds_the_ground_truth_attack_counterexample():
    problem = _problem("256x4", "prop_8_0.05")
    box, cond = problem.prop.boxes[0], problem.prop.condition
    x, m = pgd_falsify(problem.graph, box, cond, seed=0, device="cpu", targeted=True,
                       start=(box.lower + box.upper) / 2)
    rep = replay(problem.onnx_paths, x, box, cond)
    assert m < 0 and rep.violated and box.contains(rep.input)
