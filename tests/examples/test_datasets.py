"""The example data sets are deterministic, split cleanly, and their masks are right."""

from __future__ import annotations

import numpy as np
import pytest

from robustc.runtime import datasets


@pytest.mark.parametrize("split", datasets.SPLITS)
def test_committed_npz_equals_regenerated(split: str) -> None:
    assert datasets.DEFAULT_NPZ.exists()
    stored = datasets.double_digits(split)
    rebuilt = datasets.double_digits(split, path=None)
    for a, b in zip(stored, rebuilt, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(datasets.double_digits_info(split).corners,
                          datasets.build_double_digits(split).corners)  # fmt: skip


def test_regeneration_is_deterministic() -> None:
    first = datasets.render_pairs(datasets.build_double_digits("test"))
    second = datasets.render_pairs(datasets.build_double_digits("test"))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_train_and_test_sources_are_disjoint() -> None:
    train, test = datasets.source_indices("train"), datasets.source_indices("test")
    assert np.intersect1d(train, test).size == 0
    assert len(train) + len(test) == 1797
    for split, pool in (("train", train), ("test", test)):
        assert np.isin(datasets.double_digits_info(split).sources, pool).all()


@pytest.mark.parametrize("split", datasets.SPLITS)
def test_images_labels_and_masks(split: str) -> None:
    images, labels, masks = datasets.double_digits(split)
    info = datasets.double_digits_info(split)
    n = datasets.PAIR_COUNTS[split]
    assert images.shape == (n, 1, *datasets.CANVAS_SHAPE) and images.dtype == np.float32
    assert labels.shape == (n, 10) and masks.shape == (n, 2, *datasets.CANVAS_SHAPE)
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert (info.classes[:, 0] != info.classes[:, 1]).all()
    assert (labels.sum(1) == 2).all()
    assert (labels[np.arange(n)[:, None], info.classes] == 1).all()
    assert not (masks[:, 0] & masks[:, 1]).any(), "the two digits overlap"
    assert np.array_equal(masks[:, 0] | masks[:, 1], images[:, 0] > 0)


def test_masks_sit_in_their_boxes_and_match_the_source_digit() -> None:
    images, _, masks = datasets.double_digits("test")
    info = datasets.double_digits_info("test")
    src, _ = datasets._sklearn_digits()
    for i in range(0, 2000, 97):
        for k in range(2):
            row, col = info.corners[i, k]
            box = np.s_[row : row + 8, col : col + 8]
            assert masks[i, k].sum() == masks[i, k][box].sum()
            assert np.array_equal(masks[i, k][box], src[info.sources[i, k]] > 0)
            assert np.array_equal(images[i, 0][box] * 16, src[info.sources[i, k]])


def test_rings_between_the_digits() -> None:
    """Rings around digit a reach 6..12 layers (L-inf distance) before digit b."""
    _, _, masks = datasets.double_digits("test")
    for i in range(0, 2000, 50):
        a, b = np.argwhere(masks[i, 0]), np.argwhere(masks[i, 1])
        gap = np.abs(a[:, None, :] - b[None, :, :]).max(-1).min()
        assert 6 <= gap <= 12


def test_digits_split() -> None:
    x, y = datasets.digits("test")
    assert x.shape == (len(y), 1, 8, 8) and x.dtype == np.float32
    assert x.max() == 1.0 and np.bincount(y).min() > 40
    with pytest.raises(ValueError, match="unknown split"):
        datasets.digits("validation")
