"""Exact mode: the IR and a property straight to Z3, over the rationals.

The MILP of :mod:`robustc.backends.milp.encode` composes the network's layers in float64
and asks for a violation with margin at least ``-MARGIN_TOL`` (``1e-5``), so its
``robust`` means "every input keeps a margin above ``MARGIN_TOL``, up to the float64
rounding of the composed expressions and HiGHS' ``1e-7`` feasibility tolerance". Exact mode
removes floating point from the decision:

* every weight, bias, box bound and condition coefficient is converted to the rational it
  denotes (``Fraction(float)`` is exact; an IR loaded from ONNX holds the float32 weights
  exactly in float64);
* affine layers are composed exactly in integer arithmetic (every float64 is ``k / 2**a``),
  so Z3 sees one ``Real`` per free input and per unstable ReLU or undecided MaxPool
  window, and no variable per affine neuron (with one, Z3's simplex over these large
  rationals was an order of magnitude slower on 6x6 conv nets);
* ReLU phases are fixed only by *rigorous* bounds (:func:`rigorous_bounds`: interval
  arithmetic in float64 with an a-priori bound on every dot product's rounding error
  (Higham's ``gamma_n``) subtracted outward), so a neuron is eliminated only where
  ``z >= 0`` or ``z <= 0`` holds in exact arithmetic. Unstable neurons and MaxPool windows
  use the big-M form with 0/1 ``Int`` phases whose constants are those rigorous bounds
  (``relu="ite"`` and ``relu="or"`` select the ``If`` and disjunctive forms instead);
* the rigorous bounds are asserted on every neuron that has a variable and on the input
  of every unstable ReLU;
* the violation ``negate(condition)`` is one formula (``AtLeast`` as a pseudo-Boolean
  constraint), with the atoms' strictness kept: no tolerance anywhere.

``unsat`` is therefore a proof in real arithmetic over the IR's weights: no input of the
box violates the property, with any margin. ``sat`` gives a rational input whose exact
margin is negative; it is reported as a witness only after the float32 replay on the ONNX
file confirms it (a violation by less than float32 rounding is reported as ``unknown``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from robustc.backends.solve import FEASIBLE, INFEASIBLE, LIMIT, SolveOutcome
from robustc.backends.z3smt import z3_module
from robustc.errors import IRError
from robustc.ir import Activation, Graph, Input, MaxPool, OutputMap, Relu
from robustc.ir.linear import affine_map, pool_index
from robustc.ir.nodes import not_piecewise_linear
from robustc.ir.property import And, AtLeast, Box, Condition, Linear, negate

NAME = "z3-exact"
RELU_FORMS = ("bigm", "ite", "or")
_UNIT = 2.0 ** -53          # unit roundoff of float64
_TINY = 2.0 ** -1000        # absorbs underflow in products of tiny values


# ---------------------------------------------------------------- rigorous bounds

def rigorous_bounds(graph: Graph, box: Box) -> tuple[dict, dict]:
    """Interval bounds of every node (flattened) that hold in exact real arithmetic.

    Each affine node's float64 interval is widened by ``2 gamma_{n}`` times the sum of the
    magnitudes of its terms (``n`` the number of terms of the longest row), which covers
    the rounding of any summation order. Raises ``IRError`` for nodes it cannot bound.
    """
    lower: dict[str, np.ndarray] = {}
    upper: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        if isinstance(node, Input):
            lo, hi = box.lower.ravel().astype(np.float64), box.upper.ravel().astype(np.float64)
        elif isinstance(node, Relu):
            lo, hi = _relu_interval(node.alpha, lower[node.inputs[0]], upper[node.inputs[0]])
        elif isinstance(node, MaxPool):
            win = pool_index(node, graph[node.inputs[0]].shape)
            lo = np.where(win >= 0, lower[node.inputs[0]][win], -np.inf).max(axis=1)
            hi = np.where(win >= 0, upper[node.inputs[0]][win], -np.inf).max(axis=1)
        elif node.linear:
            lo, hi = _affine_interval(graph, node, lower, upper)
        elif isinstance(node, Activation):
            raise not_piecewise_linear(node, "the exact Z3 decision")
        else:
            raise IRError(f"node {node.name!r} ({node.op}) has no exact encoding")
        lower[node.name], upper[node.name] = lo, hi
    return lower, upper


def _relu_interval(alpha: float, lo: np.ndarray, hi: np.ndarray):
    scaled_lo = np.nextafter(alpha * lo, -np.inf) if alpha else np.zeros_like(lo)
    scaled_hi = np.nextafter(alpha * hi, np.inf) if alpha else np.zeros_like(hi)
    return np.where(lo >= 0, lo, scaled_lo), np.where(hi >= 0, hi, scaled_hi)


def _affine_interval(graph: Graph, node, lower: dict, upper: dict):
    mats, offset = affine_map(node, [graph[i].shape for i in node.inputs])
    offset = np.asarray(offset, dtype=np.float64)
    lo, hi, mag = offset.copy(), offset.copy(), np.abs(offset)
    terms = np.ones(node.size)
    for M, src in zip(mats, node.inputs, strict=True):
        M = M.tocsr()
        pos, neg = M.maximum(0), M.minimum(0)
        lo = lo + pos @ lower[src] + neg @ upper[src]
        hi = hi + pos @ upper[src] + neg @ lower[src]
        mag = mag + abs(M) @ np.maximum(np.abs(lower[src]), np.abs(upper[src]))
        terms = terms + 2 * np.diff(M.indptr)
    n = terms + 2
    err = 2.0 * (n * _UNIT / (1 - n * _UNIT)) * mag + n * _TINY
    return np.nextafter(lo - err, -np.inf), np.nextafter(hi + err, np.inf)


# ---------------------------------------------------------------- encoding

@dataclass
class _Exact:
    """Exact affine expressions of a node's values: ``(N @ v + c) / 2**shift``.

    ``N`` (rows by variables) and ``c`` hold Python integers (numpy object arrays), so
    composing layers is exact integer arithmetic; ``v`` are the encoder's Z3 variables.
    """

    N: np.ndarray
    c: np.ndarray
    shift: int


def _to_ints(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Integers ``k`` and ``a`` with ``values == k / 2**a`` exactly (float64 input)."""
    fracs = [Fraction(float(v)) for v in np.ravel(values)]
    a = max((f.denominator.bit_length() - 1 for f in fracs), default=0)
    ints = np.array([f.numerator * (2 ** a // f.denominator) for f in fracs] or [0],
                    dtype=object)[: len(fracs)]
    return ints.reshape(np.shape(values)), a


class _Encoder:
    """Builds the assertions of one network over one box (see the module docstring).

    Affine layers are composed exactly (no variable per neuron); variables are the free
    inputs and the outputs of unstable ReLUs and undecided MaxPool windows.
    """

    def __init__(self, z3, relu: str, lower: dict, upper: dict):
        if relu not in RELU_FORMS:
            raise IRError(f"unknown ReLU encoding {relu!r}; choose one of {RELU_FORMS}")
        self.z3, self.relu, self.lower, self.upper = z3, relu, lower, upper
        self.assertions: list = []
        self.variables: list = []
        self.stats = {"unstable_relus": 0, "stable_relus": 0, "variables": 0}

    def q(self, value) -> object:
        """The exact rational of a float (or Fraction) as a Z3 value."""
        return self.z3.RealVal(Fraction(value) if isinstance(value, Fraction)
                               else Fraction(float(value)))

    def fresh(self, name: str, lo: float, hi: float) -> int:
        """A new Real with its (rigorous) bounds asserted; returns its column."""
        var = self.z3.Real(name)
        self.variables.append(var)
        self.stats["variables"] += 1
        self.assertions += [var >= self.q(lo), var <= self.q(hi)]
        return len(self.variables) - 1

    def term(self, ex: _Exact, row: int):
        """Row ``row`` of ``ex`` as a Z3 term."""
        den = 2 ** ex.shift
        parts = [self.z3.RealVal(Fraction(int(k), den)) * self.variables[j]
                 for j, k in enumerate(ex.N[row]) if k != 0]
        const = self.z3.RealVal(Fraction(int(ex.c[row]), den))
        return self.z3.Sum(parts) + const if parts else const

    def unit_rows(self, cols: list[int], n: int) -> np.ndarray:
        rows = np.zeros((len(cols), n), dtype=object)
        rows[np.arange(len(cols)), cols] = 1
        return rows

    def network(self, graph: Graph, box: Box) -> tuple[list, list]:
        """The output terms and the input terms of ``graph`` over ``box``."""
        values: dict[str, _Exact] = {}
        for node in graph.nodes:
            if isinstance(node, Input):
                values[node.name] = self.inputs(box)
            elif isinstance(node, Relu):
                values[node.name] = self.relus(node, values[node.inputs[0]])
            elif isinstance(node, MaxPool):
                win = pool_index(node, graph[node.inputs[0]].shape)
                values[node.name] = self.maxpool(node, win, values[node.inputs[0]])
            elif node.linear:
                values[node.name] = self.affine(graph, node, values)
            elif isinstance(node, Activation):
                raise not_piecewise_linear(node, "the exact Z3 decision")
            else:
                raise IRError(f"node {node.name!r} ({node.op}) has no exact encoding")
        out, inp = values[graph.output.name], values[graph.inputs[0]]
        return ([self.term(out, r) for r in range(len(out.c))],
                [self.term(inp, r) for r in range(len(inp.c))])

    def widen(self, ex: _Exact) -> _Exact:
        """``ex`` over all the variables created so far (zero columns appended)."""
        extra = len(self.variables) - ex.N.shape[1]
        if extra == 0:
            return ex
        return _Exact(np.hstack([ex.N, np.zeros((ex.N.shape[0], extra), dtype=object)]),
                      ex.c, ex.shift)

    def inputs(self, box: Box) -> _Exact:
        lo, hi = box.lower.ravel(), box.upper.ravel()
        free = [i for i in range(lo.size) if hi[i] > lo[i]]
        cols = [self.fresh(f"x_{i}", lo[i], hi[i]) for i in free]
        fixed, a = _to_ints(np.where(hi > lo, 0.0, lo))
        N = np.zeros((lo.size, len(self.variables)), dtype=object)
        N[free, cols] = 2 ** a
        return _Exact(N, fixed, a)

    def affine(self, graph: Graph, node, values: dict) -> _Exact:
        mats, offset = affine_map(node, [graph[i].shape for i in node.inputs])
        parts = []
        for M, src in zip(mats, node.inputs, strict=True):
            ints, a = _to_ints(M.toarray())
            ex = self.widen(values[src])
            parts.append((ints.dot(ex.N), ints.dot(ex.c), a + ex.shift))
        off, a_off = _to_ints(np.asarray(offset, dtype=np.float64))
        shift = max([a_off] + [s for _, _, s in parts])
        N = np.zeros((node.size, len(self.variables)), dtype=object)
        c = off * 2 ** (shift - a_off)
        for NN, cc, s in parts:
            N = N + NN * 2 ** (shift - s)
            c = c + cc * 2 ** (shift - s)
        return _Exact(N, c, shift)

    def relus(self, node: Relu, z: _Exact) -> _Exact:
        lo, hi = self.lower[node.inputs[0]], self.upper[node.inputs[0]]
        alpha_int, a = _to_ints(np.array([node.alpha]))
        z = self.widen(z)
        keep = np.where(lo >= 0, 2 ** a, np.where(hi <= 0, alpha_int[0], 0)).astype(object)
        N, c = z.N * keep[:, None], z.c * keep
        unstable = np.flatnonzero((lo < 0) & (hi > 0))
        self.stats["unstable_relus"] += len(unstable)
        self.stats["stable_relus"] += len(lo) - len(unstable)
        alpha = self.q(node.alpha)
        cols = []
        for j in unstable:
            col = self.fresh(f"{node.name}_{j}", self.lower[node.name][j],
                             self.upper[node.name][j])
            zj = self.term(z, j)
            self.assertions += [zj >= self.q(lo[j]), zj <= self.q(hi[j])]
            self.assertions.append(self.unstable(f"{node.name}.d_{j}", self.variables[col], zj,
                                                 alpha, lo[j], hi[j]))
            cols.append(col)
        out = self.widen(_Exact(N, c, z.shift + a))
        if cols:
            out.N[unstable] = self.unit_rows(cols, out.N.shape[1]) * 2 ** out.shift
            out.c[unstable] = 0
        return out

    def unstable(self, name: str, y, z, alpha, lo: float, hi: float):
        """``y = max(z, alpha z)`` for ``lo < z < hi`` in the chosen form."""
        z3 = self.z3
        if self.relu == "ite":
            return y == z3.If(z >= 0, z, alpha * z)
        if self.relu == "or":
            return z3.Or(z3.And(z >= 0, y == z), z3.And(z <= 0, y == alpha * z))
        d = z3.Int(name)
        dr = z3.ToReal(d)
        one_minus = 1 - alpha
        return z3.And(d >= 0, d <= 1, y >= z, y >= alpha * z,
                      y <= z - one_minus * self.q(lo) * (1 - dr),
                      y <= alpha * z + one_minus * self.q(hi) * dr)

    def maxpool(self, node: MaxPool, windows: np.ndarray, z: _Exact) -> _Exact:
        lo, hi = self.lower[node.inputs[0]], self.upper[node.inputs[0]]
        rows: list[tuple] = []
        for o, win in enumerate(windows):
            win = win[win >= 0]
            survivors = win[hi[win] >= lo[win].max()]
            if len(survivors) == 1:
                rows.append(("row", int(survivors[0])))
                continue
            top = hi[survivors].max()
            col = self.fresh(f"{node.name}_{o}", lo[survivors].max(), top)
            y = self.variables[col]
            zs = {int(i): self.term(z, int(i)) for i in survivors}
            self.assertions.extend(y >= zs[int(i)] for i in survivors)
            self.assertions.append(self.pool_choice(f"{node.name}.d{o}", y, zs, survivors,
                                                    lo, top))
            rows.append(("var", col))
        z = self.widen(z)
        N = np.zeros((len(rows), len(self.variables)), dtype=object)
        c = np.zeros(len(rows), dtype=object)
        for o, (kind, k) in enumerate(rows):
            if kind == "row":
                N[o], c[o] = z.N[k], z.c[k]
            else:
                N[o, k] = 2 ** z.shift
        return _Exact(N, c, z.shift)

    def pool_choice(self, name: str, y, zs: dict, survivors, lo, top: float):
        """``y`` equals one of the survivors (``y >= z_i`` is asserted separately)."""
        z3 = self.z3
        if self.relu != "bigm":
            return z3.Or([y == zs[int(i)] for i in survivors])
        ds = [z3.Int(f"{name}_{k}") for k in range(len(survivors))]
        parts = [z3.Sum(ds) == 1]
        for d, i in zip(ds, survivors, strict=True):
            parts += [d >= 0, d <= 1,
                      y <= zs[int(i)] + self.q(top - lo[i]) * (1 - z3.ToReal(d))]
        return z3.And(parts)


def formula(z3, cond: Condition, y: list):
    """``cond`` over the output terms ``y`` as a Z3 Boolean, exactly (strictness kept)."""
    if isinstance(cond, Linear):
        terms = [z3.RealVal(Fraction(float(c))) * y[j] for j, c in enumerate(cond.coeffs)
                 if c != 0.0]
        m = z3.Sum(terms) + z3.RealVal(Fraction(float(cond.const))) if terms else \
            z3.RealVal(Fraction(float(cond.const)))
        return m > 0 if cond.strict else m >= 0
    if isinstance(cond, AtLeast):
        if cond.k <= 0:
            return z3.BoolVal(True)
        if cond.k > len(cond.atoms):
            return z3.BoolVal(False)
        return z3.AtLeast(*[formula(z3, a, y) for a in cond.atoms], cond.k)
    parts = [formula(z3, c, y) for c in cond.operands]
    return z3.And(parts) if isinstance(cond, And) else z3.Or(parts)


def exact_margin(cond: Condition, y: list[Fraction]) -> Fraction | float:
    """The margin of ``cond`` (see :mod:`robustc.ir.property`) on rational outputs."""
    if isinstance(cond, Linear):
        return sum((Fraction(float(c)) * y[j] for j, c in enumerate(cond.coeffs) if c != 0.0),
                   Fraction(float(cond.const)))
    if isinstance(cond, AtLeast):
        if cond.k <= 0 or cond.k > len(cond.atoms):
            return float("inf") if cond.k <= 0 else float("-inf")
        return sorted((exact_margin(a, y) for a in cond.atoms), reverse=True)[cond.k - 1]
    ms = [exact_margin(c, y) for c in cond.operands]
    return min(ms) if isinstance(cond, And) else max(ms)


# ---------------------------------------------------------------- deciding

def decide_exact(graph: Graph, box: Box, condition: Condition, *,
                 time_limit: float | None = None, relu: str = "or",
                 seed: int = 0) -> SolveOutcome:
    """Is there an input in ``box`` where ``condition`` fails, in exact arithmetic?

    ``graph`` must end at the logits. Returns ``INFEASIBLE`` (proof: no such input),
    ``FEASIBLE`` with ``solution`` the witness input (flattened, rounded to float64) and
    ``objective`` its exact margin (``stats['margin_exact']`` as a fraction), or ``LIMIT``
    when Z3 says unknown. Raises ``IRError`` for graphs it cannot encode.
    """
    z3 = z3_module()
    if isinstance(graph.output, OutputMap):
        raise IRError("decide_exact() needs the logits: strip output maps first")
    start = time.perf_counter()
    lower, upper = rigorous_bounds(graph, box)
    enc = _Encoder(z3, relu, lower, upper)
    out, inputs = enc.network(graph, box)
    solver = z3.Solver()
    solver.set("random_seed", int(seed))
    if time_limit is not None:
        solver.set("timeout", max(int(time_limit * 1000), 1))
    solver.add(enc.assertions)
    solver.add(formula(z3, negate(condition), out))
    answer = solver.check()
    stats = dict(enc.stats)
    if answer == z3.unsat:
        return SolveOutcome(INFEASIBLE, NAME, time_s=time.perf_counter() - start, stats=stats)
    if answer != z3.sat:
        return SolveOutcome(LIMIT, NAME, reason=f"Z3 returned unknown "
                            f"({solver.reason_unknown()})", time_s=time.perf_counter() - start,
                            stats=stats)
    model = solver.model()
    x = [_rational(z3, model, t) for t in inputs]
    y = [_rational(z3, model, t) for t in out]
    m = exact_margin(condition, y)
    stats.update(margin_exact=str(m), input_exact=[str(v) for v in x])
    return SolveOutcome(FEASIBLE, NAME, solution=np.array([float(v) for v in x]),
                        objective=float(m), time_s=time.perf_counter() - start, stats=stats)


def _rational(z3, model, term) -> Fraction:
    return Fraction(model.eval(term, model_completion=True).as_fraction())
