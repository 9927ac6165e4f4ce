"""Images on disk: the one PNG writer of robustc (attack reports, patch reports, global
robustness witness pairs, the example data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robustc.files import atomic_path


def save_png(image: np.ndarray, path: str | Path, *, scale: int = 1) -> Path:
    """Write ``image`` (values in [0, 1]; clipped) as an 8-bit PNG and return its path.

    ``image`` is ``(H, W)`` or ``(..., C, H, W)``: every axis before the last two is read as
    channels; one channel gives a grey image, more give RGB from the first three. ``scale``
    enlarges the picture by an integer factor (nearest neighbour), for small images.
    """
    from PIL import Image

    image = np.asarray(image, dtype=np.float64)
    chw = image.reshape((-1,) + image.shape[-2:])
    pixels = np.clip(np.rint(chw * 255), 0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels[0] if len(pixels) == 1 else pixels[:3].transpose(1, 2, 0))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale),
                                 Image.NEAREST)
    with atomic_path(path) as tmp:  # all or nothing (robustc.files)
        picture.save(tmp)
    return Path(path)


__all__ = ["save_png"]
