"""``robustc global SPEC``: estimate the ``global`` properties of a spec."""

from __future__ import annotations

import argparse
import sys

from robustc.cli.common import (
    EXIT_OK,
    add_spec_arguments,
    load_spec,
    non_negative_int,
    positive_int,
    seconds,
    verdict_exit,
)
from robustc.files import check_output_dir, json_text, write_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``robustc global``."""
    add_spec_arguments(p, what="global",
                       output_help="write the JSON result and PNG pairs of witnesses to DIR",
                       json_help="one JSON object per property")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed of the noise and the searches")
    p.add_argument("--workers", type=positive_int, default=1, help="local worker processes")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run the local checks on a Ray cluster ('local' starts one here)")
    p.add_argument("--verify-samples", type=non_negative_int, default=None, metavar="M",
                   help="robust: verifier checks on a random subsample of M noises "
                        "(default: all; 0: none)")
    p.add_argument("--verify-nodes", type=positive_int, default=2000, metavar="N",
                   help="branch-and-bound node limit of one verifier check: a deterministic "
                        "limit, so results do not depend on the executor (default 2000)")
    p.add_argument("--verify-timeout", type=seconds, default=60.0, metavar="S",
                   help="time limit of one verifier check, a safety net behind --verify-nodes "
                        "(unknown counts as not proved)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    """Run the command; the exit code is the worst verdict's (0 met, 1 not met, 3 undecided;
    :mod:`robustc.cli.common`)."""
    from robustc.analyses import global_robustness as G

    if args.output:
        check_output_dir(args.output)  # before the work: fail in a second, not after it
    spec = load_spec(args)
    tasks = G.global_tasks(spec, args.property or None, seed=args.seed,
                           verify_samples=args.verify_samples,
                           verify_time_limit=args.verify_timeout,
                           verify_node_limit=args.verify_nodes)
    if not tasks:
        print("no global properties in the spec", file=sys.stderr)
        return EXIT_OK
    for task in tasks:   # a generator robustc's IR cannot take is still sampled
        if task.graph is None:
            robust = task.criterion == G.ROBUST
            print(f"note: {task.name}: robustc cannot compose the networks' IR "
                  f"({task.ir_reason}); forward passes on onnxruntime"
                  + ("; black-box search only, no verified lower bound" if robust else ""),
                  file=sys.stderr)
    progress = None if args.quiet else (lambda line: print(f"  ... {line}", file=sys.stderr))
    executor = G.make_executor(args.workers, args.ray)
    verdicts = []
    try:
        for task in tasks:
            result = G.estimate(task, executor, progress)
            verdicts.append(result.verdict)
            _report(task, result, args)
    except BaseException:  # an error or an interrupt: end the workers now, do not wait
        executor.close(wait=False)
        raise
    executor.close()
    return verdict_exit(verdicts)


def _report(task, result, args: argparse.Namespace) -> None:
    from robustc.analyses import global_robustness as G

    print(json_text(result.to_json()) if args.json else G.summary(result), flush=True)
    if args.output:
        out = check_output_dir(args.output)
        write_json(out / f"{task.name}.json", result.to_json())
        for path in G.save_pairs(task, result, out):
            print(f"  pair: {path}", file=sys.stderr)
