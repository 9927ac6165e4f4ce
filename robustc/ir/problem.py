"""A network and a property: the compiled unit every verification strategy decides."""

from __future__ import annotations

from dataclasses import dataclass

from robustc.ir.graph import Graph
from robustc.ir.property import Property


@dataclass(frozen=True)
class Problem:
    """A network and a property: what :func:`verify` decides.

    ``onnx_paths`` are the original files, in order (two for a generator composed into a
    classifier), used for replay. ``graph`` is the IR of the whole network.
    """

    name: str
    graph: Graph
    onnx_paths: tuple[str, ...]
    prop: Property
    network: str = ""


__all__ = ["Problem"]
