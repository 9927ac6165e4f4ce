"""``robustc verify`` and ``robustc compile``: the command-line face of the pipeline."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from robustc.verify import ERROR, NOT_ROBUST, ROBUST, UNKNOWN, Result, VerifyOptions, verify

EXIT = {ROBUST: 0, NOT_ROBUST: 1, ERROR: 2, UNKNOWN: 3}
_SEVERITY = {ERROR: 3, NOT_ROBUST: 2, UNKNOWN: 1, ROBUST: 0}


class Progress:
    """Progress lines on stderr, only for work that has run longer than a second."""

    def __init__(self, name: str, enabled: bool = True):
        self.name, self.enabled = name, enabled
        self.start = self.last = time.perf_counter()

    def __call__(self, message: str) -> None:
        now = time.perf_counter()
        if self.enabled and now - self.start > 1.0 and now - self.last > 1.0:
            print(f"  ... {self.name}: {message} ({now - self.start:.0f} s)", file=sys.stderr)
            self.last = now


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``robustc verify``."""
    p.add_argument("spec", help="a .rspec file (or a .vnnlib file with --network)")
    p.add_argument("--property", "-p", action="append", default=[], metavar="NAME",
                   help="verify only this property (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a spec parameter (repeatable)")
    p.add_argument("--solver", default="highs", choices=["highs", "gurobi", "z3"],
                   help="MILP solver (default: highs, no license needed; z3: SMT)")
    p.add_argument("--exact", action="store_true",
                   help="with --solver z3: decide in exact rational arithmetic (docs/z3.md)")
    p.add_argument("--strict-solver", action="store_true",
                   help="fail instead of falling back to HiGHS when Gurobi cannot take a model")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="time limit per property, in seconds")
    p.add_argument("--threads", type=int, default=None, help="solver threads")
    p.add_argument("--seed", type=int, default=0, help="seed for the attack and the solver")
    p.add_argument("--no-attack", action="store_true", help="skip the PGD falsification")
    p.add_argument("--bounds", default="symbolic", choices=["interval", "symbolic", "lp"],
                   help="bound propagation before solving (default: symbolic)")
    p.add_argument("--margin", action="store_true",
                   help="also compute the worst-case margin of robust properties (slower)")
    p.add_argument("--json", action="store_true", help="one JSON object per property on stdout")
    p.add_argument("--network", help="the ONNX network (for .vnnlib properties)")
    p.add_argument("--vnncomp-result", metavar="FILE",
                   help="write the VNN-COMP result file (for .vnnlib properties)")


def options_from(args: argparse.Namespace, name: str) -> VerifyOptions:
    """VerifyOptions from parsed arguments; progress goes to stderr unless --json."""
    return VerifyOptions(
        solver=args.solver, strict_solver=args.strict_solver, time_limit=args.timeout,
        threads=args.threads, seed=args.seed, attack=not args.no_attack, bounds=args.bounds,
        margin=args.margin, exact=_exact(args), progress=Progress(name))


def _exact(args: argparse.Namespace) -> bool:
    """``--exact``, which only the Z3 backend implements."""
    if getattr(args, "exact", False) and args.solver != "z3":
        from robustc.errors import SpecError

        raise SpecError("--exact needs --solver z3 (exact rational arithmetic is Z3's)")
    return bool(getattr(args, "exact", False))


def _overrides(pairs: list[str]) -> dict[str, str]:
    from robustc.errors import SpecError

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SpecError(f"--set expects NAME=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def load_problems(args: argparse.Namespace) -> list:
    """The problems named on the command line (``.rspec``, or ``.vnnlib`` with --network)."""
    if str(args.spec).endswith(".vnnlib"):
        from robustc.vnnlib_cli import vnnlib_problems

        return vnnlib_problems(args.spec, args.network)
    from robustc import specs
    from robustc.compiler.spec_lower import verify_problems

    spec = specs.load(args.spec, _overrides(args.set))
    problems = verify_problems(spec, args.property or None)
    if not problems:
        from robustc.errors import SpecError

        raise SpecError(f"{args.spec}: no verify property to run")
    return problems


def run_verify(args: argparse.Namespace) -> int:
    """Verify every selected property; prints verdicts; returns the exit code."""
    problems = load_problems(args)
    results = []
    for problem in problems:
        if not args.json:
            print(f"{problem.name}: verifying on '{problem.network}' "
                  f"({max((b.perturbed for b in problem.prop.boxes), default=0)} input "
                  f"values may change) ...",
                  file=sys.stderr)
        result = verify(problem, options_from(args, problem.name))
        results.append(result)
        if args.json:
            print(json.dumps(result.to_json()), flush=True)
        else:
            print(describe(problem, result), flush=True)
    if getattr(args, "vnncomp_result", None):
        from robustc.vnnlib_cli import write_vnncomp_result

        write_vnncomp_result(args.vnncomp_result, results, args.timeout)
    worst = max(results, key=lambda r: _SEVERITY[r.verdict]).verdict
    if not args.json and len(results) > 1:
        counts = {v: sum(r.verdict == v for r in results) for v in EXIT}
        print("summary: " + ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts.items()
                                      if n))
    return EXIT[worst]


def describe(problem, result: Result) -> str:
    """A verdict in words a newcomer understands, with the evidence."""
    head = f"{result.name}: {result.verdict.upper().replace('_', ' ')}"
    cond = problem.prop.condition
    what = getattr(cond, "label", "") or "the property"
    timing = f"[{result.time_s:.1f} s, {result.solver}, {result.stats.get('queries', 0)} " \
             f"MILP queries]"
    if result.verdict == ROBUST:
        return f"{head}: {what} holds for every input in the set {timing}"
    if result.verdict == NOT_ROBUST:
        return f"{head}: {what} fails; {_counterexample_words(problem, result)} {timing}"
    if result.verdict == UNKNOWN:
        return f"{head}: no proof and no counterexample ({result.reason}) {timing}"
    return f"{head}: {result.reason}"


def _counterexample_words(problem, result: Result) -> str:
    cex = result.counterexample
    meta = problem.prop.meta
    labels = meta.get("labels")
    y = np.asarray(cex.logits).ravel()
    words = f"counterexample from {cex.source}, replayed on onnxruntime (margin {cex.margin:.4g})"
    if meta.get("decoder") == "MultiLabelDecoder" and labels:
        threshold = _threshold(problem)
        if threshold is not None:
            now = [labels[i] for i in np.flatnonzero(y > threshold)]
            words += f"; labels {meta.get('reference_set')} become {now}"
    elif labels or meta.get("decoder"):
        names = labels or [str(i) for i in range(len(y))]
        words += f"; top output becomes {names[int(np.argmax(y))]!r}"
    return words


def _threshold(problem) -> float | None:
    from robustc.ir.property import Linear

    def first_linear(c):
        if isinstance(c, Linear):
            return c
        for sub in getattr(c, "operands", ()) or getattr(c, "atoms", ()):
            found = first_linear(sub)
            if found is not None:
                return found
        return None

    atom = first_linear(problem.prop.condition)
    if atom is None or np.count_nonzero(atom.coeffs) != 1:
        return None
    i = int(np.flatnonzero(atom.coeffs)[0])
    return -atom.const / atom.coeffs[i]


def run_compile(args: argparse.Namespace) -> int:
    """Write each verify property's MILP cases as .lp and .mps (and Gurobi's .lp)."""
    from robustc.verify import export_problem

    problems = load_problems(args)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    for problem in problems:
        for path in export_problem(problem, out_dir, formats=args.format):
            print(path)
    return 0
