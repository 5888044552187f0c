"""Label-map PNG I/O in the DAVIS convention.

DAVIS stores a frame's annotation as an indexed ("P" mode) PNG: pixel value k is object k, 0 is
background, and 255 marks void pixels in DAVIS 2017. DAVIS 2016 stores single-object masks as 0/255
greyscale PNGs instead. These helpers read both and write the palette form.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

#: Label value of void pixels in DAVIS 2017 annotations (ignored in first-frame masks and scores).
VOID_LABEL = 255


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

    Palette ("P") images give their indices as they are. Greyscale (8- or 16-bit) or RGB images
    whose only values are 0 and the maximum (255, or 65535 in 16 bits; the DAVIS 2016 convention)
    are read as one object (0/1). Other greyscale images give their values (which must lie in
    0..255, 255 being void). Other RGB(A) images must use the DAVIS palette's colours, which give
    their palette indices; any other colour is an error. ``binary=True`` forces the one-object
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
                return (labels > 0).astype(np.uint8) if binary is True else labels
            if mode in ("RGB", "RGBA"):
                return _colour_labels(np.array(img.convert("RGB")), path, binary)
            if mode.startswith("I"):
                raw = np.array(img).astype(np.int64)
            else:
                raw = np.array(img.convert("L")).astype(np.int64)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read mask image {path}: {err}") from err
    full = 65535 if mode.startswith("I") and raw.size and raw.max() > 255 else 255
    if binary is not False and set(np.unique(raw).tolist()) <= {0, full}:
        return (raw > 0).astype(np.uint8)
    if binary is True:
        return (raw > 0).astype(np.uint8)
    if raw.size and (raw.min() < 0 or raw.max() > 255):
        raise ValueError(
            f"mask {path}: expected label values 0..255 (255 = void), found {raw.min()}..{raw.max()}"
            f" in a {mode} image; save the mask as an indexed (palette) PNG"
        )
    return raw.astype(np.uint8)


def _colour_labels(rgb: np.ndarray, path: Path, binary: bool | None) -> np.ndarray:
    """H x W x 3 colours -> labels: black/white is one object, else the DAVIS palette's indices."""
    nonzero = rgb.any(axis=-1)
    colours, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    grey_binary = all(tuple(c) in ((0, 0, 0), (255, 255, 255)) for c in colours.tolist())
    if binary is True or (binary is None and grey_binary):
        return nonzero.astype(np.uint8)
    index_of = {tuple(c): i for i, c in enumerate(davis_palette().tolist())}
    unknown = [tuple(c) for c in colours.tolist() if tuple(c) not in index_of]
    if unknown:
        raise ValueError(
            f"mask {path} is an RGB image with colours that are not the DAVIS palette's, e.g. "
            f"{', '.join(str(c) for c in unknown[:3])} ({len(colours)} colours in all); expected an "
            "indexed (palette) PNG, a black/white PNG, or RGB colours of the DAVIS palette"
        )
    labels = np.array([index_of[tuple(c)] for c in colours.tolist()], dtype=np.uint8)
    return labels[inverse.reshape(-1)].reshape(rgb.shape[:2])


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
