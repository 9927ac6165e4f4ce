"""Apply ``--set`` overrides and substitute parameters: the *resolved* spec.

In a resolved spec no :class:`ParamRef`, :class:`BinOp` or :class:`Neg` remains: every
expression is a :class:`Number`, a :class:`Str` or a :class:`ListExpr` of those. A
substituted value keeps the position of the reference it replaced, so later diagnostics
point at the use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from robustc.errors import SpecError
from robustc.specs import ast as A
from robustc.specs.diagnostics import Diagnostic, make, raise_if_any

__all__ = ["resolve", "override_value", "walk"]


def override_value(text: str) -> A.Expr:
    """Turn a ``--set`` value into an expression: a number, list or quoted string if it
    parses as one (``0.03``, ``[0.1, 0.05]``, ``"4"``, ``eps / 2`` using other
    parameters), else the bare text (a single word included) as a string."""
    from robustc.specs.parser import parse_expr

    pos = A.SourcePos("<command line>", 1, 1, 1, len(text) + 1)
    try:
        expr = parse_expr(text, filename="<command line>")
    except SpecError:
        return A.Str(text, pos=pos)
    return A.Str(text, pos=pos) if isinstance(expr, A.ParamRef) else expr


def resolve(spec: A.Spec, overrides: Mapping[str, str | int | float | A.Expr] | None = None
            ) -> A.Spec:
    """Return ``spec`` with overrides applied and every parameter use replaced by its value.

    ``overrides`` maps parameter names to new values: a string is read as with ``--set``
    (:func:`override_value`), a Python number becomes a :class:`Number`, an ``Expr`` is
    used as is. Raises :class:`SpecError` listing every unknown parameter (in an override
    or in the spec), every use of a parameter before its declaration, and every invalid
    arithmetic (division by zero, arithmetic on strings or lists).
    """
    resolved, diags = resolve_collecting(spec, overrides)
    raise_if_any(diags)
    return resolved


def resolve_collecting(spec: A.Spec, overrides: Mapping | None = None
                       ) -> tuple[A.Spec, list[Diagnostic]]:
    """Like :func:`resolve` but return (spec, problems) instead of raising; a value that
    could not be resolved is replaced by ``Number(0)`` so later checks can still run."""
    diags: list[Diagnostic] = []
    spec = _apply_overrides(spec, dict(overrides or {}), diags)
    env: dict[str, A.Expr] = {}
    folder = _Folder(env, spec.source, diags)
    decls = []
    for decl in spec.declarations:
        decl = folder.node(decl)
        if isinstance(decl, A.ParamDecl):
            env.setdefault(decl.name, decl.value)
        decls.append(decl)
    props = tuple(folder.node(p) for p in spec.properties)
    return dataclasses.replace(spec, declarations=tuple(decls), properties=props), diags


def _apply_overrides(spec: A.Spec, overrides: dict, diags: list[Diagnostic]) -> A.Spec:
    params = {d.name for d in spec.declarations if isinstance(d, A.ParamDecl)}
    for name in overrides:
        if name not in params:
            known = ", ".join(sorted(params)) or "none"
            pos = A.SourcePos("<command line>", 1, 1, 1, 1)
            diags.append(Diagnostic(pos, f"--set {name}: no parameter '{name}' in the spec "
                                         f"(parameters: {known})"))
    if not overrides:
        return spec
    decls = []
    for decl in spec.declarations:
        if isinstance(decl, A.ParamDecl) and decl.name in overrides:
            decl = dataclasses.replace(decl, value=_as_expr(overrides[decl.name]))
        decls.append(decl)
    return dataclasses.replace(spec, declarations=tuple(decls))


def _as_expr(value) -> A.Expr:
    if isinstance(value, str):
        return override_value(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, A.Node)):
        raise SpecError(f"cannot use {value!r} as a parameter value")
    return A.Number(value) if isinstance(value, (int, float)) else value


class _Folder:
    """Substitute parameters and fold arithmetic, recording problems as diagnostics."""

    def __init__(self, env: dict[str, A.Expr], source: str, diags: list[Diagnostic]):
        self.env, self.source, self.diags = env, source, diags

    def node(self, node):
        if isinstance(node, tuple):
            return tuple(self.node(item) for item in node)
        if not isinstance(node, A.Node):
            return node
        if isinstance(node, A.ParamRef):
            return self.param(node)
        changes = {f.name: self.node(getattr(node, f.name))
                   for f in dataclasses.fields(node) if f.compare}
        node = dataclasses.replace(node, **changes)
        if isinstance(node, A.BinOp):
            return self.binop(node)
        if isinstance(node, A.Neg):
            return self.neg(node)
        if isinstance(node, A.LinearTerm) and isinstance(node.coef, A.Number) \
                and node.coef.value < 0:  # keep coefficients non-negative, as when parsed
            coef = A.Number(-node.coef.value, pos=node.coef.pos)
            return dataclasses.replace(node, negated=not node.negated, coef=coef)
        return node

    def param(self, ref: A.ParamRef) -> A.Expr:
        if ref.name not in self.env:
            self.diags.append(make(ref.pos, f"unknown parameter '{ref.name}'", self.source))
            return A.Number(0, pos=ref.pos)
        return _with_pos(self.env[ref.name], ref.pos)

    def binop(self, node: A.BinOp) -> A.Expr:
        left, right = node.left, node.right
        if not (isinstance(left, A.Number) and isinstance(right, A.Number)):
            self.diags.append(make(node.pos, f"'{node.op}' needs two numbers", self.source))
            return A.Number(0, pos=node.pos)
        if node.op == "/" and right.value == 0:
            self.diags.append(make(node.pos, "division by zero", self.source))
            return A.Number(0, pos=node.pos)
        a, b = left.value, right.value
        value = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                 "/": lambda: a / b}[node.op]()
        return A.Number(value, pos=node.pos)

    def neg(self, node: A.Neg) -> A.Expr:
        if not isinstance(node.operand, A.Number):
            self.diags.append(make(node.pos, "unary '-' needs a number", self.source))
            return A.Number(0, pos=node.pos)
        return A.Number(-node.operand.value, pos=node.pos)


def _with_pos(expr: A.Expr, pos: A.SourcePos) -> A.Expr:
    if isinstance(expr, A.ListExpr):
        return A.ListExpr(tuple(_with_pos(i, pos) for i in expr.items), pos=pos)
    return dataclasses.replace(expr, pos=pos)


def walk(node):
    """Yield ``node`` and every AST node below it (depth first, source order)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(reversed(item))
        elif isinstance(item, A.Node):
            yield item
            stack.extend(reversed([getattr(item, f.name) for f in dataclasses.fields(item)
                                   if f.compare]))
