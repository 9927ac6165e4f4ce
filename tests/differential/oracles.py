"""The four oracles of the differential suite and the comparison of their verdicts.

* HiGHS, Gurobi (only when the model fits its license) and Z3 through
  :func:`robustc.verify.verify` with the PGD attack switched off, so each solver has to
  find its own counterexamples;
* Z3 in exact mode (dense networks: exact arithmetic over conv layers is slower);
* sampling + PGD: ``not_robust`` when a sampled or attacked point violates the property by
  more than ``SAMPLE_CLEAR`` in float64 *and* in the float32 onnxruntime replay, else
  ``unknown`` (sampling never proves anything).

Two definite verdicts (``robust``, ``not_robust``) that disagree, or any ``error``, is a
failure. ``SAMPLE_CLEAR`` (1e-4) keeps float32 rounding of a near-tie from counting as a
counterexample against a proof, which only covers margins above ``MARGIN_TOL`` in the MILP.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from robustc.ir import evaluate
from robustc.ir.property import margin
from robustc.runtime.replay import replay
from robustc.verify import ERROR, NOT_ROBUST, ROBUST, Problem, VerifyOptions, verify
from tests.differential.cases import Case, export_onnx

SAMPLE_CLEAR = 1e-4
SAMPLES = 256
TIME_LIMIT = 5.0         # HiGHS and Gurobi
Z3_TIME_LIMIT = 1.0      # Z3: a time-limited case is unknown, which never disagrees
EXACT_TIME_LIMIT = 0.5


def solver_verdicts(problem: Problem, family: str) -> dict[str, tuple[str, str]]:
    """``{oracle: (verdict, reason)}`` of the solver oracles."""
    from robustc.backends import gurobi

    runs = [("highs", "highs", False), ("z3", "z3", False)]
    if gurobi.available():
        runs.append(("gurobi", "gurobi", False))
    if family == "dense":
        runs.append(("z3-exact", "z3", True))
    out = {}
    for name, solver, exact in runs:
        limit = EXACT_TIME_LIMIT if exact else Z3_TIME_LIMIT if solver == "z3" else TIME_LIMIT
        result = verify(problem, VerifyOptions(solver=solver, exact=exact, attack=False,
                                               strict_solver=True, time_limit=limit,
                                               threads=1))
        if name == "gurobi" and result.verdict == ERROR and "license" in result.reason:
            continue  # the model does not fit the size-limited license
        out[name] = (result.verdict, result.reason)
    return out


def sampling_verdict(case: Case, onnx_path: str, seed: int) -> tuple[str, str]:
    """``not_robust`` with a replayed clear violation found by sampling or PGD, else unknown."""
    from robustc.runtime.falsify import pgd_falsify

    box, cond = case.prop.boxes[0], case.prop.condition
    rng = np.random.default_rng(seed)
    xs = box.lower + (box.upper - box.lower) * rng.random((SAMPLES,) + box.lower.shape)
    corners = np.where(rng.random((32,) + box.lower.shape) < 0.5, box.lower, box.upper)
    xs = np.concatenate([xs, corners])
    ys = evaluate(case.graph, xs, batched=True).reshape(len(xs), -1)
    ms = margin(cond, ys)
    x_pgd, _ = pgd_falsify(case.graph, box, cond, steps=20, restarts=4, seed=seed,
                           device="cpu", start=case.prop.meta["center"])
    for x in [x_pgd, xs[int(np.argmin(ms))]]:
        m64 = float(margin(cond, evaluate(case.graph, x).reshape(1, -1))[0])
        rep = replay((onnx_path,), x, box, cond)
        if m64 < -SAMPLE_CLEAR and rep.violated and rep.margin < -SAMPLE_CLEAR:
            return NOT_ROBUST, f"sampled/attacked violation, margin {rep.margin:.4g}"
    return "unknown", "no clear violation sampled"


def disagreement(verdicts: dict[str, tuple[str, str]]) -> str:
    """Why these verdicts are inconsistent, or '' when they agree."""
    errors = [f"{k}: {r}" for k, (v, r) in verdicts.items() if v == ERROR]
    if errors:
        return "error verdict(s): " + "; ".join(errors)
    definite = {v for v, _ in verdicts.values() if v in (ROBUST, NOT_ROBUST)}
    if len(definite) > 1:
        return "definite verdicts disagree"
    return ""


def run_case(case: Case, workdir: Path) -> dict[str, tuple[str, str]]:
    """Every oracle's verdict on ``case`` (the ONNX file is written under ``workdir``)."""
    onnx_path = str(export_onnx(case.graph, workdir / f"case{case.seed}.onnx"))
    case.onnx_path = onnx_path
    problem = Problem(case.prop.name, case.graph, (onnx_path,), case.prop)
    verdicts = solver_verdicts(problem, case.family)
    verdicts["sampling"] = sampling_verdict(case, onnx_path, case.seed)
    return verdicts


def save_case(case: Case, verdicts: dict, why: str, root: Path) -> Path:
    """Write the case (network.onnx, property.pkl/.npz, case.json) for reproduction."""
    out = root / f"case{case.seed}"
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(case.graph, out / "network.onnx")
    box = case.prop.boxes[0]
    np.savez(out / "property.npz", lower=box.lower, upper=box.upper,
             center=case.prop.meta["center"])
    with open(out / "property.pkl", "wb") as fh:
        pickle.dump(case.prop, fh)
    info = {"seed": case.seed, "family": case.family, "input_set": case.input_set,
            "condition": case.condition_kind, "why": why,
            "verdicts": {k: list(v) for k, v in verdicts.items()},
            "reproduce": f"PYTHONPATH=. python -m tests.differential.reproduce {out}"}
    (out / "case.json").write_text(json.dumps(info, indent=1))
    return out
