"""A tiny DAVIS-2017 layout for the tests that run a command over a dataset folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from hmmnlab.data.palette import write_label_png


def write_tiny_davis(root: Path, *, frames: int = 6, size: tuple[int, int] = (48, 64)) -> Path:
    """``root`` as a DAVIS-2017 val split of one sequence ``blob``: ``frames`` random-noise JPEG
    frames of H x W = ``size`` and a 20 x 30 object 1 moving down one pixel per frame."""
    rng = np.random.default_rng(0)
    for t in range(frames):
        folder = root / "JPEGImages" / "480p" / "blob"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
            folder / f"{t:05d}.jpg"
        )
        labels = np.zeros(size, np.uint8)
        labels[10 + t : 30 + t, 10:40] = 1
        write_label_png(root / "Annotations" / "480p" / "blob" / f"{t:05d}.png", labels)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("blob\n")
    return root
