"""Bounds on every activation of a network over an input box.

Three methods, each returning a :class:`Bounds` (per-node lower/upper arrays):

* ``interval``: interval arithmetic, one forward pass.
* ``symbolic``: CROWN-style backward propagation of linear bounds. For every node whose
  bounds decide a relaxation (the inputs of ReLU and MaxPool nodes and of output maps, and
  the graph outputs) linear lower and upper bounds in terms of the input are propagated
  backwards through the DAG, in reverse topological order, and concretised on the box. ReLU
  (and leaky ReLU) use the adaptive relaxation: the chord above, a line through the origin
  of slope ``alpha`` or 1 below (whichever covers the larger part of ``[l, u]``). MaxPool
  uses the input with the largest lower bound as its lower bound and, above, that input
  itself when its lower bound is at least every other upper bound (the max is then exact),
  else the constant largest upper bound. Smooth activations (sigmoid, tanh, softplus, ELU)
  use tangent and chord lines (:mod:`robustc.compiler.smooth`). Every node is then
  intersected with its interval bound, so symbolic bounds are never looser than interval
  ones.
* ``lp``: the symbolic bounds, then :func:`lp_tighten`: every still-unstable ReLU input is
  minimised and maximised over the triangle LP relaxation of the layers before it, with one
  HiGHS model that is extended layer by layer and re-solved from its previous basis
  (only the objective changes between solves).

What the bounds guarantee: for every input in the box, every activation of the network
evaluated in real arithmetic lies in the bounds, up to floating-point rounding in our own
float64 computation, against which every computed bound is widened outwards by
``WIDEN_REL * (1 + |b|)``. Activations computed by the float64 interpreter
(:func:`robustc.ir.evaluate`) are covered the same way; that is what the tests check. LP
bounds do not trust the LP solver's optimum: each is recomputed from the solver's dual
values as a weak-duality bound, which is valid for any dual vector, so solver tolerances can
make an LP bound looser but not unsound. Networks evaluated in float32 may differ from the
float64 network by more than the widening.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.sparse as sp

from robustc.compiler import smooth
from robustc.compiler.bound_types import (
    POOL_TIE,
    WIDEN_REL,
    Bounds,
    BoundsError,
    BoundsTimeout,
    widen,
)
from robustc.errors import IRError, ShapeError, SolverUnavailable
from robustc.ir import (
    Activation,
    Constant,
    Graph,
    Identity,
    Input,
    MaxPool,
    Node,
    OutputMap,
    Relu,
    Reshape,
)
from robustc.ir.interpret import run_node
from robustc.ir.linear import affine_map, pool_index

#: Symbolic propagation works on blocks of target neurons so that one coefficient matrix
#: holds at most about this many float64 entries.
BLOCK_ENTRIES = 1 << 22

METHODS = ("interval", "symbolic", "crown", "lp")

Box = np.ndarray | Mapping[str, np.ndarray]


# --------------------------------------------------------------------------------------
# Linear operators: a node's affine map in the cheapest form for products.


class LinearOp:
    """One matrix ``M`` of an affine map, stored as identity, diagonal, dense or sparse."""

    def __init__(self, mat: sp.csr_matrix):
        rows, cols = mat.shape
        n = rows
        one_per_row = (rows == cols and mat.nnz == n
                       and np.array_equal(mat.indptr, np.arange(n + 1))
                       and np.array_equal(mat.indices, np.arange(n)))
        self.kind, self.mat = "sparse", mat
        if one_per_row:
            diag = np.asarray(mat.data, dtype=np.float64)
            self.kind, self.mat = ("identity", None) if np.all(diag == 1.0) else ("diag", diag)
        elif mat.nnz > 0.25 * rows * cols:
            self.kind, self.mat = "dense", mat.toarray()
        self.abs_mat = None if self.kind == "identity" else abs(self.mat)
        self.mat_t = self.mat.T.tocsr() if self.kind == "sparse" else None

    def forward(self, x: np.ndarray, absolute: bool = False) -> np.ndarray:
        """``M @ x`` (or ``|M| @ x``) for a vector ``x``."""
        mat = self.abs_mat if absolute else self.mat
        if self.kind == "identity":
            return x
        if self.kind == "diag":
            return mat * x
        return np.asarray(mat @ x)

    def rows(self, rows: np.ndarray, n: int) -> np.ndarray:
        """``I[rows] @ M`` as a dense array (the first back-substitution step, exactly)."""
        if self.kind == "identity":
            out = np.zeros((rows.size, n))
            out[np.arange(rows.size), rows] = 1.0
            return out
        if self.kind == "diag":
            out = np.zeros((rows.size, n))
            out[np.arange(rows.size), rows] = self.mat[rows]
            return out
        if self.kind == "dense":
            return self.mat[rows].copy()
        return self.mat[rows].toarray()

    def backward(self, a: np.ndarray) -> np.ndarray:
        """``a @ M`` for a 2-D coefficient matrix ``a``."""
        if self.kind == "identity":
            return a
        if self.kind == "diag":
            return a * self.mat
        if self.kind == "dense":
            return a @ self.mat
        return np.asarray((self.mat_t @ a.T).T)


@dataclass
class LinearOps:
    """Per-graph data reused across boxes: linear operators, offsets and pool windows."""

    ops: dict[str, list[LinearOp]]
    offsets: dict[str, np.ndarray]
    pools: dict[str, np.ndarray]
    position: dict[str, int]


_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepare_linear_ops(graph: Graph, deadline: float | None = None) -> LinearOps:
    """Build (once per graph) the affine maps of its linear nodes and its pool windows;
    raises ``BoundsTimeout`` past ``deadline`` (checked between nodes and between the parts
    of a convolution's map: the maps of a 128x128 conv net took tens of seconds)."""
    if graph in _PREPARED:
        return _PREPARED[graph]
    ops, offsets, pools = {}, {}, {}
    for node in graph.nodes:
        in_shapes = [graph[i].shape for i in node.inputs]
        if node.linear:
            check = partial(_check_deadline, deadline, f"preparing the linear map of node "
                                                       f"{node.name!r}")
            check()
            mats, offsets[node.name] = affine_map(node, in_shapes, check)
            check()
            ops[node.name] = [LinearOp(m) for m in mats]
        elif isinstance(node, MaxPool):
            pools[node.name] = pool_index(node, in_shapes[0])
    prep = LinearOps(ops, offsets, pools, {n.name: i for i, n in enumerate(graph.nodes)})
    _PREPARED[graph] = prep
    return prep


def _check_deadline(deadline: float | None, doing: str) -> None:
    """Raise ``BoundsTimeout`` ("time limit reached while ``doing``") past ``deadline``."""
    if deadline is not None and time.perf_counter() > deadline:
        raise BoundsTimeout(f"time limit reached while {doing}")


# --------------------------------------------------------------------------------------
# Input boxes


def _input_box(graph: Graph, lower: Box, upper: Box) -> dict[str, tuple[np.ndarray, ...]]:
    """Flat float64 ``(lo, hi)`` per graph input; raises ShapeError or BoundsError."""
    if not isinstance(lower, Mapping):
        if len(graph.inputs) != 1:
            raise ShapeError(f"graph {graph.name!r} has inputs {list(graph.inputs)}: "
                             f"give the box as a dict from input name to array")
        lower, upper = {graph.inputs[0]: lower}, {graph.inputs[0]: upper}
    box = {}
    for name in graph.inputs:
        shape = tuple(graph[name].shape)
        ends = []
        for which, value in (("lower", lower), ("upper", upper)):
            if name not in value:
                raise ShapeError(f"no {which} bound given for input {name!r}")
            ends.append(_broadcast(np.asarray(value[name], dtype=np.float64), shape,
                                   f"{which} bound of input {name!r}"))
        lo, hi = ends
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise BoundsError(f"the box of input {name!r} is not finite")
        if np.any(lo > hi):
            bad = int(np.flatnonzero(lo > hi)[0])
            raise BoundsError(f"the box of input {name!r} is empty: lower > upper at flat "
                              f"index {bad} ({lo[bad]} > {hi[bad]})")
        box[name] = (lo, hi)
    return box


def _broadcast(value: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        return np.broadcast_to(value, shape).ravel().copy()
    except ValueError:
        raise ShapeError(f"{what} has shape {list(value.shape)}, expected {list(shape)} "
                         f"(or a shape that broadcasts to it)") from None


def _finish(graph: Graph, lo: dict, hi: dict, method: str, start: float) -> Bounds:
    """Reshape flat bounds to node shapes and wrap them in a Bounds."""
    lower = {n.name: lo[n.name].reshape(n.shape) for n in graph.nodes}
    upper = {n.name: hi[n.name].reshape(n.shape) for n in graph.nodes}
    relu_inputs = {n.name: n.inputs[0] for n in graph.nodes if isinstance(n, Relu)}
    return Bounds(lower, upper, method, time.perf_counter() - start, relu_inputs)


# --------------------------------------------------------------------------------------
# Interval arithmetic


def _interval_node(node: Node, prep: LinearOps, lo: dict, hi: dict) -> tuple[np.ndarray, ...]:
    """Interval bounds (flat) of one non-input node from the bounds of its inputs."""
    if isinstance(node, Constant):
        value = np.asarray(node.value, dtype=np.float64).ravel()
        return value, value
    if node.linear:
        centre = prep.offsets[node.name].copy()
        radius = np.zeros_like(centre)
        for src, op in zip(node.inputs, prep.ops[node.name], strict=True):
            centre += op.forward(0.5 * (lo[src] + hi[src]))
            radius += op.forward(0.5 * (hi[src] - lo[src]), absolute=True)
        return widen(centre - radius, centre + radius)
    (src,) = node.inputs
    if isinstance(node, Relu):  # monotone and computed exactly as the interpreter does
        return np.maximum(lo[src], node.alpha * lo[src]), np.maximum(hi[src], node.alpha * hi[src])
    if isinstance(node, MaxPool):
        return _pool_max(prep.pools[node.name], lo[src]), _pool_max(prep.pools[node.name],
                                                                    hi[src])
    if isinstance(node, OutputMap):
        return _output_map_interval(node, lo[src], hi[src])
    if isinstance(node, Activation):
        return smooth.interval(node.kind, node.alpha, lo[src], hi[src])
    raise IRError(f"no bound propagation for node {node.name!r} ({node.op})")


def _pool_max(index: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The maximum of ``values`` over each window (padding never wins)."""
    windows = np.where(index >= 0, values[np.maximum(index, 0)], -np.inf)
    return windows.max(axis=1)


def _output_map_interval(node: OutputMap, lo: np.ndarray, hi: np.ndarray):
    """Bounds of sigmoid/tanh (monotone) and softmax (increasing in its own logit,
    decreasing in the others)."""
    if node.kind != "softmax":
        values = run_node(node, np.stack([lo, hi]).reshape((2, *node.shape)), batch=2)
        out_lo, out_hi = widen(values[0].ravel(), values[1].ravel())
        floor, ceil = (0.0, 1.0) if node.kind == "sigmoid" else (-1.0, 1.0)
        return np.clip(out_lo, floor, ceil), np.clip(out_hi, floor, ceil)
    axis = node.axis % len(node.shape)
    l_ax = np.moveaxis(lo.reshape(node.shape), axis, -1)
    u_ax = np.moveaxis(hi.reshape(node.shape), axis, -1)
    off_diag = ~np.eye(l_ax.shape[-1], dtype=bool)
    with np.errstate(over="ignore"):
        # lower_i = 1 / (1 + sum_{j != i} exp(u_j - l_i)); upper symmetric
        low = 1.0 / (1.0 + np.sum(np.exp(u_ax[..., None, :] - l_ax[..., :, None]) * off_diag,
                                  axis=-1))
        high = 1.0 / (1.0 + np.sum(np.exp(l_ax[..., None, :] - u_ax[..., :, None]) * off_diag,
                                   axis=-1))
    low, high = (np.moveaxis(a, -1, axis).ravel() for a in (low, high))
    low, high = widen(low, high)
    return np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)


def _interval_pass(graph: Graph, box: dict) -> tuple[dict, dict]:
    prep = prepare_linear_ops(graph)
    lo = {name: b[0] for name, b in box.items()}
    hi = {name: b[1] for name, b in box.items()}
    for node in graph.nodes:
        if not isinstance(node, Input):
            lo[node.name], hi[node.name] = _interval_node(node, prep, lo, hi)
    return lo, hi


def interval_bounds(graph: Graph, lower: Box, upper: Box) -> Bounds:
    """Interval-arithmetic bounds of every node over the box ``[lower, upper]``.

    ``lower``/``upper`` are arrays of the input's shape (or broadcastable to it), or dicts
    from input name to array for graphs with several inputs. Raises ``ShapeError`` for a
    box of the wrong shape and ``BoundsError`` for an empty or non-finite box.
    """
    start = time.perf_counter()
    lo, hi = _interval_pass(graph, _input_box(graph, lower, upper))
    return _finish(graph, lo, hi, "interval", start)


# --------------------------------------------------------------------------------------
# Symbolic (CROWN) bounds


def symbolic_targets(graph: Graph) -> set[str]:
    """Nodes whose bounds decide a relaxation (inputs of ReLU, MaxPool, smooth activations
    and output maps) and the graph outputs; inputs, constants, ReLUs, smooth activations and
    output maps need no back-substitution (their interval bounds are as tight as the bounds
    of what they read: each is monotone)."""
    names = set(graph.outputs)
    names.update(n.inputs[0] for n in graph.nodes
                 if isinstance(n, Relu | MaxPool | OutputMap | Activation))
    return {n for n in names
            if not isinstance(graph[n], Input | Constant | Relu | OutputMap | Activation)}


def relu_relaxation(alpha: float, lo: np.ndarray, hi: np.ndarray):
    """Slopes and offset with ``sl * x <= relu(x) <= su * x + tu`` on ``[lo, hi]``."""
    unstable = (lo < 0.0) & (hi > 0.0)
    sl = np.where(lo >= 0.0, 1.0, alpha)
    su, tu = sl.copy(), np.zeros_like(lo)
    if unstable.any():
        l, u = lo[unstable], hi[unstable]
        width = u - l
        su[unstable] = (u - alpha * l) / width  # the chord from (l, alpha l) to (u, u)
        tu[unstable] = (1.0 - alpha) * u * (-l) / width
        sl[unstable] = np.where(u >= -l, 1.0, alpha)
    return sl, su, tu


def near_top(l_win: np.ndarray) -> np.ndarray:
    """Which entries of each row of ``l_win`` lie within ``POOL_TIE * (1 + |max|)`` of the
    row's largest: the MaxPool relaxation takes the first of them. Any window input bounds
    the max from below, so the choice is sound either way; taking the first near-largest
    (not the exact argmax) keeps the choice from flipping with last-bit differences of the
    bounds (hypothesis found two bound computations, summing in different orders, that
    chose different inputs among ReLU outputs tied at 0 and differed by 1.4e-3 at the
    output)."""
    top = l_win.max(axis=1, keepdims=True)
    tol = np.where(np.isfinite(top), POOL_TIE * (1.0 + np.abs(top)), 0.0)
    return l_win >= top - tol


def _pool_relaxation(index: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Selections ``P_lo``, ``P_up`` (transposed, CSR) and offset ``t`` with
    ``P_lo x <= maxpool(x) <= P_up x + t`` on ``[lo, hi]``."""
    n_out, n_in = index.shape[0], lo.size
    rows = np.arange(n_out)
    valid = index >= 0
    safe = np.maximum(index, 0)
    l_win = np.where(valid, lo[safe], -np.inf)
    u_win = np.where(valid, hi[safe], -np.inf)
    best = np.argmax(valid & near_top(l_win), axis=1)
    chosen = index[rows, best]
    others = u_win.copy()
    others[rows, best] = -np.inf
    exact = l_win[rows, best] >= others.max(axis=1)  # that input is the max everywhere
    p_lo = sp.csr_matrix((np.ones(n_out), (chosen, rows)), shape=(n_in, n_out))
    p_up = sp.csr_matrix((np.ones(int(exact.sum())), (chosen[exact], rows[exact])),
                         shape=(n_in, n_out))
    offset = np.where(exact, 0.0, u_win.max(axis=1))
    return p_lo, p_up, offset


def _relaxation(node: Node, prep: LinearOps, lo: dict, hi: dict) -> tuple:
    src = node.inputs[0]
    if isinstance(node, Relu):
        return ("relu", *relu_relaxation(node.alpha, lo[src], hi[src]))
    if isinstance(node, Activation):  # sl x + tl <= f(x) <= su x + tu
        return ("act", *smooth.relaxation(node.kind, node.alpha, lo[src], hi[src]))
    return ("pool", *_pool_relaxation(prep.pools[node.name], lo[src], hi[src]))


def _backward_nonlinear(relax: tuple, a_lo: np.ndarray, a_hi: np.ndarray):
    """Coefficients on the input of a ReLU/MaxPool/smooth activation and the constant terms
    added, for the lower (``a_lo``) and upper (``a_hi``) bounds, each using the relaxation
    side that the sign of its coefficient asks for."""
    pos_lo, neg_lo = np.maximum(a_lo, 0.0), np.minimum(a_lo, 0.0)
    pos_hi, neg_hi = np.maximum(a_hi, 0.0), np.minimum(a_hi, 0.0)
    if relax[0] == "act":
        _, sl, tl, su, tu = relax
        return (pos_lo * sl + neg_lo * su, pos_hi * su + neg_hi * sl,
                pos_lo @ tl + neg_lo @ tu, pos_hi @ tu + neg_hi @ tl)
    kind, low, up, offset = relax[0], relax[1], relax[2], relax[3]
    if kind == "relu":
        b_lo = pos_lo * low + neg_lo * up
        b_hi = pos_hi * up + neg_hi * low
    else:  # selections stored transposed: a @ P == (P.T @ a.T).T
        b_lo = np.asarray((low @ pos_lo.T + up @ neg_lo.T).T)
        b_hi = np.asarray((up @ pos_hi.T + low @ neg_hi.T).T)
    return b_lo, b_hi, neg_lo @ offset, pos_hi @ offset


def push_coefficients(pending: dict, name: str, a_lo: np.ndarray, a_hi: np.ndarray) -> None:
    """Add coefficients for node ``name``; keeps lower and upper shared while they agree."""
    if name not in pending:
        pending[name] = (a_lo, a_hi)
        return
    p_lo, p_hi = pending[name]
    new_lo = p_lo + a_lo
    new_hi = new_lo if (p_lo is p_hi and a_lo is a_hi) else p_hi + a_hi
    pending[name] = (new_lo, new_hi)


def _backsubstitute(graph: Graph, prep: LinearOps, target: str, rows: np.ndarray,
                    box: dict, relax: dict, deadline: float | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Linear bounds of ``target``'s neurons ``rows``, propagated back to the input box;
    raises ``BoundsTimeout`` when a node is reached past ``deadline``."""
    eye = np.zeros((rows.size, graph[target].size))
    eye[np.arange(rows.size), rows] = 1.0
    pending = {target: (eye, eye)}
    out_lo, out_hi = np.zeros(rows.size), np.zeros(rows.size)
    for node in reversed(graph.nodes[:prep.position[target] + 1]):
        if node.name not in pending:
            continue
        _check_deadline(deadline, f"bounding node {target!r}")
        a_lo, a_hi = pending.pop(node.name)
        shared = a_lo is a_hi
        if isinstance(node, Input):
            lo, hi = box[node.name]
            mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
            out_lo += a_lo @ mid - np.abs(a_lo) @ rad
            out_hi += a_hi @ mid + np.abs(a_hi) @ rad
        elif node.linear:
            offset = prep.offsets[node.name]
            out_lo += a_lo @ offset
            out_hi += a_hi @ offset
            start = node.name == target  # a_lo is I[rows]: slice M instead of multiplying
            for src, op in zip(node.inputs, prep.ops[node.name], strict=True):
                b_lo = op.rows(rows, graph[src].size) if start else op.backward(a_lo)
                push_coefficients(pending, src, b_lo, b_lo if shared else op.backward(a_hi))
        else:
            b_lo, b_hi, d_lo, d_hi = _backward_nonlinear(relax[node.name], a_lo, a_hi)
            out_lo += d_lo
            out_hi += d_hi
            push_coefficients(pending, node.inputs[0], b_lo, b_hi)
    return widen(out_lo, out_hi)


def _crown(graph: Graph, prep: LinearOps, target: str, box: dict, relax: dict,
           wanted: np.ndarray, deadline: float | None = None):
    """Symbolic bounds of the neurons ``wanted`` of ``target``, in blocks of rows; raises
    ``BoundsTimeout`` past ``deadline`` (``time.perf_counter()`` seconds)."""
    widest = max(node.size for node in graph.nodes[:prep.position[target] + 1])
    block = max(1, BLOCK_ENTRIES // widest)
    lo, hi = np.empty(wanted.size), np.empty(wanted.size)
    took = 0.0  # the last block's seconds: a block that cannot end before the deadline is
    for first in range(0, wanted.size, block):  # not started (its bounds would be lost)
        started = time.perf_counter()
        if deadline is not None and started + took > deadline:
            raise BoundsTimeout(f"time limit reached while bounding node {target!r}")
        part = slice(first, min(wanted.size, first + block))
        lo[part], hi[part] = _backsubstitute(graph, prep, target, wanted[part], box, relax,
                                             deadline)
        took = time.perf_counter() - started
    return lo, hi


def _rows_to_refine(graph: Graph, prep: LinearOps, node: Node, lo: np.ndarray,
                    hi: np.ndarray) -> np.ndarray:
    """The neurons of target ``node`` whose bounds can change a relaxation or a result.

    Skipped (their interval bounds stand, and every later bound is what it would be had
    they been refined): every neuron of a linear node that reads one graph input, directly
    or through reshapes (interval arithmetic over one affine map is exact); a neuron that
    only feeds ReLUs and is surely off (the ReLU outputs exactly 0 whatever its bounds); a
    MaxPool input that can never be the largest of its window (its upper bound is below the
    window's largest lower bound, which tightening can only raise). Stable active neurons
    are refined: their bounds carry forward into the interval bounds of later layers.
    Graph outputs and inputs of output maps are always refined.
    """
    if node.linear and len(node.inputs) == 1 and reads_input(graph, prep, node.inputs[0]):
        return np.arange(0)
    if node.name in graph.outputs:
        return np.arange(node.size)
    wanted = np.zeros(node.size, dtype=bool)
    for user in graph.consumers.get(node.name, ()):
        user = graph[user]
        if isinstance(user, Relu):  # its output is exactly 0 where it is off for sure
            wanted |= (hi > 0.0) if user.alpha == 0.0 else np.ones(node.size, dtype=bool)
        elif isinstance(user, MaxPool):
            index = prep.pools[user.name]
            valid = index >= 0
            safe = np.maximum(index, 0)
            level = np.where(valid, lo[safe], -np.inf).max(axis=1, keepdims=True)
            candidate = valid & (hi[safe] >= level)
            wanted[index[candidate]] = True
        elif not user.linear:
            return np.arange(node.size)
    return np.flatnonzero(wanted)


def reads_input(graph: Graph, prep: LinearOps, name: str) -> bool:
    """Whether node ``name`` is a graph input or an identity map of one (a reshape)."""
    node = graph[name]
    while not isinstance(node, Input):
        ops = prep.ops.get(node.name)
        if not ops or len(ops) != 1 or ops[0].kind != "identity" or \
                np.any(prep.offsets[node.name]):
            return False
        node = graph[node.inputs[0]]
    return True


def _symbolic_pass(graph: Graph, box: dict, deadline: float | None = None
                   ) -> tuple[dict, dict]:
    """Forward over the nodes: interval bounds, refined by back-substitution at targets and
    intersected with the plain interval bounds."""
    prep = prepare_linear_ops(graph, deadline)
    int_lo, int_hi = _interval_pass(graph, box)
    targets = symbolic_targets(graph)
    lo = {name: b[0] for name, b in box.items()}
    hi = {name: b[1] for name, b in box.items()}
    relax: dict[str, tuple] = {}
    for node in graph.nodes:
        if isinstance(node, Input):
            continue
        if isinstance(node, Relu | MaxPool | Activation):
            relax[node.name] = _relaxation(node, prep, lo, hi)
        l, u = _interval_node(node, prep, lo, hi)
        if node.name in targets:
            l, u = np.maximum(l, int_lo[node.name]), np.minimum(u, int_hi[node.name])
            wanted = _rows_to_refine(graph, prep, node, l, u)
            if wanted.size:
                c_lo, c_hi = _crown(graph, prep, node.name, box, relax, wanted, deadline)
                l[wanted] = np.maximum(l[wanted], c_lo)
                u[wanted] = np.minimum(u[wanted], c_hi)
        lo[node.name] = np.maximum(l, int_lo[node.name])
        hi[node.name] = np.minimum(u, int_hi[node.name])
    return lo, hi


def symbolic_bounds(graph: Graph, lower: Box, upper: Box, *,
                    deadline: float | None = None) -> Bounds:
    """CROWN-style symbolic bounds of every node over the box, intersected with interval
    bounds (so never looser than :func:`interval_bounds`).

    Box conventions and errors as for :func:`interval_bounds`; ``BoundsTimeout`` past
    ``deadline`` (``time.perf_counter()`` seconds).
    """
    start = time.perf_counter()
    lo, hi = _symbolic_pass(graph, _input_box(graph, lower, upper), deadline)
    return _finish(graph, lo, hi, "symbolic", start)


# --------------------------------------------------------------------------------------
# LP tightening


class _LpModel:
    """One HiGHS LP grown column- and row-block by block, with our own copy of its rows
    and column bounds for the weak-duality bounds."""

    def __init__(self, highspy):
        self.hs = highspy
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("presolve", "off")  # keep the basis between solves
        self.inf = highspy.kHighsInf
        self.col_lo, self.col_hi = np.zeros(0), np.zeros(0)
        self.row_lo, self.row_hi = np.zeros(0), np.zeros(0)
        self.blocks: list[sp.csr_matrix] = []
        self._rows: sp.csr_matrix | None = None
        self.solves = 0

    def add_cols(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """New columns with bounds ``[lo, hi]``; returns their indices."""
        n, first = lo.size, self.col_lo.size
        self.h.addCols(n, np.zeros(n), lo, hi, 0, np.zeros(n, dtype=np.int32),
                       np.zeros(0, dtype=np.int32), np.zeros(0))
        self.col_lo = np.concatenate([self.col_lo, lo])
        self.col_hi = np.concatenate([self.col_hi, hi])
        return np.arange(first, first + n)

    def add_rows(self, rows, cols, vals, lo: np.ndarray, hi: np.ndarray) -> None:
        """Rows ``lo <= A x <= hi`` from COO triplets (``rows`` numbered from 0)."""
        mat = sp.csr_matrix((vals, (rows, cols)), shape=(lo.size, self.col_lo.size))
        mat.sum_duplicates()
        self.h.addRows(lo.size, np.where(np.isfinite(lo), lo, -self.inf),
                       np.where(np.isfinite(hi), hi, self.inf), mat.nnz,
                       mat.indptr[:-1].astype(np.int32), mat.indices.astype(np.int32),
                       mat.data)
        self.blocks.append(mat)
        self.row_lo = np.concatenate([self.row_lo, lo])
        self.row_hi = np.concatenate([self.row_hi, hi])
        self._rows = None

    def set_bounds(self, cols: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Intersect the bounds of ``cols`` with ``[lo, hi]``."""
        self.col_lo[cols] = np.maximum(self.col_lo[cols], lo)
        self.col_hi[cols] = np.minimum(self.col_hi[cols], hi)
        self.h.changeColsBounds(cols.size, cols.astype(np.int32), self.col_lo[cols],
                                self.col_hi[cols])

    def minimum(self, col: int, sign: float, time_left: float) -> float | None:
        """A guaranteed lower bound of ``sign * x[col]`` over the LP (None if not solved)."""
        self.h.changeColCost(col, sign)
        self.h.setOptionValue("time_limit", max(time_left, 1e-3))
        self.h.run()
        self.solves += 1
        optimal = self.h.getModelStatus() == self.hs.HighsModelStatus.kOptimal
        duals = np.asarray(self.h.getSolution().row_dual) if optimal else None
        self.h.changeColCost(col, 0.0)  # (this resets the model status)
        return None if duals is None else self._dual_bound(col, sign, duals)

    def _dual_bound(self, col: int, sign: float, y: np.ndarray) -> float:
        """Weak duality: for any ``y``, ``c x = y A x + (c - A^T y) x`` is bounded below
        using row and column bounds only, so the bound does not depend on solver accuracy."""
        if self._rows is None:
            width = self.col_lo.size
            blocks = [sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))
                      for m in self.blocks]
            self._rows = sp.vstack(blocks, format="csr") if blocks else None
        y = np.where((y > 0) & ~np.isfinite(self.row_lo), 0.0, y)
        y = np.where((y < 0) & ~np.isfinite(self.row_hi), 0.0, y)
        reduced = -(self._rows.T @ y) if self._rows is not None else np.zeros(self.col_lo.size)
        reduced[col] += sign
        row_side = np.where(y > 0, self.row_lo, 0.0) + np.where(y < 0, self.row_hi, 0.0)
        rows = y @ row_side
        cols = np.sum(np.where(reduced > 0, reduced * self.col_lo, reduced * self.col_hi))
        return float(rows + cols)


def _lp_linear(model: _LpModel, node: Node, prep: LinearOps, cols: dict, lo: dict, hi: dict):
    """Columns of a linear node, aliased for pure data movement, else with equality rows."""
    if isinstance(node, Reshape | Identity):
        cols[node.name] = cols[node.inputs[0]]
        return
    mine = model.add_cols(lo[node.name], hi[node.name])
    cols[node.name] = mine
    rows, cidx, vals = [np.arange(node.size)], [mine], [np.ones(node.size)]
    for src, op_mat in zip(node.inputs, _csr_maps(node, prep), strict=True):
        coo = op_mat.tocoo()
        rows.append(coo.row)
        cidx.append(cols[src][coo.col])
        vals.append(-coo.data)
    offset = prep.offsets[node.name]
    model.add_rows(np.concatenate(rows), np.concatenate(cidx), np.concatenate(vals),
                   offset, offset)


def _csr_maps(node: Node, prep: LinearOps) -> list[sp.csr_matrix]:
    out = []
    for op in prep.ops[node.name]:
        if op.kind == "identity":
            out.append(sp.identity(node.size, format="csr"))
        elif op.kind == "diag":
            out.append(sp.diags(op.mat, format="csr"))
        else:
            out.append(sp.csr_matrix(op.mat))
    return out


def _lp_relu(model: _LpModel, node: Relu, cols: dict, lo: dict, hi: dict) -> None:
    """Stable neurons: ``y = x`` or ``y = alpha x``; unstable: the triangle relaxation."""
    src = node.inputs[0]
    x = cols[src]
    l, u = lo[src], hi[src]
    lo[node.name] = np.maximum(lo[node.name], np.maximum(l, node.alpha * l))
    hi[node.name] = np.minimum(hi[node.name], np.maximum(u, node.alpha * u))
    y = model.add_cols(lo[node.name], hi[node.name])
    cols[node.name] = y
    sl, su, tu = relu_relaxation(node.alpha, l, u)
    stable = ~((l < 0.0) & (u > 0.0))
    n = node.size
    inf = np.full(n, np.inf)
    parts = [  # (row mask, slope on x, row lower, row upper): y - slope * x in [lower, upper]
        (stable, su, np.zeros(n), np.zeros(n)),
        (~stable, np.ones(n), np.zeros(n), inf),
        (~stable, np.full(n, node.alpha), np.zeros(n), inf),
        (~stable, su, -inf, tu),
    ]
    for mask, slope, row_lo, row_hi in parts:
        k = np.flatnonzero(mask)
        if k.size:
            r = np.arange(k.size)
            model.add_rows(np.concatenate([r, r]), np.concatenate([y[k], x[k]]),
                           np.concatenate([np.ones(k.size), -slope[k]]), row_lo[k], row_hi[k])


def _lp_pool(model: _LpModel, node: MaxPool, prep: LinearOps, cols: dict, lo: dict,
             hi: dict) -> None:
    """``y >= x_k`` for every window member, ``y <= max_k l_k + sum_k (x_k - l_k)``."""
    src = node.inputs[0]
    index = prep.pools[node.name]
    y = model.add_cols(lo[node.name], hi[node.name])
    cols[node.name] = y
    out, k = np.nonzero(index >= 0)
    member = cols[src][index[out, k]]
    r = np.arange(out.size)
    model.add_rows(np.concatenate([r, r]), np.concatenate([y[out], member]),
                   np.concatenate([np.ones(out.size), -np.ones(out.size)]),
                   np.zeros(out.size), np.full(out.size, np.inf))
    l_win = np.where(index >= 0, lo[src][np.maximum(index, 0)], 0.0)
    l_max = np.where(index >= 0, l_win, -np.inf).max(axis=1)
    model.add_rows(np.concatenate([np.arange(node.size), out]),
                   np.concatenate([y, member]),
                   np.concatenate([np.ones(node.size), -np.ones(out.size)]),
                   np.full(node.size, -np.inf), l_max - l_win.sum(axis=1))


def _lp_activation(model: _LpModel, node: Activation, cols: dict, lo: dict,
                   hi: dict) -> None:
    """A smooth activation between its two relaxation lines:
    ``tl <= y - sl x`` and ``y - su x <= tu`` (:func:`robustc.compiler.smooth.relaxation`)."""
    src = node.inputs[0]
    x = cols[src]
    y = model.add_cols(lo[node.name], hi[node.name])
    cols[node.name] = y
    sl, tl, su, tu = smooth.relaxation(node.kind, node.alpha, lo[src], hi[src])
    n = node.size
    r = np.arange(n)
    inf = np.full(n, np.inf)
    for slope, row_lo, row_hi in ((sl, tl, inf), (su, -inf, tu)):
        model.add_rows(np.concatenate([r, r]), np.concatenate([y, x]),
                       np.concatenate([np.ones(n), -slope]), row_lo, row_hi)


def _lp_optimise(model: _LpModel, cols: np.ndarray, which: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, deadline: float) -> None:
    """Minimise and maximise the neurons ``which`` of one node; tighten ``lo``/``hi``."""
    for j in which:
        for sign in (1.0, -1.0):
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            bound = model.minimum(int(cols[j]), sign, left)
            if bound is None:
                continue
            bound -= WIDEN_REL * (1.0 + abs(bound))
            if sign > 0:
                lo[j] = max(lo[j], bound)
            else:
                hi[j] = min(hi[j], -bound)
    model.set_bounds(cols, lo, hi)


def _refine_pass(graph: Graph, lo: dict, hi: dict) -> None:
    """Intersect every node's bounds with the interval bounds of its (tightened) inputs."""
    prep = prepare_linear_ops(graph)
    for node in graph.nodes:
        if not isinstance(node, Input):
            l, u = _interval_node(node, prep, lo, hi)
            lo[node.name] = np.maximum(lo[node.name], l)
            hi[node.name] = np.minimum(hi[node.name], u)


def lp_tighten(graph: Graph, bounds: Bounds, *, time_limit: float | None = None,
               tighten_outputs: bool = True) -> Bounds:
    """``bounds`` tightened by LP: each unstable ReLU input (and, with ``tighten_outputs``,
    each output logit) is minimised and maximised over the LP relaxation of the layers
    before it (exact rows for linear nodes and stable ReLUs, the triangle for unstable
    ReLUs, a sound relaxation for MaxPool, the two lines of a smooth activation). One HiGHS
    model is grown layer by layer, each layer's rows added after its inputs are tightened,
    and re-solved from its last basis.

    Returns bounds inside ``bounds``; neurons not reached within ``time_limit`` seconds keep
    their old bounds. Raises ``SolverUnavailable`` when highspy is not installed.
    """
    start = time.perf_counter()
    deadline = start + (np.inf if time_limit is None else time_limit)
    model = _LpModel(_import_highspy())
    prep = prepare_linear_ops(graph)
    lo = {n: bounds.lower[n].ravel().copy() for n in bounds.lower}
    hi = {n: bounds.upper[n].ravel().copy() for n in bounds.upper}
    cols: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        if isinstance(node, Input):
            cols[node.name] = model.add_cols(lo[node.name], hi[node.name])
        elif isinstance(node, Relu):
            src = node.inputs[0]
            unstable = np.flatnonzero((lo[src] < 0.0) & (hi[src] > 0.0))
            _lp_optimise(model, cols[src], unstable, lo[src], hi[src], deadline)
            _lp_relu(model, node, cols, lo, hi)
        elif isinstance(node, MaxPool):
            _lp_pool(model, node, prep, cols, lo, hi)
        elif isinstance(node, Activation):
            _lp_activation(model, node, cols, lo, hi)
        elif node.linear:
            _lp_linear(model, node, prep, cols, lo, hi)
    if tighten_outputs:
        for name in _logit_outputs(graph):
            _lp_optimise(model, cols[name], np.arange(graph[name].size), lo[name], hi[name],
                         deadline)
    _refine_pass(graph, lo, hi)
    lp = _finish(graph, lo, hi, "lp", start)
    return Bounds(lp.lower, lp.upper, "lp", lp.time_s, bounds.relu_inputs)


def _logit_outputs(graph: Graph) -> list[str]:
    """The graph outputs, each output map replaced by the node it reads."""
    names = []
    for name in graph.outputs:
        while isinstance(graph[name], OutputMap):
            name = graph[name].inputs[0]
        names.append(name)
    return names


def _import_highspy():
    try:
        import highspy
    except ImportError as exc:
        raise SolverUnavailable("LP tightening needs highspy (pip install highspy)") from exc
    return highspy


# --------------------------------------------------------------------------------------
# Entry point


def compute_bounds(graph: Graph, lower: Box, upper: Box, method: str = "symbolic", *,
                   time_limit: float | None = None, device: str = "cpu") -> Bounds:
    """Bounds of every node of ``graph`` over the box ``[lower, upper]``.

    ``method`` is ``"interval"``, ``"symbolic"`` (the default), ``"crown"`` (the same
    bounds computed operator by operator in PyTorch, :mod:`robustc.compiler.crown`) or
    ``"lp"`` (symbolic, then :func:`lp_tighten` with the time left). Symbolic and CROWN
    bounds raise ``BoundsTimeout`` when ``time_limit`` seconds pass. Raises ``ShapeError``
    for a box of the wrong shape and ``BoundsError`` for an empty or non-finite box or an
    unknown method. ``device``: where the CROWN engine runs (PyTorch).
    """
    if method not in METHODS:
        raise BoundsError(f"unknown bound method {method!r}; expected one of {list(METHODS)}")
    if method == "interval":
        return interval_bounds(graph, lower, upper)
    start = time.perf_counter()
    deadline = None if time_limit is None else start + time_limit
    if method == "crown":
        from robustc.compiler.crown.engine import crown_bounds

        return crown_bounds(graph, lower, upper, deadline=deadline, device=device)
    bounds = symbolic_bounds(graph, lower, upper, deadline=deadline)
    if method == "lp":
        left = None if deadline is None else max(0.0, deadline - time.perf_counter())
        bounds = lp_tighten(graph, bounds, time_limit=left)
    return Bounds(bounds.lower, bounds.upper, method, time.perf_counter() - start,
                  bounds.relu_inputs)
