"""HiGHS (highspy): the default MILP solver; needs no license.

HiGHS runs every solve of a process on one global task scheduler whose thread count is fixed
when it starts; a solve whose ``threads`` option names another count fails at once with model
status "Not Set". The scheduler may have been started by anyone in the process (robustc's LP
bound tightening, a user's own highspy code), so a solve that asks for a thread count and
fails that way shuts the scheduler down (``Highs.resetGlobalScheduler``) and runs once more;
robustc never runs two HiGHS solves of one process at once. A solve that leaves ``threads``
unset runs on whatever scheduler is running, or starts one with HiGHS's default count.

HiGHS checks its ``time_limit`` only at some points: on a large model (a CIFAR ResNet's MILP
has 10 million nonzeros) presolve and the work before the first node ran for 65 s under a
15 s limit, and its interrupt callbacks were not called in that phase. A model with at least
:data:`ISOLATE_NONZEROS` nonzeros and a time limit is therefore solved in a child process
(:func:`solve_isolated`) that is ended when the limit plus :data:`KILL_GRACE` has passed;
the answer is then ``limit``. Smaller models are solved in this process: a child costs
about 0.45 s (median of 5 solves of a 6-variable model, against 3 ms in process). The
threshold was 1,000,000 until an oval21 ``cifar_wide_kw`` model of 760,341 nonzeros ran
7.4 s under a 2.3 s limit (in process); it is now 100,000 (not tuned further: the
child's 0.45 s is small against solves of that size).
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np

from robustc.backends.milp.model import MilpModel
from robustc.backends.solve import (
    ERROR,
    FEASIBLE,
    INFEASIBLE,
    LIMIT,
    SolveOptions,
    SolveOutcome,
    can_import,
    import_solver,
    solve_empty,
)

NAME = "highs"
REQUIRED_MODULES = ("highspy",)
#: Models with at least this many nonzeros and a time limit are solved in a child process.
ISOLATE_NONZEROS = 100_000
#: Seconds a child solve may run past its time limit before it is ended.
KILL_GRACE = 1.0


def available() -> bool:
    """Whether highspy can be imported."""
    return can_import("highspy")


def banner_to_stderr() -> None:
    """Make this process's first ``Highs`` object with standard output sent to standard
    error, so that HiGHS's once-a-process banner goes there. Does nothing without highspy."""
    if not available():
        return
    import ctypes

    hs = _highspy()
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no standard output to protect
        return
    try:
        os.dup2(2, 1)
        hs.Highs()
        try:
            ctypes.CDLL(None).fflush(None)  # the banner may sit in C's stdout buffer
        except (OSError, AttributeError):  # no C library to flush by name (Windows)
            pass
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _highspy():
    return import_solver("highspy", "highspy", "HiGHS")


def _status_table(hs) -> dict:
    s = hs.HighsModelStatus
    return {
        s.kOptimal: FEASIBLE, s.kObjectiveTarget: FEASIBLE, s.kSolutionLimit: LIMIT,
        s.kInfeasible: INFEASIBLE, s.kObjectiveBound: INFEASIBLE,
        # every variable of a robustc model has finite bounds: "unbounded" cannot happen
        s.kUnboundedOrInfeasible: INFEASIBLE,
        s.kTimeLimit: LIMIT, s.kIterationLimit: LIMIT, s.kInterrupt: LIMIT,
        s.kMemoryLimit: LIMIT,
    }


def _to_lp(hs, model: MilpModel):
    lp = hs.HighsLp()
    csc = model.A.tocsc()
    csc.sort_indices()
    lp.num_col_, lp.num_row_ = model.num_vars, model.num_rows
    lp.col_cost_ = model.objective
    lp.offset_ = model.objective_const
    lp.col_lower_, lp.col_upper_ = model.lb, model.ub
    inf = hs.kHighsInf
    lp.row_lower_ = np.where(np.isinf(model.row_lower), -inf, model.row_lower)
    lp.row_upper_ = np.where(np.isinf(model.row_upper), inf, model.row_upper)
    lp.a_matrix_.format_ = hs.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
    lp.a_matrix_.index_ = csc.indices.astype(np.int32)
    lp.a_matrix_.value_ = csc.data
    if model.integer.any():
        kind = hs.HighsVarType
        lp.integrality_ = [kind.kInteger if i else kind.kContinuous for i in model.integer]
    return lp


def make_highs(model: MilpModel, options: SolveOptions):
    """A configured ``highspy.Highs`` holding ``model`` (used by solve and by export)."""
    hs = _highspy()
    h = hs.Highs()
    h.setOptionValue("output_flag", bool(options.verbose))
    if options.threads is not None:
        h.setOptionValue("threads", max(1, int(options.threads)))
    h.setOptionValue("random_seed", int(options.seed))
    h.setOptionValue("mip_feasibility_tolerance", 1e-7)
    if options.time_limit is not None:
        h.setOptionValue("time_limit", max(float(options.time_limit), 0.01))
    if options.node_limit is not None:
        h.setOptionValue("mip_max_nodes", int(options.node_limit))
    if options.objective_bound is not None:
        h.setOptionValue("objective_bound", float(options.objective_bound))
    if options.objective_target is not None:
        h.setOptionValue("objective_target", float(options.objective_target))
    h.passModel(_to_lp(hs, model))
    return h


def _run(h, hs, threads: int | None) -> None:
    """``h.run()``, restarting the global scheduler once when it runs on another thread count
    than ``threads``, the count ``h`` asks for (see the module docstring)."""
    status = _interruptible_run(h)
    if (threads is not None and status == hs.HighsStatus.kError
            and h.getModelStatus() == hs.HighsModelStatus.kNotset):
        hs.Highs.resetGlobalScheduler(True)
        _interruptible_run(h)


#: Seconds a cancelled solve gets to stop at HiGHS's next interrupt check before the
#: signal's exception goes on without it (the solve thread is a daemon).
CANCEL_GRACE = 1.0


def _interruptible_run(h):
    """``h.run()`` such that SIGINT and SIGTERM stop it: HiGHS does not return to Python
    while it solves, so a signal used to wait for the solve's end (58 s of a 60 s limit,
    measured on a market-split model). In the main thread the solve runs in highspy's
    solver thread (``startSolve``) while this thread waits in 0.1 s steps, where Python runs
    its signal handlers; their exception cancels the solve through HiGHS's user-interrupt
    callback (``cancelSolve``), waits up to :data:`CANCEL_GRACE` seconds for it to stop,
    and propagates. Elsewhere (signals reach only the main thread) ``h.run()`` as before."""
    if threading.current_thread() is not threading.main_thread():
        return h.run()
    h.HandleUserInterrupt = True
    h.startSolve()
    try:
        while True:
            done, status = h.wait(0.1)
            if done:
                return status
    except BaseException:
        h.cancelSolve()
        h.wait(CANCEL_GRACE)
        raise


def solve(model: MilpModel, options: SolveOptions) -> SolveOutcome:
    """Solve ``model`` with HiGHS; never raises for solver trouble (status ERROR instead).
    Large models with a time limit go to :func:`solve_isolated`."""
    if options.time_limit is not None and model.A.nnz >= ISOLATE_NONZEROS:
        return solve_isolated(model, options)
    return solve_here(model, options)


def solve_isolated(model: MilpModel, options: SolveOptions) -> SolveOutcome:
    """:func:`solve_here` in a child Python process that is ended ``KILL_GRACE`` seconds
    after ``options.time_limit``: then ``limit``, with no solution. A child that fails gives
    ``error`` with its reason. The model and the answer travel through a temporary folder
    (a child started with ``python -m``, so no caller's ``__main__`` is run again)."""
    import pickle
    import subprocess
    import tempfile

    start = time.perf_counter()
    wall_deadline = time.time() + max(float(options.time_limit), 0.01)  # shared by both
    with tempfile.TemporaryDirectory(prefix="robustc-highs-") as tmp:
        task, answer = os.path.join(tmp, "task.pkl"), os.path.join(tmp, "answer.pkl")
        with open(task, "wb") as fh:
            pickle.dump((model, options, wall_deadline), fh, protocol=pickle.HIGHEST_PROTOCOL)
        proc = subprocess.Popen([sys.executable, "-m", "robustc.backends.highs", task, answer],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=_child_env())
        try:
            _, err = proc.communicate(timeout=max(0.0, wall_deadline + KILL_GRACE - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return SolveOutcome(LIMIT, NAME, reason="Time limit reached (HiGHS ran past it; "
                                "robustc ended the solve)", time_s=time.perf_counter() - start,
                                stats={"isolated": True})
        if proc.returncode != 0 or not os.path.exists(answer):
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            return SolveOutcome(ERROR, NAME, reason=f"HiGHS child process failed (exit "
                                f"{proc.returncode}): {tail[0]}",
                                time_s=time.perf_counter() - start)
        with open(answer, "rb") as fh:
            out = pickle.load(fh)
    out.time_s = time.perf_counter() - start
    out.stats["isolated"] = True
    return out


def _child_env() -> dict:
    """This environment, with the folder that holds this robustc first on PYTHONPATH (the
    caller may have put it on ``sys.path`` by hand)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _child_main(task: str, answer: str) -> None:
    """The child's side of :func:`solve_isolated`: HiGHS gets the time left until the
    parent's deadline (the child's start and the model's transfer are already spent)."""
    import dataclasses
    import pickle

    with open(task, "rb") as fh:
        model, options, wall_deadline = pickle.load(fh)
    left = wall_deadline - time.time()
    if left <= 0.0:
        out = SolveOutcome(LIMIT, NAME, reason="Time limit reached")
    else:
        out = solve_here(model, dataclasses.replace(options, time_limit=left))
    with open(answer + ".part", "wb") as fh:
        pickle.dump(out, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(answer + ".part", answer)


def solve_here(model: MilpModel, options: SolveOptions) -> SolveOutcome:
    """Solve ``model`` with HiGHS in this process."""
    hs = _highspy()
    if model.num_vars == 0:
        return solve_empty(model, NAME)
    start = time.perf_counter()
    try:
        h = make_highs(model, options)
        _run(h, hs, options.threads)
    except Exception as exc:  # highspy raises plain exceptions on internal failures
        return SolveOutcome(ERROR, NAME, reason=f"HiGHS failed: {exc}",
                            time_s=time.perf_counter() - start)
    status = h.getModelStatus()
    info = h.getInfo()
    ours = _status_table(hs).get(status, ERROR)
    has_solution = info.primal_solution_status == 2
    solution = np.array(h.getSolution().col_value) if has_solution else None
    if ours == FEASIBLE and solution is None:
        ours, reason = ERROR, "HiGHS reported success without a solution"
    else:
        reason = "" if ours in (FEASIBLE, INFEASIBLE) else h.modelStatusToString(status)
    return SolveOutcome(
        ours, NAME, solution=solution, proven_optimal=status == hs.HighsModelStatus.kOptimal,
        objective=info.objective_function_value if has_solution else None,
        dual_bound=_dual_bound(info, model, status == hs.HighsModelStatus.kOptimal),
        reason=reason,
        time_s=time.perf_counter() - start,
        stats={"nodes": int(getattr(info, "mip_node_count", 0) or 0)},
    )


def _dual_bound(info, model: MilpModel, optimal: bool) -> float | None:
    """A proved lower bound on the objective (the LP optimum when there are no integers)."""
    if model.integer.any():
        bound = getattr(info, "mip_dual_bound", None)
        return None if bound is None or not np.isfinite(bound) else float(bound)
    return float(info.objective_function_value) if optimal else None


if __name__ == "__main__":  # the child process of solve_isolated
    _child_main(sys.argv[1], sys.argv[2])
