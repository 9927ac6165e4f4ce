"""Checks that need the networks' ONNX files (read as protos, never run).

:func:`check_networks` compares each property's inputs with its network's input shape,
the number of labels with the number of outputs, ECOC codebooks with both, patch layer
indices with the number of affine layers, and boxes and masks with the input's shape.
It runs on a resolved spec whose files exist (run :func:`robustc.specs.check` first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from robustc.errors import SpecError
from robustc.specs import ast as A
from robustc.specs.checker import resolve_path
from robustc.specs.datasets import element_shape
from robustc.specs.diagnostics import Diagnostic, make, raise_if_any
from robustc.specs.resolve import walk
from robustc.specs.rings import empty_region_message, load_input, non_finite, region_mask

__all__ = ["check_networks", "NetworkShape", "network_shape", "nan_initializers"]

_AFFINE = ("Gemm", "MatMul", "Conv", "ConvTranspose")


@dataclass(frozen=True)
class NetworkShape:
    """What the checks need to know of a network: static input and output shapes (None for a
    symbolic dimension) and the number of affine layers (Gemm, MatMul, Conv)."""

    input: tuple[int | None, ...]
    output: tuple[int | None, ...]
    affine_layers: int

    @property
    def outputs(self) -> int | None:
        """Number of output values per example (batch axis excluded), None if symbolic."""
        dims = self.output[1:] if len(self.output) > 1 else self.output
        return None if any(d is None for d in dims) else math.prod(dims)


def network_shape(path: str | Path) -> NetworkShape:
    """Read the graph input/output shapes of an ONNX file; raises :class:`SpecError`."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises assorted protobuf and OS errors
        raise SpecError(f"cannot read ONNX file {path}: {exc}") from None
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(graph.output) < 1:
        raise SpecError(f"{path}: expected one input and at least one output, found "
                        f"{len(inputs)} inputs and {len(graph.output)} outputs")
    bad = nan_initializers(_initializers(graph))
    if bad:
        raise SpecError(f"{path}: NaN weights in initializer(s) {', '.join(bad)}: no verdict "
                        f"can be computed on them")
    affine = sum(1 for node in graph.node if node.op_type in _AFFINE)
    output = graph.output[0]
    if not output.type.tensor_type.HasField("shape"):  # undeclared: infer it if we can
        try:
            inferred = onnx.shape_inference.infer_shapes(model).graph.output[0]
        except Exception:  # noqa: BLE001 - inference is best effort; unknown stays unknown
            inferred = output
        output = inferred
    return NetworkShape(_dims(inputs[0]), _dims(output), affine)


def nan_initializers(named) -> list[str]:
    """Which of the ``(name, array)`` pairs (a network's initializers) hold NaN, as
    ``'name' (k of n)``: at most five, then how many more."""
    import numpy as np

    found = [f"{name!r} ({int(np.isnan(value).sum())} of {value.size})"
             for name, value in named if value.dtype.kind in "fc" and np.isnan(value).any()]
    return found[:5] + ([f"{len(found) - 5} more"] if len(found) > 5 else [])


def _initializers(graph):
    """The ``(name, array)`` of an ONNX graph's initializers stored in the file."""
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.data_location != init.EXTERNAL:
            yield init.name, numpy_helper.to_array(init)


def _dims(value_info) -> tuple[int | None, ...]:
    if not value_info.type.tensor_type.HasField("shape"):
        return (None,)  # unknown rank and size: the checks that need it are skipped
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in dims)


def _strip(shape) -> tuple:
    shape = tuple(shape)
    while len(shape) > 1 and shape[0] in (1, None):
        shape = shape[1:]
    return shape


def _compatible(given: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    a, b = _strip(given), _strip(expected)
    return len(a) == len(b) and all(y is None or x == y for x, y in zip(a, b, strict=True))


def check_networks(spec: A.Spec) -> list[Diagnostic]:
    """Check a resolved spec against its ONNX networks; raise :class:`SpecError` listing
    every mismatch (input shape, number of outputs/labels, codebook, patch layer, box or
    mask outside the input, NaN or infinite values in inputs, masks or weights). Returns
    the warnings: a perturbation region that selects no value of its input."""
    checker = _NetChecker(spec)
    checker.run()
    return checker.warnings


class _NetChecker:
    def __init__(self, spec: A.Spec):
        self.spec = spec
        self.diags: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.nets: dict[str, NetworkShape | None] = {}
        self.input_shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]] | None] = {}
        self.regions = spec.declared(A.RegionDecl)
        self.decodes = {d.network: d for d in spec.declarations if isinstance(d, A.DecodeDecl)}
        self.labels = spec.declared(A.LabelsDecl)
        self.arrays: dict | None = None  # the inputs' values, loaded for region checks

    def error(self, node: A.Node, message: str) -> None:
        diag = make(node.pos, message, self.spec.source)
        if diag not in self.diags:  # a region used by several properties is checked once each
            self.diags.append(diag)

    def run(self) -> None:
        for decl in self.spec.declarations:
            if isinstance(decl, A.NetworkDecl):
                self.nets[decl.name] = self.network(decl)
            elif isinstance(decl, A.InputDecl):
                self.input_shapes[decl.name] = self.input(decl)
            elif isinstance(decl, A.DecodeDecl):
                self.decode(decl)
        for prop in self.spec.properties:
            self.prop(prop)
        raise_if_any(self.diags)

    def network(self, decl: A.NetworkDecl) -> NetworkShape | None:
        src = decl.source
        if isinstance(src, A.OnnxFile):
            try:
                return network_shape(resolve_path(self.spec, src.path))
            except SpecError as exc:
                self.error(src.path, str(exc))
                return None
        outer, inner = self.nets.get(src.outer), self.nets.get(src.inner)
        if outer is None or inner is None:
            return None
        produced = math.prod(d or 1 for d in _strip(inner.output))
        wanted = math.prod(d or 1 for d in _strip(outer.input))
        if produced != wanted:
            self.error(src, f"'{src.inner}' outputs {inner.output} but '{src.outer}' expects "
                            f"{outer.input}")
        return NetworkShape(inner.input, outer.output, inner.affine_layers + outer.affine_layers)

    def input(self, decl: A.InputDecl):
        """Return (shape as loaded, shape fed to networks) or None."""
        if isinstance(decl.source, A.DataSet):
            self.error(decl.source, f"input '{decl.name}' is a data set: expand the spec "
                                    f"first (robustc.specs.check with files does)")
            return None
        try:
            loaded = _loaded_shape(decl, self.spec.source_dir)
        except (OSError, ValueError, SpecError) as exc:
            self.error(decl.source, f"cannot read input '{decl.name}': {exc}")
            return None
        if isinstance(decl.source, A.DataElement):
            try:
                load_input(decl, self.spec.source_dir)  # its values: NaN, infinities
            except SpecError as exc:
                self.error(decl.source, str(exc).split(": ", 1)[-1])
                return None
        if isinstance(decl.source, A.NpyFile):
            import numpy as np

            problem = non_finite(np.load(resolve_path(self.spec, decl.source.path),
                                         mmap_mode="r", allow_pickle=False))
            if problem:
                self.error(decl.source, f"input '{decl.name}' holds {problem}")
                return None
        fed = loaded
        if isinstance(decl.reshape, A.ListExpr):
            fed = tuple(int(n.value) for n in decl.reshape.items)
            if math.prod(fed) != math.prod(loaded):
                self.error(decl.reshape, f"cannot reshape {loaded} ({math.prod(loaded)} "
                                         f"values) to {fed}")
                return None
        return loaded, fed

    def decode(self, decl: A.DecodeDecl) -> None:
        shape = self.nets.get(decl.network)
        names = self.labels.get(decl.labels)
        if shape is None or names is None or shape.outputs is None:
            return
        n = len(names.names)
        if isinstance(decl.decoder, A.EcocDecoder):
            import numpy as np

            try:
                book = np.load(resolve_path(self.spec, decl.decoder.codebook), mmap_mode="r")
            except (OSError, ValueError) as exc:
                self.error(decl.decoder.codebook, f"cannot read codebook: {exc}")
                return
            if book.shape != (n, shape.outputs):
                self.error(decl.decoder, f"codebook shape {book.shape} must be (labels, "
                                         f"outputs) = ({n}, {shape.outputs})")
            problem = non_finite(book)
            if problem:
                self.error(decl.decoder.codebook, f"codebook holds {problem}")
        elif n != shape.outputs:
            self.error(decl, f"{n} labels in '{decl.labels}' but network '{decl.network}' has "
                             f"{shape.outputs} outputs")

    # ------------------------------------------------------------------ properties
    def prop(self, prop) -> None:
        name = getattr(prop, "network", None)
        if name is None and len(self.nets) == 1:
            name = next(iter(self.nets))
        shape = self.nets.get(name or "")
        if isinstance(prop, A.GlobalProperty):
            return
        used = [n for n in _inputs_of(prop)]
        for node, input_name in used:
            self.input_against(node, input_name, name, shape)
        for node in walk(prop):
            if isinstance(node, (A.LinfBall, A.LayeredNeighbourhood)):
                self.regions_fit(node)
            if shape is not None and shape.outputs is not None:
                self.output_index(node, shape.outputs)
        if isinstance(prop, A.PatchProperty) and shape is not None \
                and isinstance(prop.layer, A.Number) and prop.layer.value >= shape.affine_layers:
            self.error(prop.layer, f"layer {prop.layer.value} out of range: '{name}' has "
                                   f"{shape.affine_layers} affine layers (0-based)")
        if isinstance(prop, A.AttackProperty) and isinstance(prop.goal, A.TargetVector) \
                and shape is not None and shape.outputs is not None \
                and name not in self.decodes:  # with labels, one entry per label (checker)
            vec = prop.goal.vector
            if isinstance(vec, A.ListExpr) and len(vec.items) != shape.outputs:
                self.error(vec, f"target vector has {len(vec.items)} entries but '{name}' "
                                f"has {shape.outputs} outputs")

    def input_against(self, node, input_name: str, net: str | None, shape) -> None:
        shapes = self.input_shapes.get(input_name)
        if shapes is None or shape is None:
            return
        if not _compatible(shapes[1], shape.input):
            dims = ["?" if d is None else d for d in shape.input]
            self.error(node, f"input '{input_name}' has shape {list(shapes[1])} but network "
                             f"'{net}' expects {dims}")

    def output_index(self, node, outputs: int) -> None:
        labels = []
        if isinstance(node, A.LinearTerm) and node.output is not None:
            labels = [node.output]
        elif isinstance(node, A.ArgmaxIs):
            labels = [node.label]
        for label in labels:
            if isinstance(label, A.Number) and label.value >= outputs:
                self.error(label, f"output {label.value} out of range: the network has "
                                  f"{outputs} outputs")

    def regions_fit(self, pset) -> None:
        shapes = self.input_shapes.get(pset.input)
        if shapes is None or len(shapes[0]) not in (2, 3, 4):
            return
        chw = _chw(shapes[0])
        region = pset.rings.region if isinstance(pset, A.LayeredNeighbourhood) else pset.region
        before = len(self.diags)
        for node in _region_leaves(region, self.regions):
            if isinstance(node, A.Box):
                self.box_fits(node, chw)
            elif isinstance(node, A.MaskFile):
                self.mask_fits(node, chw)
        if region is not None and len(self.diags) == before:
            self.region_not_empty(region, pset.input, chw)

    def region_not_empty(self, region, input_name: str, chw: tuple[int, int, int]) -> None:
        """Warn about a region that selects no value of the input (evaluated on the
        arrays): legal, but a set on it is the unperturbed input alone."""
        if self.arrays is None:
            self.arrays = {}
            for decl in self.spec.declarations:
                if isinstance(decl, A.InputDecl):
                    try:
                        self.arrays[decl.name] = load_input(decl, self.spec.source_dir)
                    except SpecError:
                        pass  # reported by input()
        try:
            mask = region_mask(region, chw, inputs=self.arrays, regions=self.regions,
                               base_dir=self.spec.source_dir)
        except SpecError:
            return  # a part that cannot be evaluated is reported where it is declared
        if not mask.any():
            self.warnings.append(make(region.pos, empty_region_message(input_name, mask.size),
                                      self.spec.source))

    def box_fits(self, box: A.Box, chw: tuple[int, int, int]) -> None:
        sizes = {"channels": chw[0], "rows": chw[1], "cols": chw[2]}
        for dim in box.dims:
            stop = dim.stop.value if isinstance(dim.stop, A.Number) else 0
            if stop > sizes[dim.axis]:
                self.error(dim, f"{dim.axis} {stop} is outside the input: it has "
                                f"{sizes[dim.axis]} {dim.axis}")

    def mask_fits(self, mask: A.MaskFile, chw: tuple[int, int, int]) -> None:
        import numpy as np

        try:
            values = np.load(resolve_path(self.spec, mask.path), mmap_mode="r",
                             allow_pickle=False)
        except (OSError, ValueError) as exc:
            self.error(mask.path, f"cannot read mask: {exc}")
            return
        problem = non_finite(values)
        if problem:
            self.error(mask.path, f"mask holds {problem}")
        shape = _chw(values.shape)
        if shape[1:] != chw[1:] or shape[0] not in (1, chw[0]):
            self.error(mask, f"mask {mask.path.text!r} has shape {list(values.shape)}, "
                             f"(C, H, W) = {shape}, which does not fit the input {chw}")


def _chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 2:
        return (1, *shape)
    return tuple(shape[-3:])


def _loaded_shape(decl: A.InputDecl, base_dir: str) -> tuple[int, ...]:
    src = decl.source
    if isinstance(src, A.InlineValues):
        shape, expr = [], src.values
        while isinstance(expr, A.ListExpr):
            shape.append(len(expr.items))
            expr = expr.items[0] if expr.items else None
        return tuple(shape)
    if isinstance(src, A.DataElement):
        files = src.data.files
        if not src.file:
            return element_shape(Path(base_dir) / files.path.text, "grey")[1:]
        return element_shape(Path(base_dir) / src.file, files.mode)
    path = Path(base_dir) / src.path.text
    if isinstance(src, A.NpyFile):
        import numpy as np

        return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
    from PIL import Image

    with Image.open(path) as image:
        w, h = image.size
    return (h, w) if src.mode == "grey" else (3, h, w)


def _inputs_of(prop) -> list[tuple[A.Node, str]]:
    if isinstance(prop, A.VerifyProperty):
        return [(prop.domain, prop.domain.input)]
    if isinstance(prop, A.MaximizeProperty):
        return [(prop.neighbourhood, prop.neighbourhood.input)]
    if isinstance(prop, A.AttackProperty):
        return [(prop, prop.input)]
    if isinstance(prop, A.PatchProperty):
        return [(prop, name) for name in prop.inputs]
    return []


def _region_leaves(region, declared: dict, depth: int = 0):
    if region is None or depth > 100:
        return
    if isinstance(region, A.RegionRef):
        decl = declared.get(region.name)
        if decl is not None:
            yield from _region_leaves(decl.region, declared, depth + 1)
    elif isinstance(region, (A.RegionUnion, A.RegionDifference, A.RegionIntersection)):
        yield from _region_leaves(region.left, declared, depth + 1)
        yield from _region_leaves(region.right, declared, depth + 1)
    else:
        yield region
