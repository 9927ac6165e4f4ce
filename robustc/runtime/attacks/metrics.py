"""Attack metrics as the JMA paper defines them; the one implementation the attack runner,
the CLI report and the benchmark share (numpy only).

* ASR: share of images whose decoded label vector equals the target exactly (untargeted:
  differs from the source);
* bASR: share of target bits reached, over all images and labels;
* MSE: ``||delta||_2 / sqrt(n)`` (the paper's definition, a root-mean-square), PSNR
  ``20 log10(range / MSE)``, SSIM (Wang et al. 2004, 7x7 uniform window, K1 = 0.01,
  K2 = 0.03), L0 / L2 / L-inf of ``delta``: averaged over the successful images, as in the
  paper's tables.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter


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
    delta = (np.asarray(x_adv, np.float64) - np.asarray(x0, np.float64)).reshape(len(x0), -1)
    l2 = np.linalg.norm(delta, axis=1)
    mse = l2 / np.sqrt(max(delta.shape[1], 1))
    with np.errstate(divide="ignore"):
        psnr = 20 * np.log10(value_range / mse)
    return {"mse": mse, "psnr": psnr, "l0": (np.abs(delta) > l0_tol).sum(axis=1).astype(float),
            "l2": l2, "linf": np.abs(delta).max(axis=1, initial=0.0),
            "ssim": np.array([ssim(a, b, value_range) for a, b in zip(x0, x_adv, strict=True)])}


def ssim(a: np.ndarray, b: np.ndarray, value_range: float = 1.0, window: int = 7) -> float:
    """Mean SSIM of two images (any leading channel axes; the last two are H, W)."""
    a = np.asarray(a, np.float64).reshape((-1,) + np.shape(a)[-2:])
    b = np.asarray(b, np.float64).reshape(a.shape)
    size = min(window, *a.shape[-2:])
    c1, c2 = (0.01 * value_range) ** 2, (0.03 * value_range) ** 2
    values = []
    for x, y in zip(a, b, strict=True):
        mx, my = uniform_filter(x, size), uniform_filter(y, size)
        vx = uniform_filter(x * x, size) - mx * mx
        vy = uniform_filter(y * y, size) - my * my
        cov = uniform_filter(x * y, size) - mx * my
        s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        pad = size // 2  # skip the borders, where the window is reflected
        values.append(s[pad:s.shape[0] - pad or None, pad:s.shape[1] - pad or None].mean())
    return float(np.mean(values))


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
