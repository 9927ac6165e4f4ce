"""The bounds step before the MILPs: violation cases refuted by alpha-CROWN.

For the cases the pipeline would otherwise hand to one MILP each, every linear atom's margin
is bounded above by alpha-CROWN on the graph (:meth:`robustc.compiler.crown.engine.Crown.
optimise`, with the box's bounds as intermediate bounds); a case with an atom that no input
can satisfy (upper bound below ``-MARGIN_TOL``, the MILP encoding's tolerance, as in
:func:`robustc.verify.cases.refuted`) is proved without a solver. The bound is valid for any
slopes the optimiser picks, so a refutation is a proof; a case not refuted goes on to its
MILP. Graphs with a node the linear bounds do not cover skip this step.
"""

from __future__ import annotations

import time

import numpy as np

from robustc.backends.milp.encode import MARGIN_TOL
from robustc.compiler.crown.engine import Crown
from robustc.errors import UnsupportedOperator
from robustc.ir.property import Box
from robustc.verify.cases import case_atoms, refuted
from robustc.verify.run import Run


def refute_cases(run: Run, box: Box, bounds, cases: list) -> list[bool]:
    """For each violation case of ``box``: whether alpha-CROWN refutes it (``False`` for
    all when the step is off, in margin mode, when the box has no unstable ReLU, the graph
    is not covered or the time is up)."""
    steps = run.options.alpha_steps
    atoms = case_atoms(cases)
    if (steps <= 0 or not atoms or bounds.num_unstable() == 0 or run.late()
            or run.options.margin):  # margin mode wants the MILP's optimum
        return [False] * len(cases)
    start = time.perf_counter()
    run.say("alpha-CROWN bounds on the violation cases")
    try:
        crown = Crown(run.graph, device=run.options.device)
    except UnsupportedOperator as exc:
        run.stats["alpha_skipped"] = str(exc).split(":")[0]
        return [False] * len(cases)
    with run.limit_threads():
        graph_bounds = crown.adopt(bounds.lower, bounds.upper)
        tbox = crown.box(box.lower, box.upper)
        w = np.stack([-a.coeffs for a in atoms])
        b = np.array([-a.const for a in atoms])
        best = crown.optimise(w, b, graph_bounds, tbox, steps=steps, deadline=run.deadline)
    upper = {id(a): -float(v) for a, v in zip(atoms, best[0].cpu().tolist(), strict=True)}
    out = [refuted(case, upper, MARGIN_TOL) for case in cases]
    run.stats["alpha_s"] = run.stats.get("alpha_s", 0.0) + time.perf_counter() - start
    run.stats["alpha_refuted"] = run.stats.get("alpha_refuted", 0) + sum(out)
    return out


__all__ = ["refute_cases"]
