"""The ``robustc`` command line.

Each subcommand's handler imports its module only when it runs (``_lazy``), so
``robustc --version`` stays fast. Every robustc error is printed as a message
(never a traceback) and mapped to an exit code:

* 0: every property holds (or the command succeeded)
* 1: some property does not hold (a validated counterexample exists)
* 2: error (bad input, missing file, solver failure)
* 3: the worst result is unknown (time limit, incomplete method)
"""

from __future__ import annotations

import argparse
import importlib
import sys

import robustc
from robustc.errors import Error

EXIT_OK, EXIT_VIOLATED, EXIT_ERROR, EXIT_UNKNOWN = 0, 1, 2, 3


def _lazy(target: str):
    """A subcommand handler that imports ``module:function`` only when it runs."""
    module, function = target.split(":")

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), function)(args)

    return run


_cmd_check = _lazy("robustc.specs.cli:run_check")
_cmd_fmt = _lazy("robustc.specs.cli:run_fmt")
_cmd_verify = _lazy("robustc.verify_cli:run_verify")
_cmd_compile = _lazy("robustc.verify_cli:run_compile")
_cmd_maximize = _lazy("robustc.maximize_cli:run_maximize")
_cmd_attack = _lazy("robustc.attack:run_attack_cli")
_cmd_patch = _lazy("robustc.patch_cli:run_patch_cli")
_cmd_global = _lazy("robustc.global_cli:run_global")


def _cmd_dump(args: argparse.Namespace) -> int:
    from robustc.compiler import load_onnx, standard_passes

    graph = load_onnx(args.network)
    if not args.raw:
        graph = standard_passes().run(graph)
    print(graph.dump())
    return EXIT_OK


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robustc", description="Compile and verify neural-network robustness properties."
    )
    parser.add_argument("--version", action="version", version=f"robustc {robustc.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("check", help="parse and check a .rspec file")
    p.add_argument("spec", help="path to a .rspec file")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a parameter (repeatable)")
    p.add_argument("--no-network", action="store_true",
                   help="skip the checks that need to open the ONNX networks")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("fmt", help="print a .rspec file in canonical form")
    p.add_argument("spec", help="path to a .rspec file")
    p.add_argument("--in-place", "-i", action="store_true", help="rewrite the file")
    p.set_defaults(func=_cmd_fmt)

    p = sub.add_parser("verify", help="verify the properties of a .rspec file")
    from robustc.verify_cli import add_arguments

    add_arguments(p)
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("maximize", help="search maximal robust layered neighbourhoods")
    from robustc.maximize_cli import add_arguments as add_maximize_arguments

    add_maximize_arguments(p)
    p.set_defaults(func=_cmd_maximize)

    p = sub.add_parser("compile", help="write the MILP models of a spec's verify properties")
    _spec_arguments(p, output="robustc-models")
    p.add_argument("--format", action="append", choices=["lp", "mps", "gurobi", "smt2"],
                   help="file formats (default: lp, mps, gurobi; gurobi needs gurobipy; "
                        "smt2: SMT-LIB 2)")
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser("attack", help="run the attack properties of a .rspec file")
    _spec_arguments(p, output="robustc-attacks")
    p.add_argument("--json", action="store_true", help="one JSON report per property")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="default: cuda when available")
    p.set_defaults(func=_cmd_attack)

    p = sub.add_parser("patch", help="patch a layer's weights (and find adversarial inputs)")
    _spec_arguments(p, output="robustc-patches")
    p.add_argument("--json", action="store_true", help="print one JSON report per property")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="solver time limit per MILP, in seconds (default 30)")
    p.set_defaults(func=_cmd_patch)

    p = sub.add_parser("global", help="estimate global correctness / robustness properties")
    from robustc.global_cli import add_arguments as add_global_arguments

    add_global_arguments(p)
    p.set_defaults(func=_cmd_global)

    p = sub.add_parser("dump", help="import an ONNX network and print its IR")
    p.add_argument("network", help="path to an .onnx file")
    p.add_argument("--raw", action="store_true", help="print the IR before the passes")
    p.set_defaults(func=_cmd_dump)
    return parser


def _spec_arguments(p: argparse.ArgumentParser, output: str) -> None:
    """The arguments every spec-running subcommand shares."""
    p.add_argument("spec", help="a .rspec file")
    p.add_argument("--property", "-p", action="append", default=[], metavar="NAME")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--output", "-o", default=output, help="output directory")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    if getattr(args, "format", "unset") is None:
        args.format = ["lp", "mps", "gurobi"]
    try:
        if args.command not in ("check", "fmt", "dump"):  # the ones that may run HiGHS
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
