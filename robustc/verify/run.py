"""The state of one :func:`robustc.verify.verify` call, shared by every strategy: the
deadline, the statistics, progress messages, and the replay that turns a candidate point
into a not-robust result."""

from __future__ import annotations

import contextlib
import time

import numpy as np

from robustc.ir import logits
from robustc.ir.problem import Problem
from robustc.ir.property import Box
from robustc.verify.results import NOT_ROBUST, ROBUST, Counterexample, Result, VerifyOptions


class Run:
    """State of one :func:`robustc.verify.verify` call: the problem, the options, the
    deadline, the statistics and the solvers used."""

    def __init__(self, problem: Problem, options: VerifyOptions):
        self.problem, self.options = problem, options
        self.start = time.perf_counter()
        self.deadline = None if options.time_limit is None else self.start + options.time_limit
        self.solvers_used: set[str] = set()
        self.stats = {"queries": 0, "bounds_s": 0.0, "solve_s": 0.0, "attack_s": 0.0,
                      "max_variables": 0, "max_binaries": 0, "max_constraints": 0,
                      "unstable_relus": 0, "cases": 0, "notices": []}
        self.graph, _ = logits(problem.graph)
        # the proved lower bound on the margin the last margin-minimising MILP reported
        # (None: it stopped before its root relaxation was solved, or none ran)
        self.milp_dual_bound: float | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (negative once past it); None without a limit."""
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def late(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and time.perf_counter() >= self.deadline

    @contextlib.contextmanager
    def until(self, deadline: float):
        """Within the block, the run's deadline is at most ``deadline`` (a phase with a
        budget of its own: every solver and bound inside watches it); restored after."""
        saved = self.deadline
        self.deadline = deadline if saved is None else min(saved, deadline)
        try:
            yield
        finally:
            self.deadline = saved

    def say(self, message: str) -> None:
        """Hand a progress message to the caller's ``progress`` callback, if any."""
        if self.options.progress:
            self.options.progress(message)

    @contextlib.contextmanager
    def limit_threads(self):
        """Keep PyTorch and numpy's BLAS to ``options.threads`` (one when None) for the
        block: the batched bounds multiply many small matrices and the attack back-propagates
        through small convolutions, and a thread pool on a loaded machine makes them several
        times slower (on the 64x64 example, 2 threads on 2 busy cores: 0.33 s per alpha-CROWN
        step instead of 0.02 s)."""
        from robustc.runtime.torch_module import torch_threads

        threads = self.options.threads or 1
        with torch_threads(threads), blas_threads(threads):
            yield

    def result(self, verdict: str, reason: str = "", cex: Counterexample | None = None,
               margin: float | None = None) -> Result:
        solver = "+".join(sorted(self.solvers_used))
        if not solver:  # decided without a solver: by the attack or by the bounds alone
            solver = cex.source if cex is not None else ("bounds" if verdict == ROBUST
                                                         else "none")
        return Result(self.problem.name, verdict, time.perf_counter() - self.start, solver,
                      reason, cex, margin, self.stats)

    def confirm(self, box: Box, x: np.ndarray, source: str, reason: str) -> Result | None:
        """A not-robust result (``reason``; counterexample ``source``) when onnxruntime
        confirms that the candidate ``x`` in ``box`` violates the property, else None."""
        from robustc.runtime.replay import replay  # onnxruntime: only when a point is replayed

        rep = replay(self.problem.onnx_paths, np.reshape(x, box.lower.shape), box,
                     self.problem.prop.condition)
        if not rep.violated:
            return None
        cex = Counterexample(rep.input, rep.output, rep.logits, rep.margin, source)
        return self.result(NOT_ROBUST, reason, cex, rep.margin)


def blas_threads(n: int | None):
    """A context limiting numpy's BLAS to ``n`` threads (threadpoolctl); a no-op when ``n``
    is None or threadpoolctl is missing."""
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=max(1, int(n)), user_api="blas")


__all__ = ["Run", "blas_threads"]
