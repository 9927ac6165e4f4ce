"""``robustc verify SPEC``: decide a spec's verify properties (or a ``.vnnlib`` file's) and
print each verdict in words, with its evidence."""

from __future__ import annotations

import argparse
import sys
import time

from robustc.cli.common import (
    Progress,
    add_spec_arguments,
    load_spec,
    non_negative_int,
    positive_int,
    seconds,
    verdict_exit,
)
from robustc.errors import SpecError
from robustc.files import check_output_file, json_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``robustc verify``."""
    add_spec_arguments(p, what="verify", with_output=False,
                       spec_help="a .rspec file (or a .vnnlib file with --network)")
    p.add_argument("--solver", default="highs", choices=["highs", "gurobi", "z3"],
                   help="MILP solver (default: highs, no license needed; z3: SMT)")
    p.add_argument("--exact", action="store_true",
                   help="with --solver z3: decide in exact rational arithmetic (docs/z3.md)")
    p.add_argument("--strict-solver", action="store_true",
                   help="fail instead of falling back to HiGHS when Gurobi cannot take a model")
    p.add_argument("--timeout", type=seconds, default=None, metavar="S",
                   help="time limit per property, in seconds")
    p.add_argument("--threads", type=positive_int, default=None, help="solver threads")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed for the attack and the solver")
    p.add_argument("--no-attack", action="store_true", help="skip the PGD falsification")
    p.add_argument("--strategy", default="auto",
                   choices=["auto", "attack", "bounds", "input-split", "relu-split", "milp"],
                   help="how each box is decided (default auto: the pipeline's choice; see "
                        "docs/verify.md)")
    p.add_argument("--bounds", default="symbolic",
                   choices=["interval", "symbolic", "crown", "lp"],
                   help="bound propagation before solving (default: symbolic; crown: the same "
                        "bounds operator by operator in PyTorch, watching --timeout)")
    p.add_argument("--margin", action="store_true",
                   help="also compute the worst-case margin of robust properties (slower)")
    p.add_argument("--device", default="cpu", metavar="DEV",
                   help="where the PyTorch parts run (attack, linear bounds, graph ReLU "
                        "split): cpu (default) or cuda[:N]; the verdicts do not depend on it")
    add_network_argument(p)
    p.add_argument("--vnncomp-result", metavar="FILE",
                   help="write the VNN-COMP result file (for .vnnlib properties)")


def add_network_argument(p: argparse.ArgumentParser) -> None:
    """``--network``, for ``.vnnlib`` properties (``verify`` and ``compile``)."""
    p.add_argument("--network", help="the ONNX network (for .vnnlib properties)")


def options_from(args: argparse.Namespace, name: str, time_limit: float | None = None):
    """:class:`~robustc.verify.VerifyOptions` from parsed arguments (with ``time_limit``
    instead of ``--timeout`` when given); progress goes to stderr unless --json."""
    from robustc.verify import VerifyOptions

    return VerifyOptions(
        solver=args.solver, strict_solver=args.strict_solver,
        time_limit=args.timeout if time_limit is None else time_limit,
        threads=args.threads, seed=args.seed, attack=not args.no_attack, bounds=args.bounds,
        margin=args.margin, exact=_exact(args), strategy=args.strategy,
        device=args.device, progress=Progress(name))


def _exact(args: argparse.Namespace) -> bool:
    """``--exact``, which only the Z3 backend implements."""
    if getattr(args, "exact", False) and args.solver != "z3":
        raise SpecError("--exact needs --solver z3 (exact rational arithmetic is Z3's)")
    return bool(getattr(args, "exact", False))


def load_problems(args: argparse.Namespace) -> list:
    """The problems named on the command line (``.rspec``, or ``.vnnlib`` with --network)."""
    if str(args.spec).endswith(".vnnlib"):
        from robustc.compiler.vnnlib import vnnlib_problems

        return vnnlib_problems(args.spec, args.network)
    from robustc.compiler.spec_lower import verify_problems

    problems = verify_problems(load_spec(args), args.property or None)
    if not problems:
        raise SpecError(f"{args.spec}: no verify property to run")
    return problems


def run(args: argparse.Namespace) -> int:
    """Verify every selected property; prints verdicts; returns the exit code (the worst
    verdict's, :mod:`robustc.cli.common`)."""
    from robustc.verify import VERDICTS, check_device, verify

    check_device(args.device)  # one error before any work, not one per property
    if getattr(args, "vnncomp_result", None):
        check_output_file(args.vnncomp_result)
    problems = load_problems(args)
    results = []
    import importlib

    cli_main = importlib.import_module("robustc.cli.main")  # the module, not its main()

    # each property's --timeout runs from the end of the one before it; the first one's from
    # the start of the command (imports, loading the spec and the networks)
    slot = cli_main.STARTED
    for problem in problems:
        warnings = problem.prop.meta.get("warnings", [])
        for warning in warnings:
            print(f"robustc: warning: {warning}", file=sys.stderr)
        if not args.json:
            print(f"{problem.name}: verifying on '{problem.network}' "
                  f"({_perturbed(problem)} input values may change) ...", file=sys.stderr)
        limit = None if args.timeout is None else \
            max(args.timeout - (time.perf_counter() - slot), 1e-3)
        result = verify(problem, options_from(args, problem.name, limit))
        slot = time.perf_counter()
        results.append(result)
        if args.json:
            data = result.to_json()
            if warnings:
                data["warnings"] = [f"{w.pos.file}:{w.pos.line}:{w.pos.col}: {w.message}"
                                    for w in warnings]
            print(json_text(data), flush=True)
        else:
            print(describe(problem, result), flush=True)
    if getattr(args, "vnncomp_result", None):
        from robustc.verify.vnncomp import write_vnncomp_result

        write_vnncomp_result(args.vnncomp_result, results, args.timeout)
    if not args.json and len(results) > 1:
        counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
        print("summary: " + ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts.items()
                                      if n))
    return verdict_exit(r.verdict for r in results)


def _perturbed(problem) -> int:
    return max((b.perturbed for b in problem.prop.boxes), default=0)


def describe(problem, result) -> str:
    """A verdict in words a newcomer understands, with the evidence. A set in which no
    input value may change (an empty region, eps 0) is named as the one input it is."""
    from robustc.verify import NOT_ROBUST, ROBUST, UNKNOWN

    head = f"{result.name}: {result.verdict.upper().replace('_', ' ')}"
    cond = problem.prop.condition
    what = getattr(cond, "label", "") or "the property"
    timing = f"[{result.time_s:.1f} s, {result.solver}, {result.stats.get('queries', 0)} " \
             f"MILP queries]"
    if result.verdict == ROBUST and problem.prop.boxes and not _perturbed(problem):
        return (f"{head}: {what} holds for the unperturbed input, the only one in the set "
                f"(no input value may change) {timing}")
    if result.verdict == ROBUST:
        return f"{head}: {what} holds for every input in the set {timing}"
    if result.verdict == NOT_ROBUST:
        return f"{head}: {what} fails; {_counterexample_words(problem, result)} {timing}"
    if result.verdict == UNKNOWN:
        return f"{head}: no proof and no counterexample ({result.reason}) {timing}"
    return f"{head}: {result.reason}"


def _counterexample_words(problem, result) -> str:
    import numpy as np

    cex = result.counterexample
    meta = problem.prop.meta
    labels = meta.get("labels")
    y = np.asarray(cex.logits).ravel()
    words = f"counterexample from {cex.source}, replayed on onnxruntime (margin {cex.margin:.4g})"
    if meta.get("decoder") == "MultiLabelDecoder" and labels:
        threshold = meta.get("logit_threshold")
        if threshold is not None:
            now = [labels[i] for i in np.flatnonzero(y > threshold)]
            words += f"; labels {meta.get('reference_set')} become {now}"
    elif meta.get("top_k") and labels:
        k = meta["top_k"]
        now = sorted(labels[i] for i in np.argsort(-y, kind="stable")[:k])
        words += f"; top {k} labels {sorted(meta.get('reference_set', []))} become {now}"
    elif labels or meta.get("decoder"):
        names = labels or [str(i) for i in range(len(y))]
        words += f"; top output becomes {names[int(np.argmax(y))]!r}"
    return words
