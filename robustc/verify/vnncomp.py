"""VNN-COMP answers: the results of ``robustc verify PROP.vnnlib --network NET.onnx``.

A VNN-LIB file becomes one or more :class:`~robustc.ir.problem.Problem` (one per
distinct output constraint, :func:`robustc.compiler.vnnlib.vnnlib_problems`); the file is
``unsat`` when every problem is robust and ``sat`` when one is not robust.
:func:`vnncomp_answer` and :func:`write_vnncomp_result` give the competition's result
file: ``sat`` followed by the replayed witness ``((X_0 v) ... (Y_0 v) ...)`` (the Y values
are onnxruntime's outputs for exactly the X values printed), ``unsat``, ``timeout`` or
``unknown``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robustc.files import write_text
from robustc.verify.results import NOT_ROBUST, ROBUST, UNKNOWN, Result

SAT, UNSAT, TIMEOUT, UNKNOWN_ANSWER = "sat", "unsat", "timeout", "unknown"


def vnncomp_answer(results: list[Result], timeout: float | None) -> str:
    """The competition answer for the results of one file's problems.

    ``sat`` when one is not robust, ``unsat`` when all are robust (or there are none),
    ``timeout`` when an undecided one ran into the time limit, else ``unknown`` (errors
    included).
    """
    if any(r.verdict == NOT_ROBUST for r in results):
        return SAT
    if all(r.verdict == ROBUST for r in results):
        return UNSAT
    for r in results:
        out_of_time = timeout is not None and r.time_s >= 0.98 * timeout
        if r.verdict == UNKNOWN and (out_of_time or "time limit" in r.reason.lower()):
            return TIMEOUT
    return UNKNOWN_ANSWER


def witness_text(result: Result) -> str:
    """``((X_0 v) ... (Y_0 v) ...)`` of a not-robust result's replayed counterexample."""
    cex = result.counterexample
    xs = np.asarray(cex.input, dtype=np.float32).ravel()
    ys = np.asarray(cex.output, dtype=np.float32).ravel()
    lines = [f"(X_{i} {float(v)!r})" for i, v in enumerate(xs)]
    lines += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(ys)]
    return "(" + "\n ".join(lines) + ")"


def write_vnncomp_result(path: str | Path, results: list[Result],
                         timeout: float | None) -> str:
    """Write the result file for one VNN-LIB file's results (all or nothing); returns the
    answer. Raises ``OutputError`` when the file cannot be written."""
    answer = vnncomp_answer(results, timeout)
    text = answer + "\n"
    if answer == SAT:
        found = next(r for r in results if r.verdict == NOT_ROBUST)
        text += witness_text(found) + "\n"
    write_text(path, text)
    return answer


__all__ = ["vnncomp_answer", "witness_text", "write_vnncomp_result",
           "SAT", "UNSAT", "TIMEOUT", "UNKNOWN_ANSWER"]
