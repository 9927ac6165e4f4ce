"""Smooth activations (sigmoid, tanh, softplus, ELU) anywhere in a graph: their linear
relaxations bound the function on fine grids of every kind of interval, and the interval,
symbolic, CROWN and LP bounds of random graphs holding them contain every activation of
sampled and attacked inputs.

The oracles are independent of robustc's own evaluation: PyTorch's float64 functions and
mpmath's 50-digit values on the grids; the float64 PyTorch evaluation of
``bounds_attack`` (written apart from the interpreter) for the gradient attacks.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch
from bounds_attack import attack, sample_box, violations
from bounds_helpers import Builder
from hypothesis import given, settings
from hypothesis import strategies as st

from robustc.compiler import smooth
from robustc.compiler.bounds import compute_bounds, interval_bounds, symbolic_bounds
from robustc.ir import Activation, Relu, evaluate

KINDS = [("sigmoid", 1.0), ("tanh", 1.0), ("softplus", 1.0), ("elu", 1.0), ("elu", 0.3)]
F32_MAX = float(np.finfo(np.float32).max)

#: Intervals of every kind: narrow, very wide, one-sided, crossing 0 on either side,
#: saturated, touching 0, float32 limits.
INTERVALS = [
    (-1.0, 1.0), (-0.3, 2.5), (-4.0, 0.2), (0.5, 0.5000001), (-1e-13, 1e-13), (0.0, 3.0),
    (-3.0, 0.0), (2.0, 6.0), (-6.0, -2.0), (-50.0, 50.0), (-1e4, 1e4), (-1e4, 3.0),
    (-2.0, 1e4), (30.0, 40.0), (-40.0, -30.0), (-800.0, -700.0), (700.0, 800.0),
    (-745.0, 745.0), (1e-300, 2e-300), (-2e-300, 1e-300), (-20.0, -19.999999999),
    (-F32_MAX, F32_MAX), (-F32_MAX, -1e30), (88.0, 89.0), (-104.0, -87.0),
    (float(np.float32(0.1)), float(np.nextafter(np.float32(0.1), np.float32(1.0)))),
]


def torch_f(kind: str, alpha: float, x: np.ndarray) -> np.ndarray:
    t = torch.as_tensor(x, dtype=torch.float64)
    if kind == "sigmoid":
        y = torch.sigmoid(t)
    elif kind == "tanh":
        y = torch.tanh(t)
    elif kind == "softplus":
        y = torch.logaddexp(torch.zeros_like(t), t)
    else:
        y = torch.nn.functional.elu(t, alpha)
    return y.numpy()


def mp_f(kind: str, alpha: float, x: float):
    x = mpmath.mpf(x)
    if kind == "sigmoid":
        return 1 / (1 + mpmath.exp(-x))
    if kind == "tanh":
        return mpmath.tanh(x)
    if kind == "softplus":
        return mpmath.log1p(mpmath.exp(x)) if x < 700 else x + mpmath.log1p(mpmath.exp(-x))
    return x if x > 0 else alpha * mpmath.expm1(x)


def grid(l: float, u: float, n: int = 4001) -> np.ndarray:
    """``n`` evenly spaced points, the ends, 0 when inside, and float64 neighbours of all."""
    xs = np.concatenate([np.linspace(l, u, n), [l, u], [0.0] if l < 0 < u else []])
    near = np.concatenate([np.nextafter(xs, np.inf), np.nextafter(xs, -np.inf)])
    xs = np.concatenate([xs, near])
    return xs[(xs >= l) & (xs <= u)]


def line_gaps(kind, alpha, l, u, xs, values):
    sl, tl, su, tu = (float(v[0]) for v in smooth.relaxation(kind, alpha, [l], [u]))
    with np.errstate(over="ignore", invalid="ignore"):
        below = values - (sl * xs + tl)  # >= 0 where the lower line holds
        above = (su * xs + tu) - values
    return below, above


@pytest.mark.parametrize("kind,alpha", KINDS)
@pytest.mark.parametrize("l,u", INTERVALS)
def test_relaxation_lines_bound_the_function_on_a_fine_grid(kind, alpha, l, u):
    xs = grid(l, u)
    for values in (smooth.value(kind, alpha, xs), torch_f(kind, alpha, xs)):
        below, above = line_gaps(kind, alpha, l, u, xs, values)
        assert np.all(below >= 0) and np.all(above >= 0), (below.min(), above.min())
    # real arithmetic (mpmath, 50 digits) on a coarser grid
    sl, tl, su, tu = (mpmath.mpf(float(v[0])) for v in smooth.relaxation(kind, alpha, [l], [u]))
    with mpmath.workdps(50):
        for x in grid(l, u, 41):
            fx, mx = mp_f(kind, alpha, float(x)), mpmath.mpf(float(x))
            assert sl * mx + tl <= fx <= su * mx + tu, x


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(KINDS), st.floats(-60, 60), st.floats(-14, 2.5), st.floats(0, 1))
def test_relaxation_on_random_intervals(kind_alpha, centre, log_width, where):
    kind, alpha = kind_alpha
    width = 10.0 ** log_width
    l, u = centre - where * width, centre + (1 - where) * width
    xs = grid(l, u, 501)
    below, above = line_gaps(kind, alpha, l, u, xs, torch_f(kind, alpha, xs))
    assert np.all(below >= 0) and np.all(above >= 0)


def test_relaxation_is_tight_where_it_should_be():
    """Each line touches the function somewhere on the interval, and the band between them
    is on average well inside the constant lines ``f(l)``, ``f(u)``."""
    for kind, alpha in KINDS:
        for l, u in [(-1.0, 1.0), (-3.0, 0.5), (0.2, 2.0), (-2.0, -0.5), (-0.5, 4.0)]:
            xs = grid(l, u)
            below, above = line_gaps(kind, alpha, l, u, xs, torch_f(kind, alpha, xs))
            span = float(smooth.value(kind, alpha, u) - smooth.value(kind, alpha, l))
            assert below.min() < 1e-4 * span and above.min() < 1e-4 * span, (kind, l, u)
            assert np.mean(below + above) < 0.6 * span, (kind, l, u)


def test_the_grid_check_can_fail():
    """A wrong relaxation (the chord taken as the lower line on the convex part, or the
    tangent shifted up by 1e-6) is caught by the grid."""
    l, u = -3.0, -0.5
    xs = grid(l, u)
    f = torch_f("sigmoid", 1.0, xs)
    sl, tl, su, tu = (float(v[0]) for v in smooth.relaxation("sigmoid", 1.0, [l], [u]))
    assert np.any(f < su * xs + tu - 1e-3)  # the chord lies above somewhere: not a lower line
    assert np.any(f < sl * xs + tl + 1e-6)  # the tangent touches: shifted up, it cuts


@pytest.mark.parametrize("kind,alpha", KINDS)
def test_infinite_ends_give_constant_lines(kind, alpha):
    """Overflowed bounds (an infinite end): the constant lines f(l) and f(u), no NaN."""
    lo, hi = np.array([-np.inf, -1.0, -np.inf]), np.array([1.0, np.inf, np.inf])
    with np.errstate(all="raise"):
        sl, tl, su, tu = smooth.relaxation(kind, alpha, lo, hi)
    assert np.all(sl == 0) and np.all(su == 0) and not np.isnan(tl).any()
    assert not np.isnan(tu).any()
    xs = np.array([-1e6, -1.0, 0.0, 1.0, 1e6])
    f = torch_f(kind, alpha, xs)
    for i in range(3):
        inside = (xs >= lo[i]) & (xs <= hi[i])
        assert np.all(tl[i] <= f[inside]) and np.all(f[inside] <= tu[i])


def test_interval_bounds_clip_to_the_range():
    lo, hi = smooth.interval("sigmoid", 1.0, np.array([-1e4, 3.0]), np.array([1e4, 4.0]))
    assert lo[0] == 0.0 and hi[0] == 1.0 and 0 < lo[1] < hi[1] < 1
    lo, hi = smooth.interval("elu", 0.5, np.array([-1e4]), np.array([1e4]))
    assert lo[0] == -0.5 and hi[0] >= 1e4


def smooth_graph(rng: np.random.Generator, kind: str, alpha: float, n: int, widths: list[int],
                 scale: float):
    """Dense -> activation -> dense -> ReLU or the activation again -> dense, with an affine
    rescale of a tanh/sigmoid layer (a generator's last layer) in between."""
    b = Builder(rng)
    cur = b.input((1, n))
    for k, width in enumerate(widths):
        cur = b.dense(cur, width, scale=scale)
        if k % 2 == 0 or rng.random() < 0.5:
            cur = b.add(Activation, (cur,), kind=kind, alpha=alpha)
            if kind in ("sigmoid", "tanh") and rng.random() < 0.5:
                from robustc.ir import ElementwiseAffine, frozen_array

                cur = b.add(ElementwiseAffine, (cur,), scale=frozen_array(0.5),
                            shift=frozen_array(0.5))
        else:
            cur = b.add(Relu, (cur,), alpha=0.1 if rng.random() < 0.3 else 0.0)
    return b.graph(b.dense(cur, 3), f"smooth_{kind}")


N_UNIFORM, N_CORNERS, N_TARGETS, STEPS = 800, 200, 80, 12


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(KINDS), st.integers(1, 5),
       st.lists(st.integers(1, 8), min_size=1, max_size=3),
       st.sampled_from([1e-3, 0.1, 0.5, 2.0]), st.sampled_from([1.0, 3.0]))
def test_bounds_contain_sampled_and_attacked_activations(seed, kind_alpha, n, widths, eps,
                                                         scale):
    kind, alpha = kind_alpha
    rng = np.random.default_rng(seed)
    graph = smooth_graph(rng, kind, alpha, n, widths, scale)
    centre = rng.normal(size=graph.input.shape)
    lo, hi = centre - rng.uniform(0, eps, centre.shape), centre + rng.uniform(0, eps,
                                                                               centre.shape)
    ib, sb = interval_bounds(graph, lo, hi), symbolic_bounds(graph, lo, hi)
    cb = compute_bounds(graph, lo, hi, "crown")
    for name in ib.lower:  # symbolic inside interval; the two linear engines agree
        assert np.all(sb.lower[name] >= ib.lower[name]) and np.all(sb.upper[name] <=
                                                                   ib.upper[name])
        np.testing.assert_allclose(cb.lower[name], sb.lower[name], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(cb.upper[name], sb.upper[name], rtol=1e-9, atol=1e-9)
    xs = np.concatenate([sample_box(rng, lo, hi, N_UNIFORM, N_CORNERS),
                         attack(graph, lo, hi, rng, N_TARGETS, STEPS)])
    for bounds in (ib, sb, cb):
        assert not violations(graph, bounds, xs), bounds.method


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(KINDS), st.sampled_from([0.05, 0.5]))
def test_conv_and_maxpool_around_an_activation(seed, kind_alpha, eps):
    """conv -> activation -> MaxPool -> conv -> activation -> dense: the element-wise rule
    on 4-D tensors, and CROWN's convolution operators through the activation's lines."""
    from robustc.ir import MaxPool, Reshape

    kind, alpha = kind_alpha
    rng = np.random.default_rng(seed)
    b = Builder(rng)
    cur = b.input((1, 2, 6, 6))
    cur = b.add(Activation, (b.conv(cur, 3, (3, 3), pads=(1, 1, 1, 1)),), kind=kind,
                alpha=alpha)
    cur = b.add(MaxPool, (cur,), kernel=(2, 2), strides=(2, 2))
    cur = b.add(Activation, (b.conv(cur, 2, (2, 2)),), kind=kind, alpha=alpha)
    cur = b.add(Reshape, (cur,), shape=(1, int(np.prod(b.shapes[cur]))))
    graph = b.graph(b.dense(cur, 3), "conv_smooth")
    lo, hi = random_centre_box(rng, graph.input.shape, eps)
    sb, cb = symbolic_bounds(graph, lo, hi), compute_bounds(graph, lo, hi, "crown")
    for name in sb.lower:  # equal up to the widening the graph engine skips on exact nodes
        np.testing.assert_allclose(cb.lower[name], sb.lower[name], rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(cb.upper[name], sb.upper[name], rtol=1e-8, atol=1e-8)
        assert np.all(cb.lower[name] >= sb.lower[name] - 1e-12)
        assert np.all(cb.upper[name] <= sb.upper[name] + 1e-12)
    xs = np.concatenate([sample_box(rng, lo, hi, 500, 100), attack(graph, lo, hi, rng, 40,
                                                                    10)])
    assert not violations(graph, sb, xs)


def test_lp_bounds_are_sound_and_tighter():
    rng = np.random.default_rng(7)
    for kind, alpha in KINDS:
        graph = smooth_graph(rng, kind, alpha, 3, [8, 8, 6], 2.0)
        lo, hi = random_centre_box(rng, graph.input.shape, 0.4)
        sb, lp = symbolic_bounds(graph, lo, hi), compute_bounds(graph, lo, hi, "lp")
        out = graph.outputs[0]
        assert np.all(lp.lower[out] >= sb.lower[out]) and np.all(lp.upper[out] <= sb.upper[out])
        xs = np.concatenate([sample_box(rng, lo, hi, 500, 100), attack(graph, lo, hi, rng, 40,
                                                                        10)])
        assert not violations(graph, lp, xs)


def random_centre_box(rng, shape, eps):
    centre = rng.normal(size=shape)
    return centre - eps, centre + eps


def test_symbolic_is_strictly_tighter_than_interval_on_a_deep_tanh_network():
    rng = np.random.default_rng(11)
    graph = smooth_graph(rng, "tanh", 1.0, 4, [16, 16, 16, 16], 1.5)
    lo, hi = random_centre_box(rng, graph.input.shape, 0.1)
    ib, sb = interval_bounds(graph, lo, hi), symbolic_bounds(graph, lo, hi)
    out = graph.outputs[0]
    assert np.all(sb.upper[out] - sb.lower[out] < 0.9 * (ib.upper[out] - ib.lower[out]))
    ys = evaluate(graph, rng.uniform(lo, hi, size=(2000, *lo.shape)), batched=True)
    assert np.all(ys >= sb.lower[out]) and np.all(ys <= sb.upper[out])
