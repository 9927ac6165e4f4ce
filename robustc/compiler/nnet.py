"""NNet networks (the Reluplex/Marabou text format) read and written out as ONNX.

An ``.nnet`` file holds a fully connected ReLU network: ``//`` comment lines, then the
number of layers, input size, output size and largest layer size; the layer sizes; a
(legacy, unused) symmetry flag; the inputs' minima and maxima; the means and ranges of the
inputs (one more value each for the outputs); then per layer its weight rows and its
biases, one value or row per line. Hidden layers have ReLUs, the output layer none.

The network computes ``y = N((x - mean) / range) * range_out + mean_out``. The minima and
maxima are the domain the network was trained on (Marabou uses them as input bounds);
they are kept as :attr:`NNet.input_min` / :attr:`NNet.input_max`, not applied as a clip.
:func:`nnet_to_onnx` folds the normalisation into the first and last Gemm so the ONNX
model computes exactly ``y`` (replay with onnxruntime needs no other step).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustc.errors import ModelError


@dataclass
class NNet:
    """The layers (``weights[k]``: ``(out, in)``), normalisation and input domain."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    input_min: np.ndarray
    input_max: np.ndarray
    input_mean: np.ndarray
    input_range: np.ndarray
    output_mean: float
    output_range: float

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs ``(N, m)`` on inputs ``(N, n)`` (float64), normalisation included."""
        a = (np.asarray(x, dtype=np.float64) - self.input_mean) / self.input_range
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            a = a @ w.T + b
            if k < len(self.weights) - 1:
                a = np.maximum(a, 0.0)
        return a * self.output_range + self.output_mean


def read_nnet(path: str | Path) -> NNet:
    """Parse an ``.nnet`` file; raises ``ModelError`` naming the file and line on bad input."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the NNet file ({exc.strerror})") from None
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines())
             if line.strip() and not line.lstrip().startswith("//")]
    pos = 0

    def row(count: int | None = None, what: str = "values") -> np.ndarray:
        nonlocal pos
        if pos >= len(lines):
            raise ModelError(f"{path}: the file ends before the {what}")
        number, line = lines[pos]
        pos += 1
        try:
            values = np.array([float(v) for v in line.split(",") if v.strip()])
        except ValueError:
            raise ModelError(f"{path}:{number}: {what}: not a comma-separated list of numbers"
                          ) from None
        if count is not None and values.size != count:
            raise ModelError(f"{path}:{number}: {what}: {values.size} values, expected {count}")
        return values

    head = row(4, "header (layers, inputs, outputs, largest layer)").astype(int)
    layers, n_in, n_out = int(head[0]), int(head[1]), int(head[2])
    if layers < 1 or n_in < 1 or n_out < 1:
        raise ModelError(f"{path}:{lines[0][0]}: header: sizes must be positive")
    sizes = row(layers + 1, "layer sizes").astype(int)
    if sizes[0] != n_in or sizes[-1] != n_out or (sizes < 1).any():
        raise ModelError(f"{path}:{lines[1][0]}: layer sizes {sizes.tolist()} do not match "
                      f"{n_in} inputs and {n_out} outputs")
    row(None, "symmetry flag")
    lo, hi = row(n_in, "input minima"), row(n_in, "input maxima")
    mean, rng = row(n_in + 1, "means"), row(n_in + 1, "ranges")
    if (rng == 0).any():
        raise ModelError(f"{path}: a range is 0 (the normalisation divides by it)")
    weights, biases = [], []
    for k in range(layers):
        weights.append(np.stack([row(sizes[k], f"layer {k + 1} weights")
                                 for _ in range(sizes[k + 1])]))
        biases.append(np.concatenate([row(1, f"layer {k + 1} biases")
                                      for _ in range(sizes[k + 1])]))
    if pos != len(lines):
        raise ModelError(f"{path}:{lines[pos][0]}: unexpected data after the last layer")
    return NNet(weights, biases, lo, hi, mean[:-1], rng[:-1], float(mean[-1]), float(rng[-1]))


def nnet_to_onnx(net: NNet, input_shape: tuple[int, ...] | None = None):
    """``net`` as an ONNX model (Gemm and Relu nodes, float32), normalisation folded in.

    ``input_shape`` (default ``(1, n)``) is the model's input shape; it is flattened before
    the first Gemm, so ``(1, 1, 28, 28)`` gives an image-shaped MNIST network.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = net.weights[0].shape[1]
    shape = list(input_shape or (1, n))
    if int(np.prod(shape)) != n:
        raise ModelError(f"input shape {shape} has {int(np.prod(shape))} values, the network "
                      f"takes {n}")
    weights = [w.copy() for w in net.weights]
    biases = [b.copy() for b in net.biases]
    biases[0] = biases[0] - weights[0] @ (net.input_mean / net.input_range)
    weights[0] = weights[0] / net.input_range
    weights[-1], biases[-1] = weights[-1] * net.output_range, \
        biases[-1] * net.output_range + net.output_mean
    nodes, inits, prev = [], [], "x"
    if len(shape) != 2:
        inits.append(numpy_helper.from_array(np.array([1, n], dtype=np.int64), "flat"))
        nodes.append(helper.make_node("Reshape", ["x", "flat"], ["x_flat"]))
        prev = "x_flat"
    for k, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"W{k}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{k}")]
        out = "y" if k == len(weights) - 1 else f"z{k}"
        nodes.append(helper.make_node("Gemm", [prev, f"W{k}", f"b{k}"], [out], transB=1))
        prev = out
        if k < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"a{k}"]))
            prev = f"a{k}"
    graph = helper.make_graph(
        nodes, "nnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, weights[-1].shape[0]])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


__all__ = ["NNet", "read_nnet", "nnet_to_onnx"]
