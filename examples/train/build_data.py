"""Rebuild ``examples/data/double_digits.npz`` and the sample inputs in ``examples/samples``.

    python examples/train/build_data.py

Samples: ``dd_<i>`` are the first double-digit test images (``.npy`` float32 [1, 1, 16, 24],
``.png`` 8-bit grey at native size, and bool masks ``_mask_a`` / ``_mask_b`` [16, 24]);
``digit_<d>`` is the first test source digit of class d (float32 [1, 1, 8, 8]);
``dd64_<i>`` are the first 64x64 DOUBLE-MNIST test images (``datasets.LARGE``: float32
[1, 1, 64, 64], 8-bit ``.png``, bool masks [64, 64]); ``samples.json`` lists every sample's
labels; ``gallery.png`` and ``gallery64.png`` show them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from robustc.runtime import datasets  # noqa: E402
from robustc.runtime.images import save_png  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
N_DOUBLE = 6


def write_double_samples(layout: datasets.Layout = datasets.SMALL) -> list[dict]:
    """Write the first ``N_DOUBLE`` double-digit test images of ``layout`` with masks;
    return their records."""
    images, labels, masks = datasets.double_digits("test", layout=layout)
    info = datasets.double_digits_info("test", layout=layout)
    prefix = "dd" if layout == datasets.SMALL else "dd64"
    records = []
    for i in range(N_DOUBLE):
        np.save(SAMPLES / f"{prefix}_{i}.npy", images[i : i + 1])
        np.save(SAMPLES / f"{prefix}_{i}_mask_a.npy", masks[i, 0])
        np.save(SAMPLES / f"{prefix}_{i}_mask_b.npy", masks[i, 1])
        save_png(images[i, 0], SAMPLES / f"{prefix}_{i}.png")
        records.append({
            "name": f"{prefix}_{i}", "test_index": i, "layout": layout.name,
            "digit_a": int(info.classes[i, 0]), "digit_b": int(info.classes[i, 1]),
            "labels": [int(d) for d in np.flatnonzero(labels[i])],
            "box_a_top_left": info.corners[i, 0].tolist(),
            "box_b_top_left": info.corners[i, 1].tolist(),
        })  # fmt: skip
    return records


def write_digit_samples() -> list[dict]:
    """Write the first test source digit of each class as ``digit_<d>``; return records."""
    images, labels = datasets.digits("test")
    records = []
    for d in range(10):
        i = int(np.flatnonzero(labels == d)[0])
        np.save(SAMPLES / f"digit_{d}.npy", images[i : i + 1])
        save_png(images[i, 0], SAMPLES / f"digit_{d}.png")
        records.append({"name": f"digit_{d}", "label": d, "test_index": i})
    return records


def draw_double(ax, rec: dict) -> None:
    """Draw the double-digit sample ``rec`` on ``ax``: the image in grey, mask a outlined
    red, mask b blue, the two digits in the title."""
    ax.imshow(np.load(SAMPLES / f"{rec['name']}.npy")[0, 0], cmap="gray", vmin=0, vmax=1)
    for suffix, colour in (("a", "red"), ("b", "deepskyblue")):
        mask = np.load(SAMPLES / f"{rec['name']}_mask_{suffix}.npy")
        ax.contour(mask, levels=[0.5], colors=colour, linewidths=0.8)
    ax.set_title(f"{rec['name']}: a={rec['digit_a']} b={rec['digit_b']}", fontsize=9)
    ax.set_axis_off()


def write_gallery64(double: list[dict]) -> None:
    """Draw the 64x64 samples with both digits outlined into ``gallery64.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(double), figsize=(2 * len(double), 2.3))
    for ax, rec in zip(axes, double, strict=True):
        draw_double(ax, rec)
    fig.suptitle("64x64 DOUBLE-MNIST test images (red = mask a, blue = mask b)", fontsize=10)
    fig.savefig(SAMPLES / "gallery64.png", dpi=70)
    plt.close(fig)


def write_gallery(double: list[dict], single: list[dict]) -> None:
    """Draw the double-digit samples (mask a red, mask b blue outlines) and the single
    digits with their labels into ``gallery.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 3.6))
    grid = fig.add_gridspec(2, 30, height_ratios=(1.6, 1))
    for k, rec in enumerate(double):
        ax = fig.add_subplot(grid[0, 5 * k : 5 * k + 5])
        draw_double(ax, rec)
    for k, rec in enumerate(single):
        ax = fig.add_subplot(grid[1, 3 * k : 3 * k + 3])
        ax.imshow(np.load(SAMPLES / f"{rec['name']}.npy")[0, 0], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{rec['name']}: {rec['label']}", fontsize=8)
        ax.set_axis_off()
    fig.suptitle("double digits (16x24; outline red = mask a, blue = mask b) and 8x8 digits")
    fig.savefig(SAMPLES / "gallery.png", dpi=70)
    plt.close(fig)


def main() -> None:
    """Write the .npz, the samples, samples.json and the gallery."""
    path = datasets.save_double_digits()
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    SAMPLES.mkdir(parents=True, exist_ok=True)
    double, single = write_double_samples(), write_digit_samples()
    double64 = write_double_samples(datasets.LARGE)
    (SAMPLES / "samples.json").write_text(json.dumps(
        {"double_digits": double, "digits": single, "double_digits_64": double64}, indent=1
    ) + "\n")  # fmt: skip
    write_gallery(double, single)
    write_gallery64(double64)
    print(f"wrote {len(double)} + {len(double64)} double-digit and {len(single)} digit samples "
          f"to {SAMPLES}")


if __name__ == "__main__":
    main()
