"""``robustc compile SPEC -o DIR``: write the MILP models of a spec's verify properties
(``.lp``, ``.mps``, Gurobi's ``.lp``, SMT-LIB ``.smt2``), one file per violation case."""

from __future__ import annotations

import argparse

from robustc.cli.common import EXIT_OK, add_spec_arguments
from robustc.cli.verify import add_network_argument, load_problems
from robustc.files import check_output_dir

DEFAULT_FORMATS = ("lp", "mps", "gurobi")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``robustc compile``."""
    add_spec_arguments(p, what="verify", output="robustc-models")
    add_network_argument(p)
    p.add_argument("--format", action="append", choices=["lp", "mps", "gurobi", "smt2"],
                   help="file formats (default: lp, mps, gurobi; gurobi needs gurobipy; "
                        "smt2: SMT-LIB 2)")


def run(args: argparse.Namespace) -> int:
    """Write each verify property's MILP cases; prints the paths; returns the exit code."""
    from robustc.verify import export_problem

    if "gurobi" in (args.format or ()):  # asked for by name: say why it cannot be written
        from robustc.backends import gurobi

        gurobi.require()
    out_dir = check_output_dir(args.output)  # before the work: fail in a second, not later
    problems = load_problems(args)
    for problem in problems:
        for path in export_problem(problem, out_dir, formats=args.format or DEFAULT_FORMATS):
            print(path)
    return EXIT_OK
