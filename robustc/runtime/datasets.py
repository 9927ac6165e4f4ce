"""Example data sets built from scikit-learn's handwritten digits (``load_digits``).

Two data sets, both deterministic functions of scikit-learn's 1,797 8x8 digits:

* ``digits(split)``: the single digits, scaled to [0, 1], as ``[N, 1, 8, 8]``.
* ``double_digits(split)``: a small DOUBLE-MNIST: a ``16 x 24`` blank canvas showing two
  different digits at their native 8x8 scale, digit *a* in the left part (columns 0..9) and
  digit *b* in the right part (columns 14..23), never overlapping. Each image comes with a
  multi-hot label over the ten digits and one boolean pixel mask per digit.

The source digits are split once, per class, into a train part and a test part (30 %);
train and test images are composed only from their own part, so no source digit is shared.

The double-digit arrays are read from ``examples/data/double_digits.npz`` when that file
exists beside this checkout, and otherwise rebuilt from scikit-learn (identically). This
module imports only numpy at import time; scikit-learn is imported when the digits are needed.
"""

from __future__ import annotations

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
DEFAULT_NPZ = Path(__file__).resolve().parents[2] / "examples" / "data" / "double_digits.npz"


class DoubleDigitInfo(NamedTuple):
    """Where each double-digit image comes from (one row per image).

    ``classes[i] = (class of a, class of b)``; ``sources[i]`` the indices of the two digits in
    ``sklearn.datasets.load_digits()``; ``corners[i] = ((row_a, col_a), (row_b, col_b))``, the
    top-left corners of the two 8x8 boxes on the canvas.
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


def source_indices(split: str) -> np.ndarray:
    """Return the sorted indices (into ``load_digits()``) of the source digits of ``split``.

    The split is stratified: ``TEST_FRACTION`` of each class goes to ``"test"``. Raises
    ``ValueError`` for an unknown split.
    """
    _check_split(split)
    _, labels = _sklearn_digits()
    rng = np.random.default_rng(SPLIT_SEED)
    test = []
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
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


def draw_pairs(split: str, count: int, rng: np.random.Generator) -> DoubleDigitInfo:
    """Draw ``count`` random double-digit layouts from the source digits of ``split``.

    The ordered class pair (a, b) is uniform over the 90 pairs of different digits; each
    digit is a uniform source image of its class; the box corners are uniform over the
    allowed offsets. Training scripts call this with their own generator for fresh pairs.
    """
    _, labels = _sklearn_digits()
    pool = source_indices(split)
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
    corners[:, :, 0] = rng.integers(ROW_OFFSETS[0], ROW_OFFSETS[1] + 1, size=(count, 2))
    corners[:, 0, 1] = rng.integers(COL_OFFSETS_A[0], COL_OFFSETS_A[1] + 1, size=count)
    corners[:, 1, 1] = rng.integers(COL_OFFSETS_B[0], COL_OFFSETS_B[1] + 1, size=count)
    return DoubleDigitInfo(classes=classes, sources=sources, corners=corners)


def masks_from_corners(images: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Return bool masks ``[N, 2, H, W]``: the nonzero pixels of ``images`` ``[N, 1, H, W]``
    inside the 8x8 box of digit a (index 0) and of digit b (index 1)."""
    count = len(images)
    boxes = np.zeros((count, 2, *CANVAS_SHAPE), dtype=bool)
    for i in range(count):
        for k in range(2):
            row, col = corners[i, k]
            boxes[i, k, row : row + DIGIT_SIZE, col : col + DIGIT_SIZE] = True
    return boxes & (images > 0)


def render_pairs(info: DoubleDigitInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint the layouts of ``info`` on blank canvases.

    Returns ``(images, labels, masks)``: float32 ``[N, 1, 16, 24]`` in [0, 1], uint8
    multi-hot ``[N, 10]``, and bool ``[N, 2, 16, 24]`` where ``masks[i, 0]`` (digit a) and
    ``masks[i, 1]`` (digit b) are the canvas pixels where that digit is nonzero.
    """
    src_images, _ = _sklearn_digits()
    count = len(info.classes)
    raw = np.zeros((count, *CANVAS_SHAPE), dtype=np.uint8)
    for i in range(count):
        for k in range(2):
            row, col = info.corners[i, k]
            raw[i, row : row + DIGIT_SIZE, col : col + DIGIT_SIZE] = src_images[info.sources[i, k]]
    labels = np.zeros((count, 10), dtype=np.uint8)
    labels[np.arange(count)[:, None], info.classes] = 1
    images = (raw.astype(np.float32) / MAX_PIXEL)[:, None]
    return images, labels, masks_from_corners(images, info.corners)


def build_double_digits(split: str) -> DoubleDigitInfo:
    """Return the fixed layouts of the double-digit ``split`` (rebuilt from scikit-learn)."""
    _check_split(split)
    return draw_pairs(split, PAIR_COUNTS[split], np.random.default_rng(PAIR_SEEDS[split]))


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
    np.savez_compressed(path, **arrays)
    return path


def double_digits_info(split: str, path: Path | None = DEFAULT_NPZ) -> DoubleDigitInfo:
    """Return the layouts of ``split``: read from ``path`` if it exists, else rebuilt."""
    _check_split(split)
    if path is not None and Path(path).exists():
        with np.load(path) as data:
            return DoubleDigitInfo(
                *(data[f"{split}_{f}"].astype(np.int64) for f in DoubleDigitInfo._fields)
            )
    return build_double_digits(split)


def double_digits(
    split: str, path: Path | None = DEFAULT_NPZ
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the double-digit ``split`` as ``(images, labels, masks)``.

    ``images``: float32 ``[N, 1, 16, 24]`` in [0, 1]; ``labels``: uint8 multi-hot ``[N, 10]``
    (exactly two ones); ``masks``: bool ``[N, 2, 16, 24]``, digit a then digit b (see
    ``double_digits_info`` for their classes). Reads ``path`` when it exists (pass ``None``
    to force a rebuild from scikit-learn). Raises ``ValueError`` for an unknown split.
    """
    _check_split(split)
    if path is None or not Path(path).exists():
        return render_pairs(build_double_digits(split))
    with np.load(path) as data:
        raw = data[f"{split}_images"]
        labels = data[f"{split}_labels"]
        corners = data[f"{split}_corners"].astype(np.int64)
    images = (raw.astype(np.float32) / MAX_PIXEL)[:, None]
    return images, labels, masks_from_corners(images, corners)
