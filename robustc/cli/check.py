"""``robustc check SPEC``: parse and check a spec (positioned errors), with ``--set``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustc.cli.common import EXIT_ERROR, EXIT_OK, parse_overrides
from robustc.errors import SpecError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``robustc check``."""
    p.add_argument("spec", help="path to a .rspec file")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a parameter (repeatable)")
    p.add_argument("--no-network", action="store_true",
                   help="skip the checks that need to open the ONNX networks")


def run(args: argparse.Namespace) -> int:
    """Parse and check ``args.spec`` (with ``--set`` overrides); returns the exit code."""
    from robustc.specs import check_networks, load

    try:
        spec = load(Path(args.spec), overrides=parse_overrides(args.set or []), networks=False)
        warnings = [] if args.no_network else check_networks(spec)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    kinds = ", ".join(f"{type(p).__name__.removesuffix('Property').lower()} {p.name}"
                      for p in spec.properties)
    print(f"{args.spec}: ok ({len(spec.declarations)} declarations; {kinds})")
    return EXIT_OK
