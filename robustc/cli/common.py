"""What every subcommand shares: the exit-code table, ``--set`` overrides, the common
arguments, progress lines and loading a spec.

Exit codes (one table for every subcommand):

* 0: every property holds (or the command succeeded)
* 1: some property does not hold (a validated counterexample exists)
* 2: error (bad input, missing file, solver failure)
* 3: the worst result is unknown (time limit, incomplete method)
* 130 / 143: interrupted by SIGINT (Ctrl-C) / stopped by SIGTERM (128 + the signal number,
  the shell's convention); the results printed before the signal are complete

When results differ, the worst decides, in the order error, violated, unknown, ok. Options
are checked by argparse with the types below (:func:`seconds`, :func:`positive_int`, ...):
a bad value is a usage error, exit 2, before any work.

This module imports nothing heavy: ``robustc --version`` and ``robustc check`` stay fast.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager

from robustc.errors import SpecError

EXIT_OK, EXIT_VIOLATED, EXIT_ERROR, EXIT_UNKNOWN = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143

#: The exit code of each verdict: ``verify``'s and ``global``'s.
EXIT_CODES = {
    "robust": EXIT_OK, "not_robust": EXIT_VIOLATED, "error": EXIT_ERROR,
    "unknown": EXIT_UNKNOWN,
    "met": EXIT_OK, "not_met": EXIT_VIOLATED, "undecided": EXIT_UNKNOWN,
}
_SEVERITY = {EXIT_OK: 0, EXIT_UNKNOWN: 1, EXIT_VIOLATED: 2, EXIT_ERROR: 3}


def worst_exit(codes: Iterable[int]) -> int:
    """The exit code of several results: the worst one (error, violated, unknown, ok);
    ``EXIT_OK`` for none."""
    return max(codes, key=_SEVERITY.__getitem__, default=EXIT_OK)


def verdict_exit(verdicts: Iterable[str]) -> int:
    """The exit code of several verdicts (:data:`EXIT_CODES`, then :func:`worst_exit`)."""
    return worst_exit(EXIT_CODES[v] for v in verdicts)


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``--set NAME=VALUE`` items as a dict of stripped names and value texts (the spec's
    resolver parses each value as a spec expression: ``3``, ``eps/2``, ``[0.1, 0]``,
    ``'"8"'`` for a string). Raises ``SpecError`` for an item without ``=`` or a name."""
    found: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SpecError(f"--set expects NAME=VALUE, got {item!r}")
        found[name.strip()] = value.strip()
    return found


def seconds(text: str) -> float:
    """argparse type of a time limit: a finite number of seconds above 0 (``nan``, ``inf``,
    ``0`` and ``-1`` would mean "no limit" or "stop at once" without saying so)."""
    value = _number(text, float, "a number of seconds")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type of a count that must be at least 1 (threads, workers, samples)."""
    value = _number(text, int, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type of a count where 0 has a meaning of its own (e.g. "no limit")."""
    value = _number(text, int, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type of a finite number >= 0 (a share, a factor)."""
    value = _number(text, float, "a number")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _number(text: str, kind: type, words: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}") from None


def add_spec_arguments(p: argparse.ArgumentParser, *, what: str, with_output: bool = True,
                       output: str | None = None, output_help: str = "output directory",
                       json_help: str = "one JSON object per property on stdout",
                       spec_help: str = "a .rspec file") -> None:
    """The arguments every spec-running subcommand shares: the spec, ``--property``,
    ``--set``, ``--json`` and (``with_output``; default ``output``) ``--output``."""
    p.add_argument("spec", help=spec_help)
    p.add_argument("--property", "-p", action="append", default=[], metavar="NAME",
                   help=f"run only this {what} property (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a spec parameter (repeatable)")
    p.add_argument("--json", action="store_true", help=json_help)
    if with_output:
        p.add_argument("--output", "-o", default=output, metavar="DIR", help=output_help)
    add_element_arguments(p)


def add_element_arguments(p: argparse.ArgumentParser) -> None:
    """``--select`` and ``--limit``: which elements of a data set to run (docs/language.md,
    applied by :func:`load_spec` with :func:`robustc.specs.select_elements`)."""
    p.add_argument("--select", action="append", default=[], metavar="ELEMENTS",
                   help="data sets: run only these elements: indices, half-open ranges A:B, "
                        "or names (file stems), comma-separated (repeatable)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="data sets: run only the first N (selected) elements")


def load_spec(args: argparse.Namespace):
    """The resolved spec of the file ``args.spec`` (always read as a path, whatever its
    name ends in) with ``args.set``, keeping the data-set elements ``--select`` and
    ``--limit`` choose; raises ``SpecError``."""
    from pathlib import Path

    from robustc import specs

    spec = specs.load(Path(args.spec), parse_overrides(args.set))
    return specs.select_elements(spec, getattr(args, "select", None),
                                 getattr(args, "limit", None))


#: Where :func:`emit` sends stderr lines (None: print them); a progress bar sets it for the
#: time it shows (:func:`stderr_writer`) so that lines and bar do not garble each other.
_STDERR_WRITER: Callable[[str], None] | None = None


def emit(line: str) -> None:
    """Print a line on stderr (through the progress bar while one shows)."""
    if _STDERR_WRITER is None:
        print(line, file=sys.stderr, flush=True)
    else:
        _STDERR_WRITER(line)


@contextmanager
def stderr_writer(writer: Callable[[str], None]):
    """Send :func:`emit`'s lines to ``writer`` for the block."""
    global _STDERR_WRITER
    previous, _STDERR_WRITER = _STDERR_WRITER, writer
    try:
        yield
    finally:
        _STDERR_WRITER = previous


def add_campaign_arguments(p: argparse.ArgumentParser, *, results_flags=("--results",),
                           quiet: bool = True) -> None:
    """The options of a run over many instances (docs/campaigns.md): ``--workers``,
    ``--ray``, the results log (``results_flags``), ``--resume``, ``--plot`` and (``quiet``)
    ``--quiet``."""
    g = p.add_argument_group("campaigns (docs/campaigns.md)")
    g.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="run the instances on N local worker processes (default 1: in this "
                        "process); each worker gets --threads threads (default 1)")
    g.add_argument("--ray", metavar="ADDRESS",
                   help="run the instances as Ray tasks: HOST:PORT of a cluster, or 'local' "
                        "(starts Ray here with --workers CPUs); needs pip install 'robustc[ray]'")
    g.add_argument(*results_flags, dest="results", metavar="FILE.jsonl",
                   help="append each finished instance to this JSON-lines file as it ends "
                        "(flushed and fsynced)")
    g.add_argument("--resume", action="store_true",
                   help="skip the instances already in the results file (refused for a file "
                        "of another spec, instance list or option set)")
    g.add_argument("--plot", metavar="FILE",
                   help="write a picture: certified accuracy vs epsilon when the instances "
                        "differ in epsilon, else a cactus plot (instances solved vs time)")
    if quiet:
        g.add_argument("--quiet", "-q", action="store_true",
                       help="no progress bar, progress lines or summary table")
    p.add_argument("--memory", type=memory_size, default=None, metavar="SIZE",
                   help="memory cap per process, e.g. 4G or 500M, or 'none' (default: 75%% "
                        "of the machine's memory); past it a property is unknown 'memory "
                        "cap reached' and a file too large for it an error (docs/errors.md)")


def memory_size(text: str) -> int:
    """argparse type of ``--memory``: bytes of SIZE (``4G``, ``500M``), 0 for ``none``."""
    from robustc.files.limits import MIN_MEMORY, format_size, parse_size

    if text.strip().lower() in ("none", "off", "unlimited"):
        return 0
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if size < MIN_MEMORY:
        raise argparse.ArgumentTypeError(
            f"must be at least {format_size(MIN_MEMORY)} (robustc with PyTorch and HiGHS "
            f"needs about 300M to start), got {text!r}")
    return size


def memory_cap_of(args: argparse.Namespace) -> int | None:
    """The memory cap a command's ``--memory`` asks for in bytes (its default where not
    given; None for ``none`` and for commands without the option)."""
    if not hasattr(args, "memory"):
        return None
    if args.memory is None:
        from robustc.files.limits import default_memory_cap

        return default_memory_cap()
    return args.memory or None


class Progress:
    """Progress lines on stderr, only for work that has run longer than a second."""

    def __init__(self, name: str, enabled: bool = True):
        self.name, self.enabled = name, enabled
        self.start = self.last = time.perf_counter()

    def __call__(self, message: str) -> None:
        now = time.perf_counter()
        if self.enabled and now - self.start > 1.0 and now - self.last > 1.0:
            emit(f"  ... {self.name}: {message} ({now - self.start:.0f} s)")
            self.last = now


__all__ = ["EXIT_OK", "EXIT_VIOLATED", "EXIT_ERROR", "EXIT_UNKNOWN", "EXIT_INTERRUPTED",
           "EXIT_TERMINATED", "EXIT_CODES",
           "worst_exit", "verdict_exit", "parse_overrides", "add_spec_arguments",
           "add_element_arguments", "load_spec",
           "Progress", "emit", "stderr_writer", "add_campaign_arguments",
           "seconds", "positive_int", "non_negative_int", "non_negative_float",
           "memory_size", "memory_cap_of"]
