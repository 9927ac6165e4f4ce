"""The ``robustc`` command line: the parser and the dispatch to one module per subcommand.

Each subcommand is a module of :mod:`robustc.cli` with ``add_arguments(parser)`` and
``run(args) -> exit code``; the table :data:`SUBCOMMANDS` lists them. Subcommand modules
import only light things at the top (heavy ones inside ``run``), so building the parser,
``robustc --version`` and ``robustc check`` import neither torch nor a solver. Every robustc
error is printed as a message (never a traceback) and mapped to an exit code
(:mod:`robustc.cli.common`).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

import robustc
from robustc.cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    memory_cap_of,
)
from robustc.errors import Error
from robustc.files.limits import memory_capped

#: When the running command started (``time.perf_counter``; set again by each :func:`main`
#: call): ``verify --timeout`` counts the start-up (imports, loading the spec and the
#: networks) against the first property.
STARTED = time.perf_counter()


def process_age() -> float:
    """Seconds since this process started (from ``/proc``; 0.0 where it cannot be read).
    The ``robustc`` command counts them in its start: starting Python and importing took
    2.5 s under load before :func:`main` ran."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0

#: Subcommand -> (module of robustc.cli, one-line help), in the order of ``robustc --help``.
SUBCOMMANDS = {
    "check": ("check", "parse and check a .rspec file"),
    "fmt": ("fmt", "print a .rspec file in canonical form"),
    "verify": ("verify", "verify the properties of a .rspec file"),
    "maximize": ("maximize", "search maximal robust layered neighbourhoods"),
    "compile": ("compile", "write the MILP models of a spec's verify properties"),
    "attack": ("attack", "run the attack properties of a .rspec file"),
    "patch": ("patch", "patch a layer's weights (and find adversarial inputs)"),
    "global": ("global_", "estimate global correctness / robustness properties"),
    "dump": ("dump", "import an ONNX network and print its IR"),
}
#: Subcommands that never run a MILP (HiGHS's banner handling is skipped for them).
NO_SOLVER = ("check", "fmt", "dump")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="robustc", description="Compile and verify neural-network robustness properties."
    )
    parser.add_argument("--version", action="version", version=f"robustc {robustc.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        command = importlib.import_module(f"robustc.cli.{module}")
        p = sub.add_parser(name, help=help_text)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


class Terminated(BaseException):
    """SIGTERM arrived (a ``BaseException``, like ``KeyboardInterrupt``, so that no
    ``except Exception`` on the way swallows it)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextmanager
def _sigterm_raises():
    """Turn SIGTERM into :class:`Terminated` for the block (main thread only: Python runs
    signal handlers there), then restore the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: The errors of a write that cannot be done (files go through robustc.files, which names
#: them; these reach ``main`` from printing to a standard output on a full disk).
WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (:mod:`robustc.cli.common`; 130 after
    SIGINT, 143 after SIGTERM, with the results that finished already printed)."""
    global STARTED
    # the command line's run counts from the process start; a call with ``argv`` (the
    # API, tests) from now
    STARTED = time.perf_counter() - (process_age() if argv is None else 0.0)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    cap = memory_cap_of(args)
    try:
        with _sigterm_raises(), memory_capped(cap):
            if args.command not in NO_SOLVER:
                from robustc.backends.highs import banner_to_stderr

                banner_to_stderr()
            return args.func(args)
    except Error as exc:
        print(f"robustc: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return _stopped("interrupted (SIGINT)", EXIT_INTERRUPTED)
    except Terminated:
        return _stopped("terminated (SIGTERM)", EXIT_TERMINATED)
    except BrokenPipeError:  # e.g. `robustc dump net.onnx | head`
        sys.stderr.close()
        return EXIT_OK
    except (MemoryError, OSError) as exc:  # outside a verify call (that gives unknown)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRORS:  # stdout on a full disk
            print(f"robustc: error: cannot write the output: {exc}", file=sys.stderr)
            return EXIT_ERROR
        if isinstance(exc, OSError) and exc.errno != errno.ENOMEM:
            raise
        from robustc.files.limits import format_size

        where = f"the memory cap of {format_size(cap)} (--memory)" if cap else "memory"
        print(f"robustc: error: out of {where}: {exc or 'MemoryError'}", file=sys.stderr)
        return EXIT_ERROR


def _stopped(how: str, code: int) -> int:
    """Flush the results printed so far, say what happened; returns ``code``."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # a closed or broken stdout: nothing more to save
        pass
    print(f"robustc: {how}: the results printed above are complete, the rest did not run",
          file=sys.stderr, flush=True)
    return code


def console() -> None:
    """The ``robustc`` command (``robustc``, ``python -m robustc``): :func:`main` on
    ``sys.argv``, then :func:`exit_now`."""
    exit_now(main())


def exit_now(code: int) -> None:
    """End the process with ``code`` once stdout and stderr are flushed and the exit
    handlers (:mod:`atexit`: temporary folders, worker pools, Ray) have run, without
    Python's teardown of every module's objects, which takes 0.5-1 s after PyTorch is
    imported (more on a busy machine) and would count past ``--timeout``. Another
    non-daemon thread still running: a normal exit, which waits for it. A stdout that
    cannot be written (a full disk) is an error (exit 2) naming it; a closed pipe is not."""
    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `robustc dump net.onnx | head`: the reader is gone
        pass
    except (OSError, ValueError) as exc:
        print(f"robustc: error: cannot write the standard output: {exc}", file=sys.stderr)
        code = EXIT_ERROR
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    import atexit

    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    console()
