"""Output files, all or nothing, and strict JSON.

Every file robustc writes goes through :func:`atomic_path`: the writer writes a temporary
file in the destination's folder (a hidden name that ends with the destination's suffix, so
writers that pick the format from the suffix, HiGHS, Gurobi, PIL, matplotlib and
``np.save``, still work), and only a writer that finished is renamed over the destination
(``os.replace``, atomic on one file system). On any failure the temporary file is removed
and an :class:`~robustc.errors.OutputError` names the destination: a full disk or a removed
folder leaves the old file or none, never a truncated one.

Commands call :func:`check_output_dir` or :func:`check_output_file` before their work
starts, so an unwritable destination is an error in a second, not after the solving.

JSON is strict (:func:`json_text`, :func:`jsonable`): ``NaN`` and the infinities, which
Python's ``json`` writes as bare tokens that are not JSON, are written as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (``float()`` reads each back); numpy arrays
and scalars become lists and numbers.

This package imports only :mod:`robustc.errors` (numpy lazily), so every other package may
use it.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from robustc.errors import OutputError

__all__ = ["atomic_path", "write_text", "write_bytes", "write_with", "write_json", "json_text",
           "jsonable", "check_output_dir", "check_output_file", "NON_FINITE"]

#: How a non-finite float is written in strict JSON.
NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the caller to write; when the block ends
    without an exception, rename it to ``path``, else remove it.

    Raises ``OutputError`` naming ``path`` when the block raises ``OSError`` or writes
    nothing, or the rename fails; other exceptions pass through (the temporary file is
    removed either way).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        if not tmp.is_file():
            raise OutputError(f"cannot write {path}: the writer produced no file")
        os.replace(tmp, path)
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"cannot write {path}: {_reason(exc)}") from None
    finally:
        with suppress(OSError):  # e.g. the folder is gone: there is nothing to remove
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` all or nothing (:func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` all or nothing; returns the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_with(path: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
    """Call ``writer(temporary path)`` and rename its file to ``path``; returns the path."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def jsonable(value):
    """``value`` with numpy arrays and scalars as lists and numbers, tuples as lists, paths
    as strings, other numbers (``Fraction``) as floats, and every non-finite float as its
    :data:`NON_FINITE` string. Raises ``TypeError`` for anything else."""
    if isinstance(value, float):  # numpy's float64 too
        value = float(value)
        return value if math.isfinite(value) else NON_FINITE[repr(value)]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return jsonable(value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "__float__"):  # Fraction, Decimal: as json.dumps(default=float) did
        return jsonable(float(value))
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def json_text(value, **kwargs) -> str:
    """Strict JSON of ``value`` (:func:`jsonable`; ``allow_nan=False``); ``kwargs`` go to
    ``json.dumps`` (``indent``...)."""
    return json.dumps(jsonable(value), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike, value, indent: int | None = 1) -> Path:
    """Write :func:`json_text` of ``value`` to ``path`` all or nothing; returns the path."""
    return write_text(path, json_text(value, indent=indent))


def check_output_dir(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` if needed and check a file can be created in it; returns
    it. Raises ``OutputError`` naming the folder and the reason."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write to {path}: it exists and is not a folder") from None
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {path}: {_reason(exc)}") from None
    probe = path / f".robustc-probe-{secrets.token_hex(4)}"
    try:
        probe.write_bytes(b"")
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder {path}: {_reason(exc)}") \
            from None
    finally:
        probe.unlink(missing_ok=True)
    return path


def check_output_file(path: str | os.PathLike) -> Path:
    """Check that the file ``path`` can be written: it is not a folder and its folder
    exists and takes a new file; returns it. Raises ``OutputError``."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: the folder {folder} does not exist")
    check_output_dir(folder)
    return path
