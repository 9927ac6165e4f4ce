"""``robustc attack SPEC``: run the spec's attack properties (JMA, ML-C&W, PGD), replay every
claimed success on the ONNX file and write images and a JSON report per property."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from robustc.cli.common import (
    EXIT_OK,
    EXIT_VIOLATED,
    add_campaign_arguments,
    add_spec_arguments,
    load_spec,
    positive_int,
)
from robustc.cli.runner import run_campaign
from robustc.files import check_output_dir, json_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``robustc attack``."""
    add_spec_arguments(p, what="attack", output="robustc-attacks",
                       json_help="one JSON report per property")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="default: cuda when available")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="PyTorch threads on the CPU (default 1: the example networks are "
                        "small, and a second thread on a busy machine made the example "
                        "30x slower)")
    add_campaign_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Run the spec's attack properties (each an instance of the campaign runner:
    ``--workers``, ``--ray``, ``--results``); 0 when every image of every property was
    attacked successfully (replayed), 1 otherwise."""
    from robustc.analyses.campaign import fingerprint
    from robustc.cli.maximize import SpecJob, spec_networks
    from robustc.compiler.spec_lower import select_properties
    from robustc.errors import SpecError
    from robustc.specs import ast as A
    from robustc.verify import check_device

    if args.device is not None:
        check_device(args.device)
    check_output_dir(args.output)  # before the work: fail in a second, not after it
    spec = load_spec(args)
    names = [p.name for p in select_properties(spec, A.AttackProperty, "attack", args.property)]
    if not names:
        raise SpecError("the spec has no attack property to run")
    options = {"device": args.device, "threads": args.threads}
    job = SpecJob(str(args.spec), tuple(args.set), options, args.output, False)
    fp = fingerprint("attack", {f"set {s}": "" for s in args.set},
                     [args.spec, *spec_networks(spec)])
    records = run_campaign(args, campaign=f"attack {Path(args.spec).name}", fp=fp,
                           instances=[(n, n) for n in names], fn=attack_instance, shared=job,
                           show=lambda r: json_text(r["result"]) if args.json else r["text"],
                           plot_kind="cactus")
    return EXIT_OK if all(r["verdict"] == "success" for r in records) else EXIT_VIOLATED


def attack_instance(job, name: str) -> dict:
    """Attack one property (in this process or a worker), writing its report to the job's
    output folder; returns its record (``verdict``: success when every image reached the
    goal, replayed on onnxruntime, else failed)."""
    from robustc.analyses.attack import (
        lower_attack,
        make_attack,
        run_problem,
        summary_line,
        write_report,
    )
    from robustc.cli.maximize import loaded_spec
    from robustc.compiler.spec_lower import SpecContext, select_properties
    from robustc.specs import ast as A

    start = time.perf_counter()
    spec = loaded_spec(job)
    [prop] = select_properties(spec, A.AttackProperty, "attack", [name])
    problem = lower_attack(SpecContext(spec), prop)
    report = run_problem(problem, make_attack(problem, prop.norm), job.options["device"],
                         job.options["threads"])
    data = write_report(report, job.output)
    took = time.perf_counter() - start
    return {"name": name, "verdict": "success" if report.success.all() else "failed",
            "time_s": round(took, 4), "result": data,
            "text": f"{summary_line(report, took)} -> {job.output}"}
