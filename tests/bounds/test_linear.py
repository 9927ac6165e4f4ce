"""The affine maps of robustc.ir.linear agree with the interpreter on random nodes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from robustc.errors import IRError
from robustc.ir import (
    Add,
    Concat,
    Constant,
    Conv,
    Dense,
    ElementwiseAffine,
    Identity,
    MaxPool,
    Relu,
    Reshape,
    Select,
    frozen_array,
)
from robustc.ir.interpret import run_node
from robustc.ir.linear import affine_map, pool_index

SEEDS = st.integers(0, 2**32 - 1)


def check_map(node, in_shapes, rng, batch: int = 7) -> None:
    """``M @ x + c`` equals the interpreter's output for a batch of random inputs."""
    node.infer_shape(list(in_shapes))  # the random node must be valid
    xs = [rng.normal(size=(batch, *s)) for s in in_shapes]
    mats, offset = affine_map(node, list(in_shapes))
    assert len(mats) == len(in_shapes)
    assert offset.shape == (node.size,) and offset.dtype == np.float64
    got = np.tile(offset, (batch, 1))
    for mat, x, s in zip(mats, xs, in_shapes, strict=True):
        assert sp.isspmatrix_csr(mat) and mat.dtype == np.float64
        assert mat.shape == (node.size, int(np.prod(s)))
        got += (mat @ x.reshape(batch, -1).T).T
    want = run_node(node, *xs, batch=batch).reshape(batch, -1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(SEEDS, st.integers(1, 4), st.integers(1, 3), st.integers(0, 2))
def test_dense_any_axis(seed, n_in, n_out, axis):
    rng = np.random.default_rng(seed)
    shape = [1, 2, 3]
    shape[axis] = n_in
    bias = frozen_array(rng.normal(size=n_out)) if rng.random() < 0.7 else None
    node = Dense("d", ("x",), (), weight=frozen_array(rng.normal(size=(n_out, n_in))),
                 bias=bias, axis=axis - 3 if rng.random() < 0.5 else axis)
    out = list(shape)
    out[axis] = n_out
    node = Dense("d", ("x",), tuple(out), weight=node.weight, bias=bias, axis=node.axis)
    check_map(node, [tuple(shape)], rng)


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    hw = (draw(st.integers(5, 9)), draw(st.integers(5, 9)))
    return groups, cg, og, kernel, strides, dil, pads, hw, draw(SEEDS)


@settings(max_examples=60, deadline=None)
@given(conv_cases())
def test_conv(case):
    groups, cg, og, kernel, strides, dil, pads, hw, seed = case
    rng = np.random.default_rng(seed)
    weight = frozen_array(rng.normal(size=(groups * og, cg, *kernel)))
    bias = frozen_array(rng.normal(size=groups * og)) if seed % 3 else None
    in_shape = (1, groups * cg, *hw)
    probe = Conv("c", ("x",), (), weight=weight, bias=bias, strides=strides, pads=pads,
                 dilations=dil, groups=groups)
    out = probe.infer_shape([in_shape])
    node = Conv("c", ("x",), out, weight=weight, bias=bias, strides=strides, pads=pads,
                dilations=dil, groups=groups)
    check_map(node, [in_shape], rng)


@settings(max_examples=30, deadline=None)
@given(SEEDS, st.integers(1, 6))
def test_affine_select_reshape_identity(seed, n):
    rng = np.random.default_rng(seed)
    shape = (1, 2, n)
    aff = ElementwiseAffine("a", ("x",), shape, scale=frozen_array(rng.normal(size=(2, 1))),
                            shift=frozen_array(rng.normal(size=(n,))))
    check_map(aff, [shape], rng)
    index = frozen_array(rng.integers(-1, 2 * n, size=(3, n + 1)), dtype=np.int64)
    check_map(Select("s", ("x",), (3, n + 1), index=index, fill=float(rng.normal())),
              [shape], rng)
    check_map(Reshape("r", ("x",), (2 * n, 1)), [shape], rng)
    check_map(Identity("i", ("x",), shape), [shape], rng)


@settings(max_examples=30, deadline=None)
@given(SEEDS, st.integers(1, 4), st.integers(0, 2), st.integers(2, 4))
def test_add_concat_constant(seed, n, axis, k):
    rng = np.random.default_rng(seed)
    shape = (1, 3, n)
    check_map(Add("a", tuple(f"x{i}" for i in range(k)), shape), [shape] * k, rng)
    shapes = []
    for _ in range(k):
        s = list(shape)
        s[axis] = int(rng.integers(1, 4))
        shapes.append(tuple(s))
    out = list(shape)
    out[axis] = sum(s[axis] for s in shapes)
    cat = Concat("c", tuple(f"x{i}" for i in range(k)), tuple(out), axis=axis)
    check_map(cat, shapes, rng)
    const = Constant("k", (), (2, n), value=frozen_array(rng.normal(size=(2, n))))
    check_map(const, [], rng)


def test_pool_index_matches_maxpool():
    rng = np.random.default_rng(0)
    node = MaxPool("m", ("x",), (1, 2, 3, 3), kernel=(3, 2), strides=(2, 2),
                   pads=(1, 1, 1, 0), dilations=(1, 2))
    assert node.infer_shape([(1, 2, 5, 6)]) == node.shape
    x = rng.normal(size=(4, 1, 2, 5, 6))
    idx = pool_index(node, (1, 2, 5, 6))
    flat = np.concatenate([x.reshape(4, -1), np.full((4, 1), -np.inf)], axis=1)
    got = flat[:, np.where(idx < 0, flat.shape[1] - 1, idx)].max(axis=2)
    np.testing.assert_array_equal(got, run_node(node, x).reshape(4, -1))


def test_nonlinear_node_has_no_map():
    with pytest.raises(IRError, match="not linear"):
        affine_map(Relu("r", ("x",), (1, 2)), [(1, 2)])
