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
from dataclasses import dataclass
from pathlib import Path

from robustc.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    add_campaign_arguments,
    add_spec_arguments,
    emit,
    load_spec,
    non_negative_float,
    non_negative_int,
    parse_overrides,
    seconds,
)
from robustc.cli.runner import run_campaign
from robustc.errors import SpecError
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
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress display, progress bar or summary table")
    add_campaign_arguments(p, quiet=False)


def run(args: argparse.Namespace) -> int:
    """Run the selected maximize properties (each an instance of the campaign runner:
    ``--workers``, ``--ray``, ``--results``); returns the exit code."""
    from robustc.analyses.campaign import fingerprint
    from robustc.compiler.spec_lower import select_properties
    from robustc.specs import ast as A

    if args.output:
        check_output_dir(args.output)  # before the work: fail in a second, not after it
    spec = load_spec(args)
    _SPECS[(str(args.spec), tuple(args.set))] = spec  # serial instances reuse it
    names = [p.name for p in select_properties(spec, A.MaximizeProperty, "maximize",
                                               args.property or None)]
    if not names:
        raise SpecError(f"{args.spec}: no maximize property")
    parallel = args.workers > 1 or bool(args.ray)
    options = {k: getattr(args, k) for k in ("solver", "timeout", "call_timeout", "bounds",
                                             "max_failures", "effort")}
    job = SpecJob(str(args.spec), tuple(args.set), options, args.output,
                  not (parallel or args.quiet or args.json))
    fp = fingerprint("maximize", {**options, **{f"set {s}": "" for s in args.set}},
                     [args.spec, *spec_networks(spec)])
    records = run_campaign(args, campaign=f"maximize {Path(args.spec).name}", fp=fp,
                           instances=[(n, n) for n in names], fn=maximize_instance,
                           shared=job, show=lambda r: json_text(r["result"]) if args.json
                           else r["text"], plot_kind="cactus")
    return EXIT_OK if all(r["verdict"] == "certified" for r in records) else EXIT_ERROR


@dataclass(frozen=True)
class SpecJob:
    """What every instance of a spec campaign shares (picklable: it travels to workers):
    the spec and its ``--set`` items (each worker loads the spec once), the subcommand's
    options, the output folder and whether progress lines show."""

    spec: str
    overrides: tuple[str, ...]
    options: dict
    output: str | None
    lines: bool


def spec_networks(spec) -> list[str]:
    """The ONNX files a resolved spec names (for the results log's fingerprint)."""
    from robustc.specs import ast as A

    base = Path(spec.source_dir)
    return sorted({str(base / d.source.path.text) for d in spec.declarations
                   if isinstance(d, A.NetworkDecl) and isinstance(d.source, A.OnnxFile)})


_SPECS: dict = {}


def loaded_spec(job: SpecJob):
    """The job's resolved spec, loaded once per process."""
    from robustc import specs

    key = (job.spec, job.overrides)
    if key not in _SPECS:
        _SPECS[key] = specs.load(Path(job.spec), parse_overrides(job.overrides))
    return _SPECS[key]


def maximize_instance(job: SpecJob, name: str) -> dict:
    """Maximize one property (in this process or a worker), writing its files to the job's
    output folder; returns its record (``verdict``: certified / not_certified)."""
    import time

    from robustc.analyses.maximize import MaximizeOptions, maximize_spec

    start = time.perf_counter()
    o = job.options
    options = MaximizeOptions(solver=o["solver"], timeout=o["timeout"],
                              call_time_limit=o["call_timeout"], bounds=o["bounds"],
                              max_failures=o["max_failures"] or None,
                              effort=o["effort"] or None,
                              progress=_progress if job.lines else None)
    [(problem, result)] = maximize_spec(loaded_spec(job), [name], options)
    if job.output:
        _write(Path(job.output), problem, result)
    return {"name": name, "verdict": "certified" if result.certified else "not_certified",
            "time_s": round(time.perf_counter() - start, 4), "result": result.to_json(),
            "text": describe(result)}


def _progress(message: str) -> None:
    emit(f"  {message}")


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
