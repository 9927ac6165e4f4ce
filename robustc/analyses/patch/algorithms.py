"""Patching networks (Goldberger et al.) and adversarial inputs from patches (AIGENT).

* :func:`solve_patch`: the smallest change of one Dense layer's weights making a condition
  hold on given inputs (:mod:`robustc.backends.patch.encode`), optionally sign-marked.
* :func:`aigent`: patch the middle layer (the phase-fixed LP first, then the MILP), cut
  the network after it, make the patched activations the new target (relaxed to
  inequalities by the marks), repeat down to the first layer; then :func:`mod2adv` turns
  the first-layer target into an input change. ``relax="region"`` (:func:`aigent_region`,
  :func:`mod2adv_region`) relaxes each target to the activations from which the rest of
  the network, under the phases the patches fixed, satisfies the condition.
* :func:`mod2adv`: one change and one binary per input value, ``|d_i| <= max_delta b_i``,
  ``x + d`` inside the input domain, minimise the number of changed values (then their L1
  size) so that the first layer reproduces its targets *and* the whole network satisfies
  the condition (the check the AIGENT code drops; kept here, as in the paper).

Every adversarial input and patched network is replayed on onnxruntime by the callers
(:func:`robustc.analyses.patch.problem.run_problem`, ``benchmarks/patching.py``) before it
counts.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from robustc.backends.milp.encode import encode
from robustc.backends.milp.model import MilpBuilder
from robustc.backends.patch import marks as M
from robustc.backends.patch.encode import (
    absorb_model,
    encode_patch,
    encode_patch_phases,
    layer_inputs,
    layer_node,
    radius_bound,
    tail_graph,
)
from robustc.backends.solve import SolveOptions
from robustc.compiler.bounds import compute_bounds
from robustc.errors import IRError
from robustc.ir import Dense, Graph, cut, evaluate
from robustc.ir.property import Box, Linear, dnf


@dataclass
class PatchResult:
    """A solved patch: changes ``dw``/``db`` of layer ``layer`` (index ``k``), or none."""

    k: int
    layer: str
    status: str
    dw: np.ndarray | None = None
    db: np.ndarray | None = None
    objective: float | None = None
    optimal: bool = False
    time_s: float = 0.0
    stats: dict = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.dw is not None


def _solver(name: str):
    if name == "gurobi":
        from robustc.backends import gurobi
        return gurobi
    from robustc.backends import highs
    return highs


def solve_patch(graph: Graph, k: int, xs: list[np.ndarray], condition, *, norm: str = "l1",
                cap: float | None = None, biases: bool = False, marks: bool = False,
                margin: float = 1e-4, time_limit: float | None = 30.0,
                solver: str = "highs", radius: float | None = None,
                phases: dict[str, np.ndarray] | None = None) -> PatchResult:
    """The smallest patch of layer ``k`` making ``condition`` hold on every input in ``xs``.

    Each disjunct of ``condition`` (see :func:`robustc.ir.property.dnf`) is tried and the
    best patch kept. A patch found under a time limit is reported with ``optimal=False``;
    status ``limit`` (no patch) means the limit struck before any patch was found, and
    ``infeasible`` that none exists. ``radius`` bounds the change of each of the layer's
    outputs (``optimal`` then holds only where the bound of
    :func:`robustc.backends.patch.encode.radius_bound` shows it could not bind).
    ``phases`` (one input only) fixes the phase of every ReLU after the layer: the model
    is an LP (:func:`robustc.backends.patch.encode.encode_patch_phases`) and its optimum
    is the smallest patch *that keeps those phases*.
    """
    start, best, statuses = time.perf_counter(), None, []
    node = layer_node(graph, k)
    bound = radius_bound(layer_inputs(graph, node, xs), norm, biases)
    for atoms in dnf(condition):
        signs = _signs(graph, node, xs, atoms) if marks else None
        if phases is not None:
            if len(xs) != 1 or any(not isinstance(a, Linear) for a in atoms):
                raise ValueError("phase-fixed patches take one input and Linear atoms")
            pm = encode_patch_phases(graph, k, xs[0], atoms, phases, norm=norm, cap=cap,
                                     biases=biases, signs=signs, margin=margin, radius=radius)
        else:
            pm = encode_patch(graph, k, xs, atoms, norm=norm, cap=cap, biases=biases,
                              signs=signs, margin=margin, radius=radius,
                              tail_bounds=symbolic_bounds_of)
        out = _solver(solver).solve(pm.model, SolveOptions(time_limit=time_limit, threads=1))
        statuses.append(out.status)
        if out.solution is None:
            continue
        dw, db = pm.changes(out.solution)
        optimal = out.proven_optimal and (radius is None or out.objective <= radius / max(
            bound, 1e-12))
        if best is None or out.objective < best.objective:
            best = PatchResult(k, node.name, out.status, dw, db, out.objective,
                               optimal, stats=dict(pm.model.stats))
    if best is None:
        best = PatchResult(k, node.name, "infeasible" if statuses and all(
            s == "infeasible" for s in statuses) else "limit")
    best.time_s = time.perf_counter() - start
    return best


def _signs(graph: Graph, node, xs, atoms):
    y = np.array([evaluate(graph, x).ravel() for x in xs])
    marks = M.propagate(graph, M.output_marks(atoms, y), node.name)
    return M.change_signs(marks, layer_inputs(graph, node, xs))


def patched(graph: Graph, patch: PatchResult) -> Graph:
    """``graph`` with the patch applied to its layer."""
    node = graph[patch.layer]
    bias = node.bias if node.bias is not None else np.zeros(node.weight.shape[0])
    new = dataclasses.replace(node, weight=np.asarray(node.weight, np.float64) + patch.dw,
                              bias=np.asarray(bias, np.float64) + patch.db)
    return graph.replace_nodes([new if n.name == node.name else n for n in graph.nodes])


def target_atoms(values: np.ndarray, marks: np.ndarray) -> list[Linear]:
    """``y_i >= c_i`` (increment), ``y_i <= c_i`` (decrement) or both (unmarked)."""
    atoms, n = [], len(values)
    for i, (c, m) in enumerate(zip(values, marks, strict=True)):
        e = np.zeros(n)
        e[i] = 1.0
        if m >= 0:
            atoms.append(Linear(e, -float(c), False, f"y{i} >= {c:.4g}"))
        if m <= 0:
            atoms.append(Linear(-e, float(c), False, f"y{i} <= {c:.4g}"))
    return atoms


@dataclass
class AigentResult:
    """The outcome of :func:`aigent`: the patch chain and the adversarial input (or None)."""

    patches: list[PatchResult]
    x_adv: np.ndarray | None
    status: str
    time_s: float = 0.0
    pixels: int = 0


def aigent(graph: Graph, x: np.ndarray, condition, *, max_delta: float = 0.5,
           pixels: int | None = None, domain: tuple[float, float] = (0.0, 1.0),
           norm: str = "l1", cap: float | None = None, time_limit: float = 10.0,
           solver: str = "highs", phases: bool = True, milp_fallback: bool = True,
           relax: str = "marks") -> AigentResult:
    """Algorithm 1 of AIGENT: iterated middle-layer patches down to layer 0, then mod2adv.

    modifyEdgeLayer first fixes the phase of every ReLU after the patched layer (the
    paper's phases: those of ``x`` in the original network, and at the cut those of the
    targets), which makes it an LP (:func:`solve_patch` with ``phases``); where no patch
    keeps those phases (or with ``phases=False``) the full MILP follows when
    ``milp_fallback``. Where the middle layer admits no patch, the next ones towards the
    end are tried. Returns status ``found`` with ``x_adv`` (unreplayed: callers replay it),
    or the step that failed (``patch-k`` / ``mod2adv``).

    ``relax`` says how the patched activations become the next target: ``"marks"`` (the
    paper: equalities, made inequalities where the sign marks allow) or ``"region"`` (see
    :func:`aigent_region`).
    """
    if relax == "region":
        return aigent_region(graph, x, condition, max_delta=max_delta, pixels=pixels,
                             domain=domain, norm=norm, cap=cap, time_limit=time_limit,
                             solver=solver)
    if relax != "marks":
        raise ValueError(f"relax={relax!r}: 'marks' or 'region'")
    start, patches = time.perf_counter(), []
    acts = evaluate(graph, x, keep_all=True)
    base = {r.name: np.asarray(acts[r.name]).ravel() > 0 for r in graph.relus()}
    cur, cond, end = graph, condition, len(graph.layers()) - 1
    fixed = dict(base)
    while True:
        # the middle layer first; where it admits no patch, the next ones towards the end
        stop = end + 1 if cur is graph or end == 0 else end   # progress: m < end below
        for m in range(end // 2, stop):
            res = _modify(cur, m, x, cond, fixed, norm=norm, cap=cap, phases=phases,
                          milp_fallback=milp_fallback, time_limit=time_limit, solver=solver,
                          margin=1e-4 if cur is graph else 0.0, patches=patches)
            if res.found:
                break
        if not res.found:
            return AigentResult(patches, None, f"patch-{m}", time.perf_counter() - start)
        y = evaluate(cur, x).ravel()
        sub = cut(graph, m)
        values = evaluate(cut(patched(cur, res), m), x).ravel()
        marks = M.propagate(cur, M.output_marks(_first_conj(cond), y), sub.output.name)
        cond_atoms = target_atoms(values, marks)
        if m == 0:
            break
        cur, end, cond = sub, m, _conj(cond_atoms)
        fixed = dict(base)
        if sub.output.name in fixed:        # the cut's ReLU takes the targets' phases
            fixed[sub.output.name] = values > 0
    x_adv = mod2adv(graph, x, values, marks, condition, max_delta=max_delta, pixels=pixels,
                    domain=domain, time_limit=time_limit, solver=solver)
    status = "found" if x_adv is not None else "mod2adv"
    n = 0 if x_adv is None else int(np.count_nonzero(np.abs(x_adv - x) > 1e-9))
    return AigentResult(patches, x_adv, status, time.perf_counter() - start, n)


def aigent_region(graph: Graph, x: np.ndarray, condition, *, max_delta: float = 0.5,
                  pixels: int | None = None, domain: tuple[float, float] = (0.0, 1.0),
                  norm: str = "l1", cap: float | None = None, time_limit: float = 10.0,
                  solver: str = "highs") -> AigentResult:
    """AIGENT with targets relaxed to the *region* of the phases the patches fixed.

    Each modifyEdgeLayer fixes the phase of every ReLU after the patched layer except the
    one right after it, which stays free (a MILP with one binary per neuron of that layer,
    :func:`encode_patch_phases` with a radius). The patch's phases of that ReLU join the
    fixed ones, and the next target is not the point of the patched activations but every
    activation of the cut layer from which the rest of the network, *with the fixed phases*,
    satisfies the condition: linear inequalities that contain the point and imply the
    condition (sound, unlike marks that the weights do not justify; the marks' one-sided
    targets are the special case of a box inside this set). After the first layer,
    :func:`mod2adv_region` solves for the input under every fixed phase: an MILP with only
    the per-pixel binaries.
    """
    start, patches = time.perf_counter(), []
    acts = evaluate(graph, x, keep_all=True)
    relu_names = {r.name for r in graph.relus()}
    after = {n.name: graph.consumers[n.name][0] for n in graph.layers()
             if len(graph.consumers.get(n.name, ())) == 1
             and graph.consumers[n.name][0] in relu_names}   # layer -> its ReLU
    fixed = {r.name: np.asarray(acts[r.name]).ravel() > 0 for r in graph.relus()}
    atoms = [c for c in dnf(condition) if all(isinstance(a, Linear) for a in c)]
    if len(atoms) != len(dnf(condition)):
        raise ValueError("relax='region' needs a condition of Linear atoms")
    end = len(graph.layers()) - 1
    while True:
        res = None
        for m in range(end // 2, end + 1 if end == len(graph.layers()) - 1 else end):
            node = graph.layers()[m]
            free = dict(fixed)
            relu = after.get(node.name)
            if relu is not None:
                del free[relu]
            z0 = np.asarray(acts[node.name]).ravel()
            for scale in (0.5, 2.0, 8.0):
                radius = scale * (np.abs(z0).max() + 1.0)
                res = solve_patch(graph, m, [x], condition, norm=norm, cap=cap, marks=True,
                                  time_limit=time_limit, solver=solver, phases=free,
                                  radius=radius if relu is not None else None)
                patches.append(res)
                if res.found or res.status != "infeasible" or relu is None:
                    break
            if res.found:
                break
        if res is None or not res.found:
            return AigentResult(patches, None, f"patch-{m}", time.perf_counter() - start)
        if relu is not None:
            new = evaluate(patched(graph, res), x, keep_all=True)
            fixed[relu] = np.asarray(new[relu]).ravel() > 0
        if m == 0:
            break
        end = m
    x_adv = mod2adv_region(graph, x, fixed, condition, max_delta=max_delta, pixels=pixels,
                           domain=domain, time_limit=time_limit, solver=solver)
    status = "found" if x_adv is not None else "mod2adv"
    n = 0 if x_adv is None else int(np.count_nonzero(np.abs(x_adv - x) > 1e-9))
    return AigentResult(patches, x_adv, status, time.perf_counter() - start, n)


def mod2adv_region(graph: Graph, x: np.ndarray, phases: dict[str, np.ndarray], condition,
                   *, max_delta: float = 0.5, pixels: int | None = None,
                   domain: tuple[float, float] = (0.0, 1.0), margin: float = 1e-4,
                   time_limit: float | None = 10.0, solver: str = "highs"
                   ) -> np.ndarray | None:
    """mod2adv under fixed phases: the input with the fewest changed values (then the
    smallest L1 change) in ``x +- max_delta`` and ``domain`` where every ReLU has the phase
    ``phases`` gives it and the outputs satisfy ``condition``; None if there is none.

    Under fixed phases the network is affine, so the only binaries are the per-pixel ones;
    the rows stating the phases make any solution exact for the real network.
    """
    from robustc.ir import Identity, Relu, Reshape

    x0 = np.asarray(x, np.float64).ravel()
    n = x0.size
    lo = np.clip(x0 - max_delta, *domain)
    hi = np.clip(x0 + max_delta, *domain)
    best = None
    for atoms in dnf(condition):
        builder = MilpBuilder()
        xv = builder.add_vars(lo, hi, name="x")
        b = builder.add_vars(np.zeros(n), np.ones(n), integer=True, name="b")
        u = builder.add_vars(np.zeros(n), np.full(n, max_delta), name="u")
        X, B, U = builder.unit(xv), builder.unit(b), builder.unit(u)
        _change_rows(builder, X, B, U, x0, max_delta)
        E, c = sp.identity(n, format="csr"), np.zeros(n)
        for t in graph.nodes[1:]:
            if isinstance(t, Dense):
                W = sp.csr_matrix(np.asarray(t.weight, np.float64))
                bias = 0.0 if t.bias is None else np.asarray(t.bias, float).ravel()
                E, c = W @ E, W @ c + bias
            elif isinstance(t, Relu):
                on = np.asarray(phases[t.name], bool).ravel()
                builder.add_rows(E @ X, np.where(on, -c, -np.inf), np.where(on, np.inf, -c))
                E, c = sp.diags(on.astype(float)) @ E, np.where(on, c, 0.0)
            elif not isinstance(t, Reshape | Identity):
                raise IRError(f"mod2adv_region does not go through {t.op} ({t.name})")
        for atom in atoms:
            coeffs = np.asarray(atom.coeffs, float)
            row = sp.csr_matrix(coeffs[None]) @ E
            builder.add_rows(row @ X, [margin - float(coeffs @ c + atom.const)], [np.inf])
        out = _solve_fewest_pixels(builder, b, u, pixels, max_delta, solver, time_limit)
        if out.solution is None:
            continue
        xs = out.solution[xv]
        xs = np.clip(np.where(np.abs(xs - x0) <= 1e-9, x0, xs), lo, hi)
        if best is None or out.objective < best[1]:
            best = (xs, out.objective)
    return None if best is None else best[0].reshape(x.shape)


def _first_conj(cond):
    return dnf(cond)[0]


def _modify(graph: Graph, k: int, x, cond, fixed, *, norm, cap, phases, milp_fallback,
            time_limit, solver, margin, patches) -> PatchResult:
    """modifyEdgeLayer: the phase-fixed LP, then (if it finds none) the MILP."""
    res = None
    if phases and all(isinstance(a, Linear) for c in dnf(cond) for a in c):
        res = solve_patch(graph, k, [x], cond, norm=norm, cap=cap, marks=True, margin=margin,
                          time_limit=time_limit, solver=solver, phases=fixed)
        patches.append(res)
        if res.found or not milp_fallback:
            return res
    res = solve_patch(graph, k, [x], cond, norm=norm, cap=cap, marks=True, margin=margin,
                      time_limit=time_limit, solver=solver)
    patches.append(res)
    return res


def _conj(atoms):
    from robustc.ir.property import And
    return And(tuple(atoms))


def _target_rows(values: np.ndarray, marks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on the first layer's pre-activations that reproduce its (post-ReLU) targets."""
    lo, hi = np.full(len(values), -np.inf), np.full(len(values), np.inf)
    for i, (c, m) in enumerate(zip(values, marks, strict=True)):
        if c <= 0:                       # inactive target: p <= 0 unless raising is fine
            hi[i] = 0.0 if m <= 0 else np.inf
            continue
        lo[i] = c if m >= 0 else -np.inf
        hi[i] = c if m <= 0 else np.inf
    return lo, hi


def _mod2adv_bounds(graph: Graph, node, box: Box, p_lo, p_hi) -> tuple[dict, dict]:
    """Bounds of every node over ``box``, the first layer's clipped to its targets."""
    b = compute_bounds(graph, box.lower, box.upper, "symbolic")
    lower, upper = dict(b.lower), dict(b.upper)
    shape = lower[node.name].shape
    lo = np.maximum(lower[node.name].ravel(), p_lo)
    hi = np.minimum(upper[node.name].ravel(), p_hi)
    if np.any(lo > hi):
        return None, None
    lower[node.name], upper[node.name] = lo.reshape(shape), hi.reshape(shape)
    tail = tail_graph(graph, node.name)
    if len(tail.nodes) > 1:
        tb = compute_bounds(tail, lower[node.name], upper[node.name], "symbolic")
        for name in tb.lower:
            if name != node.name:
                lower[name] = np.maximum(lower[name], tb.lower[name])
                upper[name] = np.minimum(upper[name], tb.upper[name])
    return lower, upper


def mod2adv(graph: Graph, x: np.ndarray, values: np.ndarray, marks: np.ndarray, condition, *,
            max_delta: float = 0.5, pixels: int | None = None,
            domain: tuple[float, float] = (0.0, 1.0), margin: float = 1e-4,
            time_limit: float | None = 10.0, solver: str = "highs") -> np.ndarray | None:
    """The input closest to ``x`` in changed values (then L1) that gives the first layer the
    targets ``values`` (relaxed by ``marks``) and satisfies ``condition``; None if none.

    ``graph`` ends at the logits and its first layer reads the input (flattened).
    """
    node = graph.layers()[0]
    x0 = np.asarray(x, np.float64).ravel()
    box = Box(np.clip(x0 - max_delta, *domain).reshape(x.shape),
              np.clip(x0 + max_delta, *domain).reshape(x.shape))
    p_lo, p_hi = _target_rows(values, marks)
    lower, upper = _mod2adv_bounds(graph, node, box, p_lo, p_hi)
    if lower is None:
        return None
    best = None
    for atoms in dnf(condition):
        cand = _mod2adv_solve(graph, node, x0, box, lower, upper, atoms, p_lo, p_hi,
                              max_delta, pixels, margin, time_limit, solver)
        if cand is not None and (best is None or cand[1] < best[1]):
            best = cand
    return None if best is None else best[0].reshape(x.shape)


def _change_rows(builder: MilpBuilder, X, B, U, x0: np.ndarray, max_delta: float) -> None:
    """``|x - x0| <= max_delta * b`` and ``u >= |x - x0|`` per pixel (``X``: the rows of
    ``x``'s free part, ``x0`` shifted by ``x``'s constant part)."""
    builder.add_rows(X - max_delta * B, -np.inf, x0)           # x - x0 <= D b
    builder.add_rows(X + max_delta * B, x0, np.inf)            # x0 - x <= D b
    builder.add_rows(U - X, -x0, np.inf)                       # u >= x - x0
    builder.add_rows(U + X, x0, np.inf)                        # u >= x0 - x


def _solve_fewest_pixels(builder: MilpBuilder, b, u, pixels: int | None, max_delta: float,
                         solver: str, time_limit: float | None):
    """Minimise the changed pixels, then (weighted 1e-3 / max_delta) their L1 size, with at
    most ``pixels`` changed when given."""
    if pixels is not None:
        builder.add_rows(builder.unit(b).sum(axis=0), -np.inf, float(pixels))
    obj = np.zeros(builder.num_vars)
    obj[b], obj[u] = 1.0, 1e-3 / max(max_delta, 1e-12)
    model = builder.build(obj, input_index=np.zeros(0, int), input_fixed=np.zeros(0))
    return _solver(solver).solve(model, SolveOptions(time_limit=time_limit, threads=1))


def _mod2adv_solve(graph, node, x0, box, lower, upper, atoms, p_lo, p_hi, max_delta, pixels,
                   margin, time_limit, solver):
    net = encode(graph, lower, upper, box, list(atoms), tol=-margin)
    builder = MilpBuilder()
    off = absorb_model(builder, net)
    n = x0.size
    xv = np.where(net.input_index >= 0, off + net.input_index, -1)
    free = xv >= 0
    b = builder.add_vars(np.zeros(n), np.ones(n), integer=True, name="b")
    u = builder.add_vars(np.zeros(n), np.full(n, max_delta), name="u")
    X = sp.csr_matrix((np.ones(free.sum()), (np.flatnonzero(free), xv[free])),
                      shape=(n, builder.num_vars))
    B, U = builder.unit(b), builder.unit(u)
    const = np.where(free, 0.0, net.input_fixed)
    _change_rows(builder, X, B, U, x0 - const, max_delta)
    W = sp.csr_matrix(np.asarray(node.weight, np.float64)) @ X
    bias = (0.0 if node.bias is None else np.asarray(node.bias, np.float64)) + \
        np.asarray(node.weight, np.float64) @ const
    builder.add_rows(W, p_lo - bias, p_hi - bias)
    out = _solve_fewest_pixels(builder, b, u, pixels, max_delta, solver, time_limit)
    if out.solution is None:
        return None
    xs = const + np.where(free, out.solution[np.maximum(xv, 0)], 0.0)
    xs = np.where(np.abs(xs - x0) <= 1e-9, x0, xs)
    return np.clip(xs, box.lower.ravel(), box.upper.ravel()), out.objective


def symbolic_bounds_of(graph: Graph, lower: np.ndarray, upper: np.ndarray
                       ) -> tuple[dict, dict]:
    """Symbolic (CROWN) bounds of every node of ``graph`` on the box, as (lower, upper)
    dicts by node name: the tail bounds :func:`encode_patch` asks for."""
    bounds = compute_bounds(graph, lower, upper, "symbolic")
    return bounds.lower, bounds.upper
