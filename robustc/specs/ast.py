"""The typed AST of a `.rspec` file.

Every node is a frozen, slotted dataclass. Every node carries ``pos`` (its source span);
``pos`` is excluded from equality, so two specs that differ only in layout compare equal
(``parse(format_spec(spec)) == spec``). Fields are explicit; children are tuples, never lists.

Expressions (:data:`Expr`) may reference parameters (:class:`ParamRef`) until the spec is
resolved with :func:`robustc.specs.resolve`, which substitutes parameter values and folds
arithmetic, so a resolved spec holds only :class:`Number`, :class:`Str` and
:class:`ListExpr` literals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [  # noqa: RUF022 - grouped by role, not sorted
    "SourcePos", "NO_POS", "Node",
    "Number", "Str", "ParamRef", "ListExpr", "BinOp", "Neg", "DataLabel", "Expr",
    "PathRef", "ParamDecl", "OnnxFile", "Compose", "NetworkDecl",
    "NpyFile", "PngFile", "InlineValues", "DataFolder", "DataSet", "DataElement", "Domain",
    "InputDecl", "LabelsDecl",
    "ArgmaxDecoder", "MultiLabelDecoder", "TopKDecoder", "EcocDecoder", "Decoder", "DecodeDecl",
    "BoxDim", "Box", "MaskFile", "PixelPredicate", "RegionRef", "RegionUnion",
    "RegionDifference", "RegionIntersection", "Region", "RegionDecl", "Rings",
    "LinfBall", "LayeredNeighbourhood", "PerturbationSet",
    "Present", "Absent", "Unchanged", "LabelSetIs", "ArgmaxIs", "LinearTerm", "LinearExpr",
    "LinearConstraint", "And", "Or", "Not", "Condition",
    "Option", "NaiveSearch", "OracleSearch", "SearchMethod",
    "TargetLabels", "TargetVector", "FlipLabels", "Untargeted", "AttackGoal", "AttackMethod",
    "AdversarialInput", "Noise", "Correctness", "EpsRobustness", "GlobalCriterion",
    "VerifyProperty", "MaximizeProperty", "AttackProperty", "PatchProperty", "GlobalProperty",
    "Property", "Declaration", "Instance", "Spec",
]


@dataclass(frozen=True, slots=True)
class SourcePos:
    """A span in a spec file: 1-based line and column of the first and last character."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_POS = SourcePos("<none>", 0, 0, 0, 0)


def _pos() -> SourcePos:
    return field(default=NO_POS, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Node:
    """Base class of every AST node (gives ``pos``; it never takes part in ``==``)."""


# ----------------------------------------------------------------------------- expressions
@dataclass(frozen=True, slots=True)
class Number(Node):
    """A numeric literal (``int`` when written without a point or exponent)."""

    value: int | float
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Str(Node):
    """A string literal such as a label name ``"4"``."""

    value: str
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class ParamRef(Node):
    """A use of a parameter declared with ``param``."""

    name: str
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class ListExpr(Node):
    """A list ``[a, b, ...]`` (nested lists give tensors, e.g. inline inputs)."""

    items: tuple[Expr, ...]
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class BinOp(Node):
    """Arithmetic ``left op right`` with ``op`` one of ``+ - * /``."""

    op: str
    left: Expr
    right: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Neg(Node):
    """Unary minus applied to a non-literal (``-eps``); ``-0.5`` parses as ``Number(-0.5)``."""

    operand: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class DataLabel(Node):
    """``x.label`` (or ``x.target``): the label of the data set ``x``'s element, from its
    labels (targets) file; ``kind`` is ``label`` or ``target``.

    A property that uses it expands to one instance per element, in which it becomes that
    element's label (a :class:`Number` index or a :class:`Str` name), at this position.
    """

    input: str
    kind: str = "label"
    pos: SourcePos = _pos()


Expr = (
    Number
    | Str
    | ParamRef
    | ListExpr
    | BinOp
    | Neg
    | DataLabel
)


# ---------------------------------------------------------------------------- declarations
@dataclass(frozen=True, slots=True)
class PathRef(Node):
    """A file path as written, relative to the spec's directory.

    ``external`` is true when the spec marks it ``external "..."``: only such paths may
    leave the spec's directory tree.
    """

    text: str
    external: bool
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class ParamDecl(Node):
    """``param NAME = expr``: a named parameter, overridable with ``--set NAME=VALUE``."""

    name: str
    value: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class OnnxFile(Node):
    """``onnx("path")``: a network stored in an ONNX file."""

    path: PathRef
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Compose(Node):
    """``compose(outer, inner)``: the network ``outer(inner(z))`` (classifier after generator)."""

    outer: str
    inner: str
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class NetworkDecl(Node):
    """``network NAME = onnx(...) | compose(...)``."""

    name: str
    source: OnnxFile | Compose
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class NpyFile(Node):
    """``npy("path")``: an input array stored with ``numpy.save``."""

    path: PathRef
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class PngFile(Node):
    """``png("path", grey|rgb)``: an image, scaled to [0, 1]; ``mode`` is ``grey`` or ``rgb``."""

    path: PathRef
    mode: str
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class InlineValues(Node):
    """``values([[...], ...])``: an input written in the spec as nested lists."""

    values: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class DataFolder(Node):
    """``folder("dir" [, "glob"] [, grey|rgb])``: the ``.npy`` and ``.png`` files of a folder
    (those matching ``pattern``, a glob such as ``"dd_?.npy"``), in natural order."""

    path: PathRef
    pattern: str | None
    mode: str
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class DataSet(Node):
    """``dataset(npy("stack.npy") | folder(...) [, labels="file"])``: an input that is a data
    set; a property over it expands to one instance per element (``prop[i]``).

    ``labels`` (``targets``) names a ``.npy``, ``.csv`` or ``.txt`` file with one label per
    element: ``x.label`` (``x.target``).
    """

    files: NpyFile | DataFolder
    labels: PathRef | None
    targets: PathRef | None = None
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class DataElement(Node):
    """Element ``index`` of a data set (made by the expansion, never written in a spec):
    ``file`` is the element's file for a folder (relative to the spec's directory) and
    ``""`` for a stacked ``.npy``; ``stem`` names it (the file stem, or the index)."""

    data: DataSet
    index: int
    file: str
    stem: str
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Domain(Node):
    """``in [lo, hi]``: the value domain of an input; every set is clipped to it."""

    lo: Expr
    hi: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class InputDecl(Node):
    """``input NAME = source [in [lo, hi]] [reshape [dims]]``.

    ``domain`` is None when not written (the default domain is [0, 1]). ``reshape`` (a list
    of ints) is applied before the input is fed to a network; regions index the array as
    loaded.
    """

    name: str
    source: NpyFile | PngFile | InlineValues | DataSet | DataElement
    domain: Domain | None
    reshape: Expr | None
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class LabelsDecl(Node):
    """``labels NAME = ["a", "b", ...]``: output names, in output order."""

    name: str
    names: tuple[str, ...]
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class ArgmaxDecoder(Node):
    """Single-label decoding: the label of the largest output."""

    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class MultiLabelDecoder(Node):
    """Multi-label decoding: label i is present iff ``score_i > threshold``.

    ``score`` is ``logit`` (the raw output) or ``sigmoid`` (sigmoid of the output).
    """

    score: str
    threshold: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class TopKDecoder(Node):
    """Top-k decoding: the k labels with the largest outputs are present."""

    k: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class EcocDecoder(Node):
    """ECOC decoding: the label whose codeword (a row of the ``.npy`` codebook) is nearest."""

    codebook: PathRef
    pos: SourcePos = _pos()


Decoder = (
    ArgmaxDecoder
    | MultiLabelDecoder
    | TopKDecoder
    | EcocDecoder
)


@dataclass(frozen=True, slots=True)
class DecodeDecl(Node):
    """``decode NETWORK as DECODER over LABELS``."""

    network: str
    decoder: Decoder
    labels: str
    pos: SourcePos = _pos()


# ------------------------------------------------------------------------------- regions
@dataclass(frozen=True, slots=True)
class BoxDim(Node):
    """One axis of a box: ``rows a:b`` (half-open, 0-based), ``cols`` or ``channels``."""

    axis: str
    start: Expr
    stop: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Box(Node):
    """``box(rows a:b, cols c:d, channels e:f)``; an axis not given spans the whole input."""

    dims: tuple[BoxDim, ...]
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class MaskFile(Node):
    """``mask("path.npy")``: a boolean array, (H, W) or (C, H, W)."""

    path: PathRef
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class PixelPredicate(Node):
    """``pixels(x > 0.3)``: the elements of input ``input`` whose value satisfies ``op``."""

    input: str
    op: str
    threshold: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class RegionRef(Node):
    """A use of a region declared with ``region``."""

    name: str
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class RegionUnion(Node):
    """``a | b``."""

    left: Region
    right: Region
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class RegionDifference(Node):
    """``a - b``."""

    left: Region
    right: Region
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class RegionIntersection(Node):
    """``a & b``."""

    left: Region
    right: Region
    pos: SourcePos = _pos()


Region = (
    Box
    | MaskFile
    | PixelPredicate
    | RegionRef
    | RegionUnion
    | RegionDifference
    | RegionIntersection
)


@dataclass(frozen=True, slots=True)
class RegionDecl(Node):
    """``region NAME = region-expression``."""

    name: str
    region: Region
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Rings(Node):
    """``rings(region, metric, n)``: layers 0..n around ``region``.

    Layer 0 is the region itself; layer d holds the pixels at distance d from it under
    ``metric`` (``chebyshev``, ``manhattan`` or ``euclidean``, rounded to the nearest
    integer). There are ``n + 1`` layers; pixels farther than n are not perturbed.
    """

    region: Region
    metric: str
    count: Expr
    pos: SourcePos = _pos()


# ------------------------------------------------------------------------ perturbation sets
@dataclass(frozen=True, slots=True)
class LinfBall(Node):
    """``linf(x, eps [, inside region])``: |x' - x| <= eps elementwise (on ``region`` only)."""

    input: str
    eps: Expr
    region: Region | None
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class LayeredNeighbourhood(Node):
    """``layered(x, rings(...), eps=[e0, ..., en])``: |x'_p - x_p| <= e_d for p in layer d.

    ``eps`` is None in a ``maximize`` property (the budgets are what is searched for).
    """

    input: str
    rings: Rings
    eps: Expr | None
    pos: SourcePos = _pos()


PerturbationSet = (
    LinfBall
    | LayeredNeighbourhood
)


# ------------------------------------------------------------------------------ conditions
@dataclass(frozen=True, slots=True)
class Present(Node):
    """``present(label)``: the decoded output contains ``label`` (a name or an index)."""

    label: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Absent(Node):
    """``absent(label)``: the decoded output does not contain ``label``."""

    label: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Unchanged(Node):
    """``unchanged``: the decoded label set of x' equals that of the centre input."""

    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class LabelSetIs(Node):
    """``labels == {"a", "b"}``: the decoded label set equals the given set."""

    labels: tuple[Expr, ...]
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class ArgmaxIs(Node):
    """``argmax == c``: the largest output is the one of label ``c``."""

    label: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class LinearTerm(Node):
    """One term ``[-] [coef *] y[label]`` or a constant ``[-] coef`` of a linear expression."""

    negated: bool
    coef: Expr | None
    output: Expr | None
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class LinearExpr(Node):
    """A sum of :class:`LinearTerm` over the raw network outputs ``y[i]``."""

    terms: tuple[LinearTerm, ...]
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class LinearConstraint(Node):
    """``lhs op rhs`` with ``op`` in ``< <= > >= ==``, over raw outputs."""

    lhs: LinearExpr
    op: str
    rhs: LinearExpr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class And(Node):
    """Conjunction of two or more conditions (never nested directly in another ``And``)."""

    operands: tuple[Condition, ...]
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Or(Node):
    """Disjunction of two or more conditions (never nested directly in another ``Or``)."""

    operands: tuple[Condition, ...]
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Not(Node):
    """Negation."""

    operand: Condition
    pos: SourcePos = _pos()


Condition = (
    Present
    | Absent
    | Unchanged
    | LabelSetIs
    | ArgmaxIs
    | LinearConstraint
    | And
    | Or
    | Not
)


# ------------------------------------------------------------------------ property pieces
@dataclass(frozen=True, slots=True)
class Option(Node):
    """``name = value`` inside a method's parentheses."""

    name: str
    value: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class NaiveSearch(Node):
    """``naive(...)``: per-layer binary search, layer 0 first."""

    options: tuple[Option, ...]
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class OracleSearch(Node):
    """``oracle(cutting=fixed|sensitivity, ...)``: oracle-guided numerical optimisation."""

    cutting: str
    options: tuple[Option, ...]
    pos: SourcePos = _pos()


SearchMethod = (
    NaiveSearch
    | OracleSearch
)


@dataclass(frozen=True, slots=True)
class TargetLabels(Node):
    """``target {"1", "7"}``: the attack wants exactly this decoded label set."""

    labels: tuple[Expr, ...]
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class TargetVector(Node):
    """``target [1, 0, ...]``: a target label vector (one entry per output)."""

    vector: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class FlipLabels(Node):
    """``flip k labels``: change the decoded value of k labels."""

    count: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Untargeted(Node):
    """``untargeted``: any change of the decoded output."""

    pos: SourcePos = _pos()


AttackGoal = (
    TargetLabels
    | TargetVector
    | FlipLabels
    | Untargeted
)


@dataclass(frozen=True, slots=True)
class AttackMethod(Node):
    """``jma(...)``, ``mlcw(...)`` or ``pgd(...)`` with its options."""

    kind: str
    options: tuple[Option, ...]
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class AdversarialInput(Node):
    """``then adversarial(pixels=k, ...)``: turn a patch into an input with a pixel budget."""

    options: tuple[Option, ...]
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Noise(Node):
    """``normal(mean, std)`` or ``uniform(lo, hi)``: the generator's noise distribution."""

    kind: str
    a: Expr
    b: Expr
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class Correctness(Node):
    """``correct(delta=, confidence=, samples=)``: P(C(G(z)) = c) >= 1 - delta."""

    delta: Expr | None
    confidence: Expr | None
    samples: Expr | None
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class EpsRobustness(Node):
    """``robust(eps=, delta=, confidence=, samples=)``: eps-robustness in noise space."""

    eps: Expr | None
    delta: Expr | None
    confidence: Expr | None
    samples: Expr | None
    pos: SourcePos = _pos()


GlobalCriterion = (
    Correctness
    | EpsRobustness
)


# ------------------------------------------------------------------------------ properties
@dataclass(frozen=True, slots=True)
class VerifyProperty(Node):
    """``verify NAME [on NET]: forall x' in SET: CONDITION``."""

    name: str
    network: str | None
    var: str
    domain: PerturbationSet
    condition: Condition
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class MaximizeProperty(Node):
    """``maximize NAME [on NET]: layered(...) such that COND [weights W] method M``."""

    name: str
    network: str | None
    neighbourhood: LayeredNeighbourhood
    condition: Condition
    weights: Expr | None
    method: SearchMethod
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class AttackProperty(Node):
    """``attack NAME [on NET]: GOAL from x using METHOD norm N [within SET]``."""

    name: str
    network: str | None
    goal: AttackGoal
    input: str
    method: AttackMethod
    norm: str
    within: PerturbationSet | None
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class PatchProperty(Node):
    """``patch NAME [on NET]: layer K such that COND for x1, x2 minimize N [then ...]``."""

    name: str
    network: str | None
    layer: Expr
    condition: Condition
    inputs: tuple[str, ...]
    norm: str
    adversarial: AdversarialInput | None
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class GlobalProperty(Node):
    """``global NAME on COMPOSED: noise D class c CRITERION``."""

    name: str
    network: str
    noise: Noise
    label: Expr
    criterion: GlobalCriterion
    pos: SourcePos = _pos()


Property = (
    VerifyProperty
    | MaximizeProperty
    | AttackProperty
    | PatchProperty
    | GlobalProperty
)
Declaration = (
    ParamDecl
    | NetworkDecl
    | InputDecl
    | LabelsDecl
    | DecodeDecl
    | RegionDecl
)


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance of a property over a data set (made by the expansion): property
    ``name`` (``prop[i]``) is ``property`` on element ``index`` (called ``stem``) of the data
    set input ``data``; ``decls`` names the declarations made for that element."""

    name: str
    property: str
    data: str
    index: int
    stem: str
    decls: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Spec(Node):
    """A whole spec file: declarations and properties, each in source order.

    ``source_dir`` is the directory file paths are relative to; ``source`` is the text
    (both are ignored by ``==``).
    """

    declarations: tuple[Declaration, ...]
    properties: tuple[Property, ...]
    source_dir: str = field(default=".", compare=False)
    source: str = field(default="", compare=False, repr=False)
    pos: SourcePos = _pos()
    #: After data-set expansion: one :class:`Instance` per property instance over an element.
    instances: tuple[Instance, ...] = field(default=(), compare=False, repr=False)

    def declared(self, kind: type) -> dict[str, Declaration]:
        """Return the declarations of one class, by name (the first wins on duplicates)."""
        found: dict[str, Declaration] = {}
        for decl in self.declarations:
            name = getattr(decl, "name", None)
            if isinstance(decl, kind) and name is not None and name not in found:
                found[name] = decl
        return found

    def property(self, name: str) -> Property:
        """Return the property called ``name``; raises KeyError if there is none."""
        for prop in self.properties:
            if prop.name == name:
                return prop
        raise KeyError(name)
