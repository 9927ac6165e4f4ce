"""VNN-COMP answers: the results of ``robustc verify PROP.vnnlib --network NET.onnx``.

A VNN-LIB file becomes one or more :class:`~robustc.ir.problem.Problem` (one per
distinct output constraint, :func:`robustc.compiler.vnnlib.vnnlib_problems`); the file is
``unsat`` when every problem is robust and ``sat`` when one is not robust.
:func:`vnncomp_answer` and :func:`write_vnncomp_result` give the competition's result
file: ``sat`` followed by the replayed witness ``((X_0 v) ... (Y_0 v) ...)`` (the Y values
are onnxruntime's outputs for exactly the X values printed), ``unsat``, ``timeout`` or
``unknown``.

An instance list (``instances.csv``: ``onnx,vnnlib,timeout`` rows, paths relative to the csv,
as in the competition's benchmark folders) is read by :func:`read_instances`; one row runs
with :func:`run_instance` (``robustc verify instances.csv``, docs/campaigns.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustc.errors import SpecError
from robustc.files import write_text
from robustc.verify.results import NOT_ROBUST, ROBUST, UNKNOWN, Counterexample, Result

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


def result_text(results: list[Result], timeout: float | None) -> str:
    """The text of a result file: the answer line, then the witness for ``sat``."""
    answer = vnncomp_answer(results, timeout)
    text = answer + "\n"
    if answer == SAT:
        found = next(r for r in results if r.verdict == NOT_ROBUST)
        text += witness_text(found) + "\n"
    return text


def write_vnncomp_result(path: str | Path, results: list[Result],
                         timeout: float | None) -> str:
    """Write the result file for one VNN-LIB file's results (all or nothing); returns the
    answer. Raises ``OutputError`` when the file cannot be written."""
    text = result_text(results, timeout)
    write_text(path, text)
    return text.split("\n", 1)[0]


def result_from_json(data: dict) -> Result:
    """A :class:`Result` back from :meth:`Result.to_json` (a results log's record)."""
    cex = data.get("counterexample")
    if cex is not None:
        shape = tuple(cex.get("input_shape") or (-1,))
        cex = Counterexample(np.asarray(cex["input"], dtype=np.float32).reshape(shape),
                             np.asarray(cex["output"], dtype=np.float32),
                             np.asarray(cex["logits"], dtype=np.float32),
                             float(cex["margin"]), cex["source"])
    return Result(data["name"], data["verdict"], float(data["time_s"]), data.get("solver", ""),
                  data.get("reason", ""), cex, data.get("margin"), data.get("stats", {}))


@dataclass(frozen=True)
class Instance:
    """One row of an instance list: absolute paths, the time limit and where it was read."""

    onnx: str
    vnnlib: str
    timeout: float
    where: str  # "file:line"

    @property
    def name(self) -> str:
        """``onnx stem/vnnlib stem``, the row's name in results and tables."""
        return f"{Path(self.onnx).stem}/{Path(self.vnnlib).stem}"


def read_instances(path: str | Path) -> list[Instance]:
    """The rows of an ``onnx,vnnlib,timeout`` csv (paths relative to the csv's folder; blank
    lines and ``#`` comments skipped). Raises ``SpecError`` naming ``file:line`` for a row
    without three fields, a time limit that is not a positive number, or a missing file."""
    import csv

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the instance list ({exc.strerror or exc})") \
            from None
    out = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        if len(row) != 3:
            raise SpecError(f"{where}: expected 'onnx,vnnlib,timeout', got {len(row)} "
                            f"field(s): {','.join(row)!r}")
        onnx, vnnlib, limit = (field.strip() for field in row)
        try:
            timeout = float(limit)
        except ValueError:
            timeout = math.nan
        if not math.isfinite(timeout) or timeout <= 0:
            raise SpecError(f"{where}: the time limit must be a number of seconds > 0, got "
                            f"{limit!r}")
        files = [path.parent / onnx, path.parent / vnnlib]
        for f in files:
            if not f.is_file():
                raise SpecError(f"{where}: no such file: {f}")
        out.append(Instance(str(files[0]), str(files[1]), timeout, where))
    if not out:
        raise SpecError(f"{path}: no instance in the list")
    return out


def run_instance(inst: Instance, options, cap: float | None = None) -> dict:
    """Decide one row: every problem of its VNN-LIB file under one clock (the row's time
    limit, or ``cap`` when smaller), stopping at the first ``not_robust``. ``options`` is a
    :class:`~robustc.verify.VerifyOptions` whose ``time_limit`` is replaced per problem.

    Returns a JSON-ready record: ``name``, ``verdict`` (robust / not_robust / unknown /
    error), ``answer`` (the competition's), ``time_s`` (loading included), ``detail``,
    ``results`` (each problem's :meth:`Result.to_json`) and ``result_file`` (the text of
    the competition's result file). A robustc error (a bad network or VNN-LIB file) is an
    ``error`` record naming it, not an exception: one bad row does not stop a campaign.
    """
    from dataclasses import replace

    from robustc.compiler.vnnlib import ReadTimeout, vnnlib_problems
    from robustc.verify.pipeline import verify

    timeout = inst.timeout if cap is None else min(inst.timeout, cap)
    start = time.perf_counter()
    deadline = start + timeout
    results: list[Result] = []
    try:
        for problem in vnnlib_problems(inst.vnnlib, inst.onnx, deadline):
            left = max(deadline - time.perf_counter(), 0.1)
            results.append(verify(problem, replace(options, time_limit=left)))
            if results[-1].verdict == NOT_ROBUST:
                break
        answer = vnncomp_answer(results, timeout)
        detail = "; ".join(f"{r.verdict}: {r.reason}" for r in results)
    except ReadTimeout as exc:  # the row's time ran out while its file was read
        answer, detail = TIMEOUT, f"{UNKNOWN}: {exc}"
    except Exception as exc:  # noqa: BLE001 - a bad row or a crash is an answer of its own
        answer, detail = "error", f"{inst.where}: {type(exc).__name__}: {exc}"
    verdict = {SAT: NOT_ROBUST, UNSAT: ROBUST, "error": "error"}.get(answer, UNKNOWN)
    return {"name": inst.name, "verdict": verdict, "answer": answer,
            "time_s": round(time.perf_counter() - start, 4), "timeout": timeout,
            "detail": detail[:300], "results": [r.to_json() for r in results],
            "result_file": answer + "\n" if answer == "error" or not results else
            result_text(results, timeout)}


__all__ = ["vnncomp_answer", "witness_text", "result_text", "write_vnncomp_result",
           "result_from_json", "Instance", "read_instances", "run_instance",
           "SAT", "UNSAT", "TIMEOUT", "UNKNOWN_ANSWER"]
