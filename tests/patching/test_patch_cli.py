"""``robustc patch``: patched networks written back to ONNX, checked on onnxruntime (an
oracle independent of the IR interpreter), and the command line's files and exit codes."""

from __future__ import annotations

import csv
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from robustc.analyses.patch.algorithms import solve_patch
from robustc.analyses.patch.problem import check_onnx, find_layer, write_patched_onnx
from robustc.cli import main
from robustc.compiler import load_onnx, standard_passes
from robustc.errors import ModelError
from robustc.ir.property import holds
from robustc.runtime.replay import run_onnx

from .test_patching import COND, W1, W2, W3, X


def toy_onnx(path, *, matmul_last: bool = False) -> str:
    """The AIGENT toy network as ONNX: Gemm(transB=1), Gemm(transB=0), Gemm or MatMul."""
    z = np.zeros(2, np.float32)
    inits = [numpy_helper.from_array(W1.astype(np.float32), "w1"),
             numpy_helper.from_array(W2.T.astype(np.float32).copy(), "w2t"),
             numpy_helper.from_array(W3.T.astype(np.float32).copy(), "w3t"),
             numpy_helper.from_array(z, "b1"), numpy_helper.from_array(z, "b2"),
             numpy_helper.from_array(z, "b3")]
    last = (helper.make_node("MatMul", ["r1", "w3t"], ["y"], name="out") if matmul_last else
            helper.make_node("Gemm", ["r1", "w3t", "b3"], ["y"], name="out"))
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h0"], name="l0", transB=1),
             helper.make_node("Relu", ["h0"], ["r0"]),
             helper.make_node("Gemm", ["r0", "w2t", "b2"], ["h1"], name="l1"),
             helper.make_node("Relu", ["h1"], ["r1"]), last]
    graph = helper.make_graph(nodes, "toy",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("matmul_last", [False, True])
@pytest.mark.parametrize("k", [0, 1, 2])
def test_patched_onnx_satisfies_condition_in_onnxruntime(tmp_path, k, matmul_last):
    path = toy_onnx(tmp_path / "toy.onnx", matmul_last=matmul_last)
    graph = standard_passes().run(load_onnx(path))
    x = X.reshape(1, 2)
    _, before = run_onnx((path,), x.astype(np.float32))
    assert not holds(COND, np.asarray(before, np.float64).reshape(1, -1))[0]
    res = solve_patch(graph, k, [x], COND, norm="l1", cap=10.0)
    assert res.found
    weight = np.asarray(graph.layers()[k].weight, np.float64)
    out = write_patched_onnx(path, weight, res, tmp_path / "patched.onnx")
    _, after = run_onnx((str(out),), x.astype(np.float32))
    assert holds(COND, np.asarray(after, np.float64).reshape(1, -1))[0]
    check_onnx(str(out), [x], COND)
    # only the patched layer's initializer changed
    old = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    new = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer}
    changed = [n for n in old if not np.array_equal(old[n], new[n])]
    assert changed == [["w1", "w2t", "w3t"][k]]


def test_unmappable_layer_is_a_clear_error(tmp_path):
    path = toy_onnx(tmp_path / "toy.onnx")
    with pytest.raises(ModelError, match="cannot map the patched layer"):
        find_layer(onnx.load(path), np.ones((2, 2)))


SPEC = """network toy = onnx("toy.onnx")
input x = npy("x.npy") reshape [1, 2]

patch flip on toy:
    layer {layer} such that y[1] - y[0] >= 0.1
    for x minimize l1
"""


def _spec(tmp_path, layer: int) -> str:
    toy_onnx(tmp_path / "toy.onnx")
    np.save(tmp_path / "x.npy", X.astype(np.float32))
    (tmp_path / "toy.rspec").write_text(SPEC.format(layer=layer))
    return str(tmp_path / "toy.rspec")


def test_cli_writes_onnx_table_and_report(tmp_path, capsys):
    spec = _spec(tmp_path, 2)
    out = tmp_path / "out"
    assert main(["patch", spec, "--output", str(out), "--json", "--timeout", "10"]) == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["found"] and data["replayed"] and data["changed"] > 0
    assert (out / "flip.json").exists() and json.loads((out / "flip.json").read_text()) == data
    rows = list(csv.DictReader((out / "flip_changes.csv").open()))
    assert len(rows) == data["changed"]
    for row in rows:
        assert float(row["new"]) - float(row["old"]) == pytest.approx(float(row["delta"]))
    _, y = run_onnx((str(out / "flip.onnx"),), X.reshape(1, 2).astype(np.float32))
    assert float(y.ravel()[1] - y.ravel()[0]) >= 0.1 - 1e-5


def test_cli_bad_layer_is_exit_2_without_traceback(tmp_path, capsys):
    spec = _spec(tmp_path, 7)
    assert main(["patch", spec, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "layer 7 out of range" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("relax", [None, "marks", "region"])
def test_cli_adversarial_input_is_replayed_and_written(tmp_path, capsys, relax):
    toy_onnx(tmp_path / "toy.onnx")
    np.save(tmp_path / "x.npy", X.astype(np.float32))
    text = SPEC.format(layer=2).replace("y[1] - y[0] >= 0.1", "argmax == 1")
    option = "" if relax is None else f', relax="{relax}"'
    text += f"    then adversarial(pixels=2, delta=0.5{option})\n"
    (tmp_path / "toy.rspec").write_text(text)
    out = tmp_path / "out"
    assert main(["patch", str(tmp_path / "toy.rspec"), "-o", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["adversarial"]["options"]["relax"] == (relax or "marks")
    assert data["adversarial"]["inputs"][0]["found"]
    x_adv = np.load(out / "flip_adv.npy")[0]
    assert np.all(np.abs(x_adv - X.reshape(1, 2)) <= 0.5 + 1e-6)
    _, y = run_onnx((str(tmp_path / "toy.onnx"),), x_adv.astype(np.float32))
    assert int(np.argmax(y)) == 1
    assert (out / "flip_adv_0.png").exists()


def test_relax_must_be_a_known_word(tmp_path, capsys):
    toy_onnx(tmp_path / "toy.onnx")
    np.save(tmp_path / "x.npy", X.astype(np.float32))
    text = SPEC.format(layer=2) + '    then adversarial(pixels=2, relax="bogus")\n'
    (tmp_path / "toy.rspec").write_text(text)
    assert main(["patch", str(tmp_path / "toy.rspec"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert 'relax must be one of "marks", "region"' in err and "toy.rspec:" in err
    assert "Traceback" not in err
