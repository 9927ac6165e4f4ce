"""robustc's image metrics (``robustc.runtime.attacks.metrics``) on the example images and
perturbed copies, against scikit-image and against SSIM and PSNR written out here from their
definitions (every window position one at a time), so that a wrong argument passed to the
library is caught too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from robustc.runtime.attacks.metrics import distortion, psnr, ssim

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples"
IMAGES = ["digit_3", "digit_8", "dd_0", "dd_4", "dd_2_mask_a", "dd64_1", "dd64_5"]


def ssim_by_windows(a: np.ndarray, b: np.ndarray, size: int, value_range: float) -> float:
    """Wang et al.'s SSIM: the mean, over every size x size window inside the image, of
    ``(2 mu_a mu_b + C1)(2 cov + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2))``
    with population (co)variances, C1 = (0.01 R)^2, C2 = (0.03 R)^2."""
    wa = sliding_window_view(a, (size, size)).reshape(-1, size * size)
    wb = sliding_window_view(b, (size, size)).reshape(-1, size * size)
    mu_a, mu_b = wa.mean(axis=1), wb.mean(axis=1)
    var_a, var_b = wa.var(axis=1), wb.var(axis=1)
    cov = ((wa - mu_a[:, None]) * (wb - mu_b[:, None])).mean(axis=1)
    c1, c2 = (0.01 * value_range) ** 2, (0.03 * value_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1)
                                                      * (var_a + var_b + c2))
    return float(s.mean())


def perturbed(name: str, kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A sample (H, W) and a copy changed the way attacks change images, kept in [0, 1]."""
    x = np.load(SAMPLES / f"{name}.npy").astype(np.float64)
    x = x.reshape(x.shape[-2:])
    rng = np.random.default_rng(seed)
    if kind == "noise":
        y = x + rng.normal(0.0, 0.05, x.shape)
    elif kind == "sparse":  # a few pixels changed a lot (an L0-like attack)
        y = x.copy()
        pick = rng.choice(x.size, max(2, x.size // 20), replace=False)
        y.flat[pick] = 1.0 - y.flat[pick]
    else:  # "stroke": a brightened row band (a structured, low-frequency change)
        y = x.copy()
        y[x.shape[0] // 3: x.shape[0] // 3 + 2] += 0.3
    return x, np.clip(y, 0.0, 1.0)


@pytest.mark.parametrize("kind", ["noise", "sparse", "stroke"])
@pytest.mark.parametrize("name", IMAGES)
def test_ssim_and_psnr_match_the_definitions_and_scikit_image(name, kind):
    x, y = perturbed(name, kind)
    value = ssim(x, y)
    assert value == pytest.approx(ssim_by_windows(x, y, 7, 1.0), abs=1e-12)
    assert value == structural_similarity(x, y, win_size=7, data_range=1.0,
                                          use_sample_covariance=False)
    mse = np.mean((x - y) ** 2)
    assert psnr(x, y) == pytest.approx(10 * np.log10(1.0 / mse), rel=1e-12)
    assert psnr(x, y) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1.0),
                                       rel=1e-12)
    d = distortion(x[None, None], y[None, None])
    assert d["ssim"][0] == value and d["psnr"][0] == psnr(x, y)
    assert d["psnr"][0] == pytest.approx(20 * np.log10(1.0 / d["mse"][0]), rel=1e-12)


@pytest.mark.parametrize("name", IMAGES)
def test_the_documented_difference_from_scikit_images_default(name):
    """robustc uses population covariances (Wang et al.); scikit-image's default scales the
    variances by 49/48 (sample covariance): lower by at most about 0.002 on these images."""
    x, y = perturbed(name, "noise")
    gap = ssim(x, y) - structural_similarity(x, y, data_range=1.0)
    assert 0.0 < gap < 2e-3


def test_value_range_window_and_channels():
    x, y = perturbed("dd_0", "noise")
    assert ssim(x * 255, y * 255, value_range=255.0) == pytest.approx(ssim(x, y), abs=1e-12)
    assert psnr(x * 255, y * 255, value_range=255.0) == pytest.approx(psnr(x, y), rel=1e-12)
    small, small_adv = x[:5, :6], y[:5, :6]  # window 5: the largest odd size that fits
    assert ssim(small, small_adv) == pytest.approx(ssim_by_windows(small, small_adv, 5, 1.0),
                                                   abs=1e-12)
    others = [perturbed(n, "noise", seed=1) for n in ("dd_1", "dd_2")]
    a = np.stack([x] + [o[0] for o in others])
    b = np.stack([y] + [o[1] for o in others])
    per_channel = [ssim_by_windows(p, q, 7, 1.0) for p, q in zip(a, b, strict=True)]
    assert ssim(a, b) == pytest.approx(np.mean(per_channel), abs=1e-12)
    assert ssim(a[:, None], b[:, None]) == ssim(a, b)  # leading axes are channels
    assert np.isnan(ssim(np.zeros(5), np.ones(5)))  # not an image
    assert np.isnan(ssim(np.zeros((2, 8)), np.ones((2, 8))))
    assert psnr(x, x) == np.inf and ssim(x, x) == pytest.approx(1.0)
