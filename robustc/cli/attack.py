"""``robustc attack SPEC``: run the spec's attack properties (JMA, ML-C&W, PGD), replay every
claimed success on the ONNX file and write images and a JSON report per property."""

from __future__ import annotations

import argparse
import time

from robustc.cli.common import EXIT_OK, EXIT_VIOLATED, add_spec_arguments, load_spec
from robustc.files import check_output_dir, json_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``robustc attack``."""
    add_spec_arguments(p, what="attack", output="robustc-attacks",
                       json_help="one JSON report per property")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="default: cuda when available")


def run(args: argparse.Namespace) -> int:
    """Run the spec's attack properties; 0 when every image of every property was attacked
    successfully (replayed), 1 otherwise."""
    from robustc.analyses.attack import lower_attack, make_attack, run_problem, write_report
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
        report = run_problem(problem, make_attack(problem, prop.norm), args.device)
        data = write_report(report, args.output)
        all_ok &= bool(report.success.all())
        m = report.metrics
        if args.json:
            print(json_text(data), flush=True)
        else:
            print(f"{prop.name}: {problem.method} on {problem.network.name}, "
                  f"{len(problem.x0)} image(s): ASR {m['asr']:.3f}, MSE {m['mse']:.4g}, "
                  f"{m['iterations_mean']:.1f} it, {time.perf_counter() - start:.1f} s "
                  f"-> {args.output}")
    return EXIT_OK if all_ok else EXIT_VIOLATED
