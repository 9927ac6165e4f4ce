"""Attack metrics as the JMA paper defines them; the one implementation the attack runner,
the CLI report and the benchmark share (numpy only).

* ASR: share of images whose decoded label vector equals the target exactly (untargeted:
  differs from the source);
* bASR: share of target bits reached, over all images and labels;
* MSE: ``||delta||_2 / sqrt(n)`` (the paper's definition, a root-mean-square; kept here
  because scikit-image's ``mean_squared_error`` is the square of it), PSNR and SSIM from
  scikit-image (``peak_signal_noise_ratio``; ``structural_similarity``: Wang et al. 2004
  with a 7x7 uniform window, K1 = 0.01, K2 = 0.03, population (co)variances, the border
  cropped), L0 / L2 / L-inf of ``delta``: averaged over the successful images, as in the
  paper's tables.

SSIM is passed ``use_sample_covariance=False``: that is Wang et al.'s definition and what
robustc computed before it used scikit-image (the same values, bit for bit, on the example
images), so earlier tables stay comparable. scikit-image's default (sample covariance, the
variances scaled by 49/48) gives values lower by about 0.001 on the double-digit images.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def asr(decoded: np.ndarray, target: np.ndarray, untargeted: bool = False) -> float:
    """Attack success rate of decoded label vectors ``(B, L)`` against ``target``."""
    same = (np.asarray(decoded, bool) == np.asarray(target, bool)).all(axis=1)
    return float(np.mean(~same if untargeted else same)) if len(same) else float("nan")


def basr(decoded: np.ndarray, target: np.ndarray) -> float:
    """Share of target bits reached (all images, all labels)."""
    eq = np.asarray(decoded, bool) == np.asarray(target, bool)
    return float(eq.mean()) if eq.size else float("nan")


def distortion(x0: np.ndarray, x_adv: np.ndarray, value_range: float = 1.0,
               l0_tol: float = 1e-6) -> dict[str, np.ndarray]:
    """Per-image ``mse`` (paper's), ``psnr``, ``ssim``, ``l0``, ``l2`` and ``linf`` of
    ``x_adv - x0`` (both ``(B, ...)``); ``l0`` counts changes larger than ``l0_tol``."""
    x0 = np.asarray(x0, np.float64)
    x_adv = np.asarray(x_adv, np.float64)
    delta = (x_adv - x0).reshape(len(x0), -1)
    l2 = np.linalg.norm(delta, axis=1)
    pairs = list(zip(x0, x_adv, strict=True))
    return {"mse": l2 / np.sqrt(max(delta.shape[1], 1)),
            "psnr": np.array([psnr(a, b, value_range) for a, b in pairs]),
            "l0": (np.abs(delta) > l0_tol).sum(axis=1).astype(float),
            "l2": l2, "linf": np.abs(delta).max(axis=1, initial=0.0),
            "ssim": np.array([ssim(a, b, value_range) for a, b in pairs])}


def psnr(a: np.ndarray, b: np.ndarray, value_range: float = 1.0) -> float:
    """PSNR in dB of image ``b`` against ``a`` (scikit-image), ``inf`` when they are equal."""
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(np.asarray(a, np.float64),
                                             np.asarray(b, np.float64),
                                             data_range=value_range))


def ssim(a: np.ndarray, b: np.ndarray, value_range: float = 1.0, window: int = 7) -> float:
    """Mean SSIM of two images (scikit-image, see the module docstring): the last two axes
    are H, W, any leading axes are channels (their SSIMs are averaged). The window shrinks to
    the largest odd size that fits a smaller image; NaN when a side is under 3 pixels or the
    input has fewer than two axes (not an image)."""
    a = np.asarray(a, np.float64)
    if a.ndim < 2 or min(a.shape[-2:]) < 3:
        return float("nan")
    a = a.reshape((-1,) + a.shape[-2:])
    b = np.asarray(b, np.float64).reshape(a.shape)
    size = min(window, *a.shape[-2:])
    size -= 1 - size % 2  # scikit-image needs an odd window
    one = len(a) == 1
    return float(structural_similarity(a[0] if one else a, b[0] if one else b,
                                       win_size=size, data_range=value_range,
                                       use_sample_covariance=False,
                                       channel_axis=None if one else 0))


def summarize(x0: np.ndarray, x_adv: np.ndarray, decoded: np.ndarray, target: np.ndarray,
              iterations: np.ndarray, seconds: float, untargeted: bool = False,
              value_range: float = 1.0, updates: np.ndarray | None = None) -> dict:
    """The paper's table row: ASR, bASR, distortion means over the successful images
    (NaN when none), iterations (mean and median over all images, and the paper's mean over
    the successful ones), the mean of ``updates`` (every gradient step or Jacobian spent;
    ``iterations`` when not given), and the batch's time per image."""
    decoded, target = np.asarray(decoded, bool), np.asarray(target, bool)
    same = (decoded == target).all(axis=1)
    ok = ~same if untargeted else same
    dist = distortion(x0, x_adv, value_range)
    row = {"images": int(len(x0)), "asr": asr(decoded, target, untargeted),
           "basr": None if untargeted else basr(decoded, target)}
    for key, values in dist.items():
        row[key] = float(np.mean(values[ok])) if ok.any() else float("nan")
    row["iterations_mean"] = float(np.mean(iterations)) if len(iterations) else float("nan")
    row["iterations_median"] = float(np.median(iterations)) if len(iterations) else float("nan")
    row["iterations_success_mean"] = (float(np.mean(np.asarray(iterations)[ok])) if ok.any()
                                      else float("nan"))
    updates = iterations if updates is None else updates
    row["updates_mean"] = float(np.mean(updates)) if len(updates) else float("nan")
    row["seconds_per_image"] = float(seconds) / max(len(x0), 1)
    row["seconds"] = float(seconds)
    return row
