"""``robustc check`` and ``robustc fmt``: parse, check and print specs from the shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustc.errors import SpecError

EXIT_OK, EXIT_ERROR = 0, 2


def _overrides(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SpecError(f"--set expects NAME=VALUE, got {pair!r}")
        found[name.strip()] = value.strip()
    return found


def run_check(args: argparse.Namespace) -> int:
    """Parse and check ``args.spec`` (with ``--set`` overrides); returns the exit code."""
    from robustc.specs import load

    try:
        spec = load(Path(args.spec), overrides=_overrides(args.set or []),
                    networks=not args.no_network)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    kinds = ", ".join(f"{type(p).__name__.removesuffix('Property').lower()} {p.name}"
                      for p in spec.properties)
    print(f"{args.spec}: ok ({len(spec.declarations)} declarations; {kinds})")
    return EXIT_OK


def run_fmt(args: argparse.Namespace) -> int:
    """Print ``args.spec`` in canonical form (or rewrite it with ``-i``); returns the exit code."""
    from robustc.specs import format_spec, parse

    try:
        text = format_spec(parse(Path(args.spec)))
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    if args.in_place:
        Path(args.spec).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK
