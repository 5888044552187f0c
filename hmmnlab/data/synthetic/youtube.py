"""A small synthetic set in the YouTube-VOS layout (``train/``, ``valid/``,
``valid_all_frames/``, each with ``meta.json``): objects that enter after the first frame (not
drawn before), every 5th frame kept, validation annotated only where objects first appear."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hmmnlab.data.palette import write_label_png
from hmmnlab.data.synthetic.render import render_frame
from hmmnlab.data.synthetic.scene import build_scene
from hmmnlab.data.synthetic.spec import _NAME_PATTERN, VideoSpec

# ----------------------------------------------------------------------------------------------
# YouTube-VOS layout: objects that enter later, sparse validation annotations

#: YouTube-VOS keeps every 5th frame of a video (``<split>_all_frames`` has them all).
YOUTUBE_STRIDE = 5

#: An object enters at a frame where at least this many of its pixels are visible.
YOUTUBE_MIN_ENTRY_PIXELS = 40


@dataclass(frozen=True)
class YouTubeSpec:
    """A video for the YouTube-VOS layout: a :class:`VideoSpec` of the full-rate video
    (``video.num_frames`` = ``(n - 1) * YOUTUBE_STRIDE + 1`` for n kept frames) and, per object
    (labels 1..K), the kept frame it enters at (0: there from the start; before it the object is not
    drawn and not labelled) and its category."""

    video: VideoSpec
    entries: tuple[int, ...]
    categories: tuple[str, ...]

    def __post_init__(self) -> None:
        k = self.video.num_objects
        if len(self.entries) != k or len(self.categories) != k:
            raise ValueError(
                f"video {self.video.name!r}: expected an entry frame and a category for each of "
                f"its {k} objects, got {len(self.entries)} and {len(self.categories)}"
            )
        if (self.video.num_frames - 1) % YOUTUBE_STRIDE:
            raise ValueError(
                f"video {self.video.name!r}: num_frames must be (n - 1) * {YOUTUBE_STRIDE} + 1, "
                f"got {self.video.num_frames}"
            )
        if min(self.entries) != 0 or max(self.entries) >= self.num_kept:
            raise ValueError(
                f"video {self.video.name!r}: entries must lie in 0..{self.num_kept - 1} with at "
                f"least one object at frame 0, got {self.entries}"
            )
        if self.video.exit_reenter:
            raise ValueError(f"video {self.video.name!r}: exit_reenter is not supported here")

    @property
    def num_kept(self) -> int:
        """Number of kept frames (every ``YOUTUBE_STRIDE``-th of the full-rate video)."""
        return (self.video.num_frames - 1) // YOUTUBE_STRIDE + 1


def youtube_vos_specs() -> dict[str, tuple[YouTubeSpec, ...]]:
    """The small YouTube-VOS-layout set of ``hmmnlab samples --youtube-vos``: split -> videos.

    Three videos per split, 15 kept frames (71 at the full rate) of 96 x 160 pixels: one object
    entering later, two objects entering at two later frames, and two entering together."""

    def spec(name, seed, entries, categories, **kw):
        video = VideoSpec(
            name, seed=seed, num_frames=(15 - 1) * YOUTUBE_STRIDE + 1, height=96, width=160,
            num_objects=len(entries), object_size=0.15, occlusion=False, **kw,
        )  # fmt: skip
        return YouTubeSpec(video, tuple(entries), tuple(categories))

    return {
        "train": (
            spec("train-0", 1101, (0, 4), ("fish", "bird")),
            spec("train-1", 1202, (0, 3, 8), ("bird", "fish", "cup")),
            spec("train-2", 1303, (0, 5, 5), ("cup", "bird", "fish")),
        ),
        "valid": (
            spec("valid-0", 2101, (0, 4), ("bird", "fish")),
            spec("valid-1", 2202, (0, 3, 8), ("fish", "cup", "bird")),
            spec("valid-2", 2303, (0, 6, 6), ("cup", "fish", "bird")),
        ),
    }


def render_youtube_video(
    spec: YouTubeSpec, *, all_frames: bool = False
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Render ``spec``: (full-rate frame indices, frames T x H x W x 3 uint8, labels T x H x W
    uint8) of the kept frames (every ``YOUTUBE_STRIDE``-th), or of every frame with ``all_frames``.

    An object is drawn and labelled from its entry frame on (full-rate index ``entry *
    YOUTUBE_STRIDE``); it must show at least ``YOUTUBE_MIN_ENTRY_PIXELS`` pixels there."""
    scene = build_scene(spec.video)
    step = 1 if all_frames else YOUTUBE_STRIDE
    indices = list(range(0, spec.video.num_frames, step))
    shape = (len(indices), spec.video.height, spec.video.width)
    frames = np.empty((*shape, 3), dtype=np.uint8)
    labels = np.empty(shape, dtype=np.uint8)
    for i, t in enumerate(indices):
        visible = tuple(
            obj for obj in scene.objects if spec.entries[obj.label - 1] * YOUTUBE_STRIDE <= t
        )
        frames[i], labels[i] = render_frame(dataclasses.replace(scene, objects=visible), t)
        for obj in visible:
            if spec.entries[obj.label - 1] * YOUTUBE_STRIDE == t:
                count = int((labels[i] == obj.label).sum())
                if count < YOUTUBE_MIN_ENTRY_PIXELS:
                    raise RuntimeError(
                        f"video {spec.video.name!r}: object {obj.label} enters at frame {t} but "
                        f"shows only {count} pixel(s) there (expected at least "
                        f"{YOUTUBE_MIN_ENTRY_PIXELS}); choose another entry frame or seed"
                    )
    return indices, frames, labels


def _save_jpeg(path: Path, frame: np.ndarray, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame, mode="RGB").save(
        path, format="JPEG", quality=quality, subsampling=2, optimize=False, progressive=False
    )


def write_youtube_vos(
    root: str | Path,
    specs: dict[str, Sequence[YouTubeSpec]] | None = None,
    *,
    all_frames: bool = True,
    jpeg_quality: int = 90,
) -> dict[str, list[str]]:
    """Write ``specs`` (split -> videos; default :func:`youtube_vos_specs`) under ``root`` in the
    YouTube-VOS layout and return split -> video names.

    Every split has ``<split>/JPEGImages/<video>/00000.jpg, 00005.jpg, ...`` (every
    ``YOUTUBE_STRIDE``-th frame, named by the full-rate index), ``<split>/Annotations/<video>/*.png``
    (palette PNGs) and ``<split>/meta.json`` (``{"videos": {video: {"objects": {"1": {"category":
    ..., "frames": [...]}}}}}``). ``train`` is fully annotated (every kept frame; an object's meta
    frames are those that show it); any other split is annotated as YouTube-VOS validation is: a
    PNG only at the frames where objects first appear, holding only those objects, and an object's
    meta frames run from its first appearance to the last frame. With ``all_frames``, the other
    splits also get ``<split>_all_frames/JPEGImages/<video>/`` with every frame."""
    specs = youtube_vos_specs() if specs is None else specs
    root = Path(root)
    written: dict[str, list[str]] = {}
    for split, videos in specs.items():
        if not _NAME_PATTERN.match(split):
            raise ValueError(f"split must be a plain folder name, got {split!r}")
        dense = split == "train"
        meta: dict[str, dict] = {}
        for spec in videos:
            name = spec.video.name
            full = all_frames and not dense
            indices, frames, labels = render_youtube_video(spec, all_frames=full)
            kept = [i for i, t in enumerate(indices) if t % YOUTUBE_STRIDE == 0]
            for folder in (root / split / "JPEGImages" / name, root / split / "Annotations" / name):
                if folder.is_dir():
                    for old in folder.iterdir():
                        old.unlink()
            for i in kept:
                _save_jpeg(root / split / "JPEGImages" / name / f"{indices[i]:05d}.jpg",
                           frames[i], jpeg_quality)  # fmt: skip
            if full:
                folder = root / f"{split}_all_frames" / "JPEGImages" / name
                if folder.is_dir():
                    for old in folder.iterdir():
                        old.unlink()
                for i, t in enumerate(indices):
                    _save_jpeg(folder / f"{t:05d}.jpg", frames[i], jpeg_quality)
            objects = {}
            for label in range(1, spec.video.num_objects + 1):
                entry = spec.entries[label - 1]
                if dense:
                    shown = [n for n, i in enumerate(kept) if (labels[i] == label).any()]
                else:
                    shown = list(range(entry, len(kept)))
                objects[str(label)] = {
                    "category": spec.categories[label - 1],
                    "frames": [f"{indices[kept[n]]:05d}" for n in shown],
                }
            for n, i in enumerate(kept):
                entering = [k + 1 for k, e in enumerate(spec.entries) if e == n]
                if dense:
                    annotation = labels[i]
                elif entering:
                    annotation = np.where(np.isin(labels[i], entering), labels[i], 0)
                else:
                    continue
                write_label_png(
                    root / split / "Annotations" / name / f"{indices[i]:05d}.png",
                    annotation.astype(np.uint8),
                )
            meta[name] = {"objects": objects}
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / split / "meta.json").write_text(
            json.dumps({"videos": meta}, indent=1), encoding="utf-8"
        )
        written[split] = [spec.video.name for spec in videos]
    return written
