"""``robustc global SPEC``: estimate the ``global`` properties of a spec."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT = {"met": 0, "not_met": 1, "undecided": 3}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``robustc global``."""
    p.add_argument("spec", help="a .rspec file")
    p.add_argument("--property", "-p", action="append", default=[], metavar="NAME",
                   help="run only this global property (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a spec parameter (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and the searches")
    p.add_argument("--workers", type=int, default=1, help="local worker processes")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run the local checks on a Ray cluster ('local' starts one here)")
    p.add_argument("--verify-samples", type=int, default=None, metavar="M",
                   help="robust: verifier checks on a random subsample of M noises "
                        "(default: all)")
    p.add_argument("--verify-nodes", type=int, default=2000, metavar="N",
                   help="branch-and-bound node limit of one verifier check: a deterministic "
                        "limit, so results do not depend on the executor (default 2000)")
    p.add_argument("--verify-timeout", type=float, default=60.0, metavar="S",
                   help="time limit of one verifier check, a safety net behind --verify-nodes "
                        "(unknown counts as not proved)")
    p.add_argument("--output", "-o", default=None, metavar="DIR",
                   help="write the JSON result and PNG pairs of witnesses to DIR")
    p.add_argument("--json", action="store_true", help="one JSON object per property")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def run_global(args: argparse.Namespace) -> int:
    """Run the command; the exit code is the worst verdict (0 met, 1 not met, 3 undecided)."""
    from robustc import global_robustness as G
    from robustc import specs

    spec = specs.load(args.spec, _overrides(args.set))
    tasks = G.global_tasks(spec, args.property or None, seed=args.seed,
                           verify_samples=args.verify_samples,
                           verify_time_limit=args.verify_timeout,
                           verify_node_limit=args.verify_nodes)
    if not tasks:
        print("no global properties in the spec", file=sys.stderr)
        return 0
    progress = None if args.quiet else (lambda line: print(f"  ... {line}", file=sys.stderr))
    executor = G.make_executor(args.workers, args.ray)
    codes = []
    try:
        for task in tasks:
            result = G.estimate(task, executor, progress)
            codes.append(EXIT[result.verdict])
            _report(task, result, args)
    finally:
        executor.close()
    return max(codes)


def _report(task, result, args: argparse.Namespace) -> None:
    from robustc import global_robustness as G

    print(json.dumps(result.to_json()) if args.json else G.summary(result))
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{task.name}.json").write_text(json.dumps(result.to_json(), indent=1))
        for path in G.save_pairs(task, result, out):
            print(f"  pair: {path}", file=sys.stderr)
