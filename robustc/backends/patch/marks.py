"""Increment/decrement marking (Elboher et al. 2020, as AIGENT uses it).

An output neuron is marked *increment* (+1) when raising it never hurts any atom of the
condition (a conjunction) and helps at least one, *decrement* (-1) in the mirror case, and
is unmarked (0) otherwise: the condition is monotone in each marked output, as Elboher et
al.'s marking requires (an output raised by one atom and lowered by another, like a neuron
whose target is an equality, stays unmarked). For "label t wins", t is +1 and every other
output -1. Marks go back
through the network: a ReLU passes its mark to its input (it is monotone); a neuron feeding
a Dense layer is marked ``s`` when every non-zero outgoing weight ``W[o, i]`` reaches a
marked neuron ``o`` with ``sign(W[o, i]) * mark[o] == s`` (then raising it moves every
consumer the right way); otherwise it is unmarked.

At the patched layer, the change of ``W[o, i]`` must have the sign ``mark[o] * sign(a_i)``
for the input activations ``a`` (all inputs agreeing); weights with ``a_i = 0`` everywhere
are fixed at 0. Where the marks do not determine a sign the change stays free (nan).
"""

from __future__ import annotations

import numpy as np

from robustc.errors import IRError
from robustc.ir import Dense, Graph, Identity, Relu, Reshape
from robustc.ir.property import AtLeast, Linear


def output_marks(atoms: list[Linear | AtLeast], y: np.ndarray) -> np.ndarray:
    """Marks of the outputs (``y``: one row of outputs per input, for the size) for the
    atoms, a conjunction: +1/-1 where every atom's coefficient has that sign or is 0, 0
    where the signs differ or all are 0."""
    n = y.shape[-1]
    pos, neg = np.zeros(n, bool), np.zeros(n, bool)
    for atom in atoms:
        subs = atom.atoms if isinstance(atom, AtLeast) else (atom,)
        for sub in subs:
            c = np.asarray(sub.coeffs, float)
            pos |= c > 0
            neg |= c < 0
    return np.where(pos & ~neg, 1.0, np.where(neg & ~pos, -1.0, 0.0))


def propagate(graph: Graph, marks: np.ndarray, until: str) -> np.ndarray:
    """The marks at node ``until``'s output, from the marks of ``graph``'s output.

    Raises ``IRError`` on a node other than Dense, ReLU, Reshape or Identity on the way.
    """
    names = [n.name for n in graph.nodes]
    cur = np.asarray(marks, float).ravel()
    for node in reversed(graph.nodes[names.index(until) + 1:]):
        if isinstance(node, Dense):
            cur = _back_dense(node.weight, cur)
        elif not isinstance(node, Relu | Reshape | Identity):
            raise IRError(f"sign marking does not go through {node.op} ({node.name})")
    return cur


def _back_dense(weight: np.ndarray, marks: np.ndarray) -> np.ndarray:
    contrib = np.sign(weight) * marks[:, None]          # [out, in]
    nonzero = weight != 0
    pos = np.all(~nonzero | (contrib > 0), axis=0)
    neg = np.all(~nonzero | (contrib < 0), axis=0)
    any_edge = nonzero.any(axis=0)
    return np.where(any_edge & pos, 1.0, np.where(any_edge & neg, -1.0, 0.0))


def change_signs(marks: np.ndarray, acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sw, sb)``: the sign of each weight change ``[out, in]`` and bias change ``[out]``.

    +1/-1 where determined, 0 where the change cannot matter (fixed at 0), nan where free.
    ``acts`` holds the layer's input activations, one row per given input.
    """
    sa = np.sign(np.atleast_2d(acts))
    agree = np.all(sa == sa[:1], axis=0)
    col = np.where(agree, sa[0], np.nan)
    col = np.where(np.all(sa == 0, axis=0), 0.0, col)
    m = np.asarray(marks, float)
    sw = np.where(m[:, None] != 0, m[:, None] * col[None, :], np.nan)
    sw = np.where(col[None, :] == 0, 0.0, sw)
    sb = np.where(m != 0, m, np.nan)
    return sw, sb
