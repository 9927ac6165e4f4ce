"""A graph of affine layers and ReLUs as a *chain* of dense matrices (the form the ReLU-split
bounder reads): the graph-to-chain step of :mod:`robustc.verify.relu_split`.

Graphs of linear nodes and plain ReLUs in sequence (MLPs, and convolutions unrolled to dense
matrices) are chains; :func:`chain` answers None for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robustc.compiler.bounds import prepare_linear_ops
from robustc.ir import Graph, Input, Relu
from robustc.verify.cases import case_atoms, margin_graph


@dataclass
class Chain:
    """Affine layers ``z_k = W_k a_{k-1} + b_k`` with ``a_k = relu(z_k)`` between them.

    ``weights[k]``/``biases[k]`` for ``k < L`` are the hidden layers (``a_0`` is the flat
    input), the last pair maps the last hidden activation to the graph's output (the atom
    margins). ``pre[k]`` names the IR node whose value is ``z_k`` (for its bounds).
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    pre: list[str]

    @property
    def hidden(self) -> list[int]:
        return [w.shape[0] for w in self.weights[:-1]]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The output (``(N, m)``) on flat inputs ``x`` (``(N, n_in)``), float64."""
        a = np.asarray(x, dtype=np.float64)
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            a = a @ w.T + b
            if k < len(self.weights) - 1:
                a = np.maximum(a, 0.0)
        return a


def case_chain(graph: Graph, cases: list) -> tuple[Chain | None, list[list[int]]]:
    """The chain of ``graph`` with one output per atom of ``cases`` (their margins, see
    :func:`~robustc.verify.cases.margin_graph`), and each case as the list of its
    atoms' output columns; the chain is None when the graph is not one."""
    atoms = case_atoms(cases)
    column = {id(a): i for i, a in enumerate(atoms)}
    return (chain(margin_graph(graph, atoms)),
            [[column[id(a)] for a in case] for case in cases])


def chain(graph: Graph) -> Chain | None:
    """``graph`` as a :class:`Chain`, or None when it is not one: one input, then linear
    nodes and ReLUs (slope 0 below zero) each reading the node before it."""
    if len(graph.inputs) != 1 or not isinstance(graph.nodes[0], Input):
        return None
    prep = prepare_linear_ops(graph)
    nodes = graph.nodes
    n = nodes[0].size
    mat, off = np.eye(n), np.zeros(n)
    weights, biases, pre = [], [], []
    for prev, node in zip(nodes, nodes[1:], strict=False):
        if tuple(node.inputs) != (prev.name,):
            return None
        if isinstance(node, Relu):
            if node.alpha != 0.0:
                return None
            weights.append(mat)
            biases.append(off)
            pre.append(prev.name)
            mat, off = np.eye(node.size), np.zeros(node.size)
            continue
        if not node.linear or len(prep.ops[node.name]) != 1:
            return None
        op = prep.ops[node.name][0]
        mat = apply_linear_op(op, mat)
        off = apply_linear_op(op, off[:, None])[:, 0] + prep.offsets[node.name]
    if graph.outputs != (nodes[-1].name,) or isinstance(nodes[-1], Relu | Input):
        return None
    weights.append(mat)
    biases.append(off)
    return Chain(weights, biases, pre)


def apply_linear_op(op, mat: np.ndarray) -> np.ndarray:
    """``M @ mat`` for the operator ``M`` of a linear node (``mat``: ``(n_in, k)``)."""
    if op.kind == "identity":
        return mat
    if op.kind == "diag":
        return np.asarray(op.mat).reshape(-1, 1) * mat
    if op.kind == "dense":
        return op.mat @ mat
    return np.asarray(op.mat @ mat)


__all__ = ["Chain", "chain", "case_chain", "apply_linear_op"]
