"""``robustc attack SPEC``: run the spec's attack properties (JMA, ML-C&W, PGD), replay every
claimed success on the ONNX file and write images and a JSON report per property."""

from __future__ import annotations

import argparse
import time

from robustc.cli.common import (
    EXIT_OK,
    EXIT_VIOLATED,
    add_spec_arguments,
    load_spec,
    positive_int,
)
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


def run(args: argparse.Namespace) -> int:
    """Run the spec's attack properties; 0 when every image of every property was attacked
    successfully (replayed), 1 otherwise."""
    from robustc.analyses.attack import (
        lower_attack,
        make_attack,
        run_problem,
        summary_line,
        write_report,
    )
    from robustc.compiler.spec_lower import SpecContext, select_properties
    from robustc.errors import SpecError
    from robustc.specs import ast as A
    from robustc.verify import check_device

    if args.device is not None:
        check_device(args.device)
    check_output_dir(args.output)  # before the work: fail in a second, not after it
    spec = load_spec(args)
    ctx = SpecContext(spec)
    props = select_properties(spec, A.AttackProperty, "attack", args.property)
    if not props:
        raise SpecError("the spec has no attack property to run")
    all_ok = True
    for prop in props:
        start = time.perf_counter()
        problem = lower_attack(ctx, prop)
        report = run_problem(problem, make_attack(problem, prop.norm), args.device,
                             args.threads)
        data = write_report(report, args.output)
        all_ok &= bool(report.success.all())
        if args.json:
            print(json_text(data), flush=True)
        else:
            print(f"{summary_line(report, time.perf_counter() - start)} -> {args.output}",
                  flush=True)
    return EXIT_OK if all_ok else EXIT_VIOLATED
