"""robustc.ir: the intermediate representation every backend reads.

A :class:`Graph` of frozen :mod:`nodes <robustc.ir.nodes>`, a checker (:func:`verify`), a
text dump, a numpy interpreter (:func:`evaluate`), and two graph helpers: :func:`compose`
(a generator feeding a classifier) and :func:`cut` (keep layers 0..k).

This package imports nothing else of robustc except the leaf module ``robustc.errors``.
"""

from robustc.ir.graph import Graph, compose, cut, logits, verify
from robustc.ir.interpret import evaluate
from robustc.ir.nodes import (
    Activation,
    Add,
    Concat,
    Constant,
    Conv,
    Dense,
    ElementwiseAffine,
    Identity,
    Input,
    MaxPool,
    Node,
    OutputMap,
    Relu,
    Reshape,
    Select,
    frozen_array,
)

__all__ = [
    "Graph", "compose", "cut", "logits", "verify", "evaluate", "frozen_array",
    "Node", "Input", "Constant", "Dense", "Conv", "ElementwiseAffine", "Add", "Relu",
    "MaxPool", "Reshape", "Select", "Concat", "Identity", "OutputMap", "Activation",
]
