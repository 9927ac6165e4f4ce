"""Branch and bound over input splits: a pass that decides a property box by parts.

Wide boxes over few inputs (ACAS Xu: 5 inputs, 300 ReLUs) leave most ReLUs unstable, and
one MILP over the whole box is slow. Splitting the box makes the bounds tight:

1. the box's *margin graph* (:func:`margin_graph`) is the network with one extra Dense
   node computing the margin of every atom of the violation cases, so the symbolic (CROWN)
   bounds of that node bound each atom directly, not through output intervals;
2. a part whose bounds refute every violation case (:func:`refuted`) is proved;
3. otherwise it is attacked (a counterexample ends the search); a part with at most
   ``max_unstable`` unstable ReLUs is handed to the exact decision (a MILP per open case);
4. any other part is bisected at the midpoint of the input dimension with the largest
   estimated influence, ``width_i * |d margin / d x_i|`` (gradients supplied by the caller,
   :func:`split_dimension`). The two halves share the cut plane, so they cover the part
   exactly, without gaps.

The driver (:func:`branch_and_bound`) reads only the IR and the property IR; the attack,
the influence gradients and the exact decision are callbacks, so every property kind that
lowers to boxes and atoms can use it. It returns ``proved`` only when every part is proved;
a part stopped by a limit is never a proof.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robustc.compiler.bounds import Bounds, compute_bounds
from robustc.errors import IRError
from robustc.ir import Dense, Graph
from robustc.ir.property import AtLeast, Box, Linear

MARGIN_NODE = "robustc.split.margins"

#: Parts whose widest side is below this are never bisected (decided exactly instead).
MIN_WIDTH = 1e-9

PROVED, FOUND, UNKNOWN = "proved", "found", "unknown"


@dataclass(frozen=True)
class SplitOptions:
    """When and how to split (see the module docstring)."""

    max_unstable: int = 30        # decide a part exactly once at most this many are unstable
    min_unstable: int = 40        # split a box only when more ReLUs than this are unstable
    max_dims: int = 16            # split only boxes with at most this many free inputs
    max_parts: int = 2_000_000    # give up (unknown) after this many parts
    attack_depth: int = 4         # attack parts up to this depth (deeper: every 6th level)


@dataclass
class Outcome:
    """The verdict of :func:`branch_and_bound`: ``proved``, ``found`` (``witness`` holds the
    caller's counterexample) or ``unknown`` (``reason``); with search statistics."""

    status: str
    reason: str = ""
    witness: object = None
    stats: dict = field(default_factory=dict)


def margin_graph(graph: Graph, atoms: list[Linear]) -> Graph:
    """``graph`` plus a Dense node :data:`MARGIN_NODE` whose outputs are the atoms' margins.

    Every original node keeps its name, so bounds of the margin graph are bounds of
    ``graph`` too. Raises ``IRError`` when ``atoms`` is empty.
    """
    if not atoms:
        raise IRError("margin_graph needs at least one atom")
    out = graph.output
    weight = np.stack([a.coeffs for a in atoms]).astype(np.float64)
    bias = np.array([a.const for a in atoms], dtype=np.float64)
    flat = out
    nodes = list(graph.nodes)
    if len(out.shape) != 2 or out.shape[0] != 1:
        from robustc.ir import Reshape

        flat = Reshape(f"{MARGIN_NODE}.flat", (out.name,), (1, out.size))
        nodes.append(flat)
    nodes.append(Dense(MARGIN_NODE, (flat.name,), (1, len(atoms)), weight=weight, bias=bias))
    return graph.replace_nodes(nodes, outputs=(MARGIN_NODE,))


def case_atoms(cases: list[list]) -> list[Linear]:
    """Every distinct Linear atom of the violation cases (AtLeast sub-atoms included)."""
    seen, out = set(), []
    for case in cases:
        for atom in case:
            for lin in (atom.atoms if isinstance(atom, AtLeast) else (atom,)):
                if id(lin) not in seen:
                    seen.add(id(lin))
                    out.append(lin)
    return out


def refuted(case: list, upper: dict[int, float], tol: float) -> bool:
    """Whether the bounds (``upper[id(atom)]``: an upper bound of the atom's margin) prove
    that no input satisfies every atom of the violation ``case``.

    An atom ``m >= 0`` is impossible when ``upper(m) < -tol``; callers pass the MILP
    encoding's tolerance, so a proof by bounds means what a proof by MILP means.
    """
    def possible(lin: Linear) -> bool:
        return upper[id(lin)] >= -tol

    for atom in case:
        if isinstance(atom, AtLeast):
            if sum(possible(a) for a in atom.atoms) < atom.k:
                return True
        elif not possible(atom):
            return True
    return False


def split_dimension(box: Box, gradient: np.ndarray) -> int:
    """The flat index of the free input with the largest ``width * |gradient|``; ties and
    zero gradients fall back to the widest input."""
    width = (box.upper - box.lower).ravel()
    score = width * np.abs(np.asarray(gradient, dtype=np.float64).ravel())
    if not np.any(score > 0):
        score = width
    return int(np.argmax(score))


def bisect(box: Box, dim: int) -> tuple[Box, Box]:
    """The two halves of ``box`` cut at the midpoint of flat input ``dim``; they share the
    cut plane, so their union is exactly ``box``."""
    lo, hi = box.lower.ravel(), box.upper.ravel()
    mid = lo[dim] + (hi[dim] - lo[dim]) / 2
    left_hi, right_lo = hi.copy(), lo.copy()
    left_hi[dim], right_lo[dim] = mid, mid
    shape = box.lower.shape
    return (Box(box.lower, left_hi.reshape(shape)), Box(right_lo.reshape(shape), box.upper))


def wants_split(box: Box, bounds: Bounds, options: SplitOptions) -> bool:
    """Whether ``box`` is worth splitting: few free inputs and many unstable ReLUs."""
    return box.perturbed <= options.max_dims and bounds.num_unstable() > options.min_unstable


@dataclass
class Callbacks:
    """What :func:`branch_and_bound` asks of its caller.

    ``attack(box)``: a counterexample in ``box`` or None. ``gradient(box)``: the gradient
    of the property's margin (input-shaped) used for the influence estimate. ``decide(box,
    bounds, open_cases)``: ``(PROVED, None)``, ``(FOUND, witness)`` or ``(UNKNOWN,
    reason)``, exactly (a MILP per case).
    """

    attack: Callable[[Box], object]
    gradient: Callable[[Box], np.ndarray]
    decide: Callable[[Box, Bounds, list], tuple[str, object]]


def branch_and_bound(graph: Graph, box: Box, cases: list[list], calls: Callbacks, *,
                     tol: float, options: SplitOptions = SplitOptions(),
                     deadline: float | None = None) -> Outcome:
    """Decide the violation ``cases`` (a DNF over ``graph``'s output) on ``box`` by parts.

    Returns an :class:`Outcome`. ``proved``: no part admits a violation (every part refuted
    by its bounds or decided by ``calls.decide``); ``found``: a callback returned a
    counterexample; ``unknown``: the deadline, ``max_parts`` or an undecided part. ``tol``
    is the refutation tolerance of :func:`refuted`.
    """
    atoms = case_atoms(cases)
    mgraph = margin_graph(graph, atoms)
    stack, stats = [(box, 0)], {"parts": 0, "refuted": 0, "exact": 0, "attacked": 0,
                                "max_depth": 0}
    undecided = ""
    while stack:
        if deadline is not None and time.perf_counter() > deadline:
            return Outcome(UNKNOWN, "time limit reached while splitting", stats=stats)
        if stats["parts"] >= options.max_parts:
            return Outcome(UNKNOWN, f"more than {options.max_parts} input parts", stats=stats)
        part, depth = stack.pop()
        stats["parts"] += 1
        stats["max_depth"] = max(stats["max_depth"], depth)
        status, payload = _visit(mgraph, part, depth, cases, atoms, calls, (tol, options), stats)
        if status == FOUND:
            return Outcome(FOUND, witness=payload, stats=stats)
        if status == UNKNOWN:
            undecided = undecided or str(payload)
        elif status == "split":
            left, right = bisect(part, split_dimension(part, calls.gradient(part)))
            stack += [(right, depth + 1), (left, depth + 1)]
    if undecided:
        return Outcome(UNKNOWN, undecided, stats=stats)
    return Outcome(PROVED, stats=stats)


def _visit(mgraph: Graph, part: Box, depth: int, cases: list, atoms: list, calls: Callbacks,
           settings: tuple[float, SplitOptions], stats: dict) -> tuple[str, object]:
    """One part: refute by bounds, attack, decide exactly, or ask for a split."""
    tol, options = settings
    bounds = compute_bounds(mgraph, part.lower, part.upper, "symbolic")
    upper = bounds.upper[MARGIN_NODE].ravel()
    by_id = {id(a): float(upper[i]) for i, a in enumerate(atoms)}
    open_cases = [c for c in cases if not refuted(c, by_id, tol)]
    if not open_cases:
        stats["refuted"] += 1
        return PROVED, None
    if depth <= options.attack_depth or depth % 6 == 0:
        stats["attacked"] += 1
        found = calls.attack(part)
        if found is not None:
            return FOUND, found
    # A part too thin to bisect in floating point is decided exactly whatever its size.
    thin = float(np.max(part.upper - part.lower)) < MIN_WIDTH
    if bounds.num_unstable() <= options.max_unstable or thin:
        stats["exact"] += 1
        return calls.decide(part, bounds, open_cases)
    return "split", None


__all__ = ["SplitOptions", "Outcome", "Callbacks", "branch_and_bound", "margin_graph",
           "case_atoms", "refuted", "split_dimension", "bisect", "wants_split", "MARGIN_NODE",
           "PROVED", "FOUND", "UNKNOWN"]
