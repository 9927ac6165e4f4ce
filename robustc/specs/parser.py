"""Parse `.rspec` text into the typed AST (:mod:`robustc.specs.ast`).

Syntax errors become a :class:`robustc.errors.SpecError` whose single diagnostic says, at
``file:line:col``, what was found and, in words, what was expected.
"""

from __future__ import annotations

import codecs
import functools
import os
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    VisitError,
)

from robustc.errors import SpecError
from robustc.specs import ast as A
from robustc.specs.diagnostics import make, raise_if_any
from robustc.specs.grammar import GRAMMAR

__all__ = ["parse", "parse_text", "parse_expr", "read_source"]


@functools.lru_cache(maxsize=2)
def _parser(start: str) -> Lark:
    return Lark(GRAMMAR, parser="lalr", start=start, propagate_positions=True,
                maybe_placeholders=False)


def parse(path_or_text: str | os.PathLike, *, filename: str | None = None) -> A.Spec:
    """Parse a spec given as a path to a ``.rspec`` file or as the spec text itself.

    A ``Path`` object, or a string without a newline that ends in ``.rspec``, is read as a
    file (relative paths in the spec then resolve against the file's directory); any other
    string is parsed as spec text (paths resolve against the current directory).
    Returns the :class:`~robustc.specs.ast.Spec`; raises :class:`SpecError` on a syntax
    error or an unreadable file.
    """
    if isinstance(path_or_text, os.PathLike) or (
        "\n" not in path_or_text and path_or_text.strip().endswith(".rspec")
    ):
        path = Path(path_or_text)
        text = read_source(path, "spec file")
        return parse_text(text, filename=str(path), source_dir=str(path.resolve().parent))
    return parse_text(path_or_text, filename=filename or "<string>", source_dir=os.getcwd())


def read_source(path: str | os.PathLike, what: str) -> str:
    """The UTF-8 text of a source file (a spec, a VNN-LIB file), without a leading byte
    order mark. Raises :class:`SpecError` when the file cannot be read, and, for bytes that
    are not UTF-8 (a binary file), one that names the ``file:line:col`` of the first."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        col = len(data[max(start, bom):exc.start].decode("utf-8")) + 1
        raise SpecError(f"{path}:{line}:{col}: not UTF-8 text (byte 0x{data[exc.start]:02x} "
                        f"at offset {exc.start}): is this a binary file?") from None


def parse_text(text: str, *, filename: str = "<string>", source_dir: str = ".") -> A.Spec:
    """Parse spec ``text``; positions name ``filename``. A leading byte order mark is
    ignored. Raises :class:`SpecError`."""
    text = text.removeprefix("\ufeff")
    spec = _build(_parse_tree(text, filename, "start"), filename, text)
    return A.Spec(spec.declarations, spec.properties, source_dir, text, spec.pos)


def parse_expr(text: str, *, filename: str = "<set>") -> A.Expr:
    """Parse one expression (a ``--set`` value); raises :class:`SpecError` if it is not one."""
    return _build(_parse_tree(text, filename, "expr"), filename, text)


def _build(tree, filename: str, text: str):
    builder = _Builder(filename, text)
    try:
        node = builder.transform(tree)
    except (VisitError, RecursionError) as exc:
        cause = getattr(exc, "orig_exc", exc)
        if isinstance(cause, RecursionError):
            raise SpecError(f"{filename}: the spec is nested too deeply") from None
        raise SpecError(f"{filename}: internal parser error: {cause!r}") from None
    raise_if_any(builder.problems)
    return node


def _parse_tree(text: str, filename: str, start: str):
    try:
        return _parser(start).parse(text)
    except UnexpectedInput as exc:
        raise_if_any([_syntax_diagnostic(exc, text, filename, start)])
    except (LarkError, RecursionError) as exc:  # defensive: never leak a Lark traceback
        raise SpecError(f"{filename}: cannot parse: {exc.__class__.__name__}") from None
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------- syntax errors
_WORDS = {
    "NAME": "a name", "VAR": "a variable such as x'", "NUMBER": "a number",
    "STRING": 'a quoted string such as "4"', "$END": "the end of the file",
}


def _describe_terminal(name: str, start: str) -> str:
    if name in _WORDS:
        return _WORDS[name]
    try:
        pattern = _parser(start).get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f"'{pattern.value}'" if pattern.type == "str" else name.lower()


_STATEMENT_WORDS = {"'param'", "'network'", "'input'", "'labels'", "'decode'", "'region'",
                    "'verify'", "'maximize'", "'attack'", "'patch'", "'global'"}


def _expected_words(names: set[str], start: str) -> str:
    words = {_describe_terminal(n, start) for n in names}
    if len(words & _STATEMENT_WORDS) >= 4:
        words = (words - _STATEMENT_WORDS) | {"a new declaration or property"}
    words = sorted(words)
    if not words:
        return ""
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _syntax_diagnostic(exc: UnexpectedInput, text: str, filename: str, start: str):
    line, col = max(exc.line, 1), max(exc.column, 1)
    if isinstance(exc, UnexpectedCharacters):
        found = repr(text[exc.pos_in_stream]) if exc.pos_in_stream < len(text) else "end"
        expected = set(exc.allowed or ())
        message = f"unexpected character {found}"
    elif isinstance(exc, UnexpectedEOF):
        expected = set(exc.expected or ())
        message = "unexpected end of file"
        lines = text.split("\n")
        line, col = len(lines), len(lines[-1]) + 1
    else:
        token = exc.token
        expected = set(getattr(exc, "expected", None) or ())
        if token.type == "$END":
            message = "unexpected end of file"
            lines = text.split("\n")
            line, col = len(lines), len(lines[-1]) + 1
        else:
            message = f"unexpected {_token_words(token)}"
    words = _expected_words(expected, start)
    if words:
        message += f"; expected {words}"
    pos = A.SourcePos(filename, line, col, line, col + 1)
    return make(pos, message, text)


def _token_words(token: Token) -> str:
    if token.type in ("NAME", "VAR"):
        return f"name '{token}'"
    if token.type == "NUMBER":
        return f"number {token}"
    if token.type == "STRING":
        return f"string {token}"
    return f"'{token}'"


# ------------------------------------------------------------------------------- AST builder
def _unquote(token: str) -> str:
    body = token[1:-1]
    out, i = [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append("\n" if body[i + 1] == "n" else body[i + 1])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def _number(text: str) -> int | float:
    if any(c in text for c in ".eE") or len(text) > 300:
        return float(text)  # huge integers become inf; the checker rejects non-finite numbers
    return int(text)


def _of(items: list, kind) -> list:
    return [item for item in items if isinstance(item, kind)]


def _first(items: list, kind, default=None):
    found = _of(items, kind)
    return found[0] if found else default


class _Tag(tuple):
    """A (tag, value) pair used for optional grammar pieces before they become fields."""


def _tag(name: str, value) -> _Tag:
    return _Tag((name, value))


def _tagged(items: list, name: str, default=None):
    for item in items:
        if isinstance(item, _Tag) and item[0] == name:
            return item[1]
    return default


def _names(items: list) -> list[str]:
    return [str(t) for t in items if isinstance(t, Token) and t.type in ("NAME", "VAR")]


@v_args(meta=True)
class _Builder(Transformer):
    """Turn a Lark tree into AST nodes, attaching a :class:`SourcePos` to each."""

    def __init__(self, filename: str, text: str):
        super().__init__()
        self.filename = filename
        self.text = text
        self.problems: list = []

    def _pos(self, meta) -> A.SourcePos:
        if getattr(meta, "empty", True):
            return A.SourcePos(self.filename, 1, 1, 1, 1)
        return A.SourcePos(self.filename, meta.line, meta.column, meta.end_line, meta.end_column)

    # -- top level
    def start(self, meta, items):
        decls = tuple(i for i in items if not _is_property(i))
        props = tuple(i for i in items if _is_property(i))
        return A.Spec(decls, props, pos=self._pos(meta))

    # -- expressions
    def number(self, meta, items):
        return A.Number(_number(str(items[0])), pos=self._pos(meta))

    def ref(self, meta, items):
        return A.ParamRef(str(items[0]), pos=self._pos(meta))

    def data_label(self, meta, items):
        return A.DataLabel(str(items[0]), "label", pos=self._pos(meta))

    def data_target(self, meta, items):
        return A.DataLabel(str(items[0]), "target", pos=self._pos(meta))

    def string(self, meta, items):
        return A.Str(_unquote(str(items[0])), pos=self._pos(meta))

    def list(self, meta, items):
        return A.ListExpr(tuple(items), pos=self._pos(meta))

    def _binop(self, op, meta, items):
        return A.BinOp(op, items[0], items[1], pos=self._pos(meta))

    def add(self, meta, items):
        return self._binop("+", meta, items)

    def sub(self, meta, items):
        return self._binop("-", meta, items)

    def mul(self, meta, items):
        return self._binop("*", meta, items)

    def div(self, meta, items):
        return self._binop("/", meta, items)

    def neg(self, meta, items):
        operand = items[0]
        if isinstance(operand, A.Number) and not isinstance(operand.value, bool):
            return A.Number(-operand.value, pos=self._pos(meta))
        return A.Neg(operand, pos=self._pos(meta))

    # -- small pieces that only carry a keyword
    def _keyword(self, meta, items):
        return str(items[0])

    colour = score = axis = metric = cutting = attack_kind = norm = noise_kind = _keyword
    criterion_kind = sign = cmp = _keyword

    def path_plain(self, meta, items):
        return A.PathRef(_unquote(str(items[0])), False, pos=self._pos(meta))

    def path_external(self, meta, items):
        return A.PathRef(_unquote(str(items[0])), True, pos=self._pos(meta))

    def on_net(self, meta, items):
        return _tag("on", str(items[0]))

    # -- declarations
    def param_decl(self, meta, items):
        return A.ParamDecl(str(items[0]), items[1], pos=self._pos(meta))

    def onnx_source(self, meta, items):
        return A.OnnxFile(items[0], pos=self._pos(meta))

    def compose_source(self, meta, items):
        return A.Compose(str(items[0]), str(items[1]), pos=self._pos(meta))

    def network_decl(self, meta, items):
        return A.NetworkDecl(str(items[0]), items[1], pos=self._pos(meta))

    def npy_source(self, meta, items):
        return A.NpyFile(items[0], pos=self._pos(meta))

    def png_source(self, meta, items):
        mode = items[1] if len(items) > 1 else "grey"
        return A.PngFile(items[0], mode, pos=self._pos(meta))

    def values_source(self, meta, items):
        return A.InlineValues(items[0], pos=self._pos(meta))

    def folder_source(self, meta, items):
        pattern = next((_unquote(str(t)) for t in items[1:]
                        if isinstance(t, Token) and t.type == "STRING"), None)
        mode = next((t for t in items[1:] if not isinstance(t, Token)), "grey")
        return A.DataFolder(items[0], pattern, mode, pos=self._pos(meta))

    def data_labels(self, meta, items):
        return _tag("labels", items[0])

    def data_targets(self, meta, items):
        return _tag("targets", items[0])

    def dataset_source(self, meta, items):
        files = {}
        for tag, path in items[1:]:
            if tag in files:
                self.problems.append(make(path.pos, f"{tag}= given twice", self.text))
            files.setdefault(tag, path)
        return A.DataSet(items[0], files.get("labels"), files.get("targets"),
                         pos=self._pos(meta))

    def domain(self, meta, items):
        return A.Domain(items[0], items[1], pos=self._pos(meta))

    def reshape(self, meta, items):
        return _tag("reshape", items[0])

    def input_decl(self, meta, items):
        return A.InputDecl(str(items[0]), items[1], _first(items, A.Domain),
                           _tagged(items, "reshape"), pos=self._pos(meta))

    def labels_decl(self, meta, items):
        names = tuple(_unquote(str(t)) for t in items[1:])
        return A.LabelsDecl(str(items[0]), names, pos=self._pos(meta))

    def argmax_dec(self, meta, items):
        return A.ArgmaxDecoder(pos=self._pos(meta))

    def multilabel_dec(self, meta, items):
        return A.MultiLabelDecoder(items[0], items[1], pos=self._pos(meta))

    def topk_dec(self, meta, items):
        return A.TopKDecoder(items[0], pos=self._pos(meta))

    def ecoc_dec(self, meta, items):
        return A.EcocDecoder(items[0], pos=self._pos(meta))

    def decode_decl(self, meta, items):
        return A.DecodeDecl(str(items[0]), items[1], str(items[2]), pos=self._pos(meta))

    # -- regions
    def region_decl(self, meta, items):
        return A.RegionDecl(str(items[0]), items[1], pos=self._pos(meta))

    def region_union(self, meta, items):
        return A.RegionUnion(items[0], items[1], pos=self._pos(meta))

    def region_difference(self, meta, items):
        return A.RegionDifference(items[0], items[1], pos=self._pos(meta))

    def region_intersection(self, meta, items):
        return A.RegionIntersection(items[0], items[1], pos=self._pos(meta))

    def box_dim(self, meta, items):
        return A.BoxDim(items[0], items[1], items[2], pos=self._pos(meta))

    def box(self, meta, items):
        return A.Box(tuple(items), pos=self._pos(meta))

    def mask(self, meta, items):
        return A.MaskFile(items[0], pos=self._pos(meta))

    def pixels(self, meta, items):
        return A.PixelPredicate(str(items[0]), items[1], items[2], pos=self._pos(meta))

    def region_ref(self, meta, items):
        return A.RegionRef(str(items[0]), pos=self._pos(meta))

    def rings(self, meta, items):
        return A.Rings(items[0], items[1], items[2], pos=self._pos(meta))

    # -- perturbation sets
    def linf_set(self, meta, items):
        region = items[2] if len(items) > 2 else None
        return A.LinfBall(str(items[0]), items[1], region, pos=self._pos(meta))

    def layered_set(self, meta, items):
        eps = items[2] if len(items) > 2 else None
        return A.LayeredNeighbourhood(str(items[0]), items[1], eps, pos=self._pos(meta))

    # -- conditions
    def present(self, meta, items):
        return A.Present(items[0], pos=self._pos(meta))

    def absent(self, meta, items):
        return A.Absent(items[0], pos=self._pos(meta))

    def unchanged(self, meta, items):
        return A.Unchanged(pos=self._pos(meta))

    def label_set(self, meta, items):
        return A.LabelSetIs(tuple(items), pos=self._pos(meta))

    def argmax_is(self, meta, items):
        return A.ArgmaxIs(items[0], pos=self._pos(meta))

    def not_(self, meta, items):
        return A.Not(items[0], pos=self._pos(meta))

    def and_cond(self, meta, items):
        return A.And(_flatten(items, A.And), pos=self._pos(meta))

    def or_cond(self, meta, items):
        return A.Or(_flatten(items, A.Or), pos=self._pos(meta))

    def output(self, meta, items):
        return _tag("y", items[0])

    def scaled_term(self, meta, items):
        return A.LinearTerm(False, items[0], items[1][1], pos=self._pos(meta))

    def output_term(self, meta, items):
        return A.LinearTerm(False, None, items[0][1], pos=self._pos(meta))

    def const_term(self, meta, items):
        return A.LinearTerm(False, items[0], None, pos=self._pos(meta))

    def linexpr(self, meta, items):
        terms, negate = [], False
        for item in items:
            if isinstance(item, str):
                negate = item == "-"
            else:
                terms.append(A.LinearTerm(negate, item.coef, item.output, pos=item.pos))
                negate = False
        return A.LinearExpr(tuple(terms), pos=self._pos(meta))

    def linear(self, meta, items):
        return A.LinearConstraint(items[0], items[1], items[2], pos=self._pos(meta))

    # -- property pieces
    def option(self, meta, items):
        return A.Option(str(items[0]), items[1], pos=self._pos(meta))

    def options(self, meta, items):
        return _tag("options", tuple(items))

    def weights(self, meta, items):
        return _tag("weights", items[0])

    def naive_search(self, meta, items):
        return A.NaiveSearch(_tagged(items, "options", ()), pos=self._pos(meta))

    def cutting_arg(self, meta, items):
        return _tag("cutting", items[0])

    def oracle_search(self, meta, items):
        cutting = _tagged(items, "cutting", "fixed")
        return A.OracleSearch(cutting, tuple(_of(items, A.Option)), pos=self._pos(meta))

    def target_labels(self, meta, items):
        return A.TargetLabels(tuple(items), pos=self._pos(meta))

    def target_vector(self, meta, items):
        return A.TargetVector(items[0], pos=self._pos(meta))

    def flip_labels(self, meta, items):
        return A.FlipLabels(items[0], pos=self._pos(meta))

    def untargeted(self, meta, items):
        return A.Untargeted(pos=self._pos(meta))

    def attack_method(self, meta, items):
        return A.AttackMethod(items[0], _tagged(items, "options", ()), pos=self._pos(meta))

    def within(self, meta, items):
        return _tag("within", items[0])

    def adversarial(self, meta, items):
        return A.AdversarialInput(items[0][1], pos=self._pos(meta))

    def noise(self, meta, items):
        return A.Noise(items[0], items[1], items[2], pos=self._pos(meta))

    def criterion(self, meta, items):
        return _tag("criterion", (items[0], items[1][1], self._pos(meta)))

    # -- properties
    def verify_prop(self, meta, items):
        name, var = str(items[0]), _names(items)[-1]
        return A.VerifyProperty(name, _tagged(items, "on"), var, items[-2], items[-1],
                                pos=self._pos(meta))

    def maximize_prop(self, meta, items):
        hood = _first(items, A.LayeredNeighbourhood)
        method = _first(items, (A.NaiveSearch, A.OracleSearch))
        cond = [i for i in items[1:] if _is_condition(i)][0]
        return A.MaximizeProperty(str(items[0]), _tagged(items, "on"), hood, cond,
                                  _tagged(items, "weights"), method, pos=self._pos(meta))

    def attack_prop(self, meta, items):
        goal = _first(items, (A.TargetLabels, A.TargetVector, A.FlipLabels, A.Untargeted))
        names = _names(items)
        method = _first(items, A.AttackMethod)
        norm = [i for i in items if isinstance(i, str) and not isinstance(i, Token)][-1]
        return A.AttackProperty(names[0], _tagged(items, "on"), goal, names[-1], method, norm,
                                _tagged(items, "within"), pos=self._pos(meta))

    def patch_prop(self, meta, items):
        names = _names(items)
        cond = [i for i in items[2:] if _is_condition(i)][0]
        norm = [i for i in items if isinstance(i, str) and not isinstance(i, Token)][-1]
        return A.PatchProperty(names[0], _tagged(items, "on"), items[2 if _tagged(items, "on")
                               else 1], cond, tuple(names[1:]), norm,
                               _first(items, A.AdversarialInput), pos=self._pos(meta))

    def global_prop(self, meta, items):
        kind, options, pos = _tagged(items, "criterion")
        for option in options:
            if option.name not in _CRITERION_KEYS[kind]:
                keys = ", ".join(_CRITERION_KEYS[kind])
                self.problems.append(make(option.pos, f"unknown option '{option.name}' of "
                                          f"{kind}(...); expected one of {keys}", self.text))
        criterion = _criterion(kind, options, pos)
        return A.GlobalProperty(str(items[0]), str(items[1]), items[2], items[3], criterion,
                                pos=self._pos(meta))


def _criterion(kind: str, options: tuple[A.Option, ...], pos: A.SourcePos):
    """Turn ``correct(...)``/``robust(...)`` options into typed fields."""
    given = {o.name: o.value for o in options}
    if kind == "correct":
        return A.Correctness(given.get("delta"), given.get("confidence"), given.get("samples"),
                             pos=pos)
    return A.EpsRobustness(given.get("eps"), given.get("delta"), given.get("confidence"),
                           given.get("samples"), pos=pos)


_CRITERION_KEYS = {
    "correct": ("delta", "confidence", "samples"),
    "robust": ("eps", "delta", "confidence", "samples"),
}


def _flatten(items, kind) -> tuple:
    out = []
    for item in items:
        out.extend(item.operands if isinstance(item, kind) else (item,))
    return tuple(out)


_CONDITIONS = (A.Present, A.Absent, A.Unchanged, A.LabelSetIs, A.ArgmaxIs, A.LinearConstraint,
               A.And, A.Or, A.Not)
_PROPERTIES = (A.VerifyProperty, A.MaximizeProperty, A.AttackProperty, A.PatchProperty,
               A.GlobalProperty)


def _is_condition(item) -> bool:
    return isinstance(item, _CONDITIONS)


def _is_property(item) -> bool:
    return isinstance(item, _PROPERTIES)
