"""Pixel rings around an object: regions and layered neighbourhoods as arrays (numpy,
imported lazily). "Layer" here is a ring of pixels at one distance from the object (the
layered-neighbourhood papers' word), not a network layer.

Layout: regions index the input *as loaded* (before ``reshape``), seen as (C, H, W): a
2-D array is one channel, a 4-D array must have batch size 1. Layers are spatial: the
ring index of a pixel (row, col) applies to all its channels, and the distance from a
pixel to a region is measured to the region's pixels in any channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from robustc.errors import SpecError
from robustc.specs import ast as A
from robustc.specs.diagnostics import Diagnostic

if TYPE_CHECKING:
    import numpy as np

__all__ = ["METRICS", "layer_indices", "layer_budgets", "region_mask", "load_input", "as_chw",
           "non_finite", "empty_region_message"]

METRICS = ("chebyshev", "manhattan", "euclidean")


def _fail(node: A.Node, message: str):
    raise SpecError(f"{node.pos}: {message}", [Diagnostic(node.pos, message)])


def non_finite(array: np.ndarray) -> str | None:
    """None when every value of ``array`` is finite, else what is wrong in words: how many
    NaN and infinite values there are and the index of the first (non-numeric arrays are
    left to the caller)."""
    import numpy as np

    if array.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    nan = int(np.isnan(array).sum())
    kinds = [f"{nan} NaN"] * bool(nan) + [f"{int(bad.sum()) - nan} infinite"] * bool(
        bad.sum() - nan)
    return f"{' and '.join(kinds)} value(s), the first at index {list(first)}"


def empty_region_message(input_name: str, size: int) -> str:
    """What is wrong with a perturbation region that selects none of the ``size`` values of
    input ``input_name``."""
    return (f"the region is empty on input '{input_name}' (it selects none of its {size} "
            f"values): no value may change, so a verdict is about the unperturbed input alone")


def as_chw(array: np.ndarray) -> np.ndarray:
    """View an input or mask as (C, H, W): (H, W) gains a channel axis, (1, C, H, W) loses
    its batch axis. Raises :class:`SpecError` for any other rank."""
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3:
        return array
    if array.ndim == 4 and array.shape[0] == 1:
        return array[0]
    raise SpecError(f"cannot see an array of shape {array.shape} as (channels, rows, cols)")


def layer_indices(region: np.ndarray, metric: str, max_layer: int) -> np.ndarray:
    """Return the ring index of every pixel around a boolean ``region`` mask.

    ``region`` is (H, W) or (C, H, W) (a pixel is in the region if any channel is). The
    result is an int array (H, W): 0 on the region, d >= 1 for pixels at distance d from
    it under ``metric`` (``chebyshev``, ``manhattan``, or ``euclidean`` rounded to the
    nearest integer), and -1 for pixels farther than ``max_layer`` (not perturbed).
    An empty region gives all -1.
    """
    import numpy as np

    mask = np.asarray(region, dtype=bool)
    mask = mask.any(axis=0) if mask.ndim == 3 else mask
    if mask.ndim != 2 or metric not in METRICS or max_layer < 0:
        raise ValueError(f"bad layer request: shape {mask.shape}, {metric}, {max_layer}")
    if metric == "euclidean":
        return _euclidean_layers(mask, max_layer)
    index = np.where(mask, 0, -1).astype(np.int64)
    reached = mask.copy()
    for d in range(1, max_layer + 1):
        grown = _dilate(reached, diagonal=metric == "chebyshev")
        index[grown & ~reached] = d
        reached = grown
    return index


def _dilate(mask: np.ndarray, *, diagonal: bool) -> np.ndarray:
    """One step of dilation by the 3x3 square (diagonal) or the 4-neighbour cross."""
    import numpy as np

    padded = np.pad(mask, 1)
    h, w = mask.shape
    out = mask.copy()
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if (di or dj) and (diagonal or not (di and dj)):
                out |= padded[1 + di:1 + di + h, 1 + dj:1 + dj + w]
    return out


def _euclidean_layers(mask: np.ndarray, max_layer: int) -> np.ndarray:
    import numpy as np

    h, w = mask.shape
    index = np.full((h, w), -1, dtype=np.int64)
    sources = np.argwhere(mask)
    if len(sources) == 0:
        return index
    queries = np.argwhere(np.ones((h, w), dtype=bool))
    chunk = max(1, 4_000_000 // len(sources))
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        diff = q[:, None, :] - sources[None, :, :]
        nearest = np.sqrt((diff * diff).sum(axis=2).min(axis=1))
        layer = np.rint(nearest).astype(np.int64)  # sqrt of an integer is never k + 0.5
        layer[layer > max_layer] = -1
        index[q[:, 0], q[:, 1]] = layer
    return index


def layer_budgets(indices: np.ndarray, eps) -> np.ndarray:
    """Return the per-pixel budget (H, W): ``eps[d]`` on layer d, 0 outside every layer."""
    import numpy as np

    eps = np.asarray(eps, dtype=float)
    if indices.max(initial=-1) >= len(eps):
        raise ValueError(f"{len(eps)} budgets for layers up to {indices.max()}")
    return np.where(indices >= 0, eps[np.clip(indices, 0, None)], 0.0)


def _number(expr) -> float:
    if not isinstance(expr, A.Number):
        _fail(expr, "expected a number here (resolve the spec first)")
    return expr.value


def region_mask(region, shape: tuple[int, int, int], *,
                inputs: Mapping[str, np.ndarray] | None = None,
                regions: Mapping[str, object] | None = None,
                base_dir: str | Path = ".") -> np.ndarray:
    """Evaluate a region expression of a resolved spec to a boolean (C, H, W) mask.

    ``inputs`` maps input names to their arrays (as loaded; used by ``pixels(...)``),
    ``regions`` maps region names to region expressions or RegionDecls (used by
    references), ``base_dir`` is where mask paths are relative to. Boxes are clipped to
    ``shape``. Raises :class:`SpecError` (positioned) for an unknown name or a mask or
    input whose shape is not ``shape``.
    """
    import numpy as np

    inputs, regions = inputs or {}, regions or {}
    c, h, w = shape
    if isinstance(region, A.Box):
        out = np.zeros(shape, dtype=bool)
        bounds = {"channels": slice(None), "rows": slice(None), "cols": slice(None)}
        for dim in region.dims:
            bounds[dim.axis] = slice(int(_number(dim.start)), int(_number(dim.stop)))
        out[bounds["channels"], bounds["rows"], bounds["cols"]] = True
        return out
    if isinstance(region, A.MaskFile):
        try:
            values = np.load(Path(base_dir) / region.path.text, allow_pickle=False)
        except (OSError, ValueError) as exc:
            _fail(region, f"cannot load mask: {exc}")
        problem = non_finite(values)
        if problem:
            _fail(region, f"mask '{region.path.text}' holds {problem}")
        return _broadcast(region, as_chw(values.astype(bool)), shape)
    if isinstance(region, A.PixelPredicate):
        if region.input not in inputs:
            _fail(region, f"no array given for input '{region.input}'")
        values = _broadcast(region, as_chw(np.asarray(inputs[region.input])), shape)
        ops = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
               "==": np.equal}
        return ops[region.op](values, _number(region.threshold))
    if isinstance(region, A.RegionRef):
        if region.name not in regions:
            _fail(region, f"unknown region '{region.name}'")
        target = regions[region.name]
        target = target.region if isinstance(target, A.RegionDecl) else target
        return region_mask(target, shape, inputs=inputs, regions=regions, base_dir=base_dir)
    left = region_mask(region.left, shape, inputs=inputs, regions=regions, base_dir=base_dir)
    right = region_mask(region.right, shape, inputs=inputs, regions=regions, base_dir=base_dir)
    if isinstance(region, A.RegionUnion):
        return left | right
    if isinstance(region, A.RegionIntersection):
        return left & right
    return left & ~right


def _broadcast(node: A.Node, array: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    import numpy as np

    if array.shape[1:] != tuple(shape[1:]) or array.shape[0] not in (1, shape[0]):
        _fail(node, f"shape {array.shape} does not match the input's (C, H, W) = {shape}")
    return np.broadcast_to(array, shape)


def load_input(decl: A.InputDecl, base_dir: str | Path = ".") -> np.ndarray:
    """Return the array of an input declaration, as loaded (before ``reshape``), as float64.

    ``npy`` files load as stored; ``png`` files load as (H, W) for ``grey`` and (3, H, W)
    for ``rgb``, scaled from 0..255 to [0, 1]; inline values become an array of their
    nested-list shape. Raises :class:`SpecError` when the file cannot be read or holds a
    value that is NaN or infinite.
    """
    import numpy as np

    src = decl.source
    if isinstance(src, A.InlineValues):
        return np.asarray(_nested(src.values), dtype=float)
    if isinstance(src, A.DataSet):
        _fail(src, f"input '{decl.name}' is a data set: expand the spec first "
                   f"(robustc.specs.check does)")
    path, mode, what = _source_file(src, base_dir)
    try:
        if path.suffix.lower() == ".npy" and not isinstance(src, A.PngFile):
            values = np.load(path, allow_pickle=False, mmap_mode="r")
            if isinstance(src, A.DataElement) and not src.file:
                values = values[src.index]
            values = np.asarray(values, dtype=float)
        else:
            from PIL import Image

            with Image.open(path) as image:
                pixels = np.asarray(image.convert("L" if mode == "grey" else "RGB"))
            pixels = pixels.astype(float) / 255.0
            return pixels if mode == "grey" else pixels.transpose(2, 0, 1)
    except (OSError, ValueError) as exc:
        _fail(src, f"cannot load input '{decl.name}': {exc}")
    problem = non_finite(values)
    if problem:
        _fail(src, f"input '{decl.name}' ({what}) holds {problem}")
    return values


def _source_file(src, base_dir: str | Path) -> tuple[Path, str, str]:
    """(file, png mode, words) of a file input or a data-set element."""
    if isinstance(src, A.DataElement):
        files = src.data.files
        if not src.file:  # element of a stacked array
            return Path(base_dir) / files.path.text, "grey", \
                f"element {src.index} of {files.path.text}"
        return Path(base_dir) / src.file, files.mode, src.file
    return Path(base_dir) / src.path.text, getattr(src, "mode", "grey"), src.path.text


def _nested(expr):
    if isinstance(expr, A.ListExpr):
        return [_nested(item) for item in expr.items]
    return _number(expr)
