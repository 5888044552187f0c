"""Synthetic videos written in the DAVIS 2017 layout (JPEG frames, palette PNG masks, the split's
list)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from hmmnlab.data.palette import write_label_png
from hmmnlab.data.synthetic.render import generate_video
from hmmnlab.data.synthetic.spec import _NAME_PATTERN, VideoSpec

# ----------------------------------------------------------------------------------------------
# DAVIS layout


def write_davis(
    root: str | Path,
    specs: Sequence[VideoSpec],
    *,
    resolution: str = "480p",
    split: str = "val",
    jpeg_quality: int = 90,
) -> list[str]:
    """Render ``specs`` and write them under ``root`` in the DAVIS 2017 layout.

    Writes ``JPEGImages/<resolution>/<name>/00000.jpg ...`` (RGB JPEG, fixed quality, 4:2:0),
    ``Annotations/<resolution>/<name>/00000.png ...`` (palette PNGs, one per frame) and
    ``ImageSets/2017/<split>.txt`` listing the names, one per line (the list is replaced, so
    write each split with one call). Frame files left in those sequence folders by an earlier,
    longer run are removed. Returns the names written.
    """
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"sequence names must be unique, found duplicates {duplicates}")
    videos = ((spec.name, *generate_video(spec)) for spec in specs)
    return write_davis_arrays(
        root, videos, resolution=resolution, split=split, jpeg_quality=jpeg_quality
    )


def write_davis_arrays(
    root: str | Path,
    videos,
    *,
    resolution: str = "480p",
    split: str = "val",
    jpeg_quality: int = 90,
) -> list[str]:
    """Write ``videos`` (an iterable of ``(name, frames T x H x W x 3 uint8, labels T x H x W
    uint8)``) under ``root`` in the DAVIS 2017 layout, as :func:`write_davis` does. Returns the
    names written."""
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must lie in 1..100, got {jpeg_quality}")
    for label, value in (("resolution", resolution), ("split", split)):
        if not _NAME_PATTERN.match(value):
            raise ValueError(f"{label} must be a plain folder or file name, got {value!r}")
    root = Path(root)
    names: list[str] = []
    for name, frames, labels in videos:
        if name in names:
            raise ValueError(f"sequence names must be unique, found {name!r} twice")
        names.append(name)
        image_dir = root / "JPEGImages" / resolution / name
        mask_dir = root / "Annotations" / resolution / name
        for folder, suffix in ((image_dir, ".jpg"), (mask_dir, ".png")):
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob(f"[0-9][0-9][0-9][0-9][0-9]{suffix}"):
                old.unlink()
        for t in range(len(frames)):
            Image.fromarray(frames[t], mode="RGB").save(
                image_dir / f"{t:05d}.jpg",
                format="JPEG",
                quality=jpeg_quality,
                subsampling=2,  # 4:2:0, as in DAVIS
                optimize=False,
                progressive=False,
            )
            write_label_png(mask_dir / f"{t:05d}.png", labels[t])
    list_path = root / "ImageSets" / "2017" / f"{split}.txt"
    list_path.parent.mkdir(parents=True, exist_ok=True)
    list_path.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    return names
