"""Lowering of IR + one violation case into a MILP (MIPVerify style, Tjeng et al. 2019).

* Inputs: one variable per input value that may change; fixed values are constants.
* Linear nodes stay affine expressions over the variables (no variable per neuron): the
  expression of a node is its exact affine map (:func:`robustc.ir.linear.affine_map`)
  applied to its inputs' expressions.
* ReLU (and leaky ReLU ``max(z, a z)``): a neuron whose input bounds prove it stable adds
  nothing (inactive: ``a z``, active: ``z``). An unstable one (``l < 0 < u``) adds a
  continuous ``y`` and a binary ``d`` with the big-M constants taken from the tightest
  bounds given::

      y >= z,  y >= a z,  y <= z - (1-a) l (1-d),  y <= a z + (1-a) u d

* MaxPool: only the window input with the largest lower bound ``L`` and the inputs whose
  upper bound exceeds ``L`` are kept (any other is at most ``L`` and can only tie); when the
  pool feeds a ReLU, ``max(L, 0)`` is the level and a constant 0 stands in for the dropped
  inputs (``relu(max z) = relu(max(0, max z))``). One candidate is the output itself;
  otherwise a ``y`` and one binary per candidate (``sum d = 1``, ``y >= z_i``,
  ``y <= z_i + (U - l_i)(1 - d_i)``).
* Objective-aware relaxation: when the model minimises one atom's margin and a ReLU or
  MaxPool output reaches the logits only through linear nodes with a non-negative
  coefficient in that margin, minimisation pushes it down, so its convex lower side
  (``y >= z``, ``y >= a z``; ``y >= z_i``) is exact at the optimum and the binaries are
  dropped. Any solution still bounds the true margin at its input from above, so early
  stopping stays sound (and every witness is replayed anyway).
* The violation case is a conjunction of atoms of :mod:`robustc.ir.property` over the
  logits. A :class:`~robustc.ir.property.Linear` atom ``m >= 0`` (``m > 0``) is encoded as
  ``m >= -MARGIN_TOL``; an :class:`~robustc.ir.property.AtLeast` atom gets one binary
  selector per sub-atom that the bounds leave undecided.

The tolerance ``MARGIN_TOL`` widens the violation region: a model with no solution proves
that every input keeps the property with a margin of at least ``MARGIN_TOL`` on the logits
(in real arithmetic), which absorbs float32 rounding of the network's evaluation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from robustc.backends.milp.model import MilpBuilder, MilpModel, pad
from robustc.errors import Error, IRError
from robustc.ir import Activation, Graph, Input, MaxPool, OutputMap, Relu
from robustc.ir.linear import affine_map, pool_index
from robustc.ir.nodes import not_piecewise_linear
from robustc.ir.property import AtLeast, Box, Linear

MARGIN_TOL = 1e-5


@dataclass
class _Expr:
    """Affine expressions ``E x + c``, one row per value of a node (flattened)."""

    E: sp.csr_matrix
    c: np.ndarray


class EncodeTimeout(Error, TimeoutError):
    """The deadline passed while the MILP was being built (the verdict is ``unknown``)."""


def encode(graph: Graph, lower: dict[str, np.ndarray], upper: dict[str, np.ndarray],
           box: Box, atoms: list[Linear | AtLeast], *, objective: Linear | None = None,
           tol: float = MARGIN_TOL, deadline: float | None = None) -> MilpModel:
    """The MILP whose solutions are the inputs in ``box`` that satisfy every atom.

    ``graph`` must end at the logits (no output maps); ``lower``/``upper`` hold bounds of
    every node over ``box`` (from :mod:`robustc.compiler.bounds`). With ``objective`` the
    model minimises that atom's margin (used to decide one atom with early stopping, and to
    compute margins). Each atom must hold with margin ``>= -tol`` (a negative ``tol`` asks
    for a clear violation). Raises ``IRError`` for a graph the encoding does not support and
    ``UnsupportedOperator`` naming a smooth activation (sigmoid, tanh, softplus, ELU).
    ``deadline`` (``time.perf_counter()`` seconds) is checked before each node and before
    the model is assembled: past it, :class:`EncodeTimeout` is raised (a convolution's
    rows take a fraction of a second; a ResNet's 18 nodes 4 s on one loaded core).
    """
    if isinstance(graph.output, OutputMap):
        raise IRError("encode() needs the logits: strip output maps with robustc.ir.logits")
    builder = MilpBuilder()
    exprs: dict[str, _Expr] = {}
    stats = {"unstable_relus": 0, "stable_relus": 0, "maxpool_binaries": 0}
    input_index, input_fixed = None, None
    convex = _convex_side(graph, objective) if objective is not None and not atoms else {}
    for node in graph.nodes:
        _check(deadline, node.name)
        if isinstance(node, Input):
            exprs[node.name], input_index, input_fixed = _input(builder, box)
        elif isinstance(node, Relu):
            exprs[node.name] = _relu(builder, node, exprs[node.inputs[0]],
                                     lower[node.inputs[0]].ravel(),
                                     upper[node.inputs[0]].ravel(), stats,
                                     convex.get(node.name))
        elif isinstance(node, MaxPool):
            src = graph[node.inputs[0]]
            exprs[node.name] = _maxpool(builder, node, src.shape, exprs[src.name],
                                        lower[src.name].ravel(), upper[src.name].ravel(),
                                        stats, convex.get(node.name), _relu_floor(graph, node))
        elif node.linear:
            exprs[node.name] = _linear(graph, node, exprs, builder.num_vars)
        elif isinstance(node, Activation):
            raise not_piecewise_linear(node, "the MILP encoding")
        else:
            raise IRError(f"node {node.name!r} ({node.op}) cannot be encoded as a MILP")
    out = exprs[graph.output.name]
    out_lo, out_hi = lower[graph.output.name].ravel(), upper[graph.output.name].ravel()
    for atom in atoms:
        _violation_atom(builder, atom, out, out_lo, out_hi, stats, tol)
    obj_row, obj_const = None, 0.0
    if objective is not None:
        obj_row, obj_const = _atom_expr(objective, out, builder.num_vars)
    stats.update(variables=builder.num_vars)
    _check(deadline, "the model's rows")
    return builder.build(obj_row, obj_const, input_index=input_index, input_fixed=input_fixed,
                         stats=stats)


def _check(deadline: float | None, where: str) -> None:
    if deadline is not None and time.perf_counter() >= deadline:
        raise EncodeTimeout(f"time limit reached while building the MILP (at {where})")


def _input(builder: MilpBuilder, box: Box):
    lo, hi = box.lower.ravel().astype(np.float64), box.upper.ravel().astype(np.float64)
    free = np.flatnonzero(hi > lo)
    idx = builder.add_vars(lo[free], hi[free], name="x")
    input_index = np.full(lo.size, -1)
    input_index[free] = idx
    E = sp.csr_matrix((np.ones(len(free)), (free, idx)), shape=(lo.size, builder.num_vars))
    c = np.where(hi > lo, 0.0, lo)
    return _Expr(E, c), input_index, lo.copy()


def _linear(graph: Graph, node, exprs: dict[str, _Expr], n_vars: int) -> _Expr:
    mats, offset = affine_map(node, [graph[i].shape for i in node.inputs])
    E = sp.csr_matrix((node.size, n_vars))
    c = np.asarray(offset, dtype=np.float64).copy()
    for M, src in zip(mats, node.inputs, strict=True):
        ex = exprs[src]
        E = E + M @ pad(ex.E, n_vars)
        c = c + M @ ex.c
    return _Expr(sp.csr_matrix(E), c)


def _convex_side(graph: Graph, objective: Linear) -> dict[str, np.ndarray]:
    """For ReLU/MaxPool nodes that reach the output only through linear nodes: a bool mask
    of the neurons whose coefficient in the minimised margin is non-negative."""
    grads: dict[str, np.ndarray] = {graph.output.name: np.asarray(objective.coeffs, float)}
    linear_only = {graph.output.name}
    for node in reversed(graph.nodes):
        users = graph.consumers.get(node.name, ())
        if node.name != graph.output.name:
            if not users or any(u not in linear_only or not graph[u].linear for u in users):
                continue
            linear_only.add(node.name)
        if node.linear and node.inputs and node.name in grads:
            mats, _ = affine_map(node, [graph[i].shape for i in node.inputs])
            for M, src in zip(mats, node.inputs, strict=True):
                grads[src] = grads.get(src, 0.0) + M.T @ grads[node.name]
    return {n: grads[n] >= 0 for n in linear_only
            if n in grads and isinstance(graph[n], Relu | MaxPool)}


def _relu(builder: MilpBuilder, node: Relu, z: _Expr, lo: np.ndarray, hi: np.ndarray,
          stats: dict, convex: np.ndarray | None = None) -> _Expr:
    alpha = node.alpha
    active, inactive = lo >= 0, hi <= 0
    unstable = np.flatnonzero(~active & ~inactive)
    if convex is not None and convex[unstable].any():
        relaxed = unstable[convex[unstable]]
        unstable = unstable[~convex[unstable]]
    else:
        relaxed = np.zeros(0, dtype=int)
    stats["unstable_relus"] += len(unstable) + len(relaxed)
    stats["relaxed_relus"] = stats.get("relaxed_relus", 0) + len(relaxed)
    stats["stable_relus"] += int(active.sum() + inactive.sum())
    keep = np.where(active, 1.0, np.where(inactive, alpha, 0.0))
    E = sp.diags(keep) @ z.E
    c = keep * z.c
    if len(relaxed):
        E, c = _relu_lower_side(builder, node, z, lo, hi, relaxed, E, c)
    if len(unstable) == 0:
        return _Expr(sp.csr_matrix(E), c)
    l, u = lo[unstable], hi[unstable]
    y = builder.add_vars(alpha * l, u, name=f"{node.name}.y")
    d = builder.add_vars(np.zeros(len(unstable)), np.ones(len(unstable)), integer=True,
                         name=f"{node.name}.d")
    Y, D = builder.unit(y), builder.unit(d)
    Z, zc = pad(z.E[unstable], builder.num_vars), z.c[unstable]
    inf = np.full(len(unstable), np.inf)
    builder.add_rows(Y - Z, zc, inf)                                     # y >= z
    if alpha > 0:
        builder.add_rows(Y - alpha * Z, alpha * zc, inf)                 # y >= a z
    builder.add_rows(Y - Z - sp.diags((1 - alpha) * l) @ D, -inf,       # y <= z-(1-a)l(1-d)
                     zc - (1 - alpha) * l)
    builder.add_rows(Y - alpha * Z - sp.diags((1 - alpha) * u) @ D, -inf, alpha * zc)
    E = pad(sp.csr_matrix(E), builder.num_vars)
    P = sp.csr_matrix((np.ones(len(unstable)), (unstable, y)),
                      shape=(len(lo), builder.num_vars))
    return _Expr(sp.csr_matrix(E + P), c)


def _relu_floor(graph: Graph, node: MaxPool) -> float | None:
    """0.0 when the pool's only reader is a plain ReLU (see _pool_candidates), else None."""
    users = graph.consumers.get(node.name, ())
    if len(users) == 1 and node.name not in graph.outputs:
        user = graph[users[0]]
        if isinstance(user, Relu) and user.alpha == 0:
            return 0.0
    return None


def _relu_lower_side(builder: MilpBuilder, node: Relu, z: _Expr, lo, hi, idx, E, c):
    """Unstable neurons encoded by their convex lower side only (see the module doc)."""
    alpha = node.alpha
    y = builder.add_vars(np.maximum(alpha * lo[idx], 0.0 if alpha == 0 else -np.inf),
                         hi[idx], name=f"{node.name}.y")
    Y, Z, zc = builder.unit(y), pad(z.E[idx], builder.num_vars), z.c[idx]
    builder.add_rows(Y - Z, zc, np.inf)                                  # y >= z
    if alpha > 0:
        builder.add_rows(Y - alpha * Z, alpha * zc, np.inf)              # y >= a z
    P = sp.csr_matrix((np.ones(len(idx)), (idx, y)), shape=(len(lo), builder.num_vars))
    return pad(sp.csr_matrix(E), builder.num_vars) + P, c


def _maxpool(builder: MilpBuilder, node: MaxPool, in_shape, z: _Expr, lo: np.ndarray,
             hi: np.ndarray, stats: dict, convex: np.ndarray | None = None,
             floor: float | None = None) -> _Expr:
    windows = pool_index(node, in_shape)
    rows_E, consts = [], np.zeros(len(windows))
    for o, win in enumerate(windows):
        cand = _pool_candidates(z, lo, hi, win[win >= 0], floor, builder.num_vars)
        if cand[0].shape[0] == 1:
            rows_E.append(cand[0])
            consts[o] = cand[1][0]
        elif convex is not None and convex[o]:
            rows_E.append(_pool_lower_side(builder, node.name, o, *cand))
            stats["relaxed_maxpools"] = stats.get("relaxed_maxpools", 0) + 1
        else:
            rows_E.append(_pool_window(builder, node.name, o, *cand, stats))
    n = builder.num_vars
    return _Expr(sp.vstack([pad(r, n) for r in rows_E], format="csr"), consts)


def _pool_candidates(z: _Expr, lo, hi, win: np.ndarray, floor: float | None, n: int):
    """Expressions, constants and bounds of the window inputs that can matter.

    Kept: the input with the largest lower bound ``L`` and those whose upper bound exceeds
    ``L`` (any other is at most ``L``: it can only tie). With ``floor = 0`` (the pool feeds
    a ReLU) the pool computes ``max(0, max z)`` instead, which the ReLU cannot tell apart:
    inputs with upper bound at most ``max(L, 0)`` are dropped and a constant 0 stands in.
    """
    best = win[np.argmax(lo[win])]
    level = lo[best] if floor is None else max(lo[best], floor)
    keep = win[hi[win] > level]
    if lo[best] >= level and best not in keep:
        keep = np.concatenate([[best], keep])
    Z, zc = pad(z.E[keep], n), z.c[keep]
    zl, zu = lo[keep], hi[keep]
    if floor is not None and lo[best] < floor:  # the constant candidate `floor`
        Z = sp.vstack([Z, sp.csr_matrix((1, n))], format="csr")
        zc, zl, zu = (np.append(zc, floor), np.append(zl, floor), np.append(zu, floor))
    return Z, zc, zl, zu


def _pool_lower_side(builder: MilpBuilder, name: str, o: int, Z, zc, zl, zu
                     ) -> sp.csr_matrix:
    """``y >= z_i`` for every candidate: exact where minimisation pushes ``y`` down."""
    k = Z.shape[0]
    y = builder.add_vars([zl.max()], [zu.max()], name=f"{name}.y{o}")
    n = builder.num_vars
    Y = sp.csr_matrix((np.ones(k), (np.arange(k), np.repeat(y, k))), shape=(k, n))
    builder.add_rows(Y - pad(Z, n), zc, np.inf)
    return builder.unit(y)


def _pool_window(builder: MilpBuilder, name: str, o: int, Z, zc, zl, zu, stats: dict
                 ) -> sp.csr_matrix:
    k = Z.shape[0]
    top = zu.max()
    y = builder.add_vars([zl.max()], [top], name=f"{name}.y{o}")
    d = builder.add_vars(np.zeros(k), np.ones(k), integer=True, name=f"{name}.d{o}")
    stats["maxpool_binaries"] += k
    n = builder.num_vars
    Y = sp.csr_matrix((np.ones(k), (np.arange(k), np.repeat(y, k))), shape=(k, n))
    Z = pad(Z, n)
    big = top - zl
    builder.add_rows(Y - Z, zc, np.inf)                                   # y >= z_i
    builder.add_rows(Y - Z + sp.diags(big) @ builder.unit(d), -np.inf, zc + big)
    builder.add_rows(builder.unit(d).sum(axis=0), 1.0, 1.0)              # one winner
    return builder.unit(y)


def _atom_expr(atom: Linear, out: _Expr, n_vars: int) -> tuple[sp.csr_matrix, float]:
    row = sp.csr_matrix(atom.coeffs[None, :]) @ pad(out.E, n_vars)
    return sp.csr_matrix(row), float(atom.coeffs @ out.c + atom.const)


def _atom_range(atom: Linear, out_lo: np.ndarray, out_hi: np.ndarray) -> tuple[float, float]:
    pos, neg = np.maximum(atom.coeffs, 0), np.minimum(atom.coeffs, 0)
    return (float(pos @ out_lo + neg @ out_hi + atom.const),
            float(pos @ out_hi + neg @ out_lo + atom.const))


def _violation_atom(builder: MilpBuilder, atom, out: _Expr, out_lo, out_hi, stats,
                    tol: float) -> None:
    if isinstance(atom, Linear):
        row, const = _atom_expr(atom, out, builder.num_vars)
        builder.add_rows(row, -tol - const, np.inf)
        return
    _at_least(builder, atom, out, out_lo, out_hi, stats, tol)


def _at_least(builder: MilpBuilder, atom: AtLeast, out: _Expr, out_lo, out_hi, stats,
              tol: float) -> None:
    """At least ``k`` sub-atoms have margin >= -tol (binary selectors)."""
    need, open_atoms = atom.k, []
    for sub in atom.atoms:
        lo, hi = _atom_range(sub, out_lo, out_hi)
        if lo >= -tol:
            need -= 1            # always holds
        elif hi >= -tol:
            open_atoms.append((sub, lo))
    if need <= 0:
        return
    if need > len(open_atoms):
        builder.add_rows(sp.csr_matrix((1, builder.num_vars)), 1.0, np.inf)  # infeasible
        return
    if need == len(open_atoms):
        for sub, _ in open_atoms:
            _violation_atom(builder, sub, out, out_lo, out_hi, stats, tol)
        return
    s = builder.add_vars(np.zeros(len(open_atoms)), np.ones(len(open_atoms)), integer=True,
                         name="sel")
    stats["selector_binaries"] = stats.get("selector_binaries", 0) + len(open_atoms)
    for (sub, lo), var in zip(open_atoms, s, strict=True):
        big = -lo - tol                        # m >= -tol - big (1 - s)
        row, const = _atom_expr(sub, out, builder.num_vars)
        sel = sp.csr_matrix(([-big], ([0], [var])), shape=(1, builder.num_vars))
        builder.add_rows(row + sel, -tol - big - const, np.inf)
    builder.add_rows(builder.unit(s).sum(axis=0), float(need), np.inf)
