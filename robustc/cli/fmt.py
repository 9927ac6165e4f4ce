"""``robustc fmt SPEC``: print a spec in canonical form (or rewrite it with ``-i``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustc.cli.common import EXIT_ERROR, EXIT_OK
from robustc.errors import SpecError
from robustc.files import write_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``robustc fmt``."""
    p.add_argument("spec", help="path to a .rspec file")
    p.add_argument("--in-place", "-i", action="store_true", help="rewrite the file")


def run(args: argparse.Namespace) -> int:
    """Print ``args.spec`` in canonical form (or rewrite it with ``-i``); returns the exit code."""
    from robustc.specs import format_spec, parse

    try:
        text = format_spec(parse(Path(args.spec)))
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    if args.in_place:
        write_text(args.spec, text)  # all or nothing: a failed write keeps the old file
    else:
        sys.stdout.write(text)
    return EXIT_OK
