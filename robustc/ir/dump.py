"""Readable text form of an IR graph, for debugging and golden tests.

Arrays are summarised by shape and a short checksum (sum and L2 norm to 6 significant
digits), so a dump changes when the weights change but stays short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from robustc.ir.graph import Graph


def _fmt_value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, np.ndarray):
        if value.size <= 4:
            return np.array2string(value.ravel(), precision=6, separator=",")
        if value.dtype.kind in "iu":
            return f"int{list(value.shape)}"
        return (f"f{list(value.shape)}(sum={float(value.sum()):.6g}, "
                f"l2={float(np.linalg.norm(value)):.6g})")
    if isinstance(value, tuple):
        return "(" + ",".join(str(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def dump(graph: Graph) -> str:
    """Return the text dump of ``graph``: one line per node, in topological order."""
    ins = ", ".join(f"%{n}: {list(graph[n].shape)}" for n in graph.inputs)
    lines = [f"graph {graph.name!r} ({ins}) {{"]
    for node in graph.nodes:
        if node.op == "input":
            continue
        args = ", ".join(f"%{i}" for i in node.inputs)
        attrs = " ".join(f"{k}={_fmt_value(v)}" for k, v in node.attrs().items())
        note = f"  # {node.note}" if node.note else ""
        sep = " " if attrs else ""
        lines.append(f"  %{node.name} = {node.op}({args}){sep}{attrs} -> "
                     f"{list(node.shape)}{note}")
    outs = ", ".join(f"%{n}" for n in graph.outputs)
    lines.append(f"  return {outs}")
    lines.append("}")
    return "\n".join(lines)
