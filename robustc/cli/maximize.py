"""``robustc maximize SPEC``: search maximal robust layered neighbourhoods of a spec.

Prints one progress line per verifier call on stderr, then per property the certified
budgets, the weighted size, the number of verifier calls and the time in and out of the
verifier; ``--json`` prints the results as JSON lines instead; ``--output DIR`` writes
``NAME.json`` and ``NAME.png`` (heatmap) per property. Exit code 0 when every result is
certified (it always is unless the unperturbed input itself cannot be proved: then 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustc.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    add_spec_arguments,
    load_spec,
    non_negative_float,
    non_negative_int,
    seconds,
)
from robustc.files import check_output_dir, json_text, write_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``maximize`` subcommand's arguments."""
    add_spec_arguments(p, what="maximize", output_help="write NAME.json and NAME.png here",
                       json_help="print results as JSON lines")
    p.add_argument("--solver", default="highs", choices=["highs", "gurobi"])
    p.add_argument("--timeout", type=seconds, default=None,
                   help="seconds for the whole search of one property")
    p.add_argument("--call-timeout", type=seconds, default=5.0,
                   help="seconds per verifier call (an unknown counts as not robust)")
    p.add_argument("--bounds", default="symbolic", choices=["interval", "symbolic"],
                   help="bounds the verifier uses before its MILP")
    p.add_argument("--max-failures", type=non_negative_int, default=2,
                   help="oracle methods: stop after this many refused optimiser steps "
                   "(0: no limit)")
    p.add_argument("--effort", type=non_negative_float, default=0.5,
                   help="oracle methods: size steps so that the next proof is predicted to "
                   "take at most this share of --call-timeout (0: no cap)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    """Run the selected maximize properties; returns the exit code."""
    from robustc.analyses.maximize import MaximizeOptions, maximize_spec
    from robustc.errors import SpecError

    if args.output:
        check_output_dir(args.output)  # before the work: fail in a second, not after it
    spec = load_spec(args)
    progress = None if args.quiet or args.json else _progress
    options = MaximizeOptions(solver=args.solver, timeout=args.timeout,
                              call_time_limit=args.call_timeout, bounds=args.bounds,
                              max_failures=args.max_failures or None,
                              effort=args.effort or None, progress=progress)
    runs = maximize_spec(spec, args.property or None, options)
    if not runs:
        raise SpecError(f"{args.spec}: no maximize property")
    for problem, result in runs:
        if args.output:
            _write(Path(args.output), problem, result)
        if args.json:
            print(json_text(result.to_json()), flush=True)
        else:
            print(describe(result), flush=True)
    return EXIT_OK if all(r.certified for _, r in runs) else EXIT_ERROR


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def describe(result) -> str:
    """One property's result in words."""
    eps = ", ".join(f"{e:.4g}" for e in result.eps)
    return (f"{result.name}: {result.method}: eps = [{eps}] (certified robust), weighted "
            f"size {result.weighted_size:.4g}; {result.verifier_calls} verifier calls, "
            f"{result.verifier_s:.1f} s in the verifier, {result.other_s:.1f} s outside; "
            f"stopped: {result.stop_reason}")


def _write(folder: Path, problem, result) -> None:
    import numpy as np

    from robustc.runtime.heatmap import save_heatmap

    write_text(check_output_dir(folder) / f"{result.name}.json", result.dumps())
    h, w = problem.rings.shape
    image = problem.x0.reshape(problem.chw).mean(axis=0)
    objects = [(problem.meta["region"], "perturbed object")] if "region" in problem.meta else []
    try:
        save_heatmap(folder / f"{result.name}.png", image.reshape(h, w), problem.rings,
                     np.asarray(result.eps), objects,
                     title=f"{result.name} ({result.method}): size {result.weighted_size:.3g}")
    except ImportError as exc:  # the JSON is written; the picture needs matplotlib
        print(f"robustc: notice: no heatmap for {result.name}: {exc} "
              f"(pip install matplotlib)", file=sys.stderr)
