"""IR passes: named, listed, composable rewrites that keep the graph's function.

Each pass is a function ``graph -> graph`` registered in :data:`PASSES`. A
:class:`Pipeline` runs its passes in order, repeatedly, until none changes the graph (a
fixed point), and can ``verify()`` the IR after every pass. Passes never change the graph
inputs, so a solver's answer in terms of the input needs no mapping back; they record what
they folded in each node's ``note``.

Folding element-wise affine maps into a neighbouring layer is exact in real arithmetic; in
float64 it changes results by rounding only (tests check 1e-9 relative agreement).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robustc.ir import (
    Constant,
    Conv,
    Dense,
    ElementwiseAffine,
    Graph,
    Identity,
    MaxPool,
    Node,
    Relu,
    Reshape,
    frozen_array,
)
from robustc.ir.interpret import run_node

Pass = Callable[[Graph], Graph]


def _rewire(graph: Graph, removed: str, source: str) -> Graph:
    """Drop node ``removed``, making its readers (and outputs) read ``source`` instead."""
    nodes = []
    for node in graph.nodes:
        if node.name == removed:
            continue
        if removed in node.inputs:
            node = dataclasses.replace(
                node, inputs=tuple(source if i == removed else i for i in node.inputs))
        nodes.append(node)
    outputs = tuple(source if o == removed else o for o in graph.outputs)
    return graph.replace_nodes(nodes, outputs=outputs)


def _single_reader(graph: Graph, name: str) -> Node | None:
    users = graph.consumers.get(name, ())
    if len(users) == 1 and name not in graph.outputs:
        return graph[users[0]]
    return None


def _merge(graph: Graph, first: str, second: str, merged: Node) -> Graph:
    """Replace the chain ``first -> second`` by ``merged`` (which takes ``second``'s name)."""
    nodes = [merged if n.name == second else n for n in graph.nodes if n.name != first]
    return graph.replace_nodes(nodes)


def _note(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


# -- drop identities -------------------------------------------------------------------

def drop_identities(graph: Graph) -> Graph:
    """Remove Identity nodes, no-op reshapes and affine maps with scale 1 and shift 0."""
    for node in graph.nodes:
        trivial = isinstance(node, Identity) or (
            isinstance(node, Reshape) and graph[node.inputs[0]].shape == node.shape
        ) or (
            isinstance(node, ElementwiseAffine) and np.all(node.scale == 1)
            and np.all(node.shift == 0)
        )
        if trivial and not (node.name in graph.outputs and graph[node.inputs[0]].name
                            in graph.inputs):
            return drop_identities(_rewire(graph, node.name, node.inputs[0]))
    return graph


# -- fold constants --------------------------------------------------------------------

def fold_constants(graph: Graph) -> Graph:
    """Evaluate every node whose inputs are all constants into a Constant node."""
    for node in graph.nodes:
        if node.inputs and all(isinstance(graph[i], Constant) for i in node.inputs):
            value = run_node(node, *(graph[i].value[None] for i in node.inputs))[0]
            const = Constant(node.name, (), node.shape, value=frozen_array(value),
                             note=_note(node.note, f"folded {node.op}"))
            nodes = [const if n.name == node.name else n for n in graph.nodes]
            return fold_constants(_prune(graph.replace_nodes(nodes)))
    return graph


def _prune(graph: Graph) -> Graph:
    """Drop nodes that no output depends on (inputs are always kept)."""
    keep: set[str] = set(graph.inputs)
    stack = list(graph.outputs)
    while stack:
        cur = stack.pop()
        if cur not in keep or cur in graph.inputs:
            keep.add(cur)
            stack.extend(i for i in graph[cur].inputs if i not in keep)
    return graph.replace_nodes([n for n in graph.nodes if n.name in keep])


# -- fold element-wise affine maps into layers ------------------------------------------

def _along(arr: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """``arr`` as a vector along ``axis`` of ``shape`` if it is constant along the others."""
    moved = np.moveaxis(np.broadcast_to(arr, shape), axis, -1).reshape(-1, shape[axis])
    if not np.all(moved == moved[:1]):
        return None
    return moved[0].copy()


def fold_affine_after_layer(graph: Graph) -> Graph:
    """Merge ``layer -> affine`` into the layer (BatchNorm after Conv, scaling after Dense)."""
    for node in graph.nodes:
        if not isinstance(node, ElementwiseAffine):
            continue
        layer = graph[node.inputs[0]]
        if not isinstance(layer, Dense | Conv) or _single_reader(graph, layer.name) is None:
            continue
        axis = layer.axis if isinstance(layer, Dense) else 1
        scale = _along(node.scale, node.shape, axis)
        shift = _along(node.shift, node.shape, axis)
        if scale is None or shift is None:
            continue
        w = layer.weight * scale.reshape((-1,) + (1,) * (layer.weight.ndim - 1))
        b = (layer.bias if layer.bias is not None else 0.0) * scale + shift
        merged = dataclasses.replace(layer, name=node.name, weight=frozen_array(w),
                                     bias=frozen_array(b),
                                     note=_note(layer.note, f"{layer.name} + affine"))
        return _merge(graph, layer.name, node.name, merged)
    return graph


def fold_affine_before_layer(graph: Graph) -> Graph:
    """Merge ``affine -> layer`` into the layer (input normalisation before Dense or Conv).

    A shift before a padded convolution is not folded: the padding would not be shifted.
    """
    for node in graph.nodes:
        if not isinstance(node, Dense | Conv):
            continue
        src = graph[node.inputs[0]]
        if not isinstance(src, ElementwiseAffine) or _single_reader(graph, src.name) is None:
            continue
        merged = _fold_into(node, src)
        if merged is not None:
            merged = dataclasses.replace(merged, inputs=src.inputs,
                                         note=_note(node.note, f"folded {src.name}"))
            nodes = [merged if n.name == node.name else n for n in graph.nodes
                     if n.name != src.name]
            return graph.replace_nodes(nodes)
    return graph


def _fold_into(layer: Dense | Conv, affine: ElementwiseAffine) -> Node | None:
    axis = layer.axis if isinstance(layer, Dense) else 1
    scale = _along(affine.scale, affine.shape, axis)
    shift = _along(affine.shift, affine.shape, axis)
    if scale is None or shift is None:
        return None
    bias = layer.bias if layer.bias is not None else np.zeros(layer.weight.shape[0])
    if isinstance(layer, Dense):
        w = layer.weight * scale[None, :]
        b = bias + layer.weight @ shift
    else:
        if any(layer.pads) and np.any(shift != 0):
            return None
        groups, cg = layer.groups, layer.weight.shape[1]
        per_group = layer.weight.shape[0] // groups
        s = scale.reshape(groups, 1, cg, 1, 1)
        w = (layer.weight.reshape(groups, per_group, cg, *layer.weight.shape[2:]) * s
             ).reshape(layer.weight.shape)
        t = shift.reshape(groups, 1, cg, 1, 1)
        b = bias + (layer.weight.reshape(groups, per_group, cg, *layer.weight.shape[2:]) * t
                    ).sum(axis=(2, 3, 4)).reshape(-1)
    return dataclasses.replace(layer, weight=frozen_array(w), bias=frozen_array(b))


def push_affine_through_reshape(graph: Graph) -> Graph:
    """Rewrite ``affine -> reshape`` as ``reshape -> affine`` so the affine can meet a layer."""
    for node in graph.nodes:
        if not isinstance(node, Reshape):
            continue
        src = graph[node.inputs[0]]
        if not isinstance(src, ElementwiseAffine) or _single_reader(graph, src.name) is None:
            continue
        if isinstance(_single_reader(graph, node.name), Reshape):
            continue  # let the reshapes merge first
        scale = np.broadcast_to(src.scale, src.shape).reshape(node.shape)
        shift = np.broadcast_to(src.shift, src.shape).reshape(node.shape)
        reshape = dataclasses.replace(node, name=src.name, inputs=src.inputs)
        affine = ElementwiseAffine(node.name, (src.name,), node.shape,
                                   scale=frozen_array(_compact(scale)),
                                   shift=frozen_array(_compact(shift)), note=src.note)
        nodes = [reshape if n.name == src.name else affine if n.name == node.name else n
                 for n in graph.nodes]
        return graph.replace_nodes(nodes)
    return graph


def _compact(arr: np.ndarray) -> np.ndarray:
    """A scalar when all entries are equal, else the full array."""
    flat = np.asarray(arr).ravel()
    return np.asarray(flat[0]) if flat.size and np.all(flat == flat[0]) else np.asarray(arr)


# -- merge consecutive linear nodes ------------------------------------------------------

def merge_affine_layers(graph: Graph) -> Graph:
    """Merge Dense->Dense (same axis), affine->affine and reshape->reshape chains."""
    for node in graph.nodes:
        if not node.inputs:
            continue
        src = graph[node.inputs[0]]
        if _single_reader(graph, src.name) is None:
            continue
        merged = _merge_pair(src, node)
        if merged is not None:
            return _merge(graph, src.name, node.name, merged)
    return graph


def _merge_pair(src: Node, node: Node) -> Node | None:
    if isinstance(src, Reshape) and isinstance(node, Reshape):
        return dataclasses.replace(node, inputs=src.inputs)
    if isinstance(src, ElementwiseAffine) and isinstance(node, ElementwiseAffine):
        return dataclasses.replace(
            node, inputs=src.inputs, scale=frozen_array(_compact(node.scale * src.scale)),
            shift=frozen_array(_compact(node.scale * src.shift + node.shift)))
    if isinstance(src, Dense) and isinstance(node, Dense):
        rank = len(src.shape)
        if src.axis % rank != node.axis % rank:
            return None
        w = node.weight @ src.weight
        if w.size > src.weight.size + node.weight.size:
            return None  # a low-rank factorisation: merging would grow the model
        b1 = src.bias if src.bias is not None else np.zeros(src.weight.shape[0])
        b2 = node.bias if node.bias is not None else 0.0
        return dataclasses.replace(node, inputs=src.inputs, weight=frozen_array(w),
                                   bias=frozen_array(node.weight @ b1 + b2),
                                   note=_note(src.note, node.note, f"merged {src.name}"))
    return None


# -- swap ReLU and MaxPool ----------------------------------------------------------------

def swap_relu_maxpool(graph: Graph) -> Graph:
    """Rewrite ``relu -> maxpool`` as ``maxpool -> relu`` (same function, fewer neurons).

    ``max_i relu(z_i) = relu(max_i z_i)`` because (leaky) ReLU is increasing, and padded
    positions (``-inf``) never win either way. The ReLU then acts on the pooled values:
    one per window instead of one per input, so a MILP needs far fewer binaries.
    """
    for node in graph.nodes:
        if not isinstance(node, MaxPool):
            continue
        relu = graph[node.inputs[0]]
        if not isinstance(relu, Relu) or _single_reader(graph, relu.name) is None:
            continue
        pool = dataclasses.replace(node, inputs=relu.inputs,
                                   note=_note(node.note, "swapped with its ReLU"))
        act = dataclasses.replace(relu, inputs=(node.name,), shape=node.shape,
                                  note=_note(relu.note, "moved after the max-pool"))
        nodes = []
        for n in graph.nodes:
            if n.name == node.name:
                nodes += [pool, act]
            elif n.name != relu.name:
                nodes.append(dataclasses.replace(n, inputs=tuple(
                    relu.name if i == node.name else i for i in n.inputs))
                    if node.name in n.inputs else n)
        outputs = tuple(relu.name if o == node.name else o for o in graph.outputs)
        return graph.replace_nodes(nodes, outputs=outputs)
    return graph


# -- MaxPool as ReLUs (for the ReLU branch and bound) -------------------------------------

def maxpool_as_relus(graph: Graph, bounds: tuple[dict, dict] | None = None) -> Graph:
    """Every MaxPool as a tree of pairwise maxima ``max(a, b) = b + relu(a - b)`` (same
    function): one Select per leaf of the tree gathers an element of every window (padding
    stands as the window's first real element, which changes no maximum), then each pair
    is joined by an affine ``-b``, an Add, a ReLU and an Add. The last node of each tree
    keeps the MaxPool's name. Not one of the standard passes: it adds neurons, and serves
    the ReLU branch and bound, which can then split "which input is the largest" like any
    ReLU (:mod:`robustc.verify.relu_split.graph`).

    The tree has as many leaves as the window with the most distinct elements; a window
    with fewer elements spreads them over the leaves so that every subtree holds either one
    element (all its leaves) or elements no other subtree holds (:func:`_spread`). So a
    window of ``k`` elements has exactly ``k - 1`` pairs of different elements, and at the
    other pairs both sides are the same element: their difference is multiplied by 0 (an
    element-wise affine map with scale 0 there, whose interval bounds
    :class:`~robustc.compiler.crown.engine.Crown` does not widen), so its bounds are exactly
    0 and its ReLU
    is stable, instead of the difference of an element with itself widened to +-1e-9 (an
    unstable ReLU for the search), or the difference of ``max(a, b)`` with ``b`` (a ReLU of
    a ReLU, whose relaxation loosens every bound behind it).

    With ``bounds`` (``(lower, upper)``: flat arrays by node name, valid on some input box),
    a window element whose upper bound is at most the largest lower bound in its window
    (an element attaining that bound is kept) never raises the maximum there and is left
    out, so the tree is the same function *on that box* with fewer undecided ReLUs. When
    only (not leaky) ReLUs read the MaxPool, elements whose upper bound is at most 0 are
    left out too (``relu(max(S)) = relu(max(S'))`` for any non-empty ``S'`` holding every
    element that can be positive): then the tree equals the MaxPool only *after* the ReLU, and the
    pool's own bounds no longer hold for it (:mod:`robustc.verify.relu_split.graph` drops
    them)."""
    from robustc.ir.linear import pool_index

    if not any(isinstance(n, MaxPool) for n in graph.nodes):
        return graph
    nodes: list[Node] = []
    for node in graph.nodes:
        if not isinstance(node, MaxPool):
            nodes.append(node)
            continue
        src = graph[node.inputs[0]]
        idx = pool_index(node, src.shape)
        first = idx[np.arange(len(idx)), (idx >= 0).argmax(1)]
        idx = np.where(idx >= 0, idx, first[:, None])
        if bounds is not None and src.name in bounds[0] and src.name in bounds[1]:
            readers = [n for n in graph.nodes if node.name in n.inputs]
            idx, count = _pool_candidates(idx, np.ravel(bounds[0][src.name]),
                                          np.ravel(bounds[1][src.name]),
                                          relu_after=bool(readers) and all(
                                              isinstance(n, Relu) and n.alpha == 0
                                              for n in readers))
        else:
            idx, count = _pack(idx, ~_repeats(idx))
        nodes += _max_tree(node, src.name, idx, count)
    return graph.replace_nodes(nodes)


def _tree(leaves: int) -> list:
    """The pairing of :func:`maxpool_as_relus`: leaves ``0..leaves-1`` joined pairwise level
    by level (an odd last one carried up), as nested 2-tuples of leaf numbers."""
    level: list = list(range(leaves))
    while len(level) > 1:
        joined = [(a, b) for a, b in zip(level[0::2], level[1::2], strict=False)]
        level = joined + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def _leaves(tree) -> int:
    return 1 if isinstance(tree, int) else _leaves(tree[0]) + _leaves(tree[1])


def _spread(tree, first: np.ndarray, k: np.ndarray, leaf: np.ndarray, mixed: dict) -> None:
    """Give each window (row of ``leaf``: which of its elements each leaf takes) its ``k``
    elements ``first .. first + k - 1`` over the leaves of ``tree``: a subtree with one
    element takes it at every leaf, one with more splits them between its two sides in
    proportion to their leaves (at least one each). ``mixed[id(pair)]``: for each pair
    of the tree, the windows whose two sides hold different elements (``k >= 2``)."""
    if isinstance(tree, int):
        leaf[:, tree] = first
        return
    left, right = tree
    n_left, n_right = _leaves(left), _leaves(right)
    mixed[id(tree)] = k >= 2
    share = np.rint(k * n_left / (n_left + n_right)).astype(np.int64)
    k_left = np.where(k >= 2, np.clip(share, np.maximum(1, k - n_right),
                                      np.minimum(n_left, k - 1)), 1)
    k_right = np.where(k >= 2, k - k_left, 1)
    _spread(left, first, k_left, leaf, mixed)
    _spread(right, np.where(k >= 2, first + k_left, first), k_right, leaf, mixed)


def _max_tree(node: MaxPool, src: str, idx: np.ndarray, count: np.ndarray) -> list[Node]:
    """The nodes computing ``node`` (a MaxPool of ``src``) from each window's ``count``
    distinct elements ``idx[:, :count]`` (flat indices into ``src``)."""
    from robustc.ir import Add, Select

    size = int(count.max())
    windows = np.arange(len(idx))
    if size == 1:  # one element per window: a pick is the pool
        return [Select(node.name, (src,), node.shape,
                       index=frozen_array(idx[:, 0].reshape(node.shape), dtype=np.int64),
                       note=_note(node.note, "max-pool of one element per window"))]
    tree = _tree(size)
    leaf = np.zeros((len(idx), size), dtype=np.int64)
    mixed: dict = {}
    _spread(tree, np.zeros(len(idx), dtype=np.int64), count, leaf, mixed)
    nodes: list[Node] = []
    picks: dict = {}  # leaf -> name; leaves that gather the same elements share a Select
    for j in range(size):
        column = idx[windows, leaf[:, j]]
        same = next((picks[i] for i in picks
                     if np.array_equal(idx[windows, leaf[:, i]], column)), None)
        if same is None:
            same = f"{node.name}/pick{j}"
            nodes.append(Select(same, (src,), node.shape,
                                index=frozen_array(column.reshape(node.shape), dtype=np.int64)))
        picks[j] = same
    steps = itertools.count(1)

    def emit(sub) -> str:
        if isinstance(sub, int):
            return picks[sub]
        a, b = emit(sub[0]), emit(sub[1])
        tag = f"{node.name}/max{next(steps)}"
        gate = mixed[id(sub)].astype(np.float64).reshape(node.shape)
        zeros = frozen_array(np.zeros(node.shape))
        neg = ElementwiseAffine(f"{tag}.neg", (b,), node.shape,
                                scale=frozen_array(np.full(node.shape, -1.0)), shift=zeros)
        diff = Add(f"{tag}.diff", (a, neg.name), node.shape)
        nodes.extend([neg, diff])
        if not gate.all():  # windows whose two sides are one element: exactly 0 there
            diff = ElementwiseAffine(f"{tag}.gate", (diff.name,), node.shape,
                                     scale=frozen_array(gate), shift=zeros)
            nodes.append(diff)
        relu = Relu(f"{tag}.relu", (diff.name,), node.shape)
        last = sub is tree
        out = Add(node.name if last else tag, (b, relu.name), node.shape,
                  note=_note(node.note, "max-pool as ReLUs") if last else "")
        nodes.extend([relu, out])
        return out.name

    emit(tree)
    return nodes


def _repeats(idx: np.ndarray) -> np.ndarray:
    """Where a window (row of ``idx``) repeats an element of an earlier position."""
    again = np.zeros(idx.shape, dtype=bool)
    for j in range(1, idx.shape[1]):
        again[:, j] = (idx[:, :j] == idx[:, j:j + 1]).any(axis=1)
    return again


def _pack(idx: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``idx`` with each window's kept elements first (in order) and their count; the
    positions after them repeat the last kept one; positions no window needs are dropped."""
    rows = np.arange(len(idx))
    order = np.argsort(~keep, axis=1, kind="stable")  # kept elements first
    packed = np.take_along_axis(idx, order, axis=1)
    count = keep.sum(axis=1)
    last = packed[rows, count - 1][:, None]
    packed = np.where(np.arange(idx.shape[1])[None, :] < count[:, None], packed, last)
    return packed[:, : int(count.max())], count


def _pool_candidates(idx: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                     relu_after: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``idx`` (windows x positions, flat indices) with only the elements that can exceed
    their window's largest lower bound (and 0, when ``relu_after``), each once, plus one
    element attaining it where needed, first, and their count per window (:func:`_pack`)."""
    rows = np.arange(len(idx))
    low = lower[idx]
    best = low.max(axis=1, keepdims=True)
    floor = np.maximum(best, 0.0) if relu_after else best
    # an element repeated in its window (padding stands as the first one) counts once, so
    # no window keeps more elements than the full rewrite has distinct positions
    keep = (upper[idx] > floor) & ~_repeats(idx)
    # one element attaining the largest lower bound, unless the ReLU makes it needless
    # (best < 0: the maximum only matters where it is positive, and the kept ones cover it)
    need = ~keep.any(axis=1) | (best[:, 0] >= 0) if relu_after else np.ones(len(idx), bool)
    keep[rows[need], low.argmax(axis=1)[need]] = True
    return _pack(idx, keep)


PASSES: dict[str, Pass] = {
    "fold_constants": fold_constants,
    "drop_identities": drop_identities,
    "push_affine_through_reshape": push_affine_through_reshape,
    "fold_affine_after_layer": fold_affine_after_layer,
    "fold_affine_before_layer": fold_affine_before_layer,
    "merge_affine_layers": merge_affine_layers,
    "swap_relu_maxpool": swap_relu_maxpool,
}


@dataclass(frozen=True)
class Pipeline:
    """Passes run in order, repeatedly, until the graph stops changing."""

    passes: tuple[str, ...] = tuple(PASSES)
    verify: bool = True
    max_rounds: int = 50

    def run(self, graph: Graph) -> Graph:
        """Return the rewritten graph (verified after every pass when ``verify``)."""
        for _ in range(self.max_rounds):
            before = _signature(graph)
            for name in self.passes:
                graph = PASSES[name](graph)
                if self.verify:
                    graph.verify()
            if _signature(graph) == before:
                break
        return graph


def _signature(graph: Graph) -> tuple:
    return tuple((n.name, n.op, n.inputs, n.shape, n.note) for n in graph.nodes) + (
        graph.outputs,)


def standard_passes(verify: bool = True) -> Pipeline:
    """The default pipeline: fold constants, drop identities, fold and merge affine maps."""
    return Pipeline(verify=verify)
