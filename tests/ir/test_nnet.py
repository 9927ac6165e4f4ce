"""NNet reading and ONNX export (robustc.compiler.nnet).

Oracles: the MNIST test labels (Marabou's MNIST networks must classify ERAN's 100 MNIST
test images about as well as trained networks do, which a transposed or shifted layer
would not), onnxruntime against a float64 forward pass written here from the file's own
numbers, and hand-written files for the normalisation and the errors.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from robustc.compiler import load_onnx
from robustc.compiler.nnet import nnet_to_onnx, read_nnet
from robustc.errors import ModelError
from robustc.ir import evaluate
from tests.conftest import shared_benchmarks

TINY = """// a 2-3-2 network
2,2,2,3,
2,3,2,
0,
-1.0,0.0,
1.0,2.0,
0.5,1.0,2.0,
2.0,4.0,3.0,
1.0,-1.0,
0.5,2.0,
-1.0,0.0,
0.1,
0.0,
-0.2,
1.0,1.0,-1.0,
0.0,2.0,1.0,
0.3,
-0.4,
"""


def _run(model, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString())
    return sess.run(None, {"x": x.astype(np.float32)})[0]


def test_tiny_network_by_hand(tmp_path):
    path = tmp_path / "tiny.nnet"
    path.write_text(TINY)
    net = read_nnet(path)
    assert [w.shape for w in net.weights] == [(3, 2), (2, 3)]
    np.testing.assert_array_equal(net.input_min, [-1.0, 0.0])
    x = np.array([[0.3, 1.5]])
    # By hand: normalise, hidden ReLU layer, output layer, de-normalise (mean 2, range 3).
    u = (x[0] - [0.5, 1.0]) / [2.0, 4.0]
    h = np.maximum(np.array([[1, -1], [0.5, 2], [-1, 0]]) @ u + [0.1, 0.0, -0.2], 0)
    y = (np.array([[1, 1, -1], [0, 2, 1]]) @ h + [0.3, -0.4]) * 3.0 + 2.0
    np.testing.assert_allclose(net.forward(x)[0], y, rtol=1e-12)
    model = nnet_to_onnx(net)
    np.testing.assert_allclose(_run(model, x)[0], y, rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(0)
    xs = rng.uniform([-1, 0], [1, 2], (200, 2))
    got = np.concatenate([_run(model, v[None]) for v in xs])
    np.testing.assert_allclose(got, net.forward(xs), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("change, where", [
    (lambda t: t.replace("2,3,2,", "3,3,2,"), "layer sizes"),
    (lambda t: t.replace("0.5,2.0,\n", "0.5,x,\n"), "layer 1 weights"),
    (lambda t: t.rsplit("0.3,", 1)[0], "the file ends"),
    (lambda t: t + "1.0,\n", "unexpected data"),
])
def test_malformed_files_name_the_place(tmp_path, change, where):
    path = tmp_path / "bad.nnet"
    path.write_text(change(TINY))
    with pytest.raises(ModelError, match=where) as info:
        read_nnet(path)
    assert "bad.nnet" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        read_nnet(tmp_path / "absent.nnet")


def _mnist():
    root = shared_benchmarks()
    data = np.loadtxt(root / "eran" / "data" / "mnist_test.csv", delimiter=",")
    return root / "marabou" / "resources" / "nnet" / "mnist", data[:, 1:] / 255.0, \
        data[:, 0].astype(int)


@pytest.mark.parametrize("name", ["mnist10x10", "mnist20x40"])
def test_marabou_mnist_networks_classify_mnist(tmp_path, name):
    folder, xs, labels = _mnist()
    net = read_nnet(folder / f"{name}.nnet")
    model = nnet_to_onnx(net, (1, 1, 28, 28))
    out = np.concatenate([_run(model, x.reshape(1, 1, 28, 28)) for x in xs])
    assert (out.argmax(axis=1) == labels).mean() >= 0.95
    np.testing.assert_allclose(out, net.forward(xs), rtol=1e-4, atol=1e-4)
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    graph = load_onnx(str(path))  # robustc's own import of the export
    ir = evaluate(graph, xs[:10].reshape(10, 1, 1, 28, 28), batched=True).reshape(10, -1)
    np.testing.assert_allclose(ir, out[:10], rtol=1e-4, atol=1e-4)
