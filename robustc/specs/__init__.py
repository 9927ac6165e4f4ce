"""The ``.rspec`` property language: parse, resolve, check and format robustness specs.

Typical use (what ``robustc check`` does)::

    from robustc import specs
    spec = specs.parse("examples/double_digits_verify.rspec")   # syntax only -> AST
    resolved = specs.check(spec, overrides={"eps": "0.03"})     # names, types, files
    specs.check_networks(resolved)                              # shapes vs the ONNX files
    # or all at once: specs.load(path, overrides=..., networks=True)

Every problem raises :class:`robustc.errors.SpecError`; its ``diagnostics`` list holds
one positioned :class:`Diagnostic` per problem and ``str()`` renders them all. This
package imports nothing else of robustc but :mod:`robustc.errors`; numpy, onnx and PIL
are imported only by the functions that read files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from robustc.specs import ast
from robustc.specs.ast import *  # noqa: F403 - the AST node classes are part of the API
from robustc.specs.checker import METHOD_OPTIONS, check_spec, resolve_path
from robustc.specs.datasets import expand, select_elements
from robustc.specs.diagnostics import Diagnostic
from robustc.specs.formatter import format_spec
from robustc.specs.netcheck import check_networks
from robustc.specs.parser import parse, parse_text
from robustc.specs.resolve import resolve, resolve_collecting, walk
from robustc.specs.rings import layer_indices, load_input, region_mask

__all__ = [
    "Diagnostic", "METHOD_OPTIONS", "ast", "check", "check_networks", "check_spec", "expand",
    "select_elements",
    "format_spec", "layer_indices", "load", "load_input", "parse", "parse_text", "region_mask",
    "resolve", "resolve_collecting", "resolve_path", "walk",
] + list(ast.__all__)


def check(spec: ast.Spec, overrides: Mapping[str, object] | None = None, *,
          files: bool = True) -> ast.Spec:
    """Resolve ``spec`` (apply ``overrides``, substitute parameters) and check it.

    Returns the resolved spec, with every property over a data set expanded to one
    instance per element (:func:`expand`; only with ``files``, which it reads). Raises
    :class:`SpecError` listing every semantic problem: unknown names, labels out of range,
    eps vectors whose length is not the number of layers, negative budgets, bad options
    and, with ``files``, missing files or paths leaving the spec's directory, data sets
    whose elements differ in shape, missing per-element masks, labels files that do not
    fit. Does not open networks (see :func:`check_networks`).
    """
    resolved, problems = resolve_collecting(spec, overrides)
    check_spec(resolved, files=files, earlier=problems)
    return expand(resolved) if files else resolved


def load(path_or_text: str | os.PathLike, overrides: Mapping[str, object] | None = None, *,
         networks: bool = True) -> ast.Spec:
    """Parse, resolve and check a spec; with ``networks``, also run :func:`check_networks`.

    Returns the resolved, checked spec; raises :class:`SpecError` on any problem.
    """
    resolved = check(parse(path_or_text), overrides)
    if networks:
        check_networks(resolved)
    return resolved
