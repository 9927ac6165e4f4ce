"""The input-split hook of :func:`robustc.verify.verify`.

:func:`decide_by_splitting` runs :func:`robustc.verify.input_split.search.branch_and_bound` on
one box with the pipeline's own parts: PGD on each part (one PyTorch module for the whole
search) with onnxruntime replay, gradients of the property's margin for the split choice,
and the pipeline's per-case decision MILPs (:func:`robustc.verify.milp.decide_case`) for parts
with few unstable ReLUs. The verdict semantics are those of ``verify``: a counterexample is
reported only after replay, a part stopped by a limit is never a proof.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from robustc.backends.milp.encode import MARGIN_TOL
from robustc.ir.property import Box
from robustc.verify.cases import FOUND, PROVED, UNKNOWN
from robustc.verify.input_split.search import Callbacks, branch_and_bound
from robustc.verify.milp import decide_case
from robustc.verify.results import ERROR, NOT_ROBUST, Result
from robustc.verify.run import Run

#: PGD effort on each part (the whole box was already attacked harder by ``verify``).
PART_ATTACK_STEPS = 12
PART_ATTACK_RESTARTS = 3
#: Points (the centre and random ones) whose margin gradients estimate a part's influences.
GRADIENT_POINTS = 4


_FOUND = "found at a candidate point of the input-split search"


def decide_by_splitting(run: Run, box: Box, cases: list) -> Result | float:
    """Decide the violation ``cases`` on ``box`` by input splitting.

    Returns a final :class:`Result` (not robust with a replayed counterexample, unknown, or
    error) or ``np.inf`` when every part is proved.
    """
    import torch

    from robustc.runtime.torch_module import to_torch

    module = to_torch(run.graph, device=run.options.device, dtype=torch.float32)
    seeds = itertools.count(run.options.seed + 1)  # a fresh attack seed for every part
    calls = Callbacks(attack=lambda part: _attack(run, module, part, next(seeds)),
                      gradient=lambda part: _gradient(run, module, part),
                      decide=lambda part, bounds, open_cases: _decide_parts(run, part, bounds,
                                                                            open_cases),
                      check=lambda part, x: run.confirm(part, x, "input split", _FOUND))
    run.say("splitting the input box")
    start = time.perf_counter()
    with run.limit_threads():
        out = branch_and_bound(run.graph, box, cases, calls, tol=MARGIN_TOL,
                               options=run.options.split, deadline=run.deadline)
    out.stats["s"] = time.perf_counter() - start
    for key, value in out.stats.items():
        run.stats[f"split_{key}"] = run.stats.get(f"split_{key}", 0) + value
    if out.status == FOUND:
        return out.witness
    if out.status == UNKNOWN:
        return run.result("unknown", out.reason)
    assert out.status == PROVED
    return np.inf


def _attack(run: Run, module, part: Box, seed: int) -> Result | None:
    from robustc.runtime.falsify import pgd_falsify

    cond = run.problem.prop.condition
    x, m = pgd_falsify(run.graph, part, cond, steps=PART_ATTACK_STEPS,
                       restarts=PART_ATTACK_RESTARTS, seed=seed,
                       module=module, start=(part.lower + part.upper) / 2,
                       deadline=run.deadline)
    if m > 0.0:  # float32 margin positive: onnxruntime would not see a violation either
        return None
    return run.confirm(part, x, "pgd (input split)", "found by the PGD attack on an input part")


def _gradient(run: Run, module, part: Box) -> np.ndarray:
    """Mean absolute gradient of the property's margin at a few points of ``part``."""
    import torch

    from robustc.runtime.falsify import margin_torch

    lo = torch.as_tensor(part.lower, dtype=torch.float32, device=run.options.device)
    hi = torch.as_tensor(part.upper, dtype=torch.float32, device=run.options.device)
    gen = torch.Generator().manual_seed(run.options.seed)
    t = torch.rand((GRADIENT_POINTS,) + tuple(lo.shape), generator=gen).to(lo.device)
    t[0] = 0.5
    x = (lo + (hi - lo) * t).requires_grad_(True)
    m = margin_torch(run.problem.prop.condition, module(x).reshape(GRADIENT_POINTS, -1))
    (grad,) = torch.autograd.grad(m.sum(), x)
    return grad.abs().mean(dim=0).cpu().numpy().astype(np.float64)


def _decide_parts(run: Run, part: Box, bounds, open_cases: list) -> tuple[str, object]:
    """Every open case of ``part`` by the pipeline's decision MILP."""
    for case in open_cases:
        verdict = decide_case(run, part, bounds, case)
        if isinstance(verdict, Result):
            if verdict.verdict in (NOT_ROBUST, ERROR):
                return FOUND, verdict
            return UNKNOWN, verdict.reason
    return PROVED, None
