"""The IR graph: an immutable, topologically ordered collection of nodes.

A :class:`Graph` holds its nodes in a tuple in topological order, the names of its inputs and
outputs, and a name. ``verify()`` checks the whole graph (names, order, shapes, output maps);
passes build new graphs with :meth:`Graph.replace_nodes` and ``dataclasses.replace`` on nodes.
``networkx`` sorts the nodes topologically.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import networkx as nx
import numpy as np

from robustc.errors import IRError, ShapeError
from robustc.ir.nodes import Activation, Conv, Dense, Input, Node, OutputMap, Relu, Reshape


@dataclass(frozen=True, eq=False)
class Graph:
    """A network: ``nodes`` in topological order, one or more ``inputs``, ``outputs``."""

    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    name: str = "network"

    @cached_property
    def by_name(self) -> dict[str, Node]:
        """Map from node name to node."""
        return {n.name: n for n in self.nodes}

    def __getitem__(self, name: str) -> Node:
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"no node named {name!r} in graph {self.name!r}") from None

    def __contains__(self, name: str) -> bool:
        return name in self.by_name

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def input(self) -> Input:
        """The single input node; raises ``IRError`` when the graph has several."""
        if len(self.inputs) != 1:
            raise IRError(f"graph {self.name!r} has {len(self.inputs)} inputs, expected 1")
        return self[self.inputs[0]]

    @property
    def output(self) -> Node:
        """The single output node; raises ``IRError`` when the graph has several."""
        if len(self.outputs) != 1:
            raise IRError(f"graph {self.name!r} has {len(self.outputs)} outputs, expected 1")
        return self[self.outputs[0]]

    @cached_property
    def consumers(self) -> dict[str, tuple[str, ...]]:
        """Map from node name to the names of the nodes that read it."""
        users: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for node in self.nodes:
            for src in node.inputs:
                users.setdefault(src, []).append(node.name)
        return {k: tuple(v) for k, v in users.items()}

    def replace_nodes(self, nodes: Iterable[Node], outputs: tuple[str, ...] | None = None
                      ) -> Graph:
        """A new graph with ``nodes`` (re-sorted topologically) and, optionally, new outputs."""
        nodes = tuple(nodes)
        outputs = self.outputs if outputs is None else tuple(outputs)
        return Graph(_toposort(nodes), self.inputs, outputs, self.name)

    def layers(self) -> tuple[Node, ...]:
        """The affine layers (Dense and Conv nodes) in topological order; layer k is ``[k]``."""
        return tuple(n for n in self.nodes if isinstance(n, Dense | Conv))

    def relus(self) -> tuple[Relu, ...]:
        """The ReLU nodes in topological order."""
        return tuple(n for n in self.nodes if isinstance(n, Relu))

    def verify(self) -> Graph:
        """Check the whole graph; returns ``self`` or raises ``IRError``."""
        verify(self)
        return self

    def dump(self) -> str:
        """A readable text form, stable enough for golden tests."""
        from robustc.ir.dump import dump

        return dump(self)


def _toposort(nodes: tuple[Node, ...]) -> tuple[Node, ...]:
    """Sort nodes topologically, keeping the given order where it is already valid."""
    names = {n.name for n in nodes}
    g = nx.DiGraph()
    for i, node in enumerate(nodes):
        g.add_node(node.name, order=i)
        g.add_edges_from((src, node.name) for src in node.inputs if src in names)
    if not nx.is_directed_acyclic_graph(g):
        raise IRError(f"the graph has a cycle: {nx.find_cycle(g)}")
    order = {n.name: i for i, n in enumerate(nodes)}
    by_name = {n.name: n for n in nodes}
    sorted_names = nx.lexicographical_topological_sort(g, key=lambda name: order[name])
    return tuple(by_name[name] for name in sorted_names)


def verify(graph: Graph) -> None:
    """Check names, topological order, shapes, values and output maps; raise ``IRError``."""
    seen: dict[str, Node] = {}
    for node in graph.nodes:
        if node.name in seen:
            raise IRError(f"duplicate node name {node.name!r}")
        missing = [src for src in node.inputs if src not in seen]
        if missing:
            raise IRError(f"node {node.name!r} reads {missing} before they are defined")
        expected = node.infer_shape([seen[src].shape for src in node.inputs])
        if tuple(expected) != tuple(node.shape):
            raise IRError(f"node {node.name!r} ({node.op}) has shape {list(node.shape)}, "
                          f"its inputs give {list(expected)}")
        _check_values(node)
        seen[node.name] = node
    for name in graph.inputs:
        if not isinstance(seen.get(name), Input):
            raise IRError(f"graph input {name!r} is not an Input node")
    for name in graph.outputs:
        if name not in seen:
            raise IRError(f"graph output {name!r} is not a node")
    _check_output_maps(graph)


def _check_values(node: Node) -> None:
    for fld in dataclasses.fields(node):
        value = getattr(node, fld.name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            if not np.all(np.isfinite(value)):
                raise IRError(f"node {node.name!r}: {fld.name} has non-finite values")


def _check_output_maps(graph: Graph) -> None:
    """Output maps may only feed other output maps, and must end at graph outputs."""
    for node in graph.nodes:
        if not isinstance(node, OutputMap):
            continue
        users = graph.consumers.get(node.name, ())
        if any(not isinstance(graph[u], OutputMap) for u in users):
            raise IRError(f"output map {node.name!r} ({node.kind}) feeds a hidden layer")
        if not users and node.name not in graph.outputs:
            raise IRError(f"output map {node.name!r} is not a graph output")


def logits(graph: Graph) -> tuple[Graph, tuple[OutputMap, ...]]:
    """The graph with trailing output maps removed, and those maps (outermost last)."""
    maps: list[OutputMap] = []
    out = graph.output
    while isinstance(out, OutputMap):
        maps.append(out)
        out = graph[out.inputs[0]]
    if not maps:
        return graph, ()
    keep = _ancestors(graph, out.name)
    nodes = [n for n in graph.nodes if n.name in keep]
    return graph.replace_nodes(nodes, outputs=(out.name,)), tuple(reversed(maps))


def _ancestors(graph: Graph, name: str) -> set[str]:
    keep, stack = set(), [name]
    while stack:
        cur = stack.pop()
        if cur not in keep:
            keep.add(cur)
            stack.extend(graph[cur].inputs)
    return keep


def cut(graph: Graph, layer: int, include_activation: bool = True) -> Graph:
    """Keep layers ``0..layer`` (see :meth:`Graph.layers`), the new output being layer ``layer``.

    With ``include_activation``, a ReLU that directly follows that layer is kept too.
    Raises ``IRError`` for a layer index out of range.
    """
    layers = graph.layers()
    if not -len(layers) <= layer < len(layers):
        raise IRError(f"layer {layer} out of range: graph {graph.name!r} has {len(layers)} "
                      f"affine layers")
    end = layers[layer].name
    users = graph.consumers.get(end, ())
    if include_activation and len(users) == 1 and isinstance(graph[users[0]], Relu):
        end = users[0]
    keep = _ancestors(graph, end)
    nodes = [n for n in graph.nodes if n.name in keep]
    inputs = tuple(i for i in graph.inputs if i in keep)
    return Graph(tuple(nodes), inputs, (end,), f"{graph.name}[:{layer}]").verify()


def compose(first: Graph, second: Graph, name: str | None = None) -> Graph:
    """Feed ``first``'s output into ``second``'s input (a generator into a classifier).

    Node names are prefixed with ``g.`` and ``c.``. When the shapes differ but the sizes agree,
    a Reshape is inserted; otherwise raises ``ShapeError``. A sigmoid or tanh output map at
    the end of ``first`` (a generator's usual last layer) becomes a hidden smooth
    :class:`~robustc.ir.nodes.Activation` of the composed network (bounds relax it; the MILP
    and Z3 backends refuse it by name); a softmax there raises ``ShapeError``.
    """
    first = _maps_as_activations(first)
    out, inp = first.output, second.input
    if out.size != inp.size:
        raise ShapeError(f"cannot compose {first.name!r} (output {list(out.shape)}) with "
                         f"{second.name!r} (input {list(inp.shape)})")
    a = _prefixed(first, "g.")
    b = _prefixed(second, "c.")
    bridge_name = f"c.{inp.name}"
    src = f"g.{out.name}"
    if tuple(out.shape) == tuple(inp.shape):
        bridge = Reshape(bridge_name, (src,), inp.shape, note="composition")
    else:
        bridge = Reshape(bridge_name, (src,), inp.shape, note="composition (reshaped)")
    nodes = [*a.nodes] + [bridge if n.name == bridge_name else n for n in b.nodes]
    composed = Graph(tuple(nodes), a.inputs, b.outputs,
                     name or f"{first.name}->{second.name}")
    return composed.verify()


def _maps_as_activations(graph: Graph) -> Graph:
    """``graph`` with its trailing sigmoid/tanh output maps turned into activations."""
    changed = {}
    out = graph.output
    while isinstance(out, OutputMap):
        if out.kind not in ("sigmoid", "tanh"):
            raise ShapeError(f"cannot compose: {graph.name!r} ends in a {out.kind} output map "
                             f"(node {out.name!r}); only sigmoid and tanh can feed another "
                             f"network")
        changed[out.name] = Activation(out.name, out.inputs, out.shape, kind=out.kind,
                                       note=out.note)
        out = graph[out.inputs[0]]
    if not changed:
        return graph
    return graph.replace_nodes(tuple(changed.get(n.name, n) for n in graph.nodes))


def _prefixed(graph: Graph, prefix: str) -> Graph:
    nodes = tuple(
        dataclasses.replace(n, name=prefix + n.name, inputs=tuple(prefix + i for i in n.inputs))
        for n in graph.nodes
    )
    return Graph(nodes, tuple(prefix + i for i in graph.inputs),
                 tuple(prefix + o for o in graph.outputs), graph.name)
