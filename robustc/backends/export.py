"""Writing MILP models to files: ``.lp`` and ``.mps`` (by HiGHS), Gurobi's ``.lp`` dialect,
SMT-LIB 2 ``.smt2`` (by :mod:`robustc.backends.z3smt`).

Variable names say what each column is: ``x_i`` for input value ``i``, ``<relu>.y_j`` and
``<relu>.d_j`` for the output and phase binary of an unstable ReLU, ``sel_j`` for selectors.
"""

from __future__ import annotations

from pathlib import Path

from robustc.backends.milp.model import MilpModel
from robustc.backends.solve import SolveOptions
from robustc.errors import OutputError, SolverError
from robustc.files import atomic_path

FORMATS = ("lp", "mps", "gurobi")  # "smt2" (SMT-LIB 2, robustc.backends.z3smt) on request


def write_model(model: MilpModel, stem: Path, formats: tuple[str, ...] = FORMATS
                ) -> list[Path]:
    """Write ``model`` as ``stem.lp``, ``stem.mps`` and ``stem.gurobi.lp``; returns the paths.
    Each file is written all or nothing (:func:`robustc.files.atomic_path`); a write that
    fails raises ``OutputError`` naming the file.

    The Gurobi file is skipped (silently) when Gurobi cannot start (``robustc compile
    --format gurobi`` checks it first and says so); a Gurobi failure while writing raises
    ``SolverError`` (``LicenseLimit`` for a model the license refuses).
    """
    import highspy

    from robustc.backends import gurobi, highs

    written = []
    h = None
    for fmt in formats:
        if fmt in ("lp", "mps"):
            h = h or highs.make_highs(model, SolveOptions())
            _name_columns(h, model)
            path = stem.with_suffix(f".{fmt}")
            with atomic_path(path) as tmp:
                if h.writeModel(str(tmp)) == highspy.HighsStatus.kError:
                    raise OutputError(f"cannot write {path}: HiGHS's writer failed")
                _check_complete(tmp, path, fmt)
            written.append(path)
        elif fmt == "smt2":
            from robustc.backends.z3smt import write_smt2

            path = stem.with_suffix(".smt2")
            write_smt2(model, path)
            written.append(path)
        elif fmt == "gurobi" and gurobi.available():
            path = stem.with_suffix(".gurobi.lp")
            with atomic_path(path) as tmp:
                try:
                    gurobi.write_lp(model, tmp, model.col_names)
                except SolverError as exc:  # name the file the user asked for
                    raise type(exc)(f"{path}: {exc}") from None
            written.append(path)
    return written


#: The last line of a complete file HiGHS writes, by format.
_LAST_LINE = {"lp": b"end", "mps": b"ENDATA"}


def _check_complete(tmp: Path, path: Path, fmt: str) -> None:
    """Raise ``OutputError`` naming ``path`` unless HiGHS's file ``tmp`` reached the disk
    whole. HiGHS's writer ignores failed writes (a full disk, a file size limit: measured
    with ``RLIMIT_FSIZE``, it returned ok on a file cut at the limit), so the file is
    synced (a delayed write error surfaces there as an ``OSError``) and its last line must
    be the format's end marker."""
    import os

    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
        fh.seek(max(0, os.fstat(fh.fileno()).st_size - 64))
        tail = fh.read().rstrip()
    if tail.rsplit(b"\n", 1)[-1].strip() != _LAST_LINE[fmt]:
        raise OutputError(f"cannot write {path}: the file HiGHS wrote is incomplete (is the "
                          f"disk full or a file size limit set?)")


def _name_columns(h, model: MilpModel) -> None:
    for i, name in enumerate(model.col_names):
        h.passColName(i, name)
