"""robustc embedded in Python: load or build a spec, then verify, maximize or attack.

The same concepts as the ``.rspec`` language (docs/language.md) and the same checks:
:class:`SpecBuilder` builds the AST the parser would build and runs the checker on it,
so a mistake gives the same :class:`~robustc.errors.SpecError`, positioned at the line of
the Python call that made the offending piece. A network is an ONNX path, an
``onnx.ModelProto`` or a ``torch.nn.Module`` with an example input (exported with
``torch.onnx.export``; counterexamples are replayed by onnxruntime on that export).
Results are the existing dataclasses: :class:`robustc.verify.Result`,
:class:`robustc.analyses.maximize.MaximizeResult`, :class:`robustc.analyses.attack.AttackReport`.
See docs/api.md.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from robustc.specs import ast as A
from robustc.specs.diagnostics import Diagnostic, raise_if_any

__all__ = [
    "load_spec", "SpecBuilder", "verify", "maximize", "attack",
    "linf", "layered", "rings", "box", "mask", "masks", "pixels", "union", "intersection",
    "difference", "argmax", "multilabel", "topk", "present", "absent", "unchanged",
    "label_set", "argmax_is", "linear", "all_of", "any_of", "not_", "target", "untargeted",
    "flip", "data_label",
]


# ------------------------------------------------------------------------------ positions
def _here(depth: int = 1) -> A.SourcePos:
    """The position of the user's call: the first frame outside this module."""
    frame = sys._getframe(depth)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    if frame is None:
        return A.SourcePos("<python>", 1, 1, 1, 1)
    return A.SourcePos(frame.f_code.co_filename, frame.f_lineno, 1, frame.f_lineno, 1)


def _fail(pos: A.SourcePos, message: str):
    raise_if_any([Diagnostic(pos, message)])


def _expr(value: Any, pos: A.SourcePos) -> A.Expr:
    """A Python value as a spec expression: numbers, strings, (nested) lists, ``x.label``."""
    if isinstance(value, A.Node):
        return value
    if isinstance(value, bool):
        _fail(pos, f"expected a number, a string or a list, got {value!r}")
    if isinstance(value, (int, float)):
        return A.Number(value, pos=pos)
    if isinstance(value, str):
        return A.Str(value, pos=pos)
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()  # numpy scalars and arrays
        return _expr(value, pos)
    if isinstance(value, (list, tuple)):
        return A.ListExpr(tuple(_expr(v, pos) for v in value), pos=pos)
    _fail(pos, f"expected a number, a string or a list, got {type(value).__name__}")
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------ regions
def box(*, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None,
        channels: tuple[int, int] | None = None) -> A.Box:
    """``box(rows a:b, cols c:d, channels e:f)``: half-open ranges; an axis left out spans
    the input."""
    pos = _here()
    dims = tuple(A.BoxDim(axis, _expr(r[0], pos), _expr(r[1], pos), pos=pos)
                 for axis, r in (("rows", rows), ("cols", cols), ("channels", channels))
                 if r is not None)
    return A.Box(dims, pos=pos)


def mask(array_or_path) -> _Pending:
    """``mask(...)``: a boolean (H, W) or (C, H, W) array, or a ``.npy`` path."""
    return _Pending("mask", array_or_path, _here())


def masks(stack_or_pattern) -> _Pending:
    """One mask per element of a data set: a stacked array (N, H, W) or a path pattern with
    ``{stem}`` or ``{i}`` (``"masks/{stem}.npy"``)."""
    return _Pending("masks", stack_or_pattern, _here())


def pixels(input: str, op: str, threshold: float) -> A.PixelPredicate:
    """``pixels(x > t)``: the elements of input ``input`` whose value compares with ``t``."""
    pos = _here()
    if op not in (">", ">=", "<", "<="):
        _fail(pos, f"pixels(...) compares with >, >=, < or <=, got {op!r}")
    return A.PixelPredicate(input, op, _expr(threshold, pos), pos=pos)


def union(a, b) -> A.RegionUnion:
    """``a | b`` (regions, or region names)."""
    pos = _here()
    return A.RegionUnion(_region(a, pos), _region(b, pos), pos=pos)


def intersection(a, b) -> A.RegionIntersection:
    """``a & b``."""
    pos = _here()
    return A.RegionIntersection(_region(a, pos), _region(b, pos), pos=pos)


def difference(a, b) -> A.RegionDifference:
    """``a - b``."""
    pos = _here()
    return A.RegionDifference(_region(a, pos), _region(b, pos), pos=pos)


def _region(value, pos: A.SourcePos):
    return A.RegionRef(value, pos=pos) if isinstance(value, str) else value


class _Pending:
    """A piece that needs the builder's folder (an array to save) before it is a node."""

    def __init__(self, kind: str, value, pos: A.SourcePos):
        self.kind, self.value, self.pos = kind, value, pos


# ------------------------------------------------------------------------------ sets
def rings(region, metric: str = "chebyshev", count: int = 1) -> A.Rings:
    """``rings(region, metric, n)``: layers 0..n around a region (a name or a region)."""
    pos = _here()
    return A.Rings(_region(region, pos), metric, _expr(count, pos), pos=pos)


def linf(input: str, eps, inside=None) -> A.LinfBall:
    """``linf(x, eps [, inside region])``."""
    pos = _here()
    return A.LinfBall(input, _expr(eps, pos), None if inside is None else _region(inside, pos),
                      pos=pos)


def layered(input: str, rings: A.Rings, eps: Sequence[float] | None = None
            ) -> A.LayeredNeighbourhood:
    """``layered(x, rings(...), eps=[...])`` (leave out ``eps`` in a maximize property)."""
    pos = _here()
    return A.LayeredNeighbourhood(input, rings, None if eps is None else _expr(list(eps), pos),
                                  pos=pos)


# ------------------------------------------------------------------------------ decoders
def argmax() -> A.ArgmaxDecoder:
    """Single-label decoding: the label of the largest output."""
    return A.ArgmaxDecoder(pos=_here())


def multilabel(threshold: float = 0.0, score: str = "logit") -> A.MultiLabelDecoder:
    """``multilabel(logit > t)`` or, with ``score="sigmoid"``, ``multilabel(sigmoid > p)``."""
    pos = _here()
    if score not in ("logit", "sigmoid"):
        _fail(pos, f"score must be 'logit' or 'sigmoid', got {score!r}")
    return A.MultiLabelDecoder(score, _expr(threshold, pos), pos=pos)


def topk(k: int) -> A.TopKDecoder:
    """``topk(k)``: the k largest outputs are the labels present."""
    pos = _here()
    return A.TopKDecoder(_expr(k, pos), pos=pos)


# ------------------------------------------------------------------------------ conditions
def data_label(input: str, kind: str = "label") -> A.DataLabel:
    """``x.label`` (``kind="target"``: ``x.target``): the label (target) of data set
    ``input``'s element."""
    pos = _here()
    if kind not in ("label", "target"):
        _fail(pos, f"kind must be 'label' or 'target', got {kind!r}")
    return A.DataLabel(input, kind, pos=pos)


def present(label) -> A.Present:
    """``present(label)`` (a name, an index or :func:`data_label`)."""
    pos = _here()
    return A.Present(_expr(label, pos), pos=pos)


def absent(label) -> A.Absent:
    """``absent(label)``."""
    pos = _here()
    return A.Absent(_expr(label, pos), pos=pos)


def unchanged() -> A.Unchanged:
    """``unchanged``: the decoded labels of the centre input."""
    return A.Unchanged(pos=_here())


def label_set(*labels) -> A.LabelSetIs:
    """``labels == {a, b}``."""
    pos = _here()
    return A.LabelSetIs(tuple(_expr(v, pos) for v in labels), pos=pos)


def argmax_is(label) -> A.ArgmaxIs:
    """``argmax == label``."""
    pos = _here()
    return A.ArgmaxIs(_expr(label, pos), pos=pos)


def linear(coefficients: dict, op: str, constant: float = 0.0) -> A.LinearConstraint:
    """``sum(c * y[label]) op constant``, e.g. ``linear({"7": 1, "5": -1}, ">", -1)``."""
    pos = _here()
    if op not in (">=", "<=", ">", "<", "=="):
        _fail(pos, f"a linear condition compares with >=, <=, >, < or ==, got {op!r}")
    terms = tuple(A.LinearTerm(c < 0, None if abs(c) == 1 else A.Number(abs(c), pos=pos),
                               _expr(label, pos), pos=pos)  # y[i] is 1 * y[i], as parsed
                  for label, c in coefficients.items())
    rhs = A.LinearTerm(constant < 0, A.Number(abs(constant), pos=pos), None, pos=pos)
    return A.LinearConstraint(A.LinearExpr(terms, pos=pos), op,
                              A.LinearExpr((rhs,), pos=pos), pos=pos)


def all_of(*conditions) -> A.And:
    """Conjunction (``a and b``)."""
    return A.And(tuple(conditions), pos=_here())


def any_of(*conditions) -> A.Or:
    """Disjunction (``a or b``)."""
    return A.Or(tuple(conditions), pos=_here())


def not_(condition) -> A.Not:
    """Negation (``not a``)."""
    return A.Not(condition, pos=_here())


# ------------------------------------------------------------------------------ attack goals
def target(*labels) -> A.TargetLabels:
    """``target {a, b}``: the wanted decoded label set."""
    pos = _here()
    return A.TargetLabels(tuple(_expr(v, pos) for v in labels), pos=pos)


def untargeted() -> A.Untargeted:
    """``untargeted``: any change of the decoded output."""
    return A.Untargeted(pos=_here())


def flip(count: int) -> A.FlipLabels:
    """``flip k labels``."""
    pos = _here()
    return A.FlipLabels(_expr(count, pos), pos=pos)


# ------------------------------------------------------------------------------ builder
class SpecBuilder:
    """Build a spec in Python: declarations and properties in the order they are added.

    Arrays and in-memory networks are saved in ``folder`` (default: a temporary folder,
    removed by :meth:`close`, at the end of a ``with`` block or when Python exits), which
    becomes the spec's directory. :meth:`build` runs the checks of ``robustc check``;
    every node carries the position of the Python call that made it.
    """

    def __init__(self, folder: str | os.PathLike | None = None):
        if folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="robustc-spec-"))
            self._owned = True
            atexit.register(shutil.rmtree, self.folder, ignore_errors=True)
        else:
            self.folder = Path(folder).resolve()
            self.folder.mkdir(parents=True, exist_ok=True)
            self._owned = False
        self.declarations: list = []
        self.properties: list = []

    def __enter__(self) -> SpecBuilder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove the temporary folder (not a folder given by the caller)."""
        if self._owned:
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- files
    def _file(self, name: str, pos: A.SourcePos) -> Path:
        path = self.folder / name
        if path.exists():
            _fail(pos, f"'{name}' is declared twice")
        return path

    def _save(self, stem: str, array, pos: A.SourcePos) -> A.PathRef:
        import numpy as np

        path = self._file(f"{stem}.npy", pos)
        np.save(path, np.asarray(array))
        return A.PathRef(path.name, False, pos=pos)

    @staticmethod
    def _external(path, pos: A.SourcePos) -> A.PathRef:
        return A.PathRef(str(Path(path).resolve()), True, pos=pos)

    # -- declarations
    def param(self, name: str, value) -> SpecBuilder:
        """``param NAME = value`` (overridable by :meth:`build`'s ``overrides``)."""
        pos = _here()
        self.declarations.append(A.ParamDecl(name, _expr(value, pos), pos=pos))
        return self

    def network(self, name: str, model, example_input=None) -> SpecBuilder:
        """``network NAME = onnx(...)``: ``model`` is an ONNX path, an ``onnx.ModelProto``
        or a ``torch.nn.Module`` (then ``example_input``, a tensor or array of the
        network's input shape with its batch axis, is required: it is exported with
        ``torch.onnx.export``)."""
        pos = _here()
        if isinstance(model, (str, os.PathLike)):
            ref = self._external(model, pos)
        elif type(model).__name__ == "ModelProto":
            import onnx

            path = self._file(f"{name}.onnx", pos)
            onnx.save(model, str(path))
            ref = A.PathRef(path.name, False, pos=pos)
        elif _is_torch_module(model):
            ref = self._export(name, model, example_input, pos)
        else:
            _fail(pos, f"network '{name}': expected an ONNX path, an onnx.ModelProto or a "
                       f"torch.nn.Module, got {type(model).__name__}")
        self.declarations.append(A.NetworkDecl(name, A.OnnxFile(ref, pos=pos), pos=pos))
        return self

    def _export(self, name: str, module, example, pos: A.SourcePos) -> A.PathRef:
        if example is None:
            _fail(pos, f"network '{name}': a torch.nn.Module needs example_input= (a tensor "
                       f"of its input shape, batch axis included) to be exported to ONNX")
        import torch

        example = torch.as_tensor(example, dtype=torch.float32)
        path = self._file(f"{name}.onnx", pos)
        was_training = module.training
        module.eval()
        try:
            with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(module, (example,), str(path), input_names=["input"],
                                  output_names=["output"], opset_version=13,
                                  do_constant_folding=True, dynamo=False)
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds; all mean "cannot"
            path.unlink(missing_ok=True)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _fail(pos, f"network '{name}': torch.onnx.export failed with an example input of "
                       f"shape {list(example.shape)}: {first}")
        finally:
            module.train(was_training)
        return A.PathRef(path.name, False, pos=pos)

    def input(self, name: str, value, *, domain: tuple[float, float] | None = None,
              reshape: Sequence[int] | None = None, mode: str = "grey") -> SpecBuilder:
        """``input NAME = npy(...) | png(...)``: an array (saved), or a ``.npy``/``.png``
        path (``mode`` grey or rgb for a PNG); ``domain`` defaults to [0, 1]."""
        pos = _here()
        if isinstance(value, (str, os.PathLike)):
            ref = self._external(value, pos)
            source = A.PngFile(ref, mode, pos=pos) if str(value).lower().endswith(".png") \
                else A.NpyFile(ref, pos=pos)
        else:
            source = A.NpyFile(self._save(name, value, pos), pos=pos)
        self.declarations.append(self._input(name, source, domain, reshape, pos))
        return self

    def dataset(self, name: str, images, *, labels=None, targets=None,
                domain: tuple[float, float] | None = None,
                reshape: Sequence[int] | None = None) -> SpecBuilder:
        """``input NAME = dataset(npy(...), labels=..., targets=...)``: a stacked array
        (N, ...) or a folder path of ``.npy``/``.png`` files; ``labels`` (``targets``) one
        label per element (a sequence, saved, or a labels file path). Properties over it
        expand per element."""
        pos = _here()
        if isinstance(images, (str, os.PathLike)):
            files = A.DataFolder(self._external(images, pos), None, "grey", pos=pos)
        else:
            files = A.NpyFile(self._save(name, images, pos), pos=pos)
        refs = []
        for kind, values in (("labels", labels), ("targets", targets)):
            if values is None or isinstance(values, (str, os.PathLike)):
                refs.append(None if values is None else self._external(values, pos))
            else:
                refs.append(self._save(f"{name}_{kind}", list(values), pos))
        source = A.DataSet(files, refs[0], refs[1], pos=pos)
        self.declarations.append(self._input(name, source, domain, reshape, pos))
        return self

    @staticmethod
    def _input(name, source, domain, reshape, pos) -> A.InputDecl:
        dom = None if domain is None else A.Domain(_expr(domain[0], pos), _expr(domain[1], pos),
                                                   pos=pos)
        shape = None if reshape is None else _expr(list(reshape), pos)
        return A.InputDecl(name, source, dom, shape, pos=pos)

    def labels(self, name: str, names: Iterable[str]) -> SpecBuilder:
        """``labels NAME = [...]``: output names, in output order."""
        self.declarations.append(A.LabelsDecl(name, tuple(str(n) for n in names), pos=_here()))
        return self

    def decode(self, network: str, decoder, labels: str) -> SpecBuilder:
        """``decode NETWORK as DECODER over LABELS`` (:func:`argmax`, :func:`multilabel`,
        :func:`topk`)."""
        self.declarations.append(A.DecodeDecl(network, decoder, labels, pos=_here()))
        return self

    def region(self, name: str, region) -> SpecBuilder:
        """``region NAME = ...`` (:func:`box`, :func:`mask`, :func:`masks`, :func:`pixels`,
        :func:`union`, ... or another region's name)."""
        pos = _here()
        self.declarations.append(A.RegionDecl(name, self._region(name, region, pos), pos=pos))
        return self

    def _region(self, name: str, region, pos: A.SourcePos):
        if isinstance(region, str):
            return A.RegionRef(region, pos=pos)
        if not isinstance(region, _Pending):
            return region
        value, at = region.value, region.pos
        if isinstance(value, (str, os.PathLike)):
            return A.MaskFile(self._external(value, at) if region.kind == "mask" else
                              A.PathRef(str(Path(value).resolve()), True, pos=at), pos=at)
        if region.kind == "mask":
            return A.MaskFile(self._save(f"{name}_mask", value, at), pos=at)
        import numpy as np

        folder = self.folder / f"{name}_masks"
        folder.mkdir(exist_ok=True)
        for i, item in enumerate(np.asarray(value)):
            np.save(folder / f"{i}.npy", item)
        return A.MaskFile(A.PathRef(f"{folder.name}/{{i}}.npy", False, pos=at), pos=at)

    # -- properties
    def verify(self, name: str, domain, condition, *, network: str | None = None
               ) -> SpecBuilder:
        """``verify NAME [on NET]: forall x' in DOMAIN: CONDITION``."""
        self.properties.append(A.VerifyProperty(name, network, "x'", domain, condition,
                                                pos=_here()))
        return self

    def maximize(self, name: str, neighbourhood, condition, *, network: str | None = None,
                 weights: Sequence[float] | None = None, method: str = "naive",
                 cutting: str = "fixed", **options) -> SpecBuilder:
        """``maximize NAME: layered(x, rings(...)) such that COND [weights W] method M``
        (``method`` naive or oracle; ``options`` as in the language)."""
        pos = _here()
        if method not in ("naive", "oracle"):
            _fail(pos, f"method must be 'naive' or 'oracle', got {method!r}")
        opts = tuple(A.Option(k, _expr(v, pos), pos=pos) for k, v in options.items())
        search = A.NaiveSearch(opts, pos=pos) if method == "naive" else \
            A.OracleSearch(cutting, opts, pos=pos)
        w = None if weights is None else _expr(list(weights), pos)
        self.properties.append(A.MaximizeProperty(name, network, neighbourhood, condition, w,
                                                  search, pos=pos))
        return self

    def attack(self, name: str, goal, input: str, *, method: str = "pgd", norm: str = "linf",
               network: str | None = None, within=None, **options) -> SpecBuilder:
        """``attack NAME: GOAL from INPUT using METHOD norm N [within SET]`` (:func:`target`,
        :func:`untargeted`, :func:`flip`)."""
        pos = _here()
        if method not in ("jma", "mlcw", "pgd") or norm not in ("l0", "l1", "l2", "linf"):
            _fail(pos, f"method must be jma, mlcw or pgd and norm l0, l1, l2 or linf; got "
                       f"{method!r}, {norm!r}")
        opts = tuple(A.Option(k, _expr(v, pos), pos=pos) for k, v in options.items())
        self.properties.append(A.AttackProperty(name, network, goal, input,
                                                A.AttackMethod(method, opts, pos=pos), norm,
                                                within, pos=pos))
        return self

    def spec(self) -> A.Spec:
        """The AST as built (not resolved or checked)."""
        return A.Spec(tuple(self.declarations), tuple(self.properties),
                      source_dir=str(self.folder))

    def build(self, overrides: dict | None = None, *, networks: bool = True) -> A.Spec:
        """Resolve and check the spec as ``robustc check`` does (``networks``: also against
        the ONNX graphs); returns the checked spec (data sets expanded). Raises
        :class:`SpecError` listing every problem."""
        from robustc import specs

        resolved = specs.check(self.spec(), overrides)
        if networks:
            specs.check_networks(resolved)
        return resolved


def _is_torch_module(model) -> bool:
    torch = sys.modules.get("torch")  # a module can only exist if torch was imported
    return torch is not None and isinstance(model, torch.nn.Module)


# ------------------------------------------------------------------------------ running
def load_spec(path_or_text: str | os.PathLike, overrides: dict | None = None, *,
              select: Iterable[str] | None = None, limit: int | None = None,
              networks: bool = True) -> A.Spec:
    """Parse, resolve and check a spec file (a ``Path``, or a string ending in ``.rspec``)
    or spec text, as ``robustc check`` does; ``select``/``limit`` pick data-set elements as
    ``--select``/``--limit`` do. Raises :class:`SpecError`."""
    from robustc import specs

    spec = specs.load(path_or_text, overrides, networks=networks)
    return specs.select_elements(spec, select, limit)


def _checked(spec) -> A.Spec:
    if isinstance(spec, SpecBuilder):
        return spec.build()
    if isinstance(spec, A.Spec):
        return spec
    return load_spec(Path(spec) if isinstance(spec, os.PathLike) else spec)


def verify(spec, properties: Sequence[str] | None = None, **options) -> list:
    """Decide the ``verify`` properties of ``spec`` (a checked spec, a builder, a path or
    spec text), or those named in ``properties`` (a data-set property's name names all its
    instances). ``options`` are :class:`robustc.verify.VerifyOptions` fields (``solver``,
    ``time_limit``, ``threads``, ``strategy``, ...). Returns one
    :class:`robustc.verify.Result` per property; a counterexample has been replayed on
    onnxruntime. Raises :class:`SpecError` for a bad spec or property name."""
    from robustc.compiler.spec_lower import verify_problems
    from robustc.verify import VerifyOptions
    from robustc.verify import verify as decide

    opts = VerifyOptions(**{"threads": 1, **options})
    return [decide(p, opts) for p in verify_problems(_checked(spec), properties)]


def maximize(spec, properties: Sequence[str] | None = None, **options) -> list:
    """Search the maximal robust layered neighbourhood of each ``maximize`` property;
    ``options`` are :class:`robustc.analyses.maximize.MaximizeOptions` fields. Returns one
    :class:`~robustc.analyses.maximize.MaximizeResult` per property."""
    from robustc.analyses.maximize import MaximizeOptions, maximize_spec

    runs = maximize_spec(_checked(spec), properties, MaximizeOptions(**options))
    return [result for _, result in runs]


def attack(spec, properties: Sequence[str] | None = None, *, device: str | None = None,
           threads: int = 1) -> list:
    """Run each ``attack`` property; returns one
    :class:`~robustc.analyses.attack.AttackReport` per property (``success`` per image,
    replayed on onnxruntime)."""
    from robustc.analyses.attack import lower_attack, make_attack, run_problem
    from robustc.compiler.spec_lower import SpecContext, select_properties

    checked = _checked(spec)
    ctx = SpecContext(checked)
    reports = []
    for prop in select_properties(checked, A.AttackProperty, "attack", properties):
        problem = lower_attack(ctx, prop)
        reports.append(run_problem(problem, make_attack(problem, prop.norm), device, threads))
    return reports
