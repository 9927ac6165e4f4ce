"""Semantic checks that need no network: names, types, ranges, lengths and files.

:func:`check_spec` collects every problem and raises one :class:`SpecError` listing them
all, each with its position. It runs on a *resolved* spec (see :mod:`.resolve`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from robustc.specs import ast as A
from robustc.specs.diagnostics import Diagnostic, make, raise_if_any

__all__ = ["check_spec", "resolve_path", "METHOD_OPTIONS"]

#: The options each search or attack method accepts (anything else is an error).
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "naive": ("precision", "max_eps", "timeout"),
    "oracle": ("iterations", "step", "precision", "max_eps", "timeout"),
    "jma": ("preset", "max_iter", "confidence", "step", "fallback_step",
            "fallback_confidence", "timeout"),
    "mlcw": ("max_iter", "confidence", "c", "learning_rate", "binary_steps", "timeout"),
    "pgd": ("steps", "step_size", "restarts", "eps", "timeout"),
    "adversarial": ("pixels", "delta", "relax"),
}
#: Options whose value is one of a few words, written as a string (``relax="region"``).
WORD_OPTIONS: dict[str, tuple[str, ...]] = {"relax": ("marks", "region"),
                                            "preset": ("search", "fast")}
#: The file kinds a data set's labels may be read from.
LABEL_FILES = (".npy", ".csv", ".txt")
#: The names a per-element mask pattern may substitute.
MASK_FIELDS = ("stem", "i")
_SET_CONDITIONS = (A.Present, A.Absent, A.Unchanged, A.LabelSetIs)


def resolve_path(spec: A.Spec, path: A.PathRef) -> Path:
    """Return the absolute path a :class:`PathRef` names (relative to the spec's directory)."""
    return (Path(spec.source_dir) / path.text).resolve()


def check_spec(spec: A.Spec, *, files: bool = True, earlier: list | None = None) -> None:
    """Check a resolved spec; raise :class:`SpecError` listing every problem found.

    With ``files`` true, every referenced file must exist and stay inside the spec's
    directory tree unless written ``external "..."``. ``earlier`` diagnostics (e.g. from
    resolution) are reported together with these.
    """
    checker = _Checker(spec, files)
    checker.run()
    raise_if_any(list(earlier or []) + checker.diags)


class _Checker:
    def __init__(self, spec: A.Spec, files: bool):
        self.spec, self.files = spec, files
        self.diags: list[Diagnostic] = []
        self.networks: dict[str, A.NetworkDecl] = {}
        self.inputs: dict[str, A.InputDecl] = {}
        self.labels: dict[str, A.LabelsDecl] = {}
        self.decodes: dict[str, A.DecodeDecl] = {}
        self.regions: dict[str, A.RegionDecl] = {}

    def error(self, node: A.Node, message: str) -> None:
        self.diags.append(make(node.pos, message, self.spec.source))

    # ------------------------------------------------------------------ value helpers
    def word(self, expr, what: str, words: tuple[str, ...]) -> None:
        """Report a problem unless ``expr`` is a string literal naming one of ``words``."""
        if not isinstance(expr, A.Str) or expr.value not in words:
            self.error(expr, f"{what} must be one of " + ", ".join(f'"{w}"' for w in words))

    def number(self, expr, what: str, *, low=None, high=None, integer=False, strict=False):
        """Return the value of a numeric expression, or None after reporting a problem."""
        if not isinstance(expr, A.Number) or isinstance(expr.value, bool):
            self.error(expr, f"{what} must be a number")
            return None
        value = expr.value
        if not math.isfinite(value):
            self.error(expr, f"{what} must be finite")
            return None
        if integer and value != int(value):
            self.error(expr, f"{what} must be an integer, got {value}")
            return None
        if low is not None and (value <= low if strict else value < low):
            bound = f"> {low}" if strict else f">= {low}"
            self.error(expr, f"{what} must be {bound}, got {value}")
            return None
        if high is not None and value > high:
            self.error(expr, f"{what} must be <= {high}, got {value}")
            return None
        return int(value) if integer else value

    def numbers(self, expr, what: str, **bounds) -> list | None:
        if not isinstance(expr, A.ListExpr):
            self.error(expr, f"{what} must be a list of numbers")
            return None
        values = [self.number(item, f"{what} entry", **bounds) for item in expr.items]
        return None if any(v is None for v in values) else values

    def declare(self, table: dict, decl, kind: str) -> None:
        if decl.name in table:
            first = table[decl.name].pos
            self.error(decl, f"{kind} '{decl.name}' is already declared at line {first.line}")
        else:
            table[decl.name] = decl

    def path(self, path: A.PathRef, what: str, *, folder: bool = False) -> None:
        if not self.files:
            return
        base = Path(self.spec.source_dir).resolve()
        target = resolve_path(self.spec, path)
        if not path.external and not _inside(target, base):
            self.error(path, f"{what} path '{path.text}' leaves the spec's directory "
                             f"({base}); write external \"{path.text}\" to allow it")
        elif folder and not target.is_dir():
            self.error(path, f"{what} folder not found: {target}")
        elif not folder and not target.is_file():
            self.error(path, f"{what} file not found: {target}")

    # ------------------------------------------------------------------ declarations
    def run(self) -> None:
        params: dict = {}
        for decl in self.spec.declarations:
            method = getattr(self, "decl_" + type(decl).__name__)
            method(decl, params)
        seen: dict = {}
        for prop in self.spec.properties:
            self.declare(seen, prop, "property")
            getattr(self, "prop_" + type(prop).__name__)(prop)

    def decl_ParamDecl(self, decl: A.ParamDecl, params: dict) -> None:
        self.declare(params, decl, "parameter")

    def decl_NetworkDecl(self, decl: A.NetworkDecl, _params) -> None:
        source = decl.source
        if isinstance(source, A.OnnxFile):
            self.path(source.path, "network")
        else:
            for name in (source.outer, source.inner):
                if name not in self.networks:
                    self.error(source, f"unknown network '{name}' (declare it before "
                                       f"composing it)")
        self.declare(self.networks, decl, "network")

    def decl_InputDecl(self, decl: A.InputDecl, _params) -> None:
        source = decl.source
        if isinstance(source, (A.NpyFile, A.PngFile)):
            self.path(source.path, "input")
        elif isinstance(source, A.DataSet):
            files = source.files
            self.path(files.path, "data set", folder=isinstance(files, A.DataFolder))
            for what, path in (("labels", source.labels), ("targets", source.targets)):
                if path is not None:
                    self.path(path, what)
                    if Path(path.text).suffix.lower() not in LABEL_FILES:
                        self.error(path, f"a {what} file must end in {', '.join(LABEL_FILES)}")
        elif isinstance(source, A.DataElement):
            pass  # made by the data-set expansion, which checked it
        else:
            _inline_shape(source.values, self)
        if decl.domain is not None:
            lo = self.number(decl.domain.lo, "domain lower bound")
            hi = self.number(decl.domain.hi, "domain upper bound")
            if lo is not None and hi is not None and lo >= hi:
                self.error(decl.domain, f"empty domain [{lo}, {hi}]")
        if decl.reshape is not None:
            self.numbers(decl.reshape, "reshape dimension", low=1, integer=True)
        self.declare(self.inputs, decl, "input")

    def decl_LabelsDecl(self, decl: A.LabelsDecl, _params) -> None:
        if not decl.names:
            self.error(decl, "a label list needs at least one label")
        dupes = sorted({n for n in decl.names if decl.names.count(n) > 1})
        if dupes:
            self.error(decl, f"duplicate label names: {', '.join(dupes)}")
        self.declare(self.labels, decl, "label list")

    def decl_DecodeDecl(self, decl: A.DecodeDecl, _params) -> None:
        if decl.network not in self.networks:
            self.error(decl, f"unknown network '{decl.network}'")
        if decl.labels not in self.labels:
            self.error(decl, f"unknown label list '{decl.labels}'")
        if decl.network in self.decodes:
            self.error(decl, f"network '{decl.network}' already has a decode declaration")
        else:
            self.decodes[decl.network] = decl
        dec = decl.decoder
        if isinstance(dec, A.MultiLabelDecoder):
            strict = dec.score == "sigmoid"
            self.number(dec.threshold, "sigmoid threshold" if strict else "logit threshold",
                        **({"low": 0, "high": 1, "strict": True} if strict else {}))
        elif isinstance(dec, A.TopKDecoder):
            k = self.number(dec.k, "k", low=1, integer=True)
            names = self.labels.get(decl.labels)
            if k is not None and names is not None and k > len(names.names):
                self.error(dec.k, f"top-{k} needs at least {k} labels, "
                                  f"'{decl.labels}' has {len(names.names)}")
        elif isinstance(dec, A.EcocDecoder):
            self.path(dec.codebook, "codebook")

    def decl_RegionDecl(self, decl: A.RegionDecl, _params) -> None:
        self.region(decl.region)
        self.declare(self.regions, decl, "region")

    def region(self, region) -> None:
        if isinstance(region, A.RegionRef):
            if region.name not in self.regions:
                self.error(region, f"unknown region '{region.name}' (regions must be "
                                   f"declared before use)")
        elif isinstance(region, A.Box):
            self.box(region)
        elif isinstance(region, A.MaskFile):
            if "{" in region.path.text or "}" in region.path.text:
                self.mask_pattern(region.path)  # per element: the expansion opens the files
            else:
                self.path(region.path, "mask")
        elif isinstance(region, A.PixelPredicate):
            if region.input not in self.inputs:
                self.error(region, f"unknown input '{region.input}'")
            self.number(region.threshold, "pixel threshold")
        else:
            self.region(region.left)
            self.region(region.right)

    def mask_pattern(self, path: A.PathRef) -> None:
        """A per-element mask name: only ``{stem}`` and ``{i}`` may be substituted."""
        import string

        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(path.text) if f is not None]
        except ValueError as exc:
            self.error(path, f"bad mask pattern '{path.text}': {exc}")
            return
        wrong = [f for f in fields if f not in MASK_FIELDS]
        if wrong or not fields:
            self.error(path, f"a mask pattern may name only {{stem}} and {{i}} (the element's "
                             f"file stem and index), got '{path.text}'")

    def box(self, box: A.Box) -> None:
        axes = [d.axis for d in box.dims]
        for axis in sorted({a for a in axes if axes.count(a) > 1}):
            self.error(box, f"box gives '{axis}' more than once")
        for dim in box.dims:
            start = self.number(dim.start, f"{dim.axis} start", low=0, integer=True)
            stop = self.number(dim.stop, f"{dim.axis} stop", low=0, integer=True)
            if start is not None and stop is not None and start >= stop:
                self.error(dim, f"empty range {dim.axis} {start}:{stop} (stop must exceed "
                                f"start; ranges are half-open)")

    def rings(self, rings: A.Rings) -> int | None:
        self.region(rings.region)
        count = self.number(rings.count, "number of rings", low=0, integer=True)
        return None if count is None else count + 1

    # ------------------------------------------------------------------ sets
    def input_name(self, node: A.Node, name: str) -> None:
        if name not in self.inputs:
            self.error(node, f"unknown input '{name}'")

    def pset(self, pset, *, maximize: bool = False) -> int | None:
        """Check a perturbation set; return its number of layers (layered sets only)."""
        self.input_name(pset, pset.input)
        if isinstance(pset, A.LinfBall):
            self.number(pset.eps, "eps", low=0)
            if pset.region is not None:
                self.region(pset.region)
            return None
        layers = self.rings(pset.rings)
        if maximize:
            if pset.eps is not None:
                self.error(pset.eps, "maximize searches for the budgets: leave out eps=")
            return layers
        if pset.eps is None:
            self.error(pset, "a layered neighbourhood needs eps=[...] (one budget per layer)")
            return layers
        budgets = self.numbers(pset.eps, "eps", low=0)
        if budgets is not None and layers is not None and len(budgets) != layers:
            self.error(pset.eps, f"eps has {len(budgets)} budgets but rings(..., "
                                 f"{layers - 1}) has {layers} layers (0..{layers - 1})")
        return layers

    # ------------------------------------------------------------------ conditions
    def network_of(self, prop) -> str | None:
        if prop.network is not None:
            if prop.network not in self.networks:
                self.error(prop, f"unknown network '{prop.network}'")
                return None
            return prop.network
        if len(self.networks) == 1:
            return next(iter(self.networks))
        self.error(prop, f"property '{prop.name}' must say which network it is about "
                         f"('on NAME'): the spec declares {len(self.networks)} networks")
        return None

    def label(self, expr, net: str | None) -> None:
        if isinstance(expr, A.DataLabel):
            self.data_label(expr)
            return
        names = self.label_names(net)
        if isinstance(expr, A.Str):
            if names is None:
                self.error(expr, f"label \"{expr.value}\" used but network '{net}' has no "
                                 f"decode ... over LABELS declaration")
            elif expr.value not in names:
                self.error(expr, f"unknown label \"{expr.value}\" (labels: "
                                 f"{', '.join(names)})")
            return
        index = self.number(expr, "label", low=0, integer=True)
        if index is not None and names is not None and index >= len(names):
            self.error(expr, f"label {index} out of range: there are {len(names)} labels "
                             f"(0..{len(names) - 1})")

    def data_label(self, expr: A.DataLabel) -> None:
        decl = self.inputs.get(expr.input)
        if decl is None:
            self.error(expr, f"unknown input '{expr.input}'")
        elif not isinstance(decl.source, A.DataSet):
            self.error(expr, f"'{expr.input}.{expr.kind}' needs a data set: input "
                             f"'{expr.input}' is one array")
        elif getattr(decl.source, expr.kind + "s") is None:
            self.error(expr, f"data set '{expr.input}' has no {expr.kind}s: write "
                             f"dataset(..., {expr.kind}s=\"{expr.kind}s.txt\")")

    def label_names(self, net: str | None) -> tuple[str, ...] | None:
        decode = self.decodes.get(net or "")
        if decode is None or decode.labels not in self.labels:
            return None
        return self.labels[decode.labels].names

    def condition(self, cond, net: str | None) -> None:
        if isinstance(cond, (A.And, A.Or)):
            for operand in cond.operands:
                self.condition(operand, net)
        elif isinstance(cond, A.Not):
            self.condition(cond.operand, net)
        elif isinstance(cond, A.LinearConstraint):
            for side in (cond.lhs, cond.rhs):
                for term in side.terms:
                    if term.coef is not None:
                        self.number(term.coef, "coefficient")
                    if term.output is not None:
                        self.label(term.output, net)
        else:
            if isinstance(cond, _SET_CONDITIONS) and net is not None and net in self.networks \
                    and net not in self.decodes:
                self.error(cond, f"this condition reads decoded labels, but network '{net}' "
                                 f"has no decode declaration")
            for label in getattr(cond, "labels", ()) or (getattr(cond, "label", None),):
                if label is not None:
                    self.label(label, net)

    def options(self, options, method: str) -> dict:
        allowed = METHOD_OPTIONS[method]
        given: dict = {}
        for option in options:
            if option.name not in allowed:
                self.error(option, f"unknown option '{option.name}' of {method}; expected "
                                   f"one of {', '.join(allowed)}")
            elif option.name in given:
                self.error(option, f"option '{option.name}' given twice")
            else:
                given[option.name] = option.value
                if option.name in WORD_OPTIONS:
                    self.word(option.value, option.name, WORD_OPTIONS[option.name])
                    continue
                integer = option.name in ("pixels", "steps", "restarts", "iterations",
                                          "max_iter", "binary_steps")
                self.number(option.value, option.name, low=0, integer=integer)
        return given

    # ------------------------------------------------------------------ properties
    def prop_VerifyProperty(self, prop: A.VerifyProperty) -> None:
        net = self.network_of(prop)
        self.pset(prop.domain)
        self.condition(prop.condition, net)

    def prop_MaximizeProperty(self, prop: A.MaximizeProperty) -> None:
        net = self.network_of(prop)
        layers = self.pset(prop.neighbourhood, maximize=True)
        self.condition(prop.condition, net)
        if prop.weights is not None:
            weights = self.numbers(prop.weights, "weight", low=0)
            if weights is not None and layers is not None and len(weights) != layers:
                self.error(prop.weights, f"{len(weights)} weights for {layers} layers")
        kind = "naive" if isinstance(prop.method, A.NaiveSearch) else "oracle"
        self.options(prop.method.options, kind)

    def prop_AttackProperty(self, prop: A.AttackProperty) -> None:
        net = self.network_of(prop)
        self.input_name(prop, prop.input)
        goal = prop.goal
        if isinstance(goal, A.TargetLabels):
            for label in goal.labels:
                self.label(label, net)
        elif isinstance(goal, A.TargetVector):
            bits = self.numbers(goal.vector, "target vector")
            names = self.label_names(net)
            if bits is not None and names is not None and len(bits) != len(names):
                self.error(goal.vector, f"target vector has {len(bits)} entries for "
                                        f"{len(names)} labels")
        elif isinstance(goal, A.FlipLabels):
            k = self.number(goal.count, "number of labels to flip", low=1, integer=True)
            names = self.label_names(net)
            if k is not None and names is not None and k > len(names):
                self.error(goal.count, f"cannot flip {k} of {len(names)} labels")
        self.options(prop.method.options, prop.method.kind)
        if prop.within is not None:
            self.pset(prop.within)
            if prop.within.input != prop.input:
                self.error(prop.within, f"the attack starts from '{prop.input}' but 'within' "
                                        f"is a set around '{prop.within.input}'")

    def prop_PatchProperty(self, prop: A.PatchProperty) -> None:
        net = self.network_of(prop)
        if not isinstance(prop.layer, A.Str):
            self.number(prop.layer, "layer index", low=0, integer=True)
        self.condition(prop.condition, net)
        for name in prop.inputs:
            self.input_name(prop, name)
        if prop.adversarial is not None:
            given = self.options(prop.adversarial.options, "adversarial")
            if "pixels" not in given:
                self.error(prop.adversarial, "adversarial(...) needs a pixel budget: pixels=K")

    def prop_GlobalProperty(self, prop: A.GlobalProperty) -> None:
        decl = self.networks.get(prop.network)
        if decl is None:
            self.error(prop, f"unknown network '{prop.network}'")
        elif not isinstance(decl.source, A.Compose):
            self.error(prop, f"'{prop.network}' must be compose(classifier, generator)")
        net = decl.source.outer if decl and isinstance(decl.source, A.Compose) else None
        noise = prop.noise
        a = self.number(noise.a, "mean" if noise.kind == "normal" else "lower bound")
        b = self.number(noise.b, "standard deviation" if noise.kind == "normal"
                        else "upper bound")
        if a is not None and b is not None and (b <= 0 if noise.kind == "normal" else b <= a):
            self.error(noise, "the noise distribution is empty or degenerate")
        self.label(prop.label, net)
        self.criterion(prop)

    def criterion(self, prop: A.GlobalProperty) -> None:
        crit = prop.criterion
        if crit.delta is None:
            self.error(crit, "delta= is required")
        else:
            self.number(crit.delta, "delta", low=0, high=1)
        if crit.confidence is not None:
            self.number(crit.confidence, "confidence", low=0, high=1, strict=True)
        if crit.samples is not None:
            self.number(crit.samples, "samples", low=1, integer=True)
        if isinstance(crit, A.EpsRobustness):
            if crit.eps is None:
                self.error(crit, "robust(...) needs eps=")
            else:
                self.number(crit.eps, "eps", low=0)


def _inside(target: Path, base: Path) -> bool:
    try:
        return os.path.commonpath([str(target), str(base)]) == str(base)
    except ValueError:
        return False


def _inline_shape(expr, checker: _Checker) -> tuple[int, ...] | None:
    """Return the shape of nested lists of numbers, reporting ragged or non-numeric ones."""
    if not isinstance(expr, A.ListExpr):
        checker.number(expr, "input value")
        return ()
    shapes = [_inline_shape(item, checker) for item in expr.items]
    if not shapes:
        checker.error(expr, "an inline input must not be empty")
        return None
    if any(s is None for s in shapes) or len(set(shapes)) > 1:
        if all(s is not None for s in shapes):
            checker.error(expr, "an inline input must be rectangular (ragged nested lists)")
        return None
    return (len(shapes),) + shapes[0]
