"""Spec to problems: a resolved ``.rspec`` AST to networks (IR), input arrays, input boxes
and property conditions.

Decoders turn label conditions into conditions on the logits (the tensor before any
output activation):

* ``multilabel(logit > t)``: label ``d`` present iff ``y_d > t``; ``multilabel(sigmoid > p)``
  uses ``t = log(p / (1 - p))``;
* ``topk(k)``: present iff among the ``k`` largest (ties count against the label);
* ``argmax``: present iff ``y_d > y_j`` for every other ``j``;
* ``unchanged`` means the label set decoded from the unperturbed input, which robustc
  computes with the IR interpreter.

Every problem found here is a positioned :class:`~robustc.errors.SpecError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustc.compiler.onnx_import import load_onnx
from robustc.compiler.passes import standard_passes
from robustc.errors import Error, SpecError
from robustc.ir import Graph, compose, evaluate, logits
from robustc.ir import property as P
from robustc.ir.problem import Problem
from robustc.specs import ast as A
from robustc.specs.checker import resolve_path
from robustc.specs.diagnostics import make, render
from robustc.specs.rings import (
    as_chw,
    empty_region_message,
    layer_budgets,
    layer_indices,
    load_input,
    region_mask,
)

DEFAULT_DOMAIN = (0.0, 1.0)


@dataclass(frozen=True)
class Network:
    """A declared network: its IR (after the standard passes) and its ONNX file(s)."""

    name: str
    graph: Graph
    paths: tuple[str, ...]


class SpecContext:
    """The declarations of one resolved spec, loaded on demand and cached."""

    def __init__(self, spec: A.Spec):
        self.spec = spec
        self.base_dir = Path(spec.source_dir)
        self.decls = {type(d).__name__: [] for d in spec.declarations}
        for d in spec.declarations:
            self.decls[type(d).__name__].append(d)
        self._networks: dict[str, Network] = {}
        self._inputs: dict[str, np.ndarray] = {}
        #: Positioned warnings (diagnostics), in the order found: an empty region.
        self.warnings: list = []

    def fail(self, node: A.Node, message: str) -> SpecError:
        """A positioned SpecError at ``node``."""
        diag = make(node.pos, message, self.spec.source)
        return SpecError(render([diag]), [diag])

    def _decl(self, kind: str, name: str):
        return next((d for d in self.decls.get(kind, []) if d.name == name), None)

    def network(self, name: str | None, where: A.Node) -> Network:
        """The network called ``name`` (the only one when ``name`` is None)."""
        if name is None:
            nets = self.decls.get("NetworkDecl", [])
            if len(nets) != 1:
                raise self.fail(where, "say which network ('on NAME'): the spec declares "
                                       f"{len(nets)}")
            name = nets[0].name
        if name not in self._networks:
            decl = self._decl("NetworkDecl", name)
            if decl is None:
                raise self.fail(where, f"unknown network '{name}'")
            self._networks[name] = self._load_network(decl)
        return self._networks[name]

    def _load_network(self, decl: A.NetworkDecl) -> Network:
        if isinstance(decl.source, A.Compose):
            outer = self.network(decl.source.outer, decl)
            inner = self.network(decl.source.inner, decl)
            try:
                graph = compose(inner.graph, outer.graph, name=decl.name)
            except Error as exc:
                raise self.fail(decl, str(exc)) from None
            return Network(decl.name, graph, inner.paths + outer.paths)
        path = resolve_path(self.spec, decl.source.path)
        try:
            graph = standard_passes().run(load_onnx(path, name=decl.name))
        except Error as exc:
            raise self.fail(decl.source, str(exc)) from None
        return Network(decl.name, graph, (str(path),))

    def raw_input(self, name: str, where: A.Node) -> np.ndarray:
        """The input array as loaded (before ``reshape``)."""
        if name not in self._inputs:
            decl = self._decl("InputDecl", name)
            if decl is None:
                raise self.fail(where, f"unknown input '{name}'")
            self._inputs[name] = load_input(decl, self.base_dir)
        return self._inputs[name]

    def input_for(self, name: str, graph: Graph, where: A.Node) -> np.ndarray:
        """The input reshaped to the network's input shape (float64)."""
        raw = self.raw_input(name, where)
        shape = graph.input.shape
        if raw.size != int(np.prod(shape)):
            raise self.fail(where, f"input '{name}' has {raw.size} values {list(raw.shape)}, "
                                   f"network '{graph.name}' expects {list(shape)}")
        return raw.reshape(shape).astype(np.float64)

    def domain(self, name: str) -> tuple[float, float]:
        decl = self._decl("InputDecl", name)
        if decl is None or decl.domain is None:
            return DEFAULT_DOMAIN
        return float(decl.domain.lo.value), float(decl.domain.hi.value)

    def regions(self) -> dict:
        return {d.name: d for d in self.decls.get("RegionDecl", [])}

    def mask(self, region: A.Region, input_name: str, where: A.Node) -> np.ndarray:
        """A region's boolean (C, H, W) mask on the image of input ``input_name``.

        A region that selects no value adds a positioned warning to :attr:`warnings`: a
        perturbation set on it is the unperturbed input alone, and a verdict on that one
        point must not read like a proof about a neighbourhood.
        """
        raw = self.raw_input(input_name, where)
        chw = as_chw(raw).shape
        inputs = _LoadedInputs(self, where)  # only those pixels(...) reads are loaded
        mask = region_mask(region, chw, inputs=inputs, regions=self.regions(),
                           base_dir=self.base_dir)
        if not mask.any():
            self.warnings.append(make(region.pos, empty_region_message(input_name, mask.size),
                                      self.spec.source))
        return mask

    def decoder(self, network: str) -> tuple[A.Node, list[str] | None]:
        """The decoder declared for ``network`` (argmax by default) and its label names."""
        decl = next((d for d in self.decls.get("DecodeDecl", []) if d.network == network),
                    None)
        if decl is None:
            return A.ArgmaxDecoder(), None
        labels = self._decl("LabelsDecl", decl.labels)
        return decl.decoder, (list(labels.names) if labels is not None else None)


class _LoadedInputs(Mapping):
    """The spec's inputs by name, each loaded when first read (a data set's expansion
    declares one input per element: a region reads one of them, not all)."""

    def __init__(self, ctx: SpecContext, where: A.Node):
        self.ctx, self.where = ctx, where
        self.names = [d.name for d in ctx.decls.get("InputDecl", [])]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(name)
        return self.ctx.raw_input(name, self.where)

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


# -- perturbation sets -----------------------------------------------------------------

def input_box(ctx: SpecContext, pset, graph: Graph) -> tuple[P.Box, np.ndarray]:
    """The input box of a perturbation set (clipped to the input's domain) and its centre."""
    x0 = ctx.input_for(pset.input, graph, pset)
    lo_dom, hi_dom = ctx.domain(pset.input)
    if np.any(x0 < lo_dom) or np.any(x0 > hi_dom):
        raise ctx.fail(pset, f"input '{pset.input}' has values outside its domain "
                             f"[{lo_dom:g}, {hi_dom:g}]")
    budget = _budget(ctx, pset).reshape(-1)
    if budget.size == 1:
        budget = np.full(x0.size, float(budget[0]))
    elif budget.size != x0.size:
        raise ctx.fail(pset, f"the perturbation covers {budget.size} values, the input has "
                             f"{x0.size}")
    budget = budget.reshape(x0.shape)
    box = P.Box(np.maximum(x0 - budget, lo_dom), np.minimum(x0 + budget, hi_dom))
    return box, x0


def _budget(ctx: SpecContext, pset) -> np.ndarray:
    """Per-value L-inf budget, in the (C, H, W) view of the input (or a scalar)."""
    if isinstance(pset, A.LinfBall):
        eps = float(pset.eps.value)
        if pset.region is None:
            return np.array([eps])
        return ctx.mask(pset.region, pset.input, pset).astype(np.float64) * eps
    if pset.eps is None:
        raise ctx.fail(pset, "this layered neighbourhood has no eps vector (eps=[...])")
    return layered_budget(ctx, pset, [float(e.value) for e in pset.eps.items])


def layered_budget(ctx: SpecContext, pset: A.LayeredNeighbourhood, eps: list[float]
                   ) -> np.ndarray:
    """Per-value budgets (C, H, W) of a layered neighbourhood with per-layer ``eps``."""
    rings = pset.rings
    mask = ctx.mask(rings.region, pset.input, pset).any(axis=0)
    count = int(rings.count.value)
    if len(eps) != count + 1:
        raise ctx.fail(pset, f"{len(eps)} budgets for {count + 1} layers (0..{count})")
    indices = layer_indices(mask, rings.metric, count)
    chw = as_chw(ctx.raw_input(pset.input, pset)).shape
    return np.broadcast_to(layer_budgets(indices, eps), chw)


def ring_indices(ctx: SpecContext, pset: A.LayeredNeighbourhood) -> np.ndarray:
    """The (H, W) ring index of every pixel (-1 outside every layer)."""
    mask = ctx.mask(pset.rings.region, pset.input, pset).any(axis=0)
    return layer_indices(mask, pset.rings.metric, int(pset.rings.count.value))


# -- conditions ------------------------------------------------------------------------

def spec_number(expr: A.Node) -> float:
    """The value of a resolved numeric expression (a number, possibly negated)."""
    if isinstance(expr, A.Neg):
        return -spec_number(expr.operand)
    return float(expr.value)


def logit_threshold(decoder: A.MultiLabelDecoder) -> float:
    """A multi-label decoder's decision threshold on the logits: label ``i`` is present when
    logit ``i`` exceeds it. A ``sigmoid`` threshold ``p`` (a probability, in (0, 1): the
    checker's rule) maps to ``log(p / (1 - p))``; a ``logit`` threshold is used as it is."""
    value = spec_number(decoder.threshold)
    return math.log(value / (1.0 - value)) if decoder.score == "sigmoid" else value


class ConditionLowering:
    """Lowers spec conditions to :mod:`robustc.ir.property` conditions on the logits."""

    def __init__(self, ctx: SpecContext, network: Network, reference: np.ndarray):
        self.ctx = ctx
        self.network = network
        self.logit_graph, self.maps = logits(network.graph)
        self.n = self.logit_graph.output.size
        self.decoder, self.labels = ctx.decoder(network.name)
        self.reference = evaluate(self.logit_graph, reference).ravel()
        if isinstance(self.decoder, A.EcocDecoder):
            raise ctx.fail(self.decoder, "verify cannot decide ECOC decoding (tanh outputs "
                                         "are not piecewise linear); use an attack property")

    def label(self, expr, where: A.Node) -> int:
        """A label index from a name (Str) or an index (Number)."""
        if isinstance(expr, A.Str):
            if self.labels is None or expr.value not in self.labels:
                raise self.ctx.fail(where, f"unknown label {expr.value!r}")
            return self.labels.index(expr.value)
        index = int(expr.value)
        if not 0 <= index < self.n:
            raise self.ctx.fail(where, f"label {index} out of range (0..{self.n - 1})")
        return index

    def name(self, index: int) -> str:
        return self.labels[index] if self.labels else str(index)

    def present(self, t: int) -> P.Condition:
        d, label = self.decoder, f"{self.name(t)!r} present"
        if isinstance(d, A.MultiLabelDecoder):
            return P.output_gt(self.n, t, value=self.threshold(), label=label)
        if isinstance(d, A.TopKDecoder):
            return P.in_top_k(self.n, t, int(d.k.value), label)
        return P.in_top_k(self.n, t, 1, label)

    def threshold(self) -> float:
        """The multi-label decoder's threshold on the logits (:func:`logit_threshold`)."""
        d = self.decoder
        value = spec_number(d.threshold)
        if d.score == "sigmoid" and not 0.0 < value < 1.0:
            raise self.ctx.fail(d, f"a sigmoid threshold must lie in (0, 1), got {value}")
        return logit_threshold(d)

    def reference_set(self) -> list[int]:
        """The labels decoded from the unperturbed input."""
        d, y = self.decoder, self.reference
        if isinstance(d, A.MultiLabelDecoder):
            return [int(i) for i in np.flatnonzero(y > self.threshold())]
        k = int(d.k.value) if isinstance(d, A.TopKDecoder) else 1
        return [int(i) for i in np.argsort(-y, kind="stable")[:k]]

    def label_set(self, members: list[int], where: A.Node) -> P.Condition:
        d = self.decoder
        if isinstance(d, A.MultiLabelDecoder):
            parts = [self.present(t) if t in members else P.negate(self.present(t))
                     for t in range(self.n)]
            return P.And(tuple(parts), "label set " + self.describe(members))
        k = int(d.k.value) if isinstance(d, A.TopKDecoder) else 1
        if len(set(members)) != k:
            raise self.ctx.fail(where, f"this decoder always yields {k} label(s); the set has "
                                       f"{len(set(members))}")
        return P.And(tuple(self.present(t) for t in sorted(set(members))),
                     "label set " + self.describe(members))

    def describe(self, members: list[int]) -> str:
        return "{" + ", ".join(repr(self.name(t)) for t in sorted(members)) + "}"

    def lower(self, cond) -> P.Condition:
        """The property-IR condition of a spec condition."""
        if isinstance(cond, A.Present):
            return self.present(self.label(cond.label, cond))
        if isinstance(cond, A.Absent):
            return P.negate(self.present(self.label(cond.label, cond)))
        if isinstance(cond, A.Unchanged):
            return self.label_set(self.reference_set(), cond)
        if isinstance(cond, A.LabelSetIs):
            return self.label_set([self.label(e, cond) for e in cond.labels], cond)
        if isinstance(cond, A.ArgmaxIs):
            return P.in_top_k(self.n, self.label(cond.label, cond), 1)
        if isinstance(cond, A.LinearConstraint):
            return self.linear(cond)
        if isinstance(cond, A.Not):
            return P.negate(self.lower(cond.operand))
        parts = tuple(self.lower(c) for c in cond.operands)
        return P.And(parts) if isinstance(cond, A.And) else P.Or(parts)

    def linear(self, cond: A.LinearConstraint) -> P.Condition:
        if self.maps:
            raise self.ctx.fail(cond, f"linear constraints on outputs need a network that "
                                      f"outputs logits; '{self.network.name}' ends in "
                                      f"{self.maps[-1].kind}")
        coeffs, const = self.terms(cond.lhs)
        rc, rconst = self.terms(cond.rhs)
        coeffs, const = coeffs - rc, const - rconst
        if cond.op in ("<", "<="):
            coeffs, const = -coeffs, -const
        if cond.op == "==":
            return P.And((P.Linear(coeffs, const, False), P.Linear(-coeffs, -const, False)))
        return P.Linear(coeffs, const, cond.op in ("<", ">"), "linear constraint")

    def terms(self, expr: A.LinearExpr) -> tuple[np.ndarray, float]:
        coeffs, const = np.zeros(self.n), 0.0
        for term in expr.terms:
            sign = -1.0 if term.negated else 1.0
            coef = sign * (float(term.coef.value) if term.coef is not None else 1.0)
            if term.output is None:
                const += coef
            else:
                coeffs[self.label(term.output, term)] += coef
        return coeffs, const


# -- problems --------------------------------------------------------------------------

def verify_problem(ctx: SpecContext, prop: A.VerifyProperty) -> Problem:
    """The :class:`~robustc.ir.problem.Problem` of one verify property."""
    network = ctx.network(prop.network, prop)
    seen = len(ctx.warnings)
    box, x0 = input_box(ctx, prop.domain, network.graph)
    lowering = ConditionLowering(ctx, network, x0)
    condition = lowering.lower(prop.condition)
    meta = {"network": network.name, "labels": lowering.labels, "center": x0,
            "reference_set": [lowering.name(t) for t in lowering.reference_set()],
            "decoder": type(lowering.decoder).__name__, "perturbed": box.perturbed,
            "warnings": ctx.warnings[seen:]}
    if isinstance(lowering.decoder, A.MultiLabelDecoder):
        meta["logit_threshold"] = lowering.threshold()
    if isinstance(lowering.decoder, A.TopKDecoder):
        meta["top_k"] = int(lowering.decoder.k.value)
    return Problem(prop.name, network.graph, network.paths,
                   P.Property(prop.name, (box,), condition, meta), network.name)


def select_properties(spec: A.Spec, kind: type, word: str,
                      names: list[str] | None = None) -> list:
    """The properties of class ``kind`` in source order (only those in ``names``, if given).

    ``word`` names the kind in messages ("verify", "maximize", ...). The name of a property
    over a data set names all its instances (``keep`` for ``keep[0]``, ``keep[1]``, ...).
    Raises ``SpecError`` listing every name that is not a property of that kind.
    """
    props = [p for p in spec.properties if isinstance(p, kind)]
    if names:
        known = {p.name for p in props}
        instances = {}
        for inst in spec.instances:
            if inst.name in known:
                instances.setdefault(inst.property, []).append(inst.name)
        names = [m for n in names for m in ([n] if n in known else instances.get(n, [n]))]
        known |= set(instances)
        missing = [n for n in names if n not in known]
        if missing:
            raise SpecError(f"no {word} property named {', '.join(missing)} "
                            f"(the spec has: {', '.join(sorted(known)) or 'none'})")
        props = [p for p in props if p.name in names]
    return props


def verify_problems(spec: A.Spec, names: list[str] | None = None) -> list:
    """One problem per verify property of a resolved spec (or those named in ``names``).

    Raises ``SpecError`` for an unknown property name or anything that does not fit.
    """
    ctx = SpecContext(spec)
    return [verify_problem(ctx, p) for p in
            select_properties(spec, A.VerifyProperty, "verify", names)]
