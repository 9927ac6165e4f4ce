"""What :func:`robustc.verify.verify` returns and how it is asked: verdicts, options,
counterexamples and results, and the numerical tolerances of a verdict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robustc.backends import DEFAULT_SOLVER
from robustc.verify.input_split.search import SplitOptions
from robustc.verify.relu_split.options import ReluSplitOptions

#: ``--strategy``: ``auto`` (the pipeline's choice) or one strategy for every box.
STRATEGIES = ("auto", "attack", "bounds", "input-split", "relu-split", "milp")
#: The four verdicts (see the README and docs/verify.md).
ROBUST, NOT_ROBUST, UNKNOWN, ERROR = "robust", "not_robust", "unknown", "error"


VERDICTS = (ROBUST, NOT_ROBUST, UNKNOWN, ERROR)


# A solver witness whose onnxruntime margin is at most this is "within tolerance"
# (unknown); a larger margin means the encoding and the network disagree (error).
REPLAY_SLACK = 1e-3


# The solver is first asked for a violation by at least this much (see decide_case).
CLEAR_VIOLATION = 1e-4


@dataclass(frozen=True)
class VerifyOptions:
    """How to decide a property (see the module docstring)."""

    solver: str = DEFAULT_SOLVER
    strict_solver: bool = False     # fail instead of falling back to HiGHS
    time_limit: float | None = None
    node_limit: int | None = None   # branch-and-bound nodes per MILP: a deterministic limit
    threads: int | None = None      # solver threads (None: the solver's default), and
    #                                 PyTorch / BLAS threads (None: one)
    seed: int = 0
    attack: bool = True
    attack_steps: int = 50
    attack_restarts: int = 8
    bounds: str = "symbolic"
    margin: bool = False            # also compute the worst-case margin (slower)
    # Branch and bound over input splits for boxes with few free inputs and many unstable
    # ReLUs (robustc.verify.input_split.search); None switches it off.
    split: SplitOptions | None = SplitOptions()
    # Branch and bound over ReLU phases (beta-CROWN bounds) for boxes with many unstable
    # ReLUs (robustc.verify.relu_split: a chain search for MLPs, a graph search for the
    # rest); None switches it off.
    relu_split: ReluSplitOptions | None = ReluSplitOptions()
    # alpha-CROWN steps on the violation cases left for the MILPs (robustc.verify.alpha);
    # 0 switches the step off.
    alpha_steps: int = 20
    # Which strategy decides each box (STRATEGIES; "auto": the pipeline's choice, see
    # robustc.verify.pipeline).
    strategy: str = "auto"
    exact: bool = False             # decide in exact rational arithmetic (Z3, z3exact.py)
    # Where the PyTorch parts run (attack, linear bounds, ReLU split): "cpu" or "cuda"
    # ("cuda:N"); the verdicts do not depend on it.
    device: str = "cpu"
    progress: Callable[[str], None] | None = None


@dataclass
class Counterexample:
    """A replayed witness: input, network output, logits and the condition's margin."""

    input: np.ndarray
    output: np.ndarray
    logits: np.ndarray
    margin: float
    source: str

    def to_json(self) -> dict:
        return {"input": self.input.tolist(), "output": self.output.tolist(),
                "logits": self.logits.tolist(), "margin": self.margin, "source": self.source,
                "input_shape": list(self.input.shape)}


@dataclass
class Result:
    """The verdict on one property, with what it took to get there."""

    name: str
    verdict: str
    time_s: float
    solver: str
    reason: str = ""
    counterexample: Counterexample | None = None
    margin: float | None = None
    stats: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"name": self.name, "verdict": self.verdict, "time_s": round(self.time_s, 4),
               "solver": self.solver, "reason": self.reason, "margin": self.margin,
               "stats": self.stats}
        if self.counterexample is not None:
            out["counterexample"] = self.counterexample.to_json()
        return out


__all__ = ["STRATEGIES", "ROBUST", "NOT_ROBUST", "UNKNOWN", "ERROR", "VERDICTS", "REPLAY_SLACK",
           "CLEAR_VIOLATION", "VerifyOptions", "Counterexample", "Result"]
