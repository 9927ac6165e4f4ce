"""``robustc patch SPEC``: the smallest weight patch of one layer per patch property (and
AIGENT adversarial inputs); writes the patched ``.onnx``, a CSV of changed weights and a JSON
report."""

from __future__ import annotations

import argparse
import time

from robustc.cli.common import EXIT_OK, EXIT_VIOLATED, add_spec_arguments, load_spec, seconds
from robustc.files import check_output_dir, json_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``robustc patch``."""
    add_spec_arguments(p, what="patch", output="robustc-patches",
                       json_help="print one JSON report per property")
    p.add_argument("--timeout", type=seconds, default=30.0, metavar="S",
                   help="solver time limit per MILP, in seconds (default 30)")


def run(args: argparse.Namespace) -> int:
    """Run the spec's patch properties; 0 when every patch (and asked-for adversarial input)
    was found and replayed, 1 otherwise. Errors raise."""
    from robustc.analyses.patch.problem import lower_patch, run_problem, write_report
    from robustc.compiler.spec_lower import SpecContext, select_properties
    from robustc.errors import ModelError, ReplayError, SpecError
    from robustc.specs import ast as A

    out_dir = check_output_dir(args.output)  # before the work: fail in a second, not after it
    spec = load_spec(args)
    ctx = SpecContext(spec)
    props = select_properties(spec, A.PatchProperty, "patch", args.property)
    if not props:
        raise SpecError("the spec has no patch property to run")
    all_ok = True
    for prop in props:
        start = time.perf_counter()
        try:
            outcome = run_problem(lower_patch(ctx, prop), out_dir, args.timeout)
        except (ModelError, ReplayError) as exc:
            raise type(exc)(f"{prop.name}: {exc}") from None
        data = write_report(outcome, out_dir)
        all_ok &= outcome.ok
        if args.json:
            print(json_text(data), flush=True)
        else:
            print(f"{_summary(data)} [{time.perf_counter() - start:.1f} s] -> {out_dir}")
    return EXIT_OK if all_ok else EXIT_VIOLATED


def _summary(data: dict) -> str:
    if not data["found"]:
        text = f"{data['property']}: no patch of layer {data['layer']} ({data['status']})"
    else:
        text = (f"{data['property']}: layer {data['layer']} patched, {data['changed']} "
                f"weight(s), {data['norm']} {data['objective']:.4g}"
                f"{'' if data['optimal'] else ' (not proven optimal)'}, {data['time_s']:.1f} s")
    adv = data.get("adversarial")
    if adv is not None:
        n = sum(a["found"] for a in adv["inputs"])
        text += f"; adversarial inputs {n}/{len(adv['inputs'])}"
    return text
