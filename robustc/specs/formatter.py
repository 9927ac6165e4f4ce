"""Print a spec AST as canonical `.rspec` text (``robustc fmt``).

``parse(format_spec(spec)) == spec`` for every spec the parser produces. Statements keep
their source order; a ``#`` comment is kept and printed before the statement that follows
it (comments inside or after a statement, on its lines, move in front of it).
"""

from __future__ import annotations

from robustc.specs import ast as A

__all__ = ["format_spec", "format_expr", "format_condition", "format_region"]

_INDENT = "    "


def format_spec(spec: A.Spec) -> str:
    """Return the canonical text of ``spec`` (ends with a newline)."""
    statements = sorted(spec.declarations + spec.properties, key=lambda s: s.pos.line)
    comments = _comments(spec.source)
    out: list[str] = []
    previous = None
    for stmt in statements:
        lead = [c for line, c in comments if line <= stmt.pos.end_line]
        comments = [(line, c) for line, c in comments if line > stmt.pos.end_line]
        blank = previous is not None and (_is_property(stmt) or _is_property(previous)
                                          or type(stmt) is not type(previous) or lead)
        if blank:
            out.append("")
        out.extend(c.rstrip("\n") + ("\n" if c.endswith("\n") else "") for c in lead)
        out.append(_statement(stmt))
        previous = stmt
    if comments:
        out.extend(([""] if out else []) + [c for _, c in comments])
    return "\n".join(out) + "\n" if out else ""


def _is_property(stmt) -> bool:
    return isinstance(stmt, (A.VerifyProperty, A.MaximizeProperty, A.AttackProperty,
                             A.PatchProperty, A.GlobalProperty))


def _comments(source: str) -> list[tuple[int, str]]:
    """Return (line, text) of every ``#`` comment in ``source`` (not inside a string).

    A whole-line comment followed by a blank line keeps that blank line (its text ends
    with a newline), so a header comment stays detached from the first statement.
    """
    found = []
    lines = source.split("\n")
    for number, line in enumerate(lines, start=1):
        in_string, i = False, 0
        while i < len(line):
            ch = line[i]
            if in_string and ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_string = not in_string
            elif ch == "#" and not in_string:
                detached = (i == 0 and number < len(lines) and not lines[number].strip()
                            and any(rest.strip() for rest in lines[number:]))
                found.append((number, line[i:].rstrip() + ("\n" if detached else "")))
                break
            i += 1
    return found


# ----------------------------------------------------------------------------- expressions
def _number(value: int | float) -> str:
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "1e999" if value > 0 else "-1e999"
        return repr(value)
    return str(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _expr(e: A.Expr) -> tuple[str, int]:
    """Return (text, precedence): 1 sum, 2 product, 3 unary, 4 atom."""
    if isinstance(e, A.Number):
        return _number(e.value), (3 if e.value < 0 else 4)
    if isinstance(e, A.Str):
        return _quote(e.value), 4
    if isinstance(e, A.ParamRef):
        return e.name, 4
    if isinstance(e, A.DataLabel):
        return f"{e.input}.{e.kind}", 4
    if isinstance(e, A.ListExpr):
        return "[" + ", ".join(format_expr(i) for i in e.items) + "]", 4
    if isinstance(e, A.Neg):
        return "-" + _at_least(e.operand, 3), 3
    prec = 1 if e.op in "+-" else 2
    return f"{_at_least(e.left, prec)} {e.op} {_at_least(e.right, prec + 1)}", prec


def _at_least(e: A.Expr, prec: int) -> str:
    text, own = _expr(e)
    return text if own >= prec else f"({text})"


def format_expr(e: A.Expr) -> str:
    """Return the text of an expression with the fewest parentheses that keep its meaning."""
    return _expr(e)[0]


def _path(p: A.PathRef) -> str:
    return ("external " if p.external else "") + _quote(p.text)


def _options(options: tuple[A.Option, ...]) -> str:
    return ", ".join(f"{o.name}={format_expr(o.value)}" for o in options)


# ------------------------------------------------------------------------------- regions
def _region(r) -> tuple[str, int]:
    if isinstance(r, A.Box):
        dims = ", ".join(f"{d.axis} {format_expr(d.start)}:{format_expr(d.stop)}"
                         for d in r.dims)
        return f"box({dims})", 3
    if isinstance(r, A.MaskFile):
        return f"mask({_path(r.path)})", 3
    if isinstance(r, A.PixelPredicate):
        return f"pixels({r.input} {r.op} {format_expr(r.threshold)})", 3
    if isinstance(r, A.RegionRef):
        return r.name, 3
    if isinstance(r, A.RegionIntersection):
        return f"{_region_at(r.left, 2)} & {_region_at(r.right, 3)}", 2
    op = "|" if isinstance(r, A.RegionUnion) else "-"
    return f"{_region_at(r.left, 1)} {op} {_region_at(r.right, 2)}", 1


def _region_at(r, prec: int) -> str:
    text, own = _region(r)
    return text if own >= prec else f"({text})"


def format_region(r) -> str:
    """Return the text of a region expression."""
    return _region(r)[0]


def _rings(r: A.Rings) -> str:
    return f"rings({format_region(r.region)}, {r.metric}, {format_expr(r.count)})"


def _pset(s) -> str:
    if isinstance(s, A.LinfBall):
        inside = f", inside {format_region(s.region)}" if s.region is not None else ""
        return f"linf({s.input}, {format_expr(s.eps)}{inside})"
    eps = f", eps={format_expr(s.eps)}" if s.eps is not None else ""
    return f"layered({s.input}, {_rings(s.rings)}{eps})"


# ---------------------------------------------------------------------------- conditions
def _linear(e: A.LinearExpr) -> str:
    parts = []
    for i, term in enumerate(e.terms):
        negated, coef = term.negated, term.coef
        if isinstance(coef, A.Number) and coef.value < 0:  # only in resolved specs
            negated, coef = not negated, A.Number(-coef.value)
        pieces = [format_expr(coef)] if coef is not None else []
        if term.output is not None:
            pieces.append(f"y[{format_expr(term.output)}]")
        text = " * ".join(pieces)
        if i == 0:
            parts.append(("-" if negated else "") + text)
        else:
            parts.append(("- " if negated else "+ ") + text)
    return " ".join(parts)


def _cond(c) -> tuple[str, int]:
    """Return (text, precedence): 1 or, 2 and, 3 not, 4 atom."""
    if isinstance(c, A.Or):
        return " or ".join(_cond_at(o, 2) for o in c.operands), 1
    if isinstance(c, A.And):
        return " and ".join(_cond_at(o, 3) for o in c.operands), 2
    if isinstance(c, A.Not):
        return "not " + _cond_at(c.operand, 3), 3
    if isinstance(c, A.Present):
        return f"present({format_expr(c.label)})", 4
    if isinstance(c, A.Absent):
        return f"absent({format_expr(c.label)})", 4
    if isinstance(c, A.Unchanged):
        return "unchanged", 4
    if isinstance(c, A.LabelSetIs):
        return "labels == {" + ", ".join(format_expr(x) for x in c.labels) + "}", 4
    if isinstance(c, A.ArgmaxIs):
        return f"argmax == {format_expr(c.label)}", 4
    return f"{_linear(c.lhs)} {c.op} {_linear(c.rhs)}", 4


def _cond_at(c, prec: int) -> str:
    text, own = _cond(c)
    return text if own >= prec else f"({text})"


def format_condition(c) -> str:
    """Return the text of a condition."""
    return _cond(c)[0]


# ---------------------------------------------------------------------------- statements
def _statement(s) -> str:
    return _STATEMENTS[type(s)](s)


def _on(network: str | None) -> str:
    return f" on {network}" if network is not None else ""


def _input(d: A.InputDecl) -> str:
    src = d.source
    if isinstance(src, A.NpyFile):
        text = f"npy({_path(src.path)})"
    elif isinstance(src, A.PngFile):
        text = f"png({_path(src.path)}, {src.mode})"
    elif isinstance(src, A.DataSet):
        text = _dataset(src)
    elif isinstance(src, A.DataElement):  # made by the expansion: not spec syntax
        text = f"{_dataset(src.data)}[{src.index}]"
    else:
        text = f"values({format_expr(src.values)})"
    if d.domain is not None:
        text += f" in [{format_expr(d.domain.lo)}, {format_expr(d.domain.hi)}]"
    if d.reshape is not None:
        text += f" reshape {format_expr(d.reshape)}"
    return f"input {d.name} = {text}"


def _dataset(d: A.DataSet) -> str:
    files = d.files
    if isinstance(files, A.NpyFile):
        text = f"npy({_path(files.path)})"
    else:
        pattern = f", {_quote(files.pattern)}" if files.pattern is not None else ""
        text = f"folder({_path(files.path)}{pattern}, {files.mode})"
    labels = f", labels={_path(d.labels)}" if d.labels is not None else ""
    targets = f", targets={_path(d.targets)}" if d.targets is not None else ""
    return f"dataset({text}{labels}{targets})"


def _network(d: A.NetworkDecl) -> str:
    src = d.source
    if isinstance(src, A.OnnxFile):
        return f"network {d.name} = onnx({_path(src.path)})"
    return f"network {d.name} = compose({src.outer}, {src.inner})"


def _decoder(d) -> str:
    if isinstance(d, A.ArgmaxDecoder):
        return "argmax"
    if isinstance(d, A.MultiLabelDecoder):
        return f"multilabel({d.score} > {format_expr(d.threshold)})"
    if isinstance(d, A.TopKDecoder):
        return f"topk({format_expr(d.k)})"
    return f"ecoc({_path(d.codebook)})"


def _call(name: str, options: tuple[A.Option, ...]) -> str:
    return f"{name}({_options(options)})" if options else name


def _verify(p: A.VerifyProperty) -> str:
    return (f"verify {p.name}{_on(p.network)}:\n{_INDENT}forall {p.var} in {_pset(p.domain)}:"
            f"\n{_INDENT * 2}{format_condition(p.condition)}")


def _maximize(p: A.MaximizeProperty) -> str:
    lines = [f"maximize {p.name}{_on(p.network)}:",
             f"{_INDENT}{_pset(p.neighbourhood)} such that {format_condition(p.condition)}"]
    if p.weights is not None:
        lines.append(f"{_INDENT}weights {format_expr(p.weights)}")
    m = p.method
    if isinstance(m, A.NaiveSearch):
        method = _call("naive", m.options)
    else:
        rest = (", " + _options(m.options)) if m.options else ""
        method = f"oracle(cutting={m.cutting}{rest})"
    lines.append(f"{_INDENT}method {method}")
    return "\n".join(lines)


def _goal(g) -> str:
    if isinstance(g, A.TargetLabels):
        return "target {" + ", ".join(format_expr(x) for x in g.labels) + "}"
    if isinstance(g, A.TargetVector):
        return f"target {format_expr(g.vector)}"
    if isinstance(g, A.FlipLabels):
        return f"flip {format_expr(g.count)} labels"
    return "untargeted"


def _attack(p: A.AttackProperty) -> str:
    lines = [f"attack {p.name}{_on(p.network)}:",
             f"{_INDENT}{_goal(p.goal)} from {p.input}",
             f"{_INDENT}using {_call(p.method.kind, p.method.options)} norm {p.norm}"]
    if p.within is not None:
        lines.append(f"{_INDENT}within {_pset(p.within)}")
    return "\n".join(lines)


def _patch(p: A.PatchProperty) -> str:
    lines = [f"patch {p.name}{_on(p.network)}:",
             f"{_INDENT}layer {format_expr(p.layer)} such that {format_condition(p.condition)}",
             f"{_INDENT}for {', '.join(p.inputs)} minimize {p.norm}"]
    if p.adversarial is not None:
        lines.append(f"{_INDENT}then adversarial({_options(p.adversarial.options)})")
    return "\n".join(lines)


def _global(p: A.GlobalProperty) -> str:
    c = p.criterion
    names = ("eps", "delta", "confidence", "samples")
    given = [(n, getattr(c, n, None)) for n in names]
    args = ", ".join(f"{n}={format_expr(v)}" for n, v in given if v is not None)
    kind = "correct" if isinstance(c, A.Correctness) else "robust"
    return (f"global {p.name} on {p.network}:\n"
            f"{_INDENT}noise {p.noise.kind}({format_expr(p.noise.a)}, {format_expr(p.noise.b)})"
            f"\n{_INDENT}class {format_expr(p.label)}\n{_INDENT}{kind}({args})")


_STATEMENTS = {
    A.ParamDecl: lambda d: f"param {d.name} = {format_expr(d.value)}",
    A.NetworkDecl: _network,
    A.InputDecl: _input,
    A.LabelsDecl: lambda d: f"labels {d.name} = [{', '.join(_quote(n) for n in d.names)}]",
    A.DecodeDecl: lambda d: f"decode {d.network} as {_decoder(d.decoder)} over {d.labels}",
    A.RegionDecl: lambda d: f"region {d.name} = {format_region(d.region)}",
    A.VerifyProperty: _verify,
    A.MaximizeProperty: _maximize,
    A.AttackProperty: _attack,
    A.PatchProperty: _patch,
    A.GlobalProperty: _global,
}
