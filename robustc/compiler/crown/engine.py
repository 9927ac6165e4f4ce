"""CROWN and alpha-CROWN on the IR graph, one operator at a time (PyTorch).

:class:`Crown` bounds every node of a graph over one or more input boxes:

1. interval arithmetic forwards through every node (each linear node by its own operator
   with ``|W|`` for the radius);
2. for each node whose bounds decide a relaxation (the inputs of ReLU and MaxPool nodes) and
   each graph output, in topological order, the neurons whose bounds matter
   (:meth:`Crown.rows_to_refine`) are bounded by back-substitution: coefficients start as
   the identity on those neurons and travel backwards through the DAG (residual Adds send
   them down both branches, Concats split them), through each ReLU, MaxPool and smooth
   activation (:mod:`robustc.compiler.smooth`) by the side of its relaxation that the
   coefficient's sign asks for, until they reach the input box,
   where they are concretised. Blocks of rows keep the coefficients under ``entries``
   numbers; every bound is intersected with the interval bound and widened outwards by
   :func:`robustc.compiler.bound_types.widen`.

These are the bounds of :func:`robustc.compiler.bounds.symbolic_bounds` (same relaxations,
same neurons refined), computed without building any matrix of a convolution: the tests
hold the two engines equal. :meth:`Crown.objective` bounds linear functions of the output
with the same back-substitution and :meth:`Crown.optimise` raises that bound by projected
Adam steps on the lower ReLU slopes (alpha-CROWN: any slope in ``[leak, 1]`` gives a valid
bound, so the optimised bound is as sound as CROWN's).

Every box of a batch (``B`` boxes, ``(B, n_in)`` each) has its own bounds and relaxations;
the neurons refined are the union over the batch. A ``deadline`` (``time.perf_counter()``
seconds) is checked between blocks and steps and, inside one back-substitution, before
each node (one block through a large convolutional graph took tens of seconds): past it,
:class:`BoundsTimeout` is raised (alpha-CROWN's steps stop and keep the best bound so far).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from robustc.compiler.bound_types import WIDEN_REL, Bounds, BoundsError, BoundsTimeout
from robustc.compiler.crown.adam import Ascent, keep_best
from robustc.compiler.crown.operators import (
    Operators,
    activation_backward,
    activation_relaxation,
    relu_backward,
    relu_slopes,
)
from robustc.errors import ShapeError
from robustc.ir import (
    Activation,
    Add,
    Constant,
    ElementwiseAffine,
    Graph,
    Identity,
    Input,
    MaxPool,
    Relu,
    Reshape,
    Select,
)

#: Unstable neurons whose bounds are at most this far apart are not tightened by
#: alpha-CROWN (:mod:`robustc.compiler.crown.intermediate`) nor refined again by
#: :meth:`Crown.refine` with ``unstable_only``: their relaxation costs a bound at most a
#: quarter of the width per unit of coefficient. A max-pool rewritten as ReLUs
#: (``maxpool_as_relus``) repeats a window's one candidate, and the difference of an
#: element with itself is 0 widened to +-1e-9: 1,459 of the 1,761 unstable ReLU inputs
#: of dd64_pgd image 5's graph search.
NARROW = 1e-6

#: Coefficient numbers per block of back-substitution (float64: 8 bytes each).
ENTRIES = 1 << 23


@dataclass
class GraphBounds:
    """Bounds of every node over ``B`` boxes: ``lower[name]``/``upper[name]`` are ``(B, n)``
    tensors (flat node values); ``relax`` holds each ReLU's and MaxPool's relaxation."""

    lower: dict
    upper: dict
    relax: dict

    def to_bounds(self, graph: Graph, method: str, time_s: float, box: int = 0) -> Bounds:
        """Box ``box``'s bounds as a :class:`robustc.compiler.bounds.Bounds` (numpy, node
        shapes)."""
        lower = {n.name: self.lower[n.name][box].cpu().numpy().reshape(n.shape)
                 for n in graph.nodes}
        upper = {n.name: self.upper[n.name][box].cpu().numpy().reshape(n.shape)
                 for n in graph.nodes}
        relu_inputs = {n.name: n.inputs[0] for n in graph.nodes if isinstance(n, Relu)}
        return Bounds(lower, upper, method, time_s, relu_inputs)


@dataclass(frozen=True)
class Columns:
    """Per-row parameters of a layer on some of its neurons: ``values`` ``(B, R, k)`` on
    the neurons ``index`` (a long tensor of ``k``). Adam steps on the unstable neurons alone
    (alpha) or the decided ones (beta) take the same steps as on the whole layer, whose
    other entries get no gradient, for a fraction of the work."""

    values: object
    index: object

    @classmethod
    def of(cls, full, where):
        """The columns of ``full`` ``(B, R, n)`` where ``where`` (``(n,)`` bool) holds."""
        index = where.nonzero().flatten()
        return cls(full[:, :, index], index)

    def scatter(self, full):
        """A copy of ``full`` ``(B, R, n)`` with these values in their columns."""
        out = full.clone()
        out[:, :, self.index] = self.values.to(out.dtype)
        return out


def signed_rows(part, size: int, batch: int, like):
    """Back-substitution coefficients ``(batch, 2k, size)`` for the ``k`` neurons ``part``
    of a node of ``size`` neurons: rows ``0..k-1`` pick ``z`` (+1), rows ``k..2k-1`` pick
    ``-z`` (-1), so one pass gives lower and upper bounds (dtype and device of ``like``)."""
    import torch

    k = part.numel()
    eye = torch.zeros(batch, 2 * k, size, dtype=like.dtype, device=like.device)
    idx = torch.arange(k, device=eye.device)
    eye[:, idx, part] = 1.0
    eye[:, k + idx, part] = -1.0
    return eye


class Crown:
    """Linear bounds of one graph (one input; ReLU, MaxPool, smooth activations and linear
    nodes; see :mod:`robustc.compiler.crown.operators`). Raises ``UnsupportedOperator``
    naming the first node it cannot bound."""

    def __init__(self, graph: Graph, device: str = "cpu", dtype=None, entries: int = ENTRIES):
        import torch

        if len(graph.inputs) != 1:
            raise ShapeError(f"graph {graph.name!r} has {len(graph.inputs)} inputs; the "
                             f"linear bounds take one")
        self.torch = torch
        self.graph = graph
        self.ops = Operators(graph, device, dtype)
        self.entries = entries
        self.position = {n.name: i for i, n in enumerate(graph.nodes)}
        self.input = graph.nodes[0]
        names = set(graph.outputs)
        names.update(n.inputs[0] for n in graph.nodes
                     if isinstance(n, Relu | MaxPool | Activation))
        self.targets = {n for n in names
                        if not isinstance(graph[n], Input | Relu | Constant | Activation)}
        self.exact = {n.name: self._exact(n) for n in graph.nodes if n.linear}

    def _exact(self, node) -> str | None:
        """How :meth:`node_interval` bounds linear ``node`` without interval arithmetic's
        midpoint and radius (which round, so their result is widened). ``"same"``: each
        output is one input value or a constant (Reshape, Identity, Select, an
        ElementwiseAffine of scales -1 and 0 with no shift where the scale is not 0: the
        negations of max-pool trees), bounded exactly by its inputs' bounds. ``"mask"``:
        an ElementwiseAffine of scales 0 and 1, no shift where the scale is 1 (the
        constants around a crop, the gates of max-pool trees), the same by selection.
        ``"sum"``: an Add, the sums of the lower and of the upper bounds, widened (one
        rounding per term instead of four products). None: the general way."""
        if isinstance(node, Reshape | Identity | Select):
            return "same"
        if isinstance(node, Add):
            return "sum"
        if isinstance(node, ElementwiseAffine):
            c = self.ops.consts[node.name]
            scale, shift = c["scale"], c["shift"]
            if not bool(((scale == 0) | (shift == 0)).all()):
                return None
            if bool(((scale == 0) | (scale == 1)).all()):
                return "mask"
            if bool(((scale == 0) | (scale == -1)).all()):
                return "same"
        return None

    # -- boxes and intervals ---------------------------------------------------------

    def box(self, lower, upper):
        """``(lo, hi)`` as ``(B, n_in)`` tensors from arrays of the input's shape (one box)
        or with a leading batch axis; raises ``ShapeError``/``BoundsError``."""
        shape = tuple(self.input.shape)
        ends = []
        for which, value in (("lower", lower), ("upper", upper)):
            arr = np.asarray(value, dtype=np.float64)
            if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != shape:
                try:
                    arr = np.broadcast_to(arr, shape)[None]
                except ValueError:
                    raise ShapeError(f"{which} bound of input {self.input.name!r} has shape "
                                     f"{list(arr.shape)}, expected {list(shape)} (or a batch "
                                     f"of them)") from None
            ends.append(arr.reshape(arr.shape[0], -1))
        lo, hi = ends
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise BoundsError(f"the box of input {self.input.name!r} is not finite")
        if np.any(lo > hi):
            raise BoundsError(f"the box of input {self.input.name!r} is empty (lower > upper)")
        return self.ops.tensor(lo), self.ops.tensor(hi)

    def widen(self, lo, hi):
        """``lo``/``hi`` moved outwards by ``WIDEN_REL * (1 + |b|)`` (float rounding)."""
        return lo - WIDEN_REL * (1.0 + lo.abs()), hi + WIDEN_REL * (1.0 + hi.abs())

    def node_interval(self, node, lo: dict, hi: dict):
        """Interval bounds of one non-input node from its inputs' bounds."""
        if isinstance(node, Constant):  # exact, like the interpreter
            batch = lo[self.input.name].shape[0]
            value = self.ops.consts[node.name]["value"].expand(batch, -1)
            return value.clone(), value.clone()
        exact = self.exact.get(node.name)
        if exact == "mask":  # exact: each output its input, or a constant where scale is 0
            c = self.ops.consts[node.name]
            keep = c["scale"] != 0
            src = node.inputs[0]
            return (self.torch.where(keep, lo[src], c["shift"]),
                    self.torch.where(keep, hi[src], c["shift"]))
        if exact == "same":  # exact: a selection, sign change or constant per output
            a = self.ops.affine(node, [lo[s] for s in node.inputs])
            b = self.ops.affine(node, [hi[s] for s in node.inputs])
            if isinstance(node, ElementwiseAffine):
                return self.torch.minimum(a, b), self.torch.maximum(a, b)
            if isinstance(node, Reshape | Identity):  # new tensors: callers write into them
                return a.clone(), b.clone()
            return a, b
        if exact == "sum":
            return self.widen(sum(lo[s] for s in node.inputs), sum(hi[s] for s in node.inputs))
        if node.linear:
            ins = node.inputs
            mid = self.ops.affine(node, [0.5 * (lo[s] + hi[s]) for s in ins])
            rad = self.ops.affine(node, [0.5 * (hi[s] - lo[s]) for s in ins], absolute=True)
            low, high = self.widen(mid - rad, mid + rad)
            if isinstance(node, ElementwiseAffine):  # scale 0: exactly the shift, unwidened
                const = self.ops.consts[node.name]["scale"] == 0
                low, high = self.torch.where(const, mid, low), self.torch.where(const, mid, high)
            return low, high
        return self.ops.interval(node, lo[node.inputs[0]], hi[node.inputs[0]])

    def interval(self, lo, hi) -> tuple[dict, dict]:
        """Interval bounds of every node over the boxes ``(lo, hi)``."""
        low, high = {self.input.name: lo}, {self.input.name: hi}
        for node in self.graph.nodes[1:]:
            low[node.name], high[node.name] = self.node_interval(node, low, high)
        return low, high

    # -- CROWN -----------------------------------------------------------------------

    def bounds(self, lower, upper, *, deadline: float | None = None) -> GraphBounds:
        """CROWN bounds of every node over the box(es) ``[lower, upper]`` (see the module
        docstring); raises :class:`BoundsTimeout` past ``deadline``."""
        box = self.box(lower, upper)
        with self.torch.no_grad():
            int_lo, int_hi = self.interval(*box)
            return self.refine(box, within=(int_lo, int_hi), deadline=deadline)

    def refine(self, box, *, within: tuple | None = None, clip: dict | None = None,
               keep=(), unstable_only: bool = False, deadline: float | None = None
               ) -> GraphBounds:
        """CROWN bounds of every node over ``box`` (``(lo, hi)`` tensors ``(B, n_in)``),
        each node intersected with ``within`` (``(lower, upper)`` dicts of valid bounds,
        ``(B, n)`` or ``(1, n)`` tensors by name, for some or all nodes) and ``clip``
        (name: ``(lo, hi)``: bounds that hold on the region of interest, e.g. a ReLU input
        clipped at 0 by split decisions) before its neurons are chosen for
        back-substitution; the nodes named in ``keep`` get no back-substitution (their
        other bounds are already as tight); with
        ``unstable_only``, the inputs of ReLUs are refined only where the ReLU is unstable
        (the relaxations need no more; the bounds of stable neurons stay interval bounds,
        as a branch and bound wants them). Raises
        :class:`BoundsTimeout` past ``deadline``. Call under ``torch.no_grad()``."""
        torch = self.torch
        clip = clip or {}
        lo, hi = {self.input.name: box[0]}, {self.input.name: box[1]}
        relax: dict = {}
        # the nodes whose bounds are one box's, expanded: where the batch is one box
        # repeated (a branch and bound's domains), the interval pass up to the first
        # decision is computed once (a cropped input's selection and constants, its first
        # convolution)
        batch = box[0].shape[0]
        shared = {self.input.name} if batch > 1 and box[0].stride(0) == 0 and \
            box[1].stride(0) == 0 else set()
        for node in self.graph.nodes[1:]:
            self._relax(node, lo, hi, relax)
            if shared and node.inputs and all(s in shared for s in node.inputs):
                l, u = self.node_interval(node, {s: lo[s][:1] for s in node.inputs},
                                          {s: hi[s][:1] for s in node.inputs})
            else:
                l, u = self.node_interval(node, lo, hi)
            bounds = [within] if within is not None else []
            if node.name in clip:
                bounds.append(({node.name: clip[node.name][0]}, {node.name: clip[node.name][1]}))
            for b_lo, b_hi in bounds:
                if node.name in b_lo:
                    l = torch.maximum(l, b_lo[node.name])
                    u = torch.minimum(u, b_hi[node.name])
            if node.name in self.targets and node.name not in keep:
                wanted = self.rows_to_refine(node, l, u, unstable_only)
                if wanted.numel():
                    c_lo, c_hi = self.crown(node.name, wanted, box, relax, deadline)
                    l, u = l.expand(batch, -1).clone(), u.expand(batch, -1).clone()
                    l[:, wanted] = torch.maximum(l[:, wanted], c_lo)
                    u[:, wanted] = torch.minimum(u[:, wanted], c_hi)
            if l.shape[0] < batch:
                shared.add(node.name)
                l, u = l.expand(batch, -1), u.expand(batch, -1)
            lo[node.name], hi[node.name] = l, u
        return GraphBounds(lo, hi, relax)

    def adopt(self, lower: dict, upper: dict) -> GraphBounds:
        """Bounds computed elsewhere (numpy arrays by node name, one box, e.g. a
        :class:`~robustc.compiler.bounds.Bounds`' ``lower``/``upper``) as
        :class:`GraphBounds` with their relaxations, for :meth:`objective` and
        :meth:`optimise`. They must be valid bounds of the same graph."""
        lo = {n.name: self.ops.tensor(np.asarray(lower[n.name]).reshape(1, -1))
              for n in self.graph.nodes}
        hi = {n.name: self.ops.tensor(np.asarray(upper[n.name]).reshape(1, -1))
              for n in self.graph.nodes}
        relax: dict = {}
        for node in self.graph.nodes[1:]:
            self._relax(node, lo, hi, relax)
        return GraphBounds(lo, hi, relax)

    def _relax(self, node, lo: dict, hi: dict, relax: dict) -> None:
        src = node.inputs[0] if node.inputs else None
        if isinstance(node, Relu):
            relax[node.name] = relu_slopes(self.torch, node.alpha, lo[src], hi[src])
        elif isinstance(node, MaxPool):
            relax[node.name] = self.ops.pool_relaxation(node, lo[src], hi[src])
        elif isinstance(node, Activation):
            relax[node.name] = activation_relaxation(self.ops, node, lo[src], hi[src])

    def rows_to_refine(self, node, lo, hi, unstable_only: bool = False):
        """The neurons of target ``node`` whose bounds can change a relaxation or a result
        (the rule of :func:`robustc.compiler.bounds` ``_rows_to_refine``), as a long tensor:
        none for a linear map of the input alone (interval arithmetic is exact there),
        every neuron of a graph output, and otherwise those that a ReLU may see above 0 or
        that may be the largest of a MaxPool window (in any box of the batch)."""
        torch, graph = self.torch, self.graph
        if node.linear and len(node.inputs) == 1 and self._reads_input(node.inputs[0]):
            return torch.arange(0, device=lo.device)
        if node.name in graph.outputs:
            return torch.arange(node.size, device=lo.device)
        wanted = torch.zeros(node.size, dtype=torch.bool, device=lo.device)
        for user in graph.consumers.get(node.name, ()):
            user = graph[user]
            if isinstance(user, Relu):
                if unstable_only:
                    wanted |= ((lo < 0.0) & (hi > 0.0) & (hi - lo > NARROW)).any(0)
                elif user.alpha == 0.0:
                    wanted |= (hi > 0.0).any(0)
                else:
                    wanted[:] = True
            elif isinstance(user, MaxPool):
                c = self.ops.consts[user.name]
                u_win = hi[:, c["index"]]
                level = lo[:, c["index"]].masked_fill(~c["valid"], -np.inf).amax(-1, True)
                candidate = (c["valid"] & (u_win >= level)).any(0)
                wanted[c["index"][candidate]] = True
            elif not user.linear:
                return torch.arange(node.size, device=lo.device)
        return torch.nonzero(wanted).flatten()

    def _reads_input(self, name: str) -> bool:
        node = self.graph[name]
        while isinstance(node, Reshape | Identity):
            node = self.graph[node.inputs[0]]
        return isinstance(node, Input)

    def crown(self, target: str, rows, box, relax: dict, deadline: float | None = None):
        """Lower and upper bounds ``(B, len(rows))`` of neurons ``rows`` of ``target``, in
        blocks of rows."""
        torch = self.torch
        batch = box[0].shape[0]
        widest = max(n.size for n in self.graph.nodes[:self.position[target] + 1])
        block = max(1, self.entries // (2 * batch * widest))
        size = self.graph[target].size
        lows, highs = [], []
        took = 0.0  # the last block's seconds: a block that cannot end before the deadline
        for first in range(0, rows.numel(), block):  # is not started (its bounds would be lost)
            started = time.perf_counter()
            if deadline is not None and started + took > deadline:
                raise BoundsTimeout(f"time limit reached while bounding node {target!r}")
            part = rows[first:first + block]
            k = part.numel()
            eye = signed_rows(part, size, batch, box[0])
            const = self.backsubstitute(target, eye, box, relax, deadline=deadline)
            lows.append(const[:, :k])
            highs.append(-const[:, k:])
            took = time.perf_counter() - started
        return self.widen(torch.cat(lows, 1), torch.cat(highs, 1))

    def backsubstitute(self, target: str, coefs, box, relax: dict, alpha: dict | None = None,
                       beta: dict | None = None, record: dict | None = None,
                       deadline: float | None = None):
        """A lower bound ``(B, R)`` of ``coefs . target`` (``coefs``: ``(B, R, n_target)``)
        over the boxes, by back-substitution through the relaxations ``relax`` (the lower
        ReLU slopes replaced by ``alpha[name]`` ``(B, R, n)`` where given). Not widened.

        ``beta[name]`` (``(B, R, n)``, beta-CROWN): for a ReLU whose inputs ``z`` are
        constrained by split decisions ``s_j z_j >= 0``, the multipliers times the signs
        ``beta_j s_j`` (``beta_j >= 0``, 0 where no decision): ``- sum beta_j s_j z_j`` is
        added to the function, which lowers it nowhere on the split domain, so the result
        bounds the function on that domain. ``record``, when given, receives the
        coefficients reaching each ReLU's output and the input (``(B, R, n)`` by name).
        ``alpha[name]`` and ``beta[name]`` may also be :class:`Columns` (values on some
        neurons only, the others as if not given: the layer's own slopes, no multiplier).
        Raises :class:`BoundsTimeout` when a node is reached past ``deadline``."""
        graph = self.graph
        pending = {target: coefs}
        const = coefs.new_zeros(coefs.shape[:2])
        for node in reversed(graph.nodes[:self.position[target] + 1]):
            a = pending.pop(node.name, None)
            if a is None:
                continue
            if deadline is not None and time.perf_counter() > deadline:
                raise BoundsTimeout(f"time limit reached while bounding node {target!r}")
            if record is not None and isinstance(node, Input | Relu):
                record[node.name] = a
            if isinstance(node, Input):
                lo, hi = box
                mid, rad = (0.5 * (lo + hi)).unsqueeze(-1), (0.5 * (hi - lo)).unsqueeze(-1)
                const = const + (a @ mid)[..., 0] - (a.abs() @ rad)[..., 0]
                continue
            if isinstance(node, Relu):
                sl, su, tu, unstable = relax[node.name]
                if alpha is not None and node.name in alpha:
                    sl = self._lower_slopes(sl, unstable, alpha[node.name], a.shape[1])
                coef, c = relu_backward(a, sl, su, tu)
                if beta is not None and node.name in beta:
                    b = beta[node.name]
                    coef = coef.index_add(2, b.index, b.values, alpha=-1.0) \
                        if isinstance(b, Columns) else coef - b
                ins = [coef]
            elif isinstance(node, MaxPool):
                coef, c = self.ops.pool_backward(node, relax[node.name], a)
                ins = [coef]
            elif isinstance(node, Activation):
                coef, c = activation_backward(a, relax[node.name])
                ins = [coef]
            elif isinstance(node, Select):  # added into what its input has already
                pending[node.inputs[0]], c = self.ops.select_backward(
                    node, a, pending.get(node.inputs[0]))
                const = const + c
                continue
            else:
                ins, c = self.ops.backward(node, a)
            const = const + c
            for src, ai in zip(node.inputs, ins, strict=True):
                pending[src] = pending[src] + ai if src in pending else ai
        return const

    def _lower_slopes(self, sl, unstable, alpha, rows: int):
        """The lower slopes ``(B, R, n)`` of a ReLU: ``alpha`` on its unstable neurons,
        its own relaxation's ``sl`` (``(B, n)``) elsewhere; ``alpha`` is ``(B, R, n)`` or
        :class:`Columns` (values on the neurons ``index``)."""
        torch = self.torch
        if not isinstance(alpha, Columns):
            return torch.where(unstable.unsqueeze(1), alpha, sl.unsqueeze(1))
        idx = alpha.index
        picked = torch.where(unstable[:, idx].unsqueeze(1), alpha.values,
                             sl[:, idx].unsqueeze(1))
        return sl.unsqueeze(1).expand(-1, rows, -1).index_copy(2, idx, picked)

    # -- objectives ------------------------------------------------------------------

    def objective(self, weights, bias, bounds: GraphBounds, box, alpha: dict | None = None,
                  beta: dict | None = None, record: dict | None = None,
                  deadline: float | None = None):
        """A lower bound ``(B, R)`` of ``weights . output + bias`` (``weights``: ``(R,
        n_out)`` or ``(B, R, n_out)``; ``bias``: ``(R,)`` or ``(B, R)``), widened down
        (``alpha``, ``beta``, ``record``, ``deadline``: see :meth:`backsubstitute`)."""
        torch = self.torch
        batch = box[0].shape[0]
        w = self.ops.tensor(weights) if not torch.is_tensor(weights) else weights
        b = self.ops.tensor(bias) if not torch.is_tensor(bias) else bias
        w = w.expand(batch, -1, -1) if w.dim() == 2 else w
        b = b.expand(batch, -1) if b.dim() == 1 else b
        lb = b + self.backsubstitute(self.graph.outputs[0], w, box, bounds.relax, alpha, beta,
                                     record, deadline)
        return lb - WIDEN_REL * (1.0 + lb.abs())

    def optimise(self, weights, bias, bounds: GraphBounds, box, *, steps: int = 20,
                 lr: float = 0.1, deadline: float | None = None):
        """alpha-CROWN: the best lower bound ``(B, R)`` of ``weights . output + bias`` over
        ``steps`` projected Adam steps on the lower slopes of the unstable ReLUs (one slope
        per neuron and row, in ``[leak, 1]``, starting at CROWN's). Never below
        :meth:`objective`'s bound; stops early past ``deadline`` (raises
        :class:`BoundsTimeout` when even CROWN's bound is not done by then)."""
        torch = self.torch
        with torch.no_grad():
            crown = self.objective(weights, bias, bounds, box, deadline=deadline)
        rows = crown.shape[1]
        alpha = {name: relax[0].unsqueeze(1).expand(-1, rows, -1)
                 for name, relax in bounds.relax.items()
                 if isinstance(self.graph[name], Relu) and relax[3].any()}
        if not alpha or steps <= 0:
            return crown
        alpha, _ = self.tune(weights, bias, bounds, box, alpha, steps=steps, lr_alpha=lr,
                             deadline=deadline)
        with torch.no_grad():
            try:
                tuned = self.objective(weights, bias, bounds, box, alpha, deadline=deadline)
            except BoundsTimeout:  # late: CROWN's bound is still valid
                return crown
            return torch.maximum(crown, tuned)

    def tune(self, weights, bias, bounds: GraphBounds, box, alpha: dict,
             beta: dict | None = None, signs: dict | None = None, *, steps: int,
             lr_alpha: float = 0.1, lr_beta: float = 0.05, deadline: float | None = None,
             stop_at=None) -> tuple[dict, dict]:
        """Projected Adam steps that raise :meth:`objective`'s bound: on the lower slopes
        ``alpha[name]`` (``(B, R, n)``, kept in ``[leak, 1]``) and, for split domains, on
        the multipliers ``beta[name]`` (``>= 0``) of the decisions ``signs[name]`` (``(B, 1,
        n)``, -1/0/1; see :meth:`backsubstitute`). Returns copies of ``(alpha, beta)``
        holding, per box and row, the parameters of the best step (rows are independent,
        so their bound is that step's); stops early past ``deadline``. Any values in those
        ranges give a valid bound, so a caller may tune in a cheaper dtype (another
        :class:`Crown` of the same graph) and bound again in its own.

        ``stop_at``: a callable of the best bounds so far ``(B, R)`` returning ``(B,)``
        booleans; a box it marks takes no more steps: its parameters are kept and the
        other boxes go on without it, for less work per step (a branch and bound needs no
        more of a domain it has refuted). None: every box takes every step."""
        torch = self.torch
        beta, signs = beta or {}, signs or {}
        # the steps run on the neurons that can move: the unstable ones of some box (alpha),
        # the decided ones of some box (beta); every other entry has no gradient
        cols_a = {k: Columns.of(v, bounds.relax[k][3].any(0)) for k, v in alpha.items()}
        cols_b = {k: Columns.of(v, (signs[k] != 0).flatten(0, -2).any(0))
                  for k, v in beta.items()}
        a_p = {k: c.values.to(self.ops.dtype).clone().requires_grad_(True)
               for k, c in cols_a.items()}
        b_p = {k: c.values.to(self.ops.dtype).clone().requires_grad_(True)
               for k, c in cols_b.items()}
        sign = {k: signs[k][..., c.index].to(self.ops.dtype) for k, c in cols_b.items()}
        best_a = {k: v.detach().clone() for k, v in a_p.items()}
        best_b = {k: v.detach().clone() for k, v in b_p.items()}
        opt = Ascent([(list(a_p.values()), lr_alpha), (list(b_p.values()), lr_beta)])
        best = None
        live = None  # the boxes still stepped (a long tensor), None: all of them
        part = (weights, bias, bounds, box, sign)  # what the objective reads, of those boxes
        for _ in range(steps):
            if deadline is not None and time.perf_counter() > deadline:
                break
            w, b, bd, bx, sg = part
            try:
                lb = self.objective(
                    w, b, bd, bx, {k: Columns(v, cols_a[k].index) for k, v in a_p.items()},
                    {k: Columns(v * sg[k], cols_b[k].index) for k, v in b_p.items()},
                    deadline=deadline)
            except BoundsTimeout:  # the deadline passed inside this step
                break
            with torch.no_grad():
                if live is None:
                    best = keep_best(best, lb, (best_a, a_p), (best_b, b_p))
                else:
                    saved = [{k: v[live] for k, v in d.items()} for d in (best_a, best_b)]
                    best[live] = keep_best(best[live], lb, (saved[0], a_p), (saved[1], b_p))
                    for full, got in zip((best_a, best_b), saved, strict=True):
                        for k, v in got.items():
                            full[k][live] = v
            opt.zero_grad()
            lb.sum().backward()
            opt.step()
            with torch.no_grad():
                for k, v in a_p.items():
                    v.clamp_(self.graph[k].alpha, 1.0)
                for v in b_p.values():
                    v.clamp_(min=0.0)
            if stop_at is None:
                continue
            with torch.no_grad():
                done = stop_at(best)
                going = ~done if live is None else ~done[live]  # of the live boxes
            if not going.any():
                break
            if not going.all():
                keep = torch.nonzero(going)[:, 0]
                live = keep if live is None else live[keep]
                new = opt.take(keep)
                a_p = {k: new[id(v)] for k, v in a_p.items()}
                b_p = {k: new[id(v)] for k, v in b_p.items()}
                part = self._boxes(weights, bias, bounds, box, sign, live)
        full = [{k: Columns(v, cols[k].index).scatter(given[k].to(self.ops.dtype))
                 for k, v in kept.items()}
                for kept, cols, given in ((best_a, cols_a, alpha), (best_b, cols_b, beta))]
        return full[0], full[1]

    @staticmethod
    def _boxes(weights, bias, bounds: GraphBounds, box, sign: dict, index) -> tuple:
        """What :meth:`tune`'s objective reads, of the boxes ``index`` only."""
        return (weights[index] if np.ndim(weights) == 3 else weights,
                bias[index] if np.ndim(bias) == 2 else bias,
                GraphBounds({}, {}, {k: tuple(t[index] for t in v)
                                     for k, v in bounds.relax.items()}),
                (box[0][index], box[1][index]), {k: v[index] for k, v in sign.items()})


def crown_bounds(graph: Graph, lower, upper, *, deadline: float | None = None,
                 device: str = "cpu") -> Bounds:
    """CROWN bounds of every node of ``graph`` over one box, operator by operator (the
    values of :func:`robustc.compiler.bounds.symbolic_bounds`), as a
    :class:`~robustc.compiler.bounds.Bounds` with method ``"crown"``. Raises
    ``UnsupportedOperator``, ``ShapeError``, ``BoundsError`` or :class:`BoundsTimeout`."""
    start = time.perf_counter()
    crown = Crown(graph, device=device)
    return crown.bounds(lower, upper, deadline=deadline).to_bounds(
        graph, "crown", time.perf_counter() - start)


__all__ = ["Crown", "GraphBounds", "Columns", "BoundsTimeout", "crown_bounds", "ENTRIES"]
