"""The patch MILP: change the weights (and optionally biases) of one Dense layer.

The layer's inputs are fixed to the activations propagated from each given input, so its
outputs are affine in the changes ``dW`` (and ``db``): ``z_j = z0_j + dW a_j + db``. The rest
of the network (the *tail*, from the layer's output on) is encoded per input exactly as in
the MILP backend (:func:`robustc.backends.milp.encode.encode`: stable ReLUs eliminated,
unstable ones with a binary and big-M from bounds), the tail's input being ``z_j`` with the
box that the per-weight cap allows. Every input's copy must satisfy the condition (a
conjunction of property atoms) with margin ``>= margin``. The objective is the L1 or L-inf
norm of the change. With sign marks (:mod:`robustc.backends.patch.marks`) a change whose
sign the marks determine gets a one-sided bound, and its absolute value is linear.

When the patched layer is the last one the tail is empty and the model is an LP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from robustc.backends.milp.encode import encode as encode_tail
from robustc.backends.milp.model import MilpBuilder, MilpModel
from robustc.errors import IRError
from robustc.ir import Dense, Graph, Input, evaluate
from robustc.ir.property import AtLeast, Box, Linear

BIG = 1e4  # box of a last layer's outputs when no cap is given (only an LP bound)
#: ``tail_bounds(tail, lower, upper) -> (lower, upper)``: bounds of every node of ``tail``.
TailBounds = Callable[[Graph, np.ndarray, np.ndarray], tuple[dict, dict]]


@dataclass(frozen=True)
class PatchModel:
    """A built patch model: ``dw_index[o, i]`` is the variable of ``dW[o, i]`` (``-1``:
    fixed at 0); ``db_index`` likewise for the bias (``None`` when biases stay)."""

    model: MilpModel
    layer: str
    dw_index: np.ndarray
    db_index: np.ndarray | None
    norm: str

    def changes(self, solution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(dW, db)`` of a solution vector."""
        dw = np.where(self.dw_index >= 0, solution[np.maximum(self.dw_index, 0)], 0.0)
        db = np.zeros(self.dw_index.shape[0])
        if self.db_index is not None:
            db = np.where(self.db_index >= 0, solution[np.maximum(self.db_index, 0)], 0.0)
        return dw, db


def tail_graph(graph: Graph, layer: str) -> Graph:
    """The nodes after ``layer``, fed by a new input of the same name and shape.

    Raises ``IRError`` when a node after the layer reads anything computed before it.
    """
    order = [n.name for n in graph.nodes]
    start = order.index(layer)
    node = graph[layer]
    rest = list(graph.nodes[start + 1:])
    known = {layer} | {n.name for n in rest}
    for n in rest:
        if any(i not in known for i in n.inputs):
            raise IRError(f"node {n.name!r} after the patched layer {layer!r} reads a value "
                          "from before it: only chains can be patched")
    return Graph((Input(layer, (), node.shape),) + tuple(rest), (layer,), graph.outputs,
                 f"{graph.name}[{layer}:]").verify()


def layer_node(graph: Graph, k: int) -> Dense:
    """The ``k``-th affine layer; raises ``IRError`` unless it is a Dense layer."""
    layers = graph.layers()
    if not -len(layers) <= k < len(layers):
        raise IRError(f"layer {k} out of range: {graph.name!r} has {len(layers)} layers")
    node = layers[k]
    if not isinstance(node, Dense) or int(np.prod(node.shape)) != node.weight.shape[0]:
        raise IRError(f"layer {k} ({node.name}) is not a single-row Dense layer")
    return node


def layer_inputs(graph: Graph, node: Dense, xs: list[np.ndarray]) -> np.ndarray:
    """The activations ``a_j`` entering ``node`` for each input, shape ``(J, in)``."""
    rows = [evaluate(graph, x, keep_all=True)[node.inputs[0]].ravel() for x in xs]
    return np.asarray(rows, dtype=np.float64)


def absorb_model(builder: MilpBuilder, model: MilpModel) -> int:
    """Copy ``model``'s variables and rows into ``builder``; returns the column offset."""
    off = builder.num_vars
    cuts = np.flatnonzero(np.diff(model.integer.astype(int))) + 1
    for part in np.split(np.arange(model.num_vars), cuts):
        if len(part):
            builder.add_vars(model.lb[part], model.ub[part],
                             integer=bool(model.integer[part[0]]), name="t")
    A = sp.hstack([sp.csr_matrix((model.num_rows, off)), model.A], format="csr")
    builder.add_rows(A, model.row_lower, model.row_upper)
    return off


def _change_bounds(signs: np.ndarray | None, shape, cap: float) -> tuple[np.ndarray, ...]:
    lo, hi = np.full(shape, -cap), np.full(shape, cap)
    if signs is not None:
        lo = np.where(signs > 0, 0.0, lo)
        hi = np.where(signs < 0, 0.0, hi)
    return lo, hi


def _tail_model(tail: Graph, z0: np.ndarray, radius: np.ndarray, atoms, margin: float,
                tail_bounds: TailBounds) -> MilpModel:
    """The MILP of the tail for one input whose patched outputs lie in ``z0 +- radius``."""
    box = Box((z0 - radius).reshape(tail.input.shape), (z0 + radius).reshape(tail.input.shape))
    if len(tail.nodes) == 1:
        lower, upper = {tail.input.name: box.lower}, {tail.input.name: box.upper}
    else:
        lower, upper = tail_bounds(tail, box.lower, box.upper)
    return encode_tail(tail, lower, upper, box, list(atoms), tol=-margin)


def encode_patch(graph: Graph, k: int, xs: list[np.ndarray], atoms: list[Linear | AtLeast], *,
                 norm: str = "l1", cap: float | None = None, biases: bool = False,
                 signs: tuple[np.ndarray, np.ndarray | None] | None = None,
                 margin: float = 1e-4, radius: float | None = None,
                 tail_bounds: TailBounds) -> PatchModel:
    """The model of the smallest change of layer ``k``'s weights making ``atoms`` hold.

    ``graph`` ends at the logits (for a cut network: at the cut) and ``atoms`` is one
    conjunction of property atoms on its output; every input in ``xs`` must satisfy it with
    margin ``>= margin``. ``cap`` bounds each change (needed for a hidden layer: it gives
    the big-M constants; by default the largest absolute weight of the layer). ``radius``
    bounds the change of each of the layer's outputs, ``|z_o - z0_o| <= radius`` (tighter
    tail bounds, so fewer unstable ReLUs and smaller big-M; see :func:`radius_bound`).
    ``signs``
    = ``(sw, sb)`` from :func:`robustc.backends.patch.marks.change_signs` (+1, -1, 0 = fixed
    at zero, nan = free). ``tail_bounds(tail, lower, upper)`` gives the bounds (dicts by node
    name) of the layers after ``k`` on a box of the layer's outputs (the caller's bound
    propagation: a backend reads only the IR). Raises ``IRError`` for an unsupported layer or
    norm.
    """
    if norm not in ("l1", "linf"):
        raise IRError(f"patch norm {norm!r}: only l1 and linf are supported")
    node = layer_node(graph, k)
    tail = tail_graph(graph, node.name)
    last = len(tail.nodes) == 1
    if cap is None and not last:
        cap = float(np.abs(node.weight).max())
    acts = layer_inputs(graph, node, xs)
    z0 = np.array([evaluate(graph, x, keep_all=True)[node.name].ravel() for x in xs])
    builder = MilpBuilder()
    dw, db = _change_vars(builder, node, acts, np.inf if cap is None else cap, biases, signs)
    for a, z in zip(acts, z0, strict=True):
        radius_j = np.full(z.shape, BIG) if cap is None else cap * (np.abs(a).sum() + biases)
        if radius is not None:
            radius_j = np.minimum(radius_j, radius)
        model = _tail_model(tail, z, radius_j, atoms, margin, tail_bounds)
        off = absorb_model(builder, model)
        _link(builder, model, off, z, a, dw, db)
    objective = _objective(builder, dw, db, norm, signs)
    model = builder.build(objective, input_index=np.zeros(0, int), input_fixed=np.zeros(0),
                          stats={"variables": builder.num_vars, "last_layer": last})
    return PatchModel(model, node.name, dw, db, norm)


def radius_bound(acts: np.ndarray, norm: str, biases: bool) -> float:
    """``A`` such that a patch changing some output by more than ``r`` has norm ``> r / A``.

    ``|dW_o . a_j + db_o| <= ||dW_o||_1 max(||a_j||_inf, 1)`` and ``<= ||dW_o||_inf
    (||a_j||_1 + 1)`` (the ``1`` only with biases): a patch found under ``radius=r`` whose
    norm is at most ``r / A`` is as small as any patch without the radius limit.
    """
    a = np.abs(np.atleast_2d(acts))
    if norm == "l1":
        return float(max(a.max(initial=0.0), 1.0 if biases else 0.0))
    return float(a.sum(axis=1).max(initial=0.0) + (1.0 if biases else 0.0))


def _change_vars(builder: MilpBuilder, node: Dense, acts: np.ndarray, cap: float,
                 biases: bool, signs) -> tuple[np.ndarray, np.ndarray | None]:
    """Variables for the changes; weights whose input is 0 for every input stay fixed."""
    out, inp = node.weight.shape
    sw, sb = signs if signs is not None else (None, None)
    used = np.broadcast_to(np.any(acts != 0, axis=0), (out, inp))
    if sw is not None:
        used = used & (np.nan_to_num(sw, nan=1.0) != 0)
    lo, hi = _change_bounds(None if sw is None else np.nan_to_num(sw), (out, inp), cap)
    dw = np.full((out, inp), -1)
    dw[used] = builder.add_vars(lo[used], hi[used], name="dW")
    if not biases:
        return dw, None
    blo, bhi = _change_bounds(None if sb is None else np.nan_to_num(sb), out, cap)
    return dw, builder.add_vars(blo, bhi, name="db")


def _link(builder: MilpBuilder, model: MilpModel, off: int, z0, a, dw, db) -> None:
    """Rows ``t_o = z0_o + sum_i a_i dW[o, i] (+ db_o)`` for the tail's free inputs ``t``."""
    free = np.flatnonzero(model.input_index >= 0)
    rows, cols, vals = [], [], []
    for r, o in enumerate(free):
        keep = dw[o] >= 0
        rows += [r] * (int(keep.sum()) + 1)
        cols += list(dw[o][keep]) + [off + model.input_index[o]]
        vals += list(-a[keep]) + [1.0]
        if db is not None:
            rows.append(r)
            cols.append(db[o])
            vals.append(-1.0)
    A = sp.csr_matrix((vals, (rows, cols)), shape=(len(free), builder.num_vars))
    builder.add_rows(A, z0[free], z0[free])


def _objective(builder: MilpBuilder, dw, db, norm: str, signs) -> np.ndarray:
    """The L1 or L-inf norm of the change (|.| linear where the sign is fixed)."""
    idx = dw[dw >= 0]
    sgn = np.full(len(idx), np.nan)
    if signs is not None:
        sgn = np.asarray(signs[0], float)[dw >= 0]
    if db is not None:
        idx = np.concatenate([idx, db])
        sb = signs[1] if signs is not None and signs[1] is not None else np.full(len(db), np.nan)
        sgn = np.concatenate([sgn, np.asarray(sb, float)])
    free = np.isnan(sgn) | (sgn == 0)
    fixed_sign = np.where(free, 0.0, np.nan_to_num(sgn))
    if norm == "l1":
        u = builder.add_vars(np.zeros(free.sum()), np.full(free.sum(), np.inf), name="u")
        _abs_rows(builder, u, idx[free])
        obj = np.zeros(builder.num_vars)
        obj[idx] = fixed_sign
        obj[u] = 1.0
        return obj
    t = builder.add_vars([0.0], [np.inf], name="t")
    T = sp.csr_matrix((np.ones(len(idx)), (np.arange(len(idx)), np.repeat(t, len(idx)))),
                      shape=(len(idx), builder.num_vars))
    X = builder.unit(idx)
    builder.add_rows(T - X, 0.0, np.inf)                              # t >= dW
    builder.add_rows(T + X, 0.0, np.inf)                              # t >= -dW
    obj = np.zeros(builder.num_vars)
    obj[t] = 1.0
    return obj


def _abs_rows(builder: MilpBuilder, u: np.ndarray, x: np.ndarray) -> None:
    """``u >= |x|`` row-wise."""
    U, X = builder.unit(u), builder.unit(x)
    builder.add_rows(U - X, 0.0, np.inf)
    builder.add_rows(U + X, 0.0, np.inf)


def encode_patch_phases(graph: Graph, k: int, x: np.ndarray, atoms: list[Linear], phases:
                        dict[str, np.ndarray], *, norm: str = "l1", cap: float | None = None,
                        biases: bool = False,
                        signs: tuple[np.ndarray, np.ndarray | None] | None = None,
                        margin: float = 1e-4, radius: float | None = None) -> PatchModel:
    """The patch model of one input with every ReLU after layer ``k`` fixed to a phase: an LP.

    AIGENT's modifyEdgeLayer (the paper's section on phases): each ReLU of the tail keeps
    the phase ``phases[relu_name]`` (True: active, its input ``>= 0``; False: inactive,
    ``<= 0``), so the tail is affine and the rows stating the phases make every solution
    exact for the real network (no relaxation). Infeasible when no patch keeps those phases.
    With ``radius``, the ReLU right after the layer may instead be missing from ``phases``:
    it is then free, encoded with one binary per neuron and big-M from the bounds
    ``z0 +- radius`` (rows ``|z - z0| <= radius`` included), a MILP.
    ``atoms`` must be ``Linear``. Raises ``IRError`` for other atoms, a tail node other
    than Dense/ReLU/Reshape/Identity, or an unsupported norm.
    """
    from robustc.ir import Identity, Relu, Reshape

    if norm not in ("l1", "linf"):
        raise IRError(f"patch norm {norm!r}: only l1 and linf are supported")
    if any(not isinstance(a, Linear) for a in atoms):
        raise IRError("phase-fixed patches take Linear atoms only")
    node = layer_node(graph, k)
    tail = tail_graph(graph, node.name)
    acts = layer_inputs(graph, node, [x])
    z0 = evaluate(graph, x, keep_all=True)[node.name].ravel()
    builder = MilpBuilder()
    cap_ = np.inf if cap is None else cap
    dw, db = _change_vars(builder, node, acts, cap_, biases, signs)
    n = z0.size
    zv = builder.add_vars(np.full(n, -np.inf), np.full(n, np.inf), name="z")
    _link(builder, _FreeInputs(n), int(zv[0]), z0, acts[0], dw, db)
    # the tail as an affine map h = E v + c of the variables v = cols (first: z)
    E, c, cols = sp.identity(n, format="csr"), np.zeros(n), zv
    for pos, t in enumerate(tail.nodes[1:]):
        if isinstance(t, Relu) and t.name not in phases:
            if pos != 0 or radius is None or t.alpha != 0:
                raise IRError(f"ReLU {t.name!r} has no phase: only the plain ReLU right "
                              "after the patched layer may be free, and only with a radius")
            cols = _free_relu(builder, zv, z0, radius)
            E, c = sp.identity(n, format="csr"), np.zeros(n)
            continue
        if isinstance(t, Dense):
            W = sp.csr_matrix(np.asarray(t.weight, np.float64))
            E, c = W @ E, W @ c + (0.0 if t.bias is None else np.asarray(t.bias, float).ravel())
        elif isinstance(t, Relu):
            if t.alpha != 0:
                raise IRError("phase-fixed patches support plain ReLUs only")
            on = np.asarray(phases[t.name], bool).ravel()
            rows = _cols(E, cols, builder.num_vars)
            lo = np.where(on, -c, -np.inf)
            hi = np.where(on, np.inf, -c)
            builder.add_rows(rows, lo, hi)
            E, c = sp.diags(on.astype(float)) @ E, np.where(on, c, 0.0)
        elif not isinstance(t, Reshape | Identity):
            raise IRError(f"phase-fixed patches do not go through {t.op} ({t.name})")
    for atom in atoms:
        row = sp.csr_matrix(np.asarray(atom.coeffs, float)[None]) @ E
        const = float(np.asarray(atom.coeffs, float) @ c + atom.const)
        builder.add_rows(_cols(row, cols, builder.num_vars), [margin - const], [np.inf])
    objective = _objective(builder, dw, db, norm, signs)
    model = builder.build(objective, input_index=np.zeros(0, int), input_fixed=np.zeros(0),
                          stats={"variables": builder.num_vars, "phases_fixed": True})
    return PatchModel(model, node.name, dw, db, norm)


def _free_relu(builder: MilpBuilder, zv: np.ndarray, z0: np.ndarray, radius: float
               ) -> np.ndarray:
    """``y = relu(z)`` for ``z`` in ``z0 +- radius`` (binaries where the phase can change)."""
    n = len(zv)
    lo, hi = z0 - radius, z0 + radius
    Z = builder.unit(zv)
    builder.add_rows(Z, lo, hi)
    y = builder.add_vars(np.zeros(n), np.maximum(hi, 0.0), name="y")
    d = builder.add_vars((lo >= 0).astype(float), (hi > 0).astype(float), integer=True,
                         name="d")                      # fixed where the phase cannot change
    Y, Z, D = builder.unit(y), builder.unit(zv), builder.unit(d)
    inf = np.full(n, np.inf)
    builder.add_rows(Y - Z, np.zeros(n), inf)                              # y >= z
    builder.add_rows(Y - Z - sp.diags(lo) @ D, -inf, -lo)                  # y <= z - l(1-d)
    builder.add_rows(Y - sp.diags(np.maximum(hi, 0.0)) @ D, -inf, np.zeros(n))   # y <= u d
    return y


@dataclass(frozen=True)
class _FreeInputs:
    """Stands in for a tail model whose inputs are ``n`` consecutive variables."""

    n: int

    @property
    def input_index(self) -> np.ndarray:
        return np.arange(self.n)


def _cols(M, cols: np.ndarray, width: int) -> sp.csr_matrix:
    """``M`` (over the ``len(cols)`` variables ``cols``) as rows over ``width`` variables."""
    M = sp.csr_matrix(M)
    P = sp.csr_matrix((np.ones(len(cols)), (np.arange(len(cols)), cols)),
                      shape=(len(cols), width))
    return M @ P
