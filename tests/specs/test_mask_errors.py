"""A mask that does not fit the image: one positioned error naming the file and both shapes,
even when several properties use the region; a decode whose labels do not match the
network's outputs names both counts."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from robustc import specs
from robustc.errors import SpecError
from tests.conftest import EXAMPLES

SPEC = """network net = onnx("dd64_plain.onnx")
input x = npy("dd64_1.npy") in [0, 1]
labels digits = [{labels}]
decode net as topk(2) over digits
region a = mask("{mask}")
verify one on net:
    forall x' in layered(x, rings(a, chebyshev, 2), eps=[0.01, 0.01, 0.01]):
        present("0")
verify two on net:
    forall x' in layered(x, rings(a, chebyshev, 2), eps=[0.02, 0.01, 0.01]):
        present("0")
"""
DIGITS = ", ".join(f'"{d}"' for d in range(10))


@pytest.fixture
def folder(tmp_path):
    if not (EXAMPLES / "models" / "dd64_plain.onnx").exists():
        pytest.skip("example models are missing")
    shutil.copy(EXAMPLES / "models" / "dd64_plain.onnx", tmp_path)
    shutil.copy(EXAMPLES / "samples" / "dd64_1.npy", tmp_path)
    np.save(tmp_path / "small.npy", np.ones((16, 24), dtype=bool))
    shutil.copy(EXAMPLES / "samples" / "dd64_1_mask_a.npy", tmp_path / "good.npy")
    return tmp_path


def test_mask_of_the_wrong_shape_is_one_error_naming_file_and_shapes(folder):
    path = folder / "p.rspec"
    path.write_text(SPEC.format(labels=DIGITS, mask="small.npy"))
    with pytest.raises(SpecError) as err:
        specs.load(path)
    text = str(err.value)
    assert text.count("does not fit the input") == 1
    assert "p.rspec:5:12: mask 'small.npy' has shape [16, 24]" in text
    assert "(1, 64, 64)" in text


def test_labels_that_do_not_match_the_outputs(folder):
    path = folder / "p.rspec"
    path.write_text(SPEC.format(labels=DIGITS + ', "x"', mask="good.npy"))
    with pytest.raises(SpecError, match="11 labels in 'digits' but network 'net' has 10 "
                                        "outputs"):
        specs.load(path)
    path.write_text(SPEC.format(labels=DIGITS, mask="good.npy"))
    assert specs.load(path) is not None
