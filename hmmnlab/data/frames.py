"""Reading a video stored as a folder of image files (JPEG or PNG, in natural order of their names:
``1.jpg, 2.jpg, 10.jpg``; zero-padded names sort the same either way)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def rgb_array(img: Image.Image, path: str | Path) -> np.ndarray:
    """An opened image as H x W x 3 uint8 RGB. Greyscale, palette and RGBA images are converted;
    16-bit greyscale (PIL modes ``I;16*`` and ``I``) is scaled from 0..65535 to 0..255 (PIL's own
    conversion would clip it to white)."""
    if img.mode.startswith("I"):
        values = np.array(img)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(
                f"cannot read image {path}: expected 16-bit greyscale values 0..65535, found "
                f"{values.min()}..{values.max()}"
            )
        grey = np.round(values.astype(np.float64) / 257).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if img.mode == "F":
        raise ValueError(
            f"cannot read image {path}: floating-point images (PIL mode F) have no fixed range; "
            "expected 8- or 16-bit frames"
        )
    return np.array(img.convert("RGB"), dtype=np.uint8)


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB (see :func:`rgb_array`)."""
    try:
        with Image.open(path) as img:
            return rgb_array(img, path)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


def natural_key(path: Path) -> list:
    """Sort key that orders numbers by value: ``2.jpg`` before ``10.jpg``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


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

    Frames are in natural order of their file names (numbers by value: ``2.jpg`` before ``10.jpg``).

    Checks on creation that the folder holds image files and that they all have one size (by their
    headers), so a bad video fails before any work is done.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"frames folder not found: {self.directory}")
        self.paths = sorted(
            (p for p in self.directory.iterdir() if p.suffix.lower() in FRAME_SUFFIXES),
            key=natural_key,
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
