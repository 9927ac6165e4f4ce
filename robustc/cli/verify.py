"""``robustc verify SPEC``: decide a spec's verify properties (or a ``.vnnlib`` file's) and
print each verdict in words, with its evidence."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

from robustc.cli.common import (
    EXIT_UNKNOWN,
    Progress,
    add_campaign_arguments,
    add_spec_arguments,
    emit,
    load_spec,
    non_negative_int,
    parse_overrides,
    positive_int,
    seconds,
    verdict_exit,
)
from robustc.cli.runner import run_campaign
from robustc.errors import SpecError
from robustc.files import check_output_file, json_text, write_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``robustc verify``."""
    add_spec_arguments(p, what="verify", with_output=False,
                       spec_help="a .rspec file (or a .vnnlib file with --network, or a "
                                 "VNN-COMP instance list onnx,vnnlib,timeout .csv)")
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
                   help="write the VNN-COMP result file (for .vnnlib properties; for an "
                        "instances .csv: a folder, one ONNX__VNNLIB.txt per row)")
    add_campaign_arguments(p, results_flags=("--output", "-o", "--results"))


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

        deadline = None if args.timeout is None else _started() + args.timeout
        return vnnlib_problems(args.spec, args.network, deadline)
    from robustc.compiler.spec_lower import verify_problems

    problems = verify_problems(load_spec(args), args.property or None)
    if not problems:
        raise SpecError(f"{args.spec}: no verify property to run")
    return problems


def run(args: argparse.Namespace) -> int:
    """Verify every selected property (or every row of an instance list); prints verdicts;
    returns the exit code (the worst verdict's, :mod:`robustc.cli.common`)."""
    from robustc.verify import check_device

    check_device(args.device)  # one error before any work, not one per property
    if getattr(args, "vnncomp_result", None) and not str(args.spec).endswith(".csv"):
        check_output_file(args.vnncomp_result)
    if str(args.spec).endswith(".csv"):
        return _run_instance_list(args)
    from robustc.compiler.vnnlib import ReadTimeout

    try:
        problems = load_problems(args)
    except ReadTimeout as exc:  # --timeout counts the reading: unknown, with the reason
        print(f"{Path(args.spec).name}: UNKNOWN: {exc}", flush=True)
        return EXIT_UNKNOWN
    parallel = args.workers > 1 or bool(args.ray)
    if parallel and not args.json:
        for problem in problems:  # the workers' lines would cross the progress bar
            _print_warnings(problem)
    job = VerifyJob(_worker_options(args, parallel), args.json,
                    not (parallel or args.json or args.quiet), os.getpid(), _started())
    global _LAST_END
    _LAST_END = None
    records = run_campaign(
        args, campaign=f"verify {Path(args.spec).name}", fp=_fingerprint(args, problems),
        instances=[(p.name, p) for p in problems], fn=verify_instance, shared=job,
        show=lambda r: json_text(r["result"]) if args.json else r["text"], warm_up=warm_up)
    if getattr(args, "vnncomp_result", None):
        from robustc.verify.vnncomp import result_from_json, write_vnncomp_result

        write_vnncomp_result(args.vnncomp_result,
                             [result_from_json(r["result"]) for r in records], args.timeout)
    _summary_line(args, records)
    return verdict_exit(r["verdict"] for r in records)


def _summary_line(args, records: list[dict]) -> None:
    from robustc.verify import VERDICTS

    if not args.json and len(records) > 1:
        counts = {v: sum(r["verdict"] == v for r in records) for v in VERDICTS}
        print("summary: " + ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts.items()
                                      if n))


def _started() -> float:
    import importlib

    return importlib.import_module("robustc.cli.main").STARTED  # the module, not its main()


#: The options a verify worker needs (``options_from`` reads them from a namespace).
_OPTION_FIELDS = ("solver", "strict_solver", "timeout", "threads", "seed", "no_attack",
                  "bounds", "margin", "exact", "strategy", "device")


def _option_fields(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k, None) for k in _OPTION_FIELDS}


def _worker_options(args: argparse.Namespace, parallel: bool) -> dict:
    """The options each instance runs with; on workers, HiGHS gets the worker's thread
    budget (``--threads``, default 1) instead of its own default (half the cores, per
    worker)."""
    fields = _option_fields(args)
    if parallel:
        fields["threads"] = args.threads or 1
    return fields


def _fingerprint(args: argparse.Namespace, problems: list) -> dict:
    """The results log's key: the spec (or VNN-LIB) file, ``--set``, the networks and the
    options that change verdicts (not --workers, --ray or --threads)."""
    from robustc.analyses.campaign import fingerprint

    files = [args.spec, *sorted({f for p in problems for f in p.onnx_paths})]
    return fingerprint("verify", _verdict_options(args), files)


def _verdict_options(args: argparse.Namespace) -> dict:
    """The options that may change a verdict (--set included), for the fingerprint."""
    fields = _option_fields(args)
    out = {k: fields[k] for k in fields if k not in ("threads", "device")}
    out.update({f"set {k}": v for k, v in parse_overrides(args.set).items()})
    return out


@dataclass(frozen=True)
class VerifyJob:
    """What every verify instance shares (picklable: it travels to the workers)."""

    options: dict
    json: bool
    lines: bool  # progress lines on stderr (serial runs without --json)
    pid: int
    started: float


#: When the last property in this process ended (serial runs: each ``--timeout`` runs from
#: the end of the one before; the first one's from the start of the command).
_LAST_END: float | None = None


def verify_instance(job: VerifyJob, problem) -> dict:
    """Verify one problem (in this process or a worker); returns its record: ``name``,
    ``verdict``, ``time_s``, ``epsilon``, ``result`` (the JSON) and ``text`` (the line)."""
    from robustc.verify import verify

    global _LAST_END
    if job.lines:
        _print_warnings(problem)
        emit(f"{problem.name}: verifying on '{problem.network}' "
             f"({_perturbed(problem)} input values may change) ...")
    args = argparse.Namespace(**job.options)
    if os.getpid() != job.pid:  # a worker: the limit runs from the instance's start
        slot = time.perf_counter()
    else:
        slot = job.started if _LAST_END is None else _LAST_END
    limit = None if args.timeout is None else max(args.timeout - (time.perf_counter() - slot),
                                                  1e-3)
    options = options_from(args, problem.name, limit)
    options.progress.enabled = job.lines
    result = verify(problem, options)
    _LAST_END = time.perf_counter()
    data = result.to_json()
    warnings = problem.prop.meta.get("warnings", [])
    if warnings:
        data["warnings"] = [f"{w.pos.file}:{w.pos.line}:{w.pos.col}: {w.message}"
                            for w in warnings]
    return {"name": problem.name, "verdict": result.verdict, "time_s": data["time_s"],
            "epsilon": _epsilon(problem), "result": data, "text": describe(problem, result)}


def _print_warnings(problem) -> None:
    for warning in problem.prop.meta.get("warnings", []):
        emit(f"robustc: warning: {warning}")


def _epsilon(problem) -> float | None:
    """The largest distance any input value may move from the centre (the property's
    epsilon, for the certified-accuracy curve); None without a centre."""
    import numpy as np

    center = problem.prop.meta.get("center")
    if center is None or not problem.prop.boxes:
        return None
    box = problem.prop.boxes[0]
    c = np.asarray(center, dtype=np.float64).reshape(box.lower.shape)
    return round(float(max(np.max(box.upper - c), np.max(c - box.lower), 0.0)), 6)


def _run_instance_list(args: argparse.Namespace) -> int:
    """``robustc verify instances.csv``: every row through :func:`run_instance`."""
    from robustc.verify.vnncomp import read_instances

    if args.network:
        raise SpecError(f"{args.spec}: an instance list names its networks; drop --network")
    for flag, value in (("--property", args.property), ("--set", args.set),
                        ("--select", getattr(args, "select", None))):
        if value:
            raise SpecError(f"{args.spec}: {flag} does not apply to an instance list (--limit "
                            f"N runs its first N rows)")
    rows = read_instances(args.spec)[:getattr(args, "limit", None)]
    out_dir = None
    if getattr(args, "vnncomp_result", None):
        from robustc.files import check_output_dir

        out_dir = check_output_dir(args.vnncomp_result)
    from robustc.analyses.campaign import fingerprint

    files = [args.spec, *sorted({f for r in rows for f in (r.onnx, r.vnnlib)})]
    job = VerifyJob(_worker_options(args, args.workers > 1 or bool(args.ray)), args.json,
                    False, os.getpid(), _started())

    def show(record: dict) -> str:
        if out_dir is not None:
            write_text(out_dir / result_file_name(record["name"]), record["result_file"])
        if args.json:
            return json_text({k: v for k, v in record.items() if k != "result_file"})
        return (f"{record['name']}: {record['answer']} ({record['verdict'].replace('_', ' ')})"
                f" [{record['time_s']:.1f} s of {record['timeout']:g} s] {record['detail']}")

    records = run_campaign(
        args, campaign=f"verify {Path(args.spec).name}",
        fp=fingerprint("verify-csv", _verdict_options(args), files),
        instances=[(r.name, r) for r in rows],
        fn=instance_row, shared=job, show=show, plot_kind="cactus", warm_up=warm_up)
    _summary_line(args, records)
    return verdict_exit(r["verdict"] for r in records)


def warm_up() -> None:
    """A worker's preparation before its first instance: import the verifier, the attacks
    and onnxruntime and run one PyTorch op (under load these took 7 s of the first
    instance's 5 s limit)."""
    import onnxruntime  # noqa: F401
    import torch

    import robustc.runtime.attacks  # noqa: F401
    import robustc.verify  # noqa: F401

    torch.ones(4).relu().sum().item()


def result_file_name(name: str) -> str:
    """The VNN-COMP result file of an instance-list row (``onnx stem/vnnlib stem``) in the
    ``--vnncomp-result`` folder: ``onnx stem__vnnlib stem.txt``."""
    return name.replace("/", "__") + ".txt"


def instance_row(job: VerifyJob, row) -> dict:
    """One instance-list row (in this process or a worker): its record
    (:func:`robustc.verify.vnncomp.run_instance`)."""
    from robustc.verify.vnncomp import run_instance

    args = argparse.Namespace(**job.options)
    options = options_from(args, row.name, None)
    options.progress.enabled = False
    return run_instance(row, options, cap=args.timeout)


def _perturbed(problem) -> int:
    return max((b.perturbed for b in problem.prop.boxes), default=0)


def describe(problem, result) -> str:
    """A verdict in words a newcomer understands, with the evidence. A set in which no
    input value may change (an empty region, eps 0) is named as the one input it is."""
    from robustc.verify import NOT_ROBUST, ROBUST, UNKNOWN

    head = f"{result.name}: {result.verdict.upper().replace('_', ' ')}"
    cond = problem.prop.condition
    what = getattr(cond, "label", "")
    if problem.prop.meta.get("source") == "vnnlib":
        # A VNN-LIB file states the unsafe outputs; the property is their negation.
        what = "the VNN-LIB property (no output in its unsafe set)"
    what = what or "the property"
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
