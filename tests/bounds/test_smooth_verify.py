"""``verify`` on networks with a hidden Tanh: ``robust`` when the bounds suffice, ``not
robust`` with a counterexample replayed on onnxruntime, ``unknown`` with the reason (naming
the activation) when the relaxation is too loose; the graph branch and bound splits the
ReLUs and bounds the activation; the MILP encoding and Z3 refuse it by name."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from robustc.backends.milp.encode import encode
from robustc.cli.common import EXIT_OK, EXIT_UNKNOWN
from robustc.compiler.bounds import compute_bounds
from robustc.compiler.onnx_import import load_onnx
from robustc.errors import UnsupportedOperator
from robustc.ir.property import Box, Property, in_top_k, output_gt
from robustc.runtime.replay import run_onnx
from robustc.verify import ERROR, NOT_ROBUST, ROBUST, UNKNOWN, Problem, VerifyOptions, verify
from robustc.verify.relu_split.options import ReluSplitOptions


def onnx_net(nodes, inits: dict, n_in: int, n_out: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "smooth",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k)
                     for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def gemm(a, w, b, out):
    return helper.make_node("Gemm", [a, w, b], [out], name=f"gemm_{out}", transB=1)


@pytest.fixture()
def tanh_net(tmp_path):
    """2 -> 8 -> Tanh (node 'hidden_tanh') -> 2."""
    rng = np.random.default_rng(5)
    m = onnx_net([gemm("x", "W1", "b1", "h"),
                  helper.make_node("Tanh", ["h"], ["t"], name="hidden_tanh"),
                  gemm("t", "W2", "b2", "y")],
                 {"W1": rng.normal(size=(8, 2)), "b1": rng.normal(size=8) * 0.3,
                  "W2": rng.normal(size=(2, 8)), "b2": rng.normal(size=2) * 0.3}, 2, 2)
    path = tmp_path / "tanh.onnx"
    onnx.save(m, str(path))
    return load_onnx(path), path


@pytest.fixture()
def loose_net(tmp_path):
    """y0 = tanh(x) - tanh(x) + relu(x) + relu(-x) + 0.05 through separate neurons (two
    tanh, two ReLU), y1 = 0: y0 >= 0.05 > y1 everywhere, but the relaxations of the two
    tanh neurons do not cancel, so no bound proves it on [-2, 2] and no attack refutes it."""
    m = onnx_net([gemm("x", "W1", "b1", "h"),
                  helper.make_node("Tanh", ["h"], ["t"], name="twin_tanh"),
                  gemm("x", "W3", "b3", "g"),
                  helper.make_node("Relu", ["g"], ["r"], name="relu"),
                  helper.make_node("Concat", ["t", "r"], ["c"], name="cat", axis=1),
                  gemm("c", "W2", "b2", "y")],
                 {"W1": [[1.0], [1.0]], "b1": [0.0, 0.0], "W3": [[1.0], [-1.0]],
                  "b3": [0.0, 0.0], "W2": [[1.0, -1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]],
                  "b2": [0.05, 0.0]}, 1, 2)
    path = tmp_path / "loose.onnx"
    onnx.save(m, str(path))
    return load_onnx(path), path


def problem(graph, path, lo, hi, cond, name="p"):
    box = Box(np.asarray(lo, float).reshape(graph.input.shape),
              np.asarray(hi, float).reshape(graph.input.shape))
    return Problem(name, graph, (str(path),), Property(name, (box,), cond))


def top_class(path, x) -> int:
    return int(np.argmax(run_onnx((str(path),), np.asarray(x, np.float32)[None])[1]))


def test_robust_by_the_bounds_alone(tanh_net):
    graph, path = tanh_net
    x0 = np.array([0.3, -0.2])
    label = top_class(path, x0)
    res = verify(problem(graph, path, x0 - 1e-3, x0 + 1e-3, in_top_k(2, label, 1)),
                 VerifyOptions(attack=False))
    assert res.verdict == ROBUST, res.reason
    assert res.stats["queries"] == 0  # no solver was asked
    xs = np.random.default_rng(0).uniform(x0 - 1e-3, x0 + 1e-3, size=(500, 2))
    assert all(top_class(path, x) == label for x in xs)


def test_not_robust_found_by_the_attack_and_replayed(tanh_net):
    graph, path = tanh_net
    x0 = np.array([0.3, -0.2])
    label = top_class(path, x0)
    res = verify(problem(graph, path, x0 - 3.0, x0 + 3.0, in_top_k(2, label, 1)),
                 VerifyOptions(seed=0))
    assert res.verdict == NOT_ROBUST, res.reason
    cex = res.counterexample.input.reshape(-1)
    assert np.all(cex >= x0 - 3.0 - 1e-6) and np.all(cex <= x0 + 3.0 + 1e-6)
    assert top_class(path, cex) != label  # onnxruntime, independently


def test_unknown_with_the_reason_when_the_relaxation_is_too_loose(loose_net):
    graph, path = loose_net
    cond = output_gt(2, 0, 1)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = np.concatenate([sess.run(None, {"x": np.float32([[x]])})[0]
                        for x in np.linspace(-2, 2, 2001)])
    assert np.all(y[:, 0] > y[:, 1])  # the property holds: no verdict may say otherwise
    for solver in ("highs", "z3"):
        res = verify(problem(graph, path, [-2.0], [2.0], cond), VerifyOptions(solver=solver))
        assert res.verdict == UNKNOWN, (solver, res.verdict, res.reason)
        assert "twin_tanh" in res.reason and "tanh" in res.reason
    b = compute_bounds(graph, np.array([[-2.0]]), np.array([[2.0]]), "symbolic")
    assert b.lower[graph.output.name].ravel()[0] < 0.0 < 0.05  # the bounds really are loose


def test_graph_branch_and_bound_splits_relus_and_bounds_the_tanh(loose_net):
    graph, path = loose_net
    cond = output_gt(2, 0, 1)
    opts = VerifyOptions(strategy="relu-split", relu_split=ReluSplitOptions(min_unstable=0))
    res = verify(problem(graph, path, [-2.0], [2.0], cond), opts)
    assert res.verdict == UNKNOWN, (res.verdict, res.reason)
    # a tiny box is proved by the same search (the two tanh lines nearly coincide)
    res = verify(problem(graph, path, [0.5], [0.5001], cond), opts)
    assert res.verdict == ROBUST, res.reason


def test_input_split_bisects_until_the_relaxation_is_tight_enough(loose_net, tanh_net):
    """The input split never hands a part with a smooth activation to the MILP: it bisects
    and proves the loose network on [-2, 2] (the property holds: see above); on the tanh
    network it finds the counterexample of a wide box (replayed)."""
    graph, path = loose_net
    opts = VerifyOptions(strategy="input-split")
    res = verify(problem(graph, path, [-2.0], [2.0], output_gt(2, 0, 1)), opts)
    assert res.verdict == ROBUST and res.stats["split_exact"] == 0, res.reason
    assert res.stats["split_parts"] > 1
    graph, path = tanh_net
    x0 = np.array([0.3, -0.2])
    label = top_class(path, x0)
    res = verify(problem(graph, path, x0 - 3.0, x0 + 3.0, in_top_k(2, label, 1)), opts)
    assert res.verdict == NOT_ROBUST
    assert top_class(path, res.counterexample.input.reshape(-1)) != label


def test_milp_encoding_and_z3_exact_refuse_the_activation_by_name(tanh_net):
    graph, path = tanh_net
    lo, hi = np.array([[-1.0, -1.0]]), np.array([[1.0, 1.0]])
    b = compute_bounds(graph, lo, hi)
    cond = output_gt(2, 0, 1)
    with pytest.raises(UnsupportedOperator, match="hidden_tanh.*piecewise-linear"):
        encode(graph, b.lower, b.upper, Box(lo, hi), [], objective=None)
    res = verify(problem(graph, path, lo, hi, cond), VerifyOptions(exact=True, attack=False))
    assert res.verdict == ERROR and "hidden_tanh" in res.reason and "Z3" in res.reason


@pytest.mark.slow  # two robustc processes (about 18 s on 2 shared cores)
def test_cli_on_a_vnnlib_property(loose_net, tmp_path):
    """``robustc verify prop.vnnlib --network net.onnx``: unknown (its exit code) with the
    reason on [-2, 2], robust (exit 0) on a tiny box."""
    _, path = loose_net
    for lo, hi, verdict, code in ((-2.0, 2.0, UNKNOWN, EXIT_UNKNOWN),
                                  (0.5, 0.5001, ROBUST, EXIT_OK)):
        spec = tmp_path / "p.vnnlib"
        spec.write_text(f"(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
                        f"(declare-const Y_1 Real)\n(assert (>= X_0 {lo}))\n"
                        f"(assert (<= X_0 {hi}))\n(assert (>= Y_1 Y_0))\n")
        out = subprocess.run(
            [sys.executable, "-c", "import sys; from robustc.cli.main import main; "
             "sys.exit(main())", "verify", str(spec), "--network", str(path), "--json",
             "--timeout", "60"], capture_output=True, text=True, timeout=300)
        line = json.loads(out.stdout.strip().splitlines()[-1])
        assert line["verdict"] == verdict, out.stdout
        assert out.returncode == code and "Traceback" not in out.stderr
        if verdict == UNKNOWN:
            assert "twin_tanh" in line["reason"]
