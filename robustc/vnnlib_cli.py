"""VNN-LIB on the command line: ``robustc verify PROP.vnnlib --network NET.onnx``.

A VNN-LIB file becomes one or more :class:`~robustc.verify.Problem` (one per distinct
output constraint, see :mod:`robustc.compiler.vnnlib`); the file is ``unsat`` when every
problem is robust and ``sat`` when one is not robust. :func:`vnncomp_answer` and
:func:`write_vnncomp_result` give the competition's result file: ``sat`` followed by the
replayed witness ``((X_0 v) ... (Y_0 v) ...)`` (the Y values are onnxruntime's outputs for
exactly the X values printed), ``unsat``, ``timeout`` or ``unknown``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robustc.errors import SpecError
from robustc.verify import NOT_ROBUST, ROBUST, UNKNOWN, Problem, Result

SAT, UNSAT, TIMEOUT, UNKNOWN_ANSWER = "sat", "unsat", "timeout", "unknown"


def vnnlib_problems(vnnlib: str | Path, network: str | Path | None) -> list[Problem]:
    """The problems of a VNN-LIB file on ``network``; raises ``SpecError`` (bad file or no
    network) or ``ModelError`` (bad network)."""
    from robustc.compiler import load_onnx, standard_passes
    from robustc.compiler.vnnlib import read_vnnlib, to_properties
    from robustc.ir import logits

    if not network:
        raise SpecError(f"{vnnlib}: a .vnnlib property needs --network NET.onnx")
    query = read_vnnlib(vnnlib)
    graph = standard_passes().run(load_onnx(str(network)))
    if logits(graph)[1]:
        raise SpecError(f"{network}: the network ends with an output activation (sigmoid, "
                        f"softmax or tanh); VNN-LIB constraints on its outputs are not linear")
    props = to_properties(query, tuple(graph.input.shape), graph.output.size)
    return [Problem(p.name, graph, (str(network),), p, Path(network).name) for p in props]


def vnncomp_answer(results: list[Result], timeout: float | None) -> str:
    """The competition answer for the results of one file's problems.

    ``sat`` when one is not robust, ``unsat`` when all are robust (or there are none: every
    input box was empty), ``timeout`` when an undecided one ran into the time limit, else
    ``unknown`` (errors included).
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
    """Write the result file for one VNN-LIB file's results; returns the answer."""
    answer = vnncomp_answer(results, timeout)
    text = answer + "\n"
    if answer == SAT:
        found = next(r for r in results if r.verdict == NOT_ROBUST)
        text += witness_text(found) + "\n"
    Path(path).write_text(text)
    return answer


__all__ = ["vnnlib_problems", "vnncomp_answer", "witness_text", "write_vnncomp_result",
           "SAT", "UNSAT", "TIMEOUT", "UNKNOWN_ANSWER"]
