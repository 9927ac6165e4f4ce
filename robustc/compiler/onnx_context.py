"""What every ONNX lowering function reads and raises: the importer's state
(:class:`Importer`), a node's attributes (:class:`Attrs`) and the per-node failure
(:class:`Unsupported`). Shared by :mod:`robustc.compiler.onnx_import` (the driver) and
:mod:`robustc.compiler.onnx_ops` (one lowering function per ONNX op)."""

from __future__ import annotations

import numpy as np

from robustc.errors import ModelError
from robustc.ir import Node

#: The ONNX opsets robustc reads (8 is what the VNN-COMP ACAS Xu networks use).
MIN_OPSET, MAX_OPSET = 7, 21


class Unsupported(Exception):
    """Raised by a lowering for one node; collected by the importer."""


class Attrs:
    """Attribute reader that remembers which attributes were consumed."""

    def __init__(self, node):
        from onnx import helper

        self.node = node
        self.values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        self.used: set[str] = set()

    def get(self, name: str, default=None):
        """The attribute's value (bytes decoded), or ``default``."""
        self.used.add(name)
        value = self.values.get(name, default)
        return value.decode() if isinstance(value, bytes) else value

    def unused(self) -> list[str]:
        """Names of attributes present on the node but never read."""
        return [k for k in self.values if k not in self.used]


class Importer:
    """State of one import: constants, the IR nodes so far, and the ONNX-name mapping."""

    def __init__(self, model, path: str):
        self.model = model
        self.path = path
        self.opset = _opset(model, path)
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, str] = {}  # ONNX tensor name -> IR node name
        self.nodes: dict[str, Node] = {}
        self.names: set[str] = set()

    # -- bookkeeping -------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        """A node name not used yet, derived from ``base``."""
        base = base or "n"
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def add(self, cls, base: str, inputs: tuple[str, ...], shape=None, **fields) -> str:
        """Create an IR node and return its name; its shape is inferred unless given."""
        name = self.fresh(base)
        if shape is None:
            probe = cls(name, inputs, (), **fields)
            shape = probe.infer_shape([self.nodes[i].shape for i in inputs])
        self.nodes[name] = cls(name, inputs, tuple(int(d) for d in shape), **fields)
        return name

    def is_const(self, onnx_name: str) -> bool:
        return onnx_name == "" or onnx_name in self.consts

    def const(self, onnx_name: str, what: str) -> np.ndarray:
        """The constant value of an input; raises ``Unsupported`` if it is a tensor."""
        if onnx_name not in self.consts:
            raise Unsupported(f"{what} must be a constant")
        return self.consts[onnx_name]

    def tensor(self, onnx_name: str) -> str:
        """The IR node for an input, materialising a constant as a Constant node."""
        if onnx_name in self.values:
            return self.values[onnx_name]
        from robustc.ir import Constant, frozen_array

        value = frozen_array(self.consts[onnx_name])
        self.values[onnx_name] = self.add(Constant, f"const_{onnx_name}", (), value=value)
        return self.values[onnx_name]

    def shape(self, onnx_name: str) -> tuple[int, ...]:
        if onnx_name in self.consts:
            return tuple(self.consts[onnx_name].shape)
        return self.nodes[self.values[onnx_name]].shape


def _opset(model, path: str) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ModelError(f"{path}: the model declares no default-domain opset")
    opset = versions[0]
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelError(f"{path}: opset {opset} is not supported "
                         f"(robustc reads opsets {MIN_OPSET} to {MAX_OPSET})")
    return opset


__all__ = ["MIN_OPSET", "MAX_OPSET", "Unsupported", "Attrs", "Importer"]
