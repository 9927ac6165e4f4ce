"""alpha-CROWN on intermediate bounds: optimised lower ReLU slopes for every ReLU input.

:meth:`Crown.refine <robustc.compiler.crown.engine.Crown.refine>` bounds the input of each
ReLU by CROWN (every lower slope fixed by the adaptive rule), and :meth:`Crown.optimise`
optimises the slopes for the final objective alone. :func:`tighten_intermediate` does for
the unstable inputs of every ReLU what ``optimise`` does for the objective (auto_LiRPA's
``optimized_bounds``, alpha-CROWN): in topological order, each ReLU input's unstable
neurons are bounded below and above by back-substitution with one lower slope per row and
per unstable neuron of every ReLU before it (its own set of slopes: the slopes that tighten
one neuron need not tighten another), raised by projected Adam steps; per neuron the best
step's bound is kept and intersected with the bound it had. The ReLU's relaxation is then
rebuilt from the tighter bounds before the next ReLU input is bounded, so every later bound
(and every domain of a branch and bound that starts from them) uses the tighter chords.

Any slope in ``[leak, 1]`` gives a valid bound, so the result is as sound as CROWN's; the
steps may run in a cheaper dtype (``tuner``: a float32 :class:`Crown` of the same graph),
the bound that counts is computed again in the engine's own dtype with the slopes found and
widened outwards. The deadline is checked before every step and node of a
back-substitution; past it the neurons not yet tightened keep their bounds (nothing is
lost, nothing raised). With a deadline, each node after the first takes as many steps (at
most ``steps``, at least 1) as leave time for every node after it, at the seconds per row,
step and node on the way back measured on the nodes before: the last ReLU inputs' bounds
matter most to a branch and bound, and a node not reached keeps CROWN's.
"""

from __future__ import annotations

import time

from robustc.compiler.bound_types import BoundsTimeout
from robustc.compiler.crown.adam import Ascent, keep_best
from robustc.compiler.crown.engine import NARROW, Columns, signed_rows
from robustc.compiler.crown.operators import relu_slopes
from robustc.ir import Identity, Input, Relu, Reshape

#: Coefficient numbers one block of rows may hold per node while its steps keep the
#: autograd graph (float32: 4 bytes each, times the nodes on the way back).
TUNE_ENTRIES = 1 << 21


def tighten_intermediate(crown, box, bounds, *, steps: int = 20, lr: float = 0.1,
                         deadline: float | None = None, tuner=None,
                         entries: int = TUNE_ENTRIES) -> dict:
    """Tighten ``bounds`` (a :class:`~robustc.compiler.crown.engine.GraphBounds` of
    ``crown``'s graph over ``box``, ``(lo, hi)`` tensors ``(B, n_in)``) in place: the
    unstable inputs of every ReLU by alpha-CROWN (module docstring), the ReLU's outputs and
    relaxation after them. ``tuner`` (default ``crown``) takes the Adam steps. Returns
    statistics: ``unstable_before``/``unstable_after`` (unstable ReLU inputs over the
    batch), ``rows`` (neurons tightened), ``steps`` taken, ``node_steps`` (the steps each
    node was given, in order) and ``complete`` (False when the deadline stopped it)."""
    torch = crown.torch
    tuner = tuner or crown
    graph = crown.graph
    stats = {"unstable_before": _unstable(crown, bounds), "rows": 0, "steps": 0,
             "complete": True}
    relus = {}
    for node in graph.nodes:
        if isinstance(node, Relu):
            relus.setdefault(node.inputs[0], []).append(node)
    targets = [node.name for node in graph.nodes
               if node.name in relus and node.name in crown.targets
               and not _first_order(crown, node.name)]
    # seconds per unit of work (a row, a step, a node on its way back; the float64 bound
    # after the steps counted as one more step), from the nodes done
    spent, units = 0.0, 0.0
    stats["node_steps"] = []
    with torch.no_grad():
        for k, name in enumerate(targets):
            rows = _open_rows(bounds, name)
            if not rows.numel():
                continue
            now = time.perf_counter()
            if deadline is not None and now > deadline:
                stats["complete"] = False
                break
            here = steps
            if deadline is not None and spent > 0 and units > 0:
                # fewer steps, so that every node left is reached by the deadline: the
                # last nodes' bounds matter most to the search, and a node not reached
                # keeps CROWN's
                left = _work(crown, bounds, name, rows.numel()) + \
                    sum(_work(crown, bounds, t) for t in targets[k + 1:])
                here = max(1, min(steps, int((deadline - now) * units / (spent * left)) - 1))
            stats["node_steps"].append(here)
            start = time.perf_counter()
            try:
                done = _tighten_node(crown, tuner, name, rows, box, bounds, here, lr,
                                     deadline, entries, stats)
            except BoundsTimeout:  # a back-substitution reached the deadline: keep the rest
                done = False
            spent += time.perf_counter() - start
            units += (here + 1) * _work(crown, bounds, name, rows.numel())
            for relu in relus[name]:
                _after(crown, relu, bounds)
            if not done:
                stats["complete"] = False
                break
    stats["unstable_after"] = _unstable(crown, bounds)
    return stats


def _first_order(crown, name: str) -> bool:
    """Whether ``name`` is a linear map of the input alone (its interval bound is exact
    per neuron and no slope lies before it)."""
    node = crown.graph[name]
    if not (node.linear and len(node.inputs) == 1):
        return False
    src = crown.graph[node.inputs[0]]
    while isinstance(src, Reshape | Identity):
        src = crown.graph[src.inputs[0]]
    return isinstance(src, Input)


def _open_rows(bounds, name: str):
    """The neurons of ``name`` a tightening bounds: unstable in some box, not narrow."""
    lo, hi = bounds.lower[name], bounds.upper[name]
    return (((lo < 0.0) & (hi > 0.0) & (hi - lo > NARROW)).any(0)).nonzero().flatten()


def _work(crown, bounds, name: str, rows: int | None = None) -> float:
    """One step's work on node ``name``'s rows (its open rows by default) in units of a row
    taken back through one node: rows times the nodes before it."""
    if rows is None:
        rows = int(_open_rows(bounds, name).numel())
    return float(rows * (crown.position[name] + 1))


def _unstable(crown, bounds) -> int:
    total = 0
    for node in crown.graph.nodes:
        if isinstance(node, Relu):
            lo, hi = bounds.lower[node.inputs[0]], bounds.upper[node.inputs[0]]
            total += int(((lo < 0.0) & (hi > 0.0)).sum())
    return total


def _slopes(crown, name: str, bounds, rows: int) -> dict:
    """Starting lower slopes ``(B, rows, n)`` of every ReLU before ``name`` with an
    unstable neuron (CROWN's adaptive choice)."""
    out = {}
    for node in crown.graph.nodes[:crown.position[name]]:
        if isinstance(node, Relu):
            sl, _, _, unstable = bounds.relax[node.name]
            if unstable.any():
                out[node.name] = sl.unsqueeze(1).expand(-1, rows, -1)
    return out


def _tighten_node(crown, tuner, name: str, rows, box, bounds, steps: int, lr: float,
                  deadline, entries: int, stats: dict) -> bool:
    """alpha-CROWN bounds of neurons ``rows`` of ``name``, block by block, intersected
    into ``bounds``; False when the deadline stopped it before the last block."""
    torch = crown.torch
    batch = box[0].shape[0]
    widest = max(n.size for n in crown.graph.nodes[:crown.position[name] + 1])
    block = max(1, entries // (2 * batch * widest))
    size = crown.graph[name].size
    dtype = tuner.ops.dtype
    box_t = tuple(b.to(dtype) for b in box)
    for first in range(0, rows.numel(), block):
        if deadline is not None and time.perf_counter() > deadline:
            return False
        part = rows[first:first + block]
        k = part.numel()
        eye = signed_rows(part, size, batch, box[0])
        alpha = _slopes(crown, name, bounds, 2 * k)
        if alpha and steps > 0:
            relax = {n: tuple(t.to(dtype) if t.is_floating_point() else t for t in v)
                     for n, v in bounds.relax.items()}
            with torch.enable_grad():
                alpha, taken = _ascend(tuner, name, eye.to(dtype), box_t, relax, alpha,
                                       steps, lr, deadline)
            stats["steps"] += taken
            alpha = {n: a.to(box[0].dtype) for n, a in alpha.items()}
        const = crown.backsubstitute(name, eye, box, bounds.relax, alpha or None,
                                     deadline=deadline)
        low, high = crown.widen(const[:, :k], -const[:, k:])
        lo, hi = bounds.lower[name], bounds.upper[name]
        lo[:, part] = torch.maximum(lo[:, part], low)
        hi[:, part] = torch.minimum(hi[:, part], high)
        stats["rows"] += k
    return True


def _ascend(tuner, name: str, eye, box, relax: dict, alpha: dict, steps: int, lr: float,
            deadline) -> tuple[dict, int]:
    """Adam steps on ``alpha`` raising every row of ``backsubstitute(name, eye)``; the
    best step's slopes per box and row, and the number of steps taken."""
    torch = tuner.torch
    # the steps run on the slopes of neurons unstable in some box (Columns): the others
    # get no gradient, so the steps are the same for a fraction of Adam's work
    cols = {n: Columns.of(a, relax[n][3].any(0)) for n, a in alpha.items()}
    params = {n: c.values.to(tuner.ops.dtype).clone().requires_grad_(True)
              for n, c in cols.items()}
    best_a = {n: p.detach().clone() for n, p in params.items()}
    opt = Ascent([(list(params.values()), lr)])
    best, taken = None, 0
    for _ in range(steps):
        if deadline is not None and time.perf_counter() > deadline:
            break
        try:
            lb = tuner.backsubstitute(name, eye, box, relax,
                                      {n: Columns(p, cols[n].index) for n, p in params.items()},
                                      deadline=deadline)
        except BoundsTimeout:
            break
        if not lb.requires_grad:  # no slope given lies on the way back to the input
            break
        with torch.no_grad():
            best = keep_best(best, lb, (best_a, params))
        opt.zero_grad()
        lb.sum().backward()
        opt.step()
        taken += 1
        with torch.no_grad():
            for n, p in params.items():
                p.clamp_(tuner.graph[n].alpha, 1.0)
    return {n: Columns(v, cols[n].index).scatter(alpha[n].to(tuner.ops.dtype))
            for n, v in best_a.items()}, taken


def _after(crown, relu, bounds) -> None:
    """The ReLU's output bounds and relaxation from its input's (tightened) bounds."""
    torch = crown.torch
    lo, hi = bounds.lower[relu.inputs[0]], bounds.upper[relu.inputs[0]]
    leak = relu.alpha
    out_lo = torch.where(lo >= 0.0, lo, leak * lo)
    out_hi = torch.where(hi >= 0.0, hi, leak * hi)
    bounds.lower[relu.name] = torch.maximum(bounds.lower[relu.name], out_lo)
    bounds.upper[relu.name] = torch.minimum(bounds.upper[relu.name], out_hi)
    bounds.relax[relu.name] = relu_slopes(torch, leak, lo, hi)


__all__ = ["tighten_intermediate", "TUNE_ENTRIES"]
