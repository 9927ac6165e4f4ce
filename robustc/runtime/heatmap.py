"""Heatmaps of layered neighbourhoods, like the figures of Mour & Drachsler-Cohen (2023).

Each ring is coloured by its budget ``eps_d`` on a log scale (``log10``), over the image in
grey; pixels outside every ring show the image only; the objects are outlined. matplotlib
is imported here only (Agg backend, no display needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robustc.files import atomic_path

FLOOR = 1e-4  # budgets below this (0 included) are drawn at this value on the log scale


def save_heatmap(path: str | Path, image: np.ndarray, rings: np.ndarray, eps: np.ndarray,
                 objects: list[tuple[np.ndarray, str]] = (), title: str = "") -> Path:
    """Write a PNG: ``image`` (H, W) in grey, each ring coloured by ``log10(eps_d)``, and
    ``objects`` ((H, W) masks with labels) outlined. Returns the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = np.asarray(eps, dtype=float)
    values = np.where(rings >= 0, np.log10(np.maximum(eps[np.clip(rings, 0, None)], FLOOR)),
                      np.nan)
    fig, ax = plt.subplots(figsize=(6, 4.4), dpi=110)
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    shown = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", alpha=0.75,
                      vmin=np.log10(FLOOR), vmax=0.0)
    colours = ("tab:red", "tab:cyan", "tab:orange", "tab:pink")
    for (mask, label), colour in zip(objects, colours, strict=False):
        ax.contour(np.asarray(mask, float), levels=[0.5], colors=[colour], linewidths=1.5)
        ax.plot([], [], color=colour, label=label)
    for d in range(len(eps)):
        where = np.argwhere(rings == d)
        if len(where):
            r, c = where[len(where) // 2]
            ax.text(c, r, f"{d}", color="white", fontsize=6, ha="center", va="center")
    bar = fig.colorbar(shown, ax=ax, shrink=0.8)
    bar.set_label("log10(eps) of the ring")
    if objects:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.2), ncol=len(objects),
                  fontsize=7, frameon=False)
    ax.set_title(title or "layered neighbourhood", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    text = ", ".join(f"{e:.3g}" for e in eps)
    fig.text(0.02, 0.01, f"eps = [{text}]", fontsize=6)
    path = Path(path)
    try:
        with atomic_path(path) as tmp:  # all or nothing (robustc.files)
            fig.savefig(tmp, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def save_comparison(path: str | Path, image: np.ndarray, rings: np.ndarray,
                    panels: list[tuple[str, np.ndarray]],
                    objects: list[tuple[np.ndarray, str]] = (), title: str = "") -> Path:
    """Write a PNG with one heatmap per ``(caption, eps)`` of ``panels``, side by side over
    the same ``image`` and ``rings`` (the same colour scale, one colour bar): several
    classifiers' budgets on the same image. Returns the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 4.1), dpi=110,
                             squeeze=False)  # fmt: skip
    colours = ("tab:red", "tab:cyan", "tab:orange", "tab:pink")
    shown = None
    # one colour scale for all panels, spanning their budgets (the point is to compare them)
    every = np.concatenate([np.asarray(eps, dtype=float) for _, eps in panels])
    positive = every[every > 0]
    top = np.log10(max(positive.max(), FLOOR)) + 0.2 if positive.size else 0.0
    bottom = np.log10(max(positive.min(), FLOOR)) - 0.2 if positive.size else np.log10(FLOOR)
    for ax, (caption, eps) in zip(axes[0], panels, strict=True):
        eps = np.asarray(eps, dtype=float)
        values = np.where(rings >= 0,
                          np.log10(np.maximum(eps[np.clip(rings, 0, None)], FLOOR)), np.nan)
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        shown = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", alpha=0.75,
                          vmin=min(bottom, top - 0.5), vmax=top)  # fmt: skip
        for (mask, _), colour in zip(objects, colours, strict=False):
            ax.contour(np.asarray(mask, float), levels=[0.5], colors=[colour], linewidths=1.2)
        text = ", ".join(f"{e:.3f}" for e in eps)
        ax.set_title(f"{caption}\neps = [{text}]", fontsize=6.5)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [axes[0][0].plot([], [], color=colour, label=label)[0]
               for (_, label), colour in zip(objects, colours, strict=False)]
    if objects:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7,
                   frameon=False)
    bar = fig.colorbar(shown, ax=list(axes[0]), shrink=0.8)
    bar.set_label("log10(eps) of the ring")
    if title:
        fig.suptitle(title, fontsize=9)
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
