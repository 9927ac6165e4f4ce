"""The targeted starts of the PGD falsifier, on a VNN-COMP instance whose counterexample
untargeted descent misses (MNIST-FC 2022, 256x2, prop_4 at eps 0.05; the ground truth's
counterexample was found by an independent targeted PGD)."""

from __future__ import annotations

from robustc.runtime.falsify import pgd_falsify
from robustc.runtime.replay import replay
from robustc.vnnlib_cli import vnnlib_problems
from tests.conftest import shared_benchmarks

MNIST = "vnncomp2022_benchmarks/benchmarks/mnist_fc"


def test_targeted_starts_find_what_untargeted_descent_misses():
    base = shared_benchmarks() / MNIST
    (problem,) = list(vnnlib_problems(base / "vnnlib/prop_4_0.05.vnnlib",
                                      base / "onnx/mnist-net_256x2.onnx"))
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
