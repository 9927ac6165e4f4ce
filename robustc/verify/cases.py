"""Violation cases and what every branch-and-bound strategy shares about them.

:func:`robustc.ir.property.dnf` of the negated property gives the *violation cases*: each
case a list of atoms that hold together exactly for the inputs that violate the property.
The strategies (:mod:`robustc.verify.input_split`, :mod:`robustc.verify.relu_split`) bound
the atoms' margins through a *margin graph* (:func:`margin_graph`), refute cases with those
bounds (:func:`refuted`) and report an :class:`Outcome` with one of the statuses
:data:`PROVED`, :data:`FOUND` or :data:`UNKNOWN`.

This module reads only the IR and the property IR.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robustc.errors import IRError
from robustc.ir import Dense, Graph, Reshape
from robustc.ir.property import AtLeast, Linear

MARGIN_NODE = "robustc.split.margins"


#: The statuses of a search :class:`Outcome`.
PROVED, FOUND, UNKNOWN = "proved", "found", "unknown"


@dataclass
class Outcome:
    """The verdict of a branch-and-bound search: ``proved``, ``found`` (``witness`` holds the
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


def check_best(points: np.ndarray, scores: np.ndarray, check, most: int):
    """Hand the ``most`` points with the highest ``scores`` (those ``>= 0``: they satisfy
    a violation case in a forward pass) to ``check``, best first; the first
    counterexample ``check`` returns, or None."""
    for i in np.argsort(-scores)[:most]:
        if scores[i] < 0.0:
            break
        found = check(points[i])
        if found is not None:
            return found
    return None


__all__ = ["check_best", "MARGIN_NODE", "PROVED", "FOUND", "UNKNOWN", "Outcome", "margin_graph",
           "case_atoms", "refuted"]
