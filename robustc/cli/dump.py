"""``robustc dump NET.onnx``: import an ONNX network and print its IR (after the passes)."""

from __future__ import annotations

import argparse

from robustc.cli.common import EXIT_OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``robustc dump``."""
    p.add_argument("network", help="path to an .onnx file")
    p.add_argument("--raw", action="store_true", help="print the IR before the passes")


def run(args: argparse.Namespace) -> int:
    """Print the IR of ``args.network``; returns the exit code."""
    from robustc.compiler import load_onnx, standard_passes

    graph = load_onnx(args.network)
    if not args.raw:
        graph = standard_passes().run(graph)
    print(graph.dump())
    return EXIT_OK
