"""The ``robustc`` command line: the parser and the dispatch to one module per subcommand.

Each subcommand is a module of :mod:`robustc.cli` with ``add_arguments(parser)`` and
``run(args) -> exit code``; the table :data:`SUBCOMMANDS` lists them. Subcommand modules
import only light things at the top (heavy ones inside ``run``), so building the parser,
``robustc --version`` and ``robustc check`` import neither torch nor a solver. Every robustc
error is printed as a message (never a traceback) and mapped to an exit code
(:mod:`robustc.cli.common`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

import robustc
from robustc.cli.common import EXIT_ERROR, EXIT_OK
from robustc.errors import Error

#: Subcommand -> (module of robustc.cli, one-line help), in the order of ``robustc --help``.
SUBCOMMANDS = {
    "check": ("check", "parse and check a .rspec file"),
    "fmt": ("fmt", "print a .rspec file in canonical form"),
    "verify": ("verify", "verify the properties of a .rspec file"),
    "maximize": ("maximize", "search maximal robust layered neighbourhoods"),
    "compile": ("compile", "write the MILP models of a spec's verify properties"),
    "attack": ("attack", "run the attack properties of a .rspec file"),
    "patch": ("patch", "patch a layer's weights (and find adversarial inputs)"),
    "global": ("global_", "estimate global correctness / robustness properties"),
    "dump": ("dump", "import an ONNX network and print its IR"),
}
#: Subcommands that never run a MILP (HiGHS's banner handling is skipped for them).
NO_SOLVER = ("check", "fmt", "dump")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="robustc", description="Compile and verify neural-network robustness properties."
    )
    parser.add_argument("--version", action="version", version=f"robustc {robustc.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        command = importlib.import_module(f"robustc.cli.{module}")
        p = sub.add_parser(name, help=help_text)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        if args.command not in NO_SOLVER:
            from robustc.backends.highs import banner_to_stderr

            banner_to_stderr()
        return args.func(args)
    except Error as exc:
        print(f"robustc: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("robustc: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `robustc dump net.onnx | head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
