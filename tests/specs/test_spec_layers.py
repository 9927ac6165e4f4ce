"""Ring indices and region masks against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from robustc.specs import layer_indices, load_input, parse_text, region_mask, resolve
from robustc.specs.rings import layer_budgets

DIST = {
    "chebyshev": lambda a, b: max(abs(a[0] - b[0]), abs(a[1] - b[1])),
    "manhattan": lambda a, b: abs(a[0] - b[0]) + abs(a[1] - b[1]),
    "euclidean": lambda a, b: round(math.hypot(a[0] - b[0], a[1] - b[1])),
}


def _brute(mask, metric, max_layer):
    h, w = mask.shape
    pts = [(i, j) for i in range(h) for j in range(w) if mask[i, j]]
    out = np.full((h, w), -1)
    for i in range(h):
        for j in range(w):
            if pts:
                d = min(DIST[metric]((i, j), p) for p in pts)
                out[i, j] = d if d <= max_layer else -1
    return out


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9)),
       st.sampled_from(sorted(DIST)), st.integers(0, 6))
def test_layer_indices_match_brute_force(mask, metric, max_layer):
    assert np.array_equal(layer_indices(mask, metric, max_layer), _brute(mask, metric, max_layer))


def test_layers_of_a_multichannel_region_and_budgets():
    region = np.zeros((3, 5, 5), bool)
    region[2, 2, 2] = True
    index = layer_indices(region, "chebyshev", 1)
    assert index[2, 2] == 0 and index[1, 1] == 1 and index[0, 0] == -1
    budgets = layer_budgets(index, [0.3, 0.1])
    assert budgets[2, 2] == 0.3 and budgets[1, 2] == 0.1 and budgets[0, 0] == 0.0
    with pytest.raises(ValueError):
        layer_budgets(index, [0.3])


def _region(text: str, x: np.ndarray, tmp_path) -> np.ndarray:
    spec = resolve(parse_text(f'input x = values({x.tolist()})\n' + text))
    regions = {d.name: d for d in spec.declarations if hasattr(d, "region")}
    return region_mask(regions["r"].region, (1, *x.shape), inputs={"x": x}, regions=regions,
                       base_dir=tmp_path)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(hnp.arrays(np.float64, (4, 5), elements=st.sampled_from([0.0, 0.2, 0.5, 0.9])),
       st.integers(0, 4), st.integers(0, 5), st.floats(0, 1))
def test_region_expressions_match_brute_force(x, r0, c0, t):
    got = _region(f"region b = box(rows {r0}:{r0 + 2}, cols {c0}:9)\n"
                  f"region r = pixels(x > {t!r}) & b | box(rows 3:4) - box(cols 0:1)", x, ".")
    want = np.zeros((1, 4, 5), bool)
    for i in range(4):
        for j in range(5):
            in_box = r0 <= i < r0 + 2 and c0 <= j
            # '&' binds tighter than '|' and '-', which associate to the left
            want[0, i, j] = ((x[i, j] > t and in_box) or i == 3) and j != 0
    assert np.array_equal(got, want)


def test_mask_files_and_inputs(tmp_path):
    mask = np.zeros((2, 3), bool)
    mask[1, 2] = True
    np.save(tmp_path / "m.npy", mask)
    np.save(tmp_path / "x.npy", np.arange(6.0).reshape(2, 3))
    x = np.zeros((2, 3))
    got = _region('region r = mask("m.npy") | pixels(x >= 1)', x, tmp_path)
    assert got[0].tolist() == mask.tolist()
    spec = parse_text('input a = npy("x.npy") input b = values([[0, 1], [2, 3]])')
    assert load_input(spec.declarations[0], tmp_path).shape == (2, 3)
    assert load_input(spec.declarations[1]).tolist() == [[0, 1], [2, 3]]


def test_png_inputs_scale_to_unit_interval(tmp_path):
    from PIL import Image

    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 51)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    spec = parse_text('input a = png("a.png", rgb) input g = png("a.png")')
    colour = load_input(spec.declarations[0], tmp_path)
    assert colour.shape == (3, 2, 3) and colour[:, 0, 0].tolist() == [1.0, 0.0, 0.2]
    grey = load_input(spec.declarations[1], tmp_path)
    assert grey.shape == (2, 3) and 0 < grey[0, 0] < 1
