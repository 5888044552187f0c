"""Label-map PNG I/O in the DAVIS convention.

DAVIS stores a frame's annotation as an indexed ("P" mode) PNG: pixel value k is object k, 0 is
background, and 255 marks void pixels in DAVIS 2017. DAVIS 2016 stores single-object masks as 0/255
greyscale PNGs instead. These helpers read both and write the palette form.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


def davis_palette() -> np.ndarray:
    """The DAVIS/PASCAL VOC colour palette, 256 x 3 uint8 (label 1 is red, 2 green, ...)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in range(256):
        c, r, g, b = label, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[label] = (r, g, b)
    return palette


def read_label_png(path: str | Path, *, binary: bool | None = None) -> np.ndarray:
    """Read an annotation PNG as an H x W uint8 label map.

    Palette ("P") images give their indices as they are. Greyscale or RGB images whose only values are
    0 and 255 (the DAVIS 2016 convention) are read as one object (0/1). ``binary=True`` forces that
    reading (any non-zero pixel is the object); ``binary=False`` keeps the raw values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode == "P":
                labels = np.array(img, dtype=np.uint8)
            else:
                labels = np.array(img.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read mask image {path}: {err}") from err
    if binary is True:
        return (labels > 0).astype(np.uint8)
    if binary is None and mode != "P":
        values = np.unique(labels)
        if set(values.tolist()) <= {0, 255}:
            return (labels > 0).astype(np.uint8)
    return labels


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """Write an H x W integer label map (values 0..255) as a DAVIS palette PNG."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"expected an H x W label map, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"labels must lie in 0..255, found {labels.min()}..{labels.max()}")
    img = Image.fromarray(labels.astype(np.uint8), mode="P")
    img.putpalette(davis_palette().reshape(-1).tolist())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
