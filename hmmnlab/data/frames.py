"""Reading a video stored as a folder of image files (JPEG or PNG, sorted by name)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB (greyscale, palette and RGBA images are converted)."""
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, reading only its header."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
    return height, width


class FrameFolder(Sequence):
    """The frames of a folder, read lazily: ``folder[t]`` is frame t as H x W x 3 uint8 RGB.

    Checks on creation that the folder holds image files and that they all have one size (by their
    headers), so a bad video fails before any work is done.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"frames folder not found: {self.directory}")
        self.paths = sorted(
            p for p in self.directory.iterdir() if p.suffix.lower() in FRAME_SUFFIXES
        )
        if not self.paths:
            raise ValueError(
                f"frames folder {self.directory} holds no {'/'.join(FRAME_SUFFIXES)} images"
            )
        sizes = {p: image_size(p) for p in self.paths}
        self.size = sizes[self.paths[0]]
        odd = [p.name for p in self.paths if sizes[p] != self.size]
        if odd:
            raise ValueError(
                f"frames differ in size: {self.paths[0].name} is {self.size} (H x W) but "
                f"{odd[0]} is {sizes[self.directory / odd[0]]}"
                + (f" (and {len(odd) - 1} more)" if len(odd) > 1 else "")
            )

    @property
    def stems(self) -> list[str]:
        """File names without their suffix, e.g. ``00000``, in frame order."""
        return [p.stem for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        return read_rgb(self.paths[index])

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self.paths:
            yield read_rgb(path)
