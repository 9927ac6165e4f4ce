"""Small ONNX models, one per lowering case, built with onnx.helper (no files in the repo)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)


def model(nodes, inputs, output_shape, inits=(), opset=13, out_name="y"):
    """An ONNX model from nodes; ``inputs`` maps name -> shape, ``inits`` name -> array."""
    graph = helper.make_graph(
        nodes, "case",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, output_shape)],
        initializer=[numpy_helper.from_array(np.asarray(v), n) for n, v in dict(inits).items()],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    if output_shape is not None:
        onnx.checker.check_model(m)
    return m


def w(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def ints(*values):
    return np.array(values, dtype=np.int64)


def _n(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, name=f"{op}_{outs[0]}", **attrs)


def cases():
    """(id, ModelProto) pairs covering every supported lowering."""
    c = {}
    c["gemm_transB"] = model([_n("Gemm", ["x", "W", "b"], ["y"], transB=1, alpha=0.5,
                                  beta=2.0)], {"x": [1, 6]}, [1, 4],
                             {"W": w(4, 6), "b": w(4)})
    c["gemm_rowC"] = model([_n("Gemm", ["x", "W", "b"], ["y"])], {"x": [1, 6]}, [1, 3],
                           {"W": w(6, 3), "b": w(1, 3)}, opset=9)
    c["matmul_right_1d"] = model([_n("MatMul", ["x", "W"], ["y"])], {"x": [5]}, [3],
                                 {"W": w(5, 3)})
    c["matmul_left"] = model([_n("MatMul", ["W", "x"], ["y"])], {"x": [1, 4, 3]}, [1, 5, 3],
                             {"W": w(5, 4)})
    c["conv_full"] = model([_n("Conv", ["x", "W", "b"], ["y"], strides=[2, 1],
                               pads=[1, 0, 2, 1], dilations=[1, 2], group=2)],
                           {"x": [1, 4, 9, 8]}, None, {"W": w(6, 2, 3, 2), "b": w(6)})
    c["conv_same"] = model([_n("Conv", ["x", "W"], ["y"], auto_pad="SAME_UPPER",
                               strides=[2, 2])], {"x": [1, 2, 7, 6]}, None,
                           {"W": w(3, 2, 4, 3)}, opset=11)
    c["conv_1d"] = model([_n("Conv", ["x", "W", "b"], ["y"], pads=[1, 1], strides=[2])],
                         {"x": [1, 3, 10]}, None, {"W": w(4, 3, 3), "b": w(4)})
    c["relu_leaky_clip11"] = model([
        _n("Relu", ["x"], ["r"]), _n("LeakyRelu", ["x"], ["l"], alpha=0.2),
        _n("Add", ["r", "l"], ["s"]), _n("Clip", ["s", "lo", "hi"], ["y"])],
        {"x": [1, 8]}, [1, 8], {"lo": np.float32(-0.3), "hi": np.float32(0.7)}, opset=11)
    c["clip9_attrs"] = model([_n("Clip", ["x"], ["y"], min=-0.5)], {"x": [1, 8]}, [1, 8],
                             opset=9)
    c["clip_hi_only"] = model([_n("Clip", ["x", "", "hi"], ["y"])], {"x": [1, 8]}, [1, 8],
                              {"hi": np.float32(0.25)}, opset=13)
    c["maxpool_pads"] = model([_n("MaxPool", ["x"], ["y"], kernel_shape=[3, 2],
                                  strides=[2, 2], pads=[1, 0, 1, 1])],
                              {"x": [1, 3, 8, 7]}, None)
    c["maxpool_ceil_harmless"] = model([_n("MaxPool", ["x"], ["y"], kernel_shape=[2, 2],
                                           strides=[2, 2], ceil_mode=1)],
                                       {"x": [1, 2, 8, 6]}, None)
    c["relu_then_maxpool"] = model([
        _n("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]), _n("Relu", ["c"], ["r"]),
        _n("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        {"x": [1, 2, 7, 7]}, None, {"W": w(3, 2, 3, 3)})
    c["maxpool_1d"] = model([_n("MaxPool", ["x"], ["y"], kernel_shape=[3], strides=[2])],
                            {"x": [1, 2, 9]}, None)
    c["avgpool_excl"] = model([_n("AveragePool", ["x"], ["y"], kernel_shape=[3, 3],
                                  strides=[2, 2], pads=[1, 1, 1, 1])],
                              {"x": [1, 2, 7, 7]}, None)
    c["avgpool_incl"] = model([_n("AveragePool", ["x"], ["y"], kernel_shape=[2, 3],
                                  pads=[0, 1, 1, 0], count_include_pad=1)],
                              {"x": [1, 2, 6, 6]}, None)
    c["global_avg"] = model([_n("GlobalAveragePool", ["x"], ["y"])], {"x": [1, 3, 5, 4]}, None)
    c["bn_dropout_identity"] = model([
        _n("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
        _n("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], epsilon=1e-3),
        _n("Dropout", ["n"], ["d"]), _n("Identity", ["d"], ["y"])],
        {"x": [1, 2, 5, 5]}, None,
        {"W": w(3, 2, 3, 3), "s": w(3), "bb": w(3), "m": w(3),
         "v": np.abs(w(3)) + 0.1}, opset=13)
    c["normalise_flatten_gemm"] = model([
        _n("Sub", ["x", "mean"], ["a"]), _n("Div", ["a", "std"], ["b"]),
        _n("Flatten", ["b"], ["f"]), _n("Gemm", ["f", "W", "c"], ["y"], transB=1)],
        {"x": [1, 2, 3, 3]}, [1, 4],
        {"mean": w(1, 2, 1, 1), "std": np.abs(w(1, 2, 1, 1)) + 0.5, "W": w(4, 18), "c": w(4)})
    c["dynamic_reshape_chain"] = model([
        _n("Shape", ["x"], ["sh"]), _n("Gather", ["sh", "zero"], ["n"], axis=0),
        _n("Unsqueeze", ["n", "ax"], ["n1"]), _n("Concat", ["n1", "minus1"], ["tgt"], axis=0),
        _n("Reshape", ["x", "tgt"], ["y"])],
        {"x": [1, 3, 4]}, [1, 12],
        {"zero": np.array(0, dtype=np.int64), "ax": ints(0), "minus1": ints(-1)}, opset=13)
    c["reshape_zero_squeeze11"] = model([
        _n("Reshape", ["x", "t"], ["r"]), _n("Unsqueeze", ["r"], ["u"], axes=[3]),
        _n("Squeeze", ["u"], ["y"], axes=[3])],
        {"x": [1, 2, 6]}, None, {"t": ints(0, 3, -1)}, opset=11)
    c["transpose_concat_const"] = model([
        _n("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        _n("Concat", ["t", "k"], ["y"], axis=-1)],
        {"x": [1, 3, 2, 4]}, None, {"k": w(1, 2, 4, 2)})
    c["gather_slice_neg"] = model([
        _n("Gather", ["x", "idx"], ["g"], axis=2),
        _n("Slice", ["g", "st", "en", "axs", "stp"], ["y"])],
        {"x": [1, 3, 5, 6]}, None,
        {"idx": ints(4, 0, -1), "st": ints(-1, 0), "en": ints(-100, 5), "axs": ints(3, 1),
         "stp": ints(-2, 2)})
    c["slice9_attrs"] = model([_n("Slice", ["x"], ["y"], starts=[1], ends=[4], axes=[1])],
                              {"x": [1, 6]}, None, opset=9)
    c["pad_modes"] = model([
        _n("Pad", ["x", "p1", "val"], ["a"], mode="constant"),
        _n("Pad", ["a", "p2"], ["b"], mode="edge"),
        _n("Pad", ["b", "p3"], ["y"], mode="reflect")],
        {"x": [1, 1, 4, 4]}, None,
        {"p1": ints(0, 0, 1, 0, 0, 0, 0, 2), "val": np.float32(0.5),
         "p2": ints(0, 0, 0, 1, 0, 0, 2, 0), "p3": ints(0, 0, 1, 1, 0, 0, 0, 2)}, opset=13)
    c["pad9_attrs"] = model([_n("Pad", ["x"], ["y"], pads=[0, 1, 0, 2], value=0.25)],
                            {"x": [1, 3]}, None, opset=9)
    c["residual"] = model([
        _n("Gemm", ["x", "W1"], ["h"]), _n("Relu", ["h"], ["r"]),
        _n("Gemm", ["r", "W2"], ["g"]), _n("Sub", ["g", "x"], ["d"]),
        _n("Add", ["d", "r"], ["y"])],
        {"x": [1, 5]}, [1, 5], {"W1": w(5, 5), "W2": w(5, 5)})
    c["merge_dense_chain"] = model([
        _n("MatMul", ["x", "A"], ["a"]), _n("Add", ["a", "ab"], ["b"]),
        _n("MatMul", ["b", "B"], ["c"]), _n("Mul", ["c", "two"], ["y"])],
        {"x": [1, 6]}, [1, 4], {"A": w(6, 5), "ab": w(5), "B": w(5, 4),
                                "two": np.float32(2.0)}, opset=8)
    c["softmax_out"] = model([_n("Gemm", ["x", "W"], ["z"]), _n("Softmax", ["z"], ["y"])],
                             {"x": [1, 4]}, [1, 3], {"W": w(4, 3)}, opset=13)
    c["sigmoid_out"] = model([_n("Gemm", ["x", "W"], ["z"]), _n("Sigmoid", ["z"], ["y"])],
                             {"x": [1, 4]}, [1, 3], {"W": w(4, 3)}, opset=17)
    c["tanh_out21"] = model([_n("MatMul", ["x", "W"], ["z"]), _n("Tanh", ["z"], ["y"])],
                            {"x": [1, 4]}, [1, 3], {"W": w(4, 3)}, opset=21)
    c["cast_float"] = model([_n("Cast", ["x"], ["c"], to=TensorProto.FLOAT),
                             _n("Relu", ["c"], ["y"])], {"x": [1, 4]}, [1, 4], opset=13)
    return c


def unsupported_model():
    """A model with three distinct unsupported nodes (and a supported one between them)."""
    return model([
        _n("Gemm", ["x", "W"], ["a"], transA=1),
        _n("Erf", ["x"], ["e"]),
        _n("Relu", ["x"], ["r"]),
        _n("Mul", ["r", "r"], ["m"]),
        _n("Softmax", ["r"], ["s"]),
        _n("Gemm", ["s", "W2"], ["y"])],
        {"x": [4, 1]}, None, {"W": w(4, 3), "W2": w(1, 2)})
