"""Smooth activations anywhere in a graph: ONNX import (as PyTorch exports them), the numpy
interpreter and the PyTorch runtime against onnxruntime, and the errors for what robustc
cannot bound."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from robustc.compiler.onnx_import import load_onnx
from robustc.compiler.passes import standard_passes
from robustc.errors import ShapeError, UnsupportedOperator
from robustc.ir import Activation, OutputMap, compose, evaluate
from robustc.ir.dump import dump
from robustc.runtime.torch_module import to_torch
from tests.ir.onnx_cases import _n, model, w


def export(net: nn.Module, path, n_in: int, opset: int = 13) -> str:
    torch.manual_seed(0)
    net.eval()
    torch.onnx.export(net, (torch.zeros(1, n_in),), str(path), input_names=["x"],
                      output_names=["y"], opset_version=opset, dynamo=False)
    return str(path)


def smooth_net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 6), nn.Sigmoid(),
                         nn.Linear(6, 5), nn.ELU(0.5), nn.Linear(5, 5), nn.Softplus(),
                         nn.Linear(5, 3), nn.Sigmoid())


def onnxruntime_run(path: str, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


@pytest.mark.parametrize("opset", [13, 17])
def test_hidden_smooth_activations_match_onnxruntime(tmp_path, opset):
    path = export(smooth_net(), tmp_path / "smooth.onnx", 4, opset)
    graph = standard_passes().run(load_onnx(path))
    kinds = [n.kind for n in graph.nodes if isinstance(n, Activation)]
    assert kinds == ["tanh", "sigmoid", "elu", "softplus"]
    assert [n.alpha for n in graph.nodes if isinstance(n, Activation)][2] == 0.5
    assert isinstance(graph.output, OutputMap) and graph.output.kind == "sigmoid"
    x = np.random.default_rng(0).normal(size=(64, 1, 4)) * 3
    want = np.stack([onnxruntime_run(path, xi) for xi in x])
    np.testing.assert_allclose(evaluate(graph, x, batched=True), want, atol=2e-6)
    module = to_torch(graph, device="cpu")
    with torch.no_grad():
        got = module(torch.as_tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert "activation" in dump(graph) and "elu" in dump(graph)


def test_the_interpreter_check_can_fail(tmp_path):
    """The comparison notices a wrong activation (tanh read as sigmoid)."""
    path = export(smooth_net(), tmp_path / "smooth.onnx", 4)
    graph = load_onnx(path)
    wrong = graph.replace_nodes(
        Activation(n.name, n.inputs, n.shape, kind="sigmoid") if getattr(n, "kind", "") == "tanh"
        and isinstance(n, Activation) else n for n in graph.nodes)
    x = np.random.default_rng(1).normal(size=(16, 1, 4))
    want = np.stack([onnxruntime_run(path, xi) for xi in x])
    assert np.abs(evaluate(wrong, x, batched=True) - want).max() > 1e-3


def test_chain_of_hidden_maps_and_tanh_output_feeding_a_rescale(tmp_path):
    """Tanh -> Sigmoid -> Gemm (both hidden), and a generator's Tanh -> x 0.5 + 0.5."""
    m = model([_n("Tanh", ["x"], ["t"]), _n("Sigmoid", ["t"], ["s"]),
               _n("Gemm", ["s", "W"], ["g"]), _n("Tanh", ["g"], ["h"]),
               _n("Mul", ["h", "half"], ["m"]), _n("Add", ["m", "half"], ["y"])],
              {"x": [1, 4]}, [1, 3], {"W": w(4, 3), "half": np.array(0.5, np.float32)})
    path = tmp_path / "chain.onnx"
    onnx.save(m, str(path))
    graph = standard_passes().run(load_onnx(path))
    assert [n.kind for n in graph.nodes if isinstance(n, Activation)] == ["tanh", "sigmoid",
                                                                          "tanh"]
    x = np.random.default_rng(2).normal(size=(8, 1, 4))
    want = np.stack([onnxruntime_run(str(path), xi) for xi in x])
    np.testing.assert_allclose(evaluate(graph, x, batched=True), want, atol=2e-6)


def test_elu_with_alpha_above_one_and_hidden_softmax_are_named(tmp_path):
    m = model([_n("Elu", ["x"], ["e"], alpha=2.0), _n("Softmax", ["e"], ["s"]),
               _n("Gemm", ["s", "W"], ["y"])], {"x": [1, 4]}, [1, 3], {"W": w(4, 3)})
    path = tmp_path / "bad.onnx"
    onnx.save(m, str(path))
    with pytest.raises(UnsupportedOperator) as err:
        load_onnx(path)
    found = {(op, name) for op, name, _ in err.value.problems}
    assert ("Elu", "Elu_e") in found
    message = str(err.value)
    assert "alpha=2.0" in message and "convex" in message and "Elu_e" in message


@pytest.mark.parametrize("chain", [False, True])
def test_a_map_that_ends_the_graph_and_feeds_a_hidden_layer_is_named(tmp_path, chain):
    """The replay reads the tensor before trailing Sigmoid/Tanh nodes, so such a node may not
    also be a hidden activation (robustc's output and the replayed tensor would differ)."""
    nodes = [_n("Gemm", ["x", "W"], ["g"]), _n("Tanh", ["g"], ["t"])]
    nodes += [_n("Sigmoid", ["t"], ["y"])] if chain else [_n("Identity", ["t"], ["y"])]
    nodes += [_n("Gemm", ["t", "W2"], ["z"])]
    path = tmp_path / "both.onnx"
    onnx.save(model(nodes, {"x": [1, 4]}, [1, 3], {"W": w(4, 3), "W2": w(3, 2)}), str(path))
    with pytest.raises(UnsupportedOperator, match="Tanh_t.*ends the graph.*hidden layer"):
        load_onnx(path)


def test_hidden_softmax_is_named(tmp_path):
    m = model([_n("Softmax", ["x"], ["s"]), _n("Gemm", ["s", "W"], ["y"])],
              {"x": [1, 4]}, [1, 3], {"W": w(4, 3)})
    path = tmp_path / "softmax.onnx"
    onnx.save(m, str(path))
    with pytest.raises(UnsupportedOperator, match="Softmax_s.*softmax is supported only"):
        load_onnx(path)


def test_compose_accepts_a_sigmoid_or_tanh_generator(tmp_path):
    torch.manual_seed(3)
    gen = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 6), nn.Sigmoid())
    clf = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    g = load_onnx(export(gen, tmp_path / "g.onnx", 2))
    c = load_onnx(export(clf, tmp_path / "c.onnx", 6))
    both = compose(g, c)
    acts = [n for n in both.nodes if isinstance(n, Activation)]
    assert [a.kind for a in acts] == ["sigmoid"]
    z = np.random.default_rng(3).normal(size=(10, 1, 2))
    with torch.no_grad():
        want = clf(gen(torch.as_tensor(z[:, 0], dtype=torch.float32))).numpy()
    np.testing.assert_allclose(evaluate(both, z, batched=True)[:, 0], want, atol=2e-6)
    soft = load_onnx(export(nn.Sequential(nn.Linear(2, 6), nn.Softmax(-1)), tmp_path / "s.onnx",
                            2))
    with pytest.raises(ShapeError, match="softmax output map.*only sigmoid and tanh"):
        compose(soft, c)
