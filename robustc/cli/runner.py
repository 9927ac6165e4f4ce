"""The run loop that ``verify``, ``maximize`` and ``attack`` share: instances on an executor
(``--workers``, ``--ray``), a results log (``--output``/``--results`` with ``--resume``), a
progress bar, a summary table and ``--plot``.

An instance is a ``(name, item)`` pair; ``fn(shared, item)`` runs it (in this process, a
worker process or a Ray task) and returns a record: a JSON-ready dict with at least
``name``, ``verdict`` and ``time_s`` (``epsilon`` too where a certified-accuracy curve makes
sense), which the caller's ``show`` turns into its stdout line. See docs/campaigns.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from contextlib import contextmanager

from robustc.cli import common
from robustc.errors import SpecError


def _open_log(args, campaign: str, fp: dict):
    from robustc.analyses.campaign import ResultsLog

    path = getattr(args, "results", None)
    if args.resume and not path:
        raise SpecError("--resume needs the results file: give it with --output/--results")
    if not path:
        return None
    # records of instances this run does not select (another --property or --limit) stay
    # in the file and are left out of this run's output and summary
    return ResultsLog(path, campaign, fp, resume=args.resume)


def _bar(args, total: int, initial: int):
    """A tqdm bar on stderr, or None (``--quiet``, ``--json``, or stderr not a terminal)."""
    if args.quiet or not sys.stderr.isatty():
        return None
    import os

    from tqdm import tqdm

    try:
        width = os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        width = 0
    # a terminal that reports no size (0 x 0) still gets a bar, 80 columns wide
    return tqdm(total=total, initial=initial, file=sys.stderr, unit="inst", leave=False,
                dynamic_ncols=width > 0, ncols=None if width > 0 else 80,
                nrows=None if width > 0 else 24)


@contextmanager
def _lines_through(bar):
    """While the bar shows, progress lines on stderr go through ``bar.write`` (no garbling)."""
    if bar is None:
        yield
        return
    with common.stderr_writer(lambda line: bar.write(line, file=sys.stderr)):
        yield


def run_campaign(args: argparse.Namespace, *, campaign: str, fp: dict,
                 instances: list[tuple[str, object]], fn: Callable, shared,
                 show: Callable[[dict], str], plot_kind: str = "auto",
                 warm_up: Callable | None = None) -> list[dict]:
    """Run every instance not already in the results log; returns all records (resumed ones
    included) in instance order. Raises ``SpecError`` for duplicate names, a results file of
    another campaign, ``--resume`` without a file; ``KeyboardInterrupt`` and SIGTERM pass
    through after the workers are ended and the resume command is printed. ``warm_up`` runs
    once in each worker before its first instance (:func:`~robustc.analyses.campaign.
    make_executor`)."""
    from robustc.analyses.campaign import make_executor

    names = [name for name, _ in instances]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise SpecError(f"instance names must be unique; repeated: {', '.join(twice)}")
    log = _open_log(args, campaign, fp)
    done = {n: log.done[n] for n in names if n in log.done} if log else {}
    todo = [(n, item) for n, item in instances if n not in done]
    if done:
        print(f"robustc: resume: {len(done)} of {len(instances)} instances already in "
              f"{args.results}; running the other {len(todo)}", file=sys.stderr)
    executor = make_executor(args.workers, args.ray, getattr(args, "threads", None) or 1,
                             warm_up) if todo else None
    bar = _bar(args, len(instances), len(done))
    counts: dict[str, int] = {}
    for record in done.values():
        counts[record["verdict"]] = counts.get(record["verdict"], 0) + 1
    try:
        with _lines_through(bar):
            for record in executor.map_unordered(fn, shared, [i for _, i in todo]) if todo \
                    else ():
                if log:
                    log.append(record)
                done[record["name"]] = record
                counts[record["verdict"]] = counts.get(record["verdict"], 0) + 1
                _show(bar, show(record))
                if bar is not None:
                    bar.set_postfix_str(", ".join(f"{v} {n}" for v, n in counts.items()))
                    bar.update(1)
    except BaseException:  # an error or an interrupt: end the workers now, say how to go on
        if executor is not None:
            executor.close(wait=False)
        if bar is not None:
            bar.close()
        _resume_hint(args, log, names)
        raise
    finally:
        if log:
            log.close()
    if executor is not None:
        executor.close()
    if bar is not None:
        bar.close()
    records = [done[n] for n in names]
    _finish(args, records, plot_kind)
    return records


def _show(bar, line: str) -> None:
    if bar is None:
        print(line, flush=True)
    else:
        bar.write(line, file=sys.stdout)
        sys.stdout.flush()


def _resume_hint(args, log, names: list[str]) -> None:
    if log is None:
        return
    finished, total = len(set(names) & set(log.done)), len(names)
    if finished == total:
        return
    argv = list(getattr(args, "argv", None) or sys.argv[1:])
    if "--resume" not in argv:
        argv.append("--resume")
    print(f"robustc: {finished} of {total} instances are in {args.results}; to run the "
          f"rest: robustc {shlex.join(argv)}", file=sys.stderr, flush=True)


def _finish(args, records: list[dict], plot_kind: str) -> None:
    """The summary table (stderr, unless --quiet or --json) and the --plot picture."""
    from robustc.analyses import campaign as C

    if not args.quiet and not args.json and len(records) > 1:
        print(C.summary_table(records), file=sys.stderr)
    plot = getattr(args, "plot", None)
    if not plot:
        return
    if plot_kind == "auto":
        eps = {r.get("epsilon") for r in records}
        plot_kind = "accuracy" if None not in eps and len(eps) > 1 else "cactus"
    path = C.accuracy_plot(plot, records) if plot_kind == "accuracy" else \
        C.cactus_plot(plot, records)
    if not args.quiet:
        print(f"robustc: {plot_kind} plot: {path}", file=sys.stderr)


__all__ = ["run_campaign"]
