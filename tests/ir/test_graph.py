"""IR graph: verify() catches malformed graphs; compose, cut, logits, dump."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from robustc.errors import IRError, ShapeError
from robustc.ir import (
    Conv,
    Dense,
    Graph,
    Input,
    MaxPool,
    OutputMap,
    Relu,
    Reshape,
    compose,
    cut,
    evaluate,
    frozen_array,
    logits,
)

RNG = np.random.default_rng(0)


def mlp(sizes, name="mlp", out_map=None):
    nodes = [Input("x", (), (1, sizes[0]))]
    prev = "x"
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        nodes.append(Dense(f"fc{k}", (prev,), (1, b), weight=frozen_array(RNG.normal(size=(b, a))),
                           bias=frozen_array(RNG.normal(size=b))))
        prev = f"fc{k}"
        if k < len(sizes) - 2:
            nodes.append(Relu(f"relu{k}", (prev,), (1, b)))
            prev = f"relu{k}"
    if out_map:
        nodes.append(OutputMap("out", (prev,), (1, sizes[-1]), kind=out_map))
        prev = "out"
    return Graph(tuple(nodes), ("x",), (prev,), name).verify()


def test_verify_rejects_wrong_shape_and_order_and_duplicates():
    g = mlp([3, 4, 2])
    bad_shape = dataclasses.replace(g["fc1"], shape=(1, 3))
    with pytest.raises(IRError, match="has shape \\[1, 3\\], its inputs give \\[1, 2\\]"):
        Graph(tuple(bad_shape if n.name == "fc1" else n for n in g.nodes), g.inputs,
              g.outputs).verify()
    with pytest.raises(IRError, match="before they are defined"):
        Graph(tuple(reversed(g.nodes)), g.inputs, g.outputs).verify()
    with pytest.raises(IRError, match="duplicate"):
        Graph(g.nodes + (g.nodes[-1],), g.inputs, g.outputs).verify()
    nan = dataclasses.replace(g["fc0"], bias=frozen_array([np.nan] * 4))
    with pytest.raises(IRError, match="non-finite"):
        Graph(tuple(nan if n.name == "fc0" else n for n in g.nodes), g.inputs,
              g.outputs).verify()


def test_verify_rejects_hidden_output_map():
    g = mlp([3, 4, 2], out_map="sigmoid")
    hidden = Relu("after", ("out",), (1, 2))
    with pytest.raises(IRError, match="feeds a hidden layer"):
        Graph(g.nodes + (hidden,), g.inputs, ("after",)).verify()


def test_nodes_are_immutable():
    g = mlp([3, 2])
    with pytest.raises(dataclasses.FrozenInstanceError):
        g["fc0"].name = "other"
    with pytest.raises(ValueError):
        g["fc0"].weight[0, 0] = 1.0


def test_compose_feeds_generator_into_classifier():
    gen = mlp([2, 5, 6], "gen")
    clf = mlp([6, 4, 3], "clf", out_map="softmax")
    both = compose(gen, clf)
    z = RNG.normal(size=(7, 1, 2))
    expected = evaluate(clf, evaluate(gen, z, batched=True), batched=True)
    np.testing.assert_allclose(evaluate(both, z, batched=True), expected)
    with pytest.raises(ShapeError, match="cannot compose"):
        compose(gen, mlp([5, 2]))
    with pytest.raises(ShapeError, match="softmax output map"):
        compose(mlp([2, 6], out_map="softmax"), clf)
    sig = mlp([2, 6], "sig", out_map="sigmoid")  # a hidden activation once composed
    both = compose(sig, clf)
    assert any(n.op == "activation" for n in both.nodes)
    np.testing.assert_allclose(evaluate(both, z, batched=True),
                               evaluate(clf, evaluate(sig, z, batched=True), batched=True))


def test_cut_keeps_layers_up_to_k():
    g = mlp([3, 5, 4, 2])
    head = cut(g, 1)
    assert head.output.name == "relu1" and len(head.layers()) == 2
    x = RNG.normal(size=(4, 1, 3))
    full = evaluate(g, x, batched=True, keep_all=True)
    np.testing.assert_allclose(evaluate(head, x, batched=True), full["relu1"])
    assert cut(g, 1, include_activation=False).output.name == "fc1"
    with pytest.raises(IRError, match="out of range"):
        cut(g, 3)


def test_logits_strips_output_maps():
    g = mlp([3, 4], out_map="sigmoid")
    stripped, maps = logits(g)
    assert stripped.output.name == "fc0" and [m.kind for m in maps] == ["sigmoid"]


def test_dump_is_readable_and_stable():
    x = Input("x", (), (1, 1, 4, 4))
    conv = Conv("conv", ("x",), (1, 2, 4, 4), weight=frozen_array(np.ones((2, 1, 3, 3))),
                bias=frozen_array([0.5, -0.5]), pads=(1, 1, 1, 1))
    pool = MaxPool("pool", ("conv",), (1, 2, 2, 2))
    flat = Reshape("flat", ("pool",), (1, 8))
    g = Graph((x, conv, pool, flat), ("x",), ("flat",), "tiny").verify()
    assert g.dump() == "\n".join([
        "graph 'tiny' (%x: [1, 1, 4, 4]) {",
        "  %conv = conv(%x) weight=f[2, 1, 3, 3](sum=18, l2=4.24264) bias=[ 0.5,-0.5] "
        "strides=(1,1) pads=(1,1,1,1) dilations=(1,1) groups=1 -> [1, 2, 4, 4]",
        "  %pool = maxpool(%conv) kernel=(2,2) strides=(2,2) pads=(0,0,0,0) dilations=(1,1) "
        "-> [1, 2, 2, 2]",
        "  %flat = reshape(%pool) -> [1, 8]",
        "  return %flat",
        "}",
    ])


def test_interpreter_rejects_wrong_input_shape():
    with pytest.raises(ShapeError, match="expects shape \\[1, 3\\], got \\[1, 4\\]"):
        evaluate(mlp([3, 2]), np.zeros((1, 4)))


def test_import_robustc_does_not_import_heavy_solvers():
    import subprocess
    import sys

    code = ("import sys, robustc, robustc.ir, robustc.compiler, robustc.specs, robustc.backends,"
            " robustc.runtime; bad = [m for m in ('torch', 'gurobipy', 'z3') if m in "
            "sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
