"""The sample inputs for the specs match the test split and their documentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from robustc.runtime import datasets

from .helpers import SAMPLES


@pytest.mark.parametrize("key,layout", [("double_digits", datasets.SMALL),
                                        ("double_digits_64", datasets.LARGE)])
def test_double_digit_samples_match_the_test_split(key, layout) -> None:
    records = json.loads((SAMPLES / "samples.json").read_text())[key]
    images, labels, masks = datasets.double_digits("test", layout=layout)
    info = datasets.double_digits_info("test", layout=layout)
    assert len(records) >= 4
    for rec in records:
        i = rec["test_index"]
        assert rec["layout"] == layout.name
        image = np.load(SAMPLES / f"{rec['name']}.npy")
        assert image.dtype == np.float32 and image.shape == (1, 1, *layout.canvas)
        assert np.array_equal(image[0], images[i])
        for k, suffix in enumerate("ab"):
            mask = np.load(SAMPLES / f"{rec['name']}_mask_{suffix}.npy")
            assert mask.dtype == bool and np.array_equal(mask, masks[i, k])
        assert [rec["digit_a"], rec["digit_b"]] == info.classes[i].tolist()
        assert rec["labels"] == np.flatnonzero(labels[i]).tolist()
        png = np.asarray(Image.open(SAMPLES / f"{rec['name']}.png"), dtype=np.float32) / 255
        np.testing.assert_allclose(png, image[0, 0], atol=1 / 255)


def test_digit_samples_and_gallery() -> None:
    records = json.loads((SAMPLES / "samples.json").read_text())["digits"]
    images, labels = datasets.digits("test")
    assert sorted(r["label"] for r in records) == list(range(10))
    for rec in records:
        image = np.load(SAMPLES / f"{rec['name']}.npy")
        assert image.dtype == np.float32 and image.shape == (1, 1, 8, 8)
        assert np.array_equal(image[0], images[rec["test_index"]])
        assert labels[rec["test_index"]] == rec["label"]
    assert Image.open(SAMPLES / "gallery.png").size[0] > 300
