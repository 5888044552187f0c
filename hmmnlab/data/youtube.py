"""Read a YouTube-VOS dataset folder (the 2018 and 2019 layouts, which are the same).

The layout::

    <root>/<split>/JPEGImages/<video>/00000.jpg 00005.jpg ...   every 5th frame of the video
    <root>/<split>/Annotations/<video>/00000.png ...           palette PNGs (0 background, k object k)
    <root>/<split>/meta.json                                   {"videos": {video: {"objects": {"1":
                                                                 {"category": ..., "frames": [...]}}}}}
    <root>/<split>_all_frames/JPEGImages/<video>/00000.jpg ... every frame (valid, test; optional)

``<split>`` is ``train``, ``valid`` or ``test``. Frame names are the frame numbers of the full-rate
video, so ``00005`` is the same frame in both folders.

``meta.json`` lists per object its category and frames. In ``train`` these are the frames that show
the object, and every kept frame has a full annotation. In ``valid`` and ``test`` they are the frames
to output for the object (from its first appearance to the end); the first of them is where it first
appears, and annotations exist only at such frames. The reader takes from the PNG of frame t the
objects that first appear at t and ignores any other label in it (in train, the objects that entered
earlier).

A :class:`YouTubeVideo` starts at the first frame where an object appears (earlier frames, if the
folder has any, are not read) and gives what :func:`hmmnlab.inference.propagate` takes:
``first_labels()`` and ``new_objects()`` ({frame index: label map of the objects entering there}).
Frames are read lazily, one at a time, as in :class:`hmmnlab.data.davis.DavisSequence`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from hmmnlab.data.davis import listing
from hmmnlab.data.frames import image_size, natural_key, rgb_array
from hmmnlab.data.palette import read_label_png

SPLITS = ("train", "valid", "test")

#: The splits whose every kept frame is annotated (the others: first appearances only).
DENSE_SPLITS = ("train",)


@dataclass(frozen=True)
class YouTubeObject:
    """One object of a video, as ``meta.json`` describes it.

    frames: train: the frames that show it; valid and test: the frames to output for it. The first
    is where it first appears, the frame whose annotation gives it."""

    object_id: int
    category: str | None
    frames: tuple[str, ...]

    @property
    def first_frame(self) -> str:
        return self.frames[0]


@dataclass(frozen=True)
class YouTubeVideo:
    """One video: the paths of its frames (from its first object's first frame on), its annotation
    folder and its objects. ``video[i]`` reads frame i as H x W x 3 uint8 RGB; iterating reads one
    frame at a time. A :class:`~hmmnlab.data.video.Video`."""

    name: str
    split: str
    frame_paths: tuple[Path, ...]
    annotation_dir: Path
    objects: tuple[YouTubeObject, ...]

    # --- frames ----------------------------------------------------------------------------------

    @property
    def frame_names(self) -> tuple[str, ...]:
        """File stems of the frames read, e.g. ``("00000", "00005", ...)``."""
        return tuple(p.stem for p in self.frame_paths)

    def __len__(self) -> int:
        return len(self.frame_paths)

    @cached_property
    def size(self) -> tuple[int, int]:
        """(H, W), from the first frame."""
        return image_size(self.frame_paths[0])

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as an H x W x 3 uint8 RGB array (read now, not cached)."""
        path = self.frame_paths[index]
        try:
            with Image.open(path) as img:
                rgb = rgb_array(img, path)
        except OSError as err:
            raise ValueError(f"cannot read frame {path}: {err}") from err
        if rgb.shape[:2] != self.size:
            raise ValueError(
                f"video {self.name!r}: frames have different sizes: expected H x W = "
                f"{self.size[0]} x {self.size[1]} (from {self.frame_paths[0].name}), found "
                f"{rgb.shape[0]} x {rgb.shape[1]} in {path}"
            )
        return rgb

    def __getitem__(self, index: int) -> np.ndarray:
        return self.frame(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self.frame(index)

    # --- objects ---------------------------------------------------------------------------------

    @property
    def object_ids(self) -> tuple[int, ...]:
        return tuple(obj.object_id for obj in self.objects)

    @property
    def num_objects(self) -> int:
        return len(self.objects)

    def object(self, object_id: int) -> YouTubeObject:
        for obj in self.objects:
            if obj.object_id == object_id:
                return obj
        raise KeyError(f"video {self.name!r} has no object {object_id}; objects: {self.object_ids}")

    @property
    def output_frames(self) -> tuple[str, ...]:
        """The frames the meta asks for (the union of its objects' frames), in frame order: what a
        submission holds for this video."""
        names = {name for obj in self.objects for name in obj.frames}
        return tuple(sorted(names, key=lambda n: natural_key(Path(n))))

    @property
    def entering(self) -> dict[int, tuple[int, ...]]:
        """Frame index (into ``frame_names``) -> ids of the objects that first appear there."""
        index = {name: i for i, name in enumerate(self.frame_names)}
        found: dict[int, tuple[int, ...]] = {}
        for obj in self.objects:
            i = index[obj.first_frame]
            found[i] = (*found.get(i, ()), obj.object_id)
        return dict(sorted(found.items()))

    # --- annotations -----------------------------------------------------------------------------

    @property
    def annotation_names(self) -> tuple[str, ...]:
        """File stems of the annotation PNGs present, in frame order."""
        paths = self.annotation_dir.glob("*.png") if self.annotation_dir.is_dir() else ()
        return tuple(p.stem for p in sorted(paths, key=natural_key))

    def mask(self, name: str) -> np.ndarray:
        """The annotation of frame ``name`` as an H x W uint8 label map, as stored."""
        path = self.annotation_dir / f"{name}.png"
        labels = read_label_png(path, binary=False)
        if labels.shape != self.size:
            raise ValueError(
                f"{path}: expected an annotation of H x W = {self.size[0]} x {self.size[1]} (as "
                f"the frames), found {labels.shape[0]} x {labels.shape[1]}"
            )
        return labels

    def entry_masks(self) -> dict[int, np.ndarray]:
        """Frame index -> H x W uint8 label map of the objects that first appear there (0
        elsewhere), from the annotation of that frame. Other labels of that annotation (objects that
        entered earlier, in train) are left out. An entering object without a pixel there is an
        error."""
        masks = {}
        for index, ids in self.entering.items():
            name = self.frame_names[index]
            labels = self.mask(name)
            missing = [i for i in ids if not (labels == i).any()]
            if missing:
                found = sorted(int(v) for v in np.unique(labels) if v != 0)
                raise ValueError(
                    f"video {self.name!r}: meta.json says object(s) {missing} first appear at "
                    f"frame {name}, but its annotation {self.annotation_dir / f'{name}.png'} "
                    f"has no pixel of them (labels found: {found or 'none'})"
                )
            masks[index] = np.where(np.isin(labels, ids), labels, 0).astype(np.uint8)
        return masks

    def first_labels(self) -> np.ndarray:
        """The label map of frame 0 (of ``frame_names``): the objects that appear first."""
        return self.entry_masks()[0]

    def new_objects(self) -> dict[int, np.ndarray]:
        """{frame index t >= 1: label map of the objects first appearing at t}, for ``propagate``."""
        return {t: labels for t, labels in self.entry_masks().items() if t > 0}


class YouTubeVOS:
    """A YouTube-VOS split: the videos of its ``meta.json``, each a :class:`YouTubeVideo`.

    Args:
        root: the dataset folder, holding ``train/``, ``valid/``, ``test/`` (any of them).
        split: ``"train"``, ``"valid"`` or ``"test"`` (another folder name of the same layout works).
        all_frames: read the frames of ``<split>_all_frames/JPEGImages`` (every frame) instead of
            ``<split>/JPEGImages`` (every 5th); annotations and meta stay those of ``<split>``.
        videos: check and give only these videos (default: every video of the meta).

    Construction reads ``meta.json`` and lists the frame folders of the selected videos: a video of
    the meta without frames, an object without frames, a frame of the meta that is not among the
    video's frames or an object's first frame without annotation are errors, before any image is
    read. ``dataset.videos`` lists the names (meta order); ``dataset[name]`` gives the video.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        split: str = "valid",
        all_frames: bool = False,
        videos: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.all_frames = all_frames
        if not self.root.is_dir():
            raise FileNotFoundError(f"YouTube-VOS root folder not found: {self.root}")
        self.split_dir = self.root / split
        if not self.split_dir.is_dir():
            found = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            hint = ""
            if (self.root / "meta.json").is_file():
                hint = f" ({self.root} looks like a split folder itself: give its parent as root)"
            raise FileNotFoundError(
                f"expected the split folder {self.split_dir} (split {split!r}); folders found in "
                f"{self.root}: {listing(found) or 'none'}{hint}"
            )
        self.meta_path = self.split_dir / "meta.json"
        self.annotation_root = self.split_dir / "Annotations"
        self.frame_root = (
            self.root / f"{split}_all_frames" / "JPEGImages"
            if all_frames
            else self.split_dir / "JPEGImages"
        )
        if not self.frame_root.is_dir():
            raise FileNotFoundError(
                f"expected the frame folder {self.frame_root}"
                + (" (--all-frames reads the full-rate frames there)" if all_frames else "")
            )
        self._objects = self._read_meta()
        self._names = list(self._objects)
        selected = self._names if videos is None else list(videos)
        unknown = [name for name in selected if name not in self._objects]
        if unknown:
            raise ValueError(
                f"video(s) not in {self.meta_path}: {listing(unknown)}; the meta lists "
                f"{listing(self._names)}"
            )
        self._videos = {name: self._make_video(name) for name in selected}
        self._selected = selected

    @property
    def dense(self) -> bool:
        """Whether every kept frame is annotated (train): the split can be scored locally."""
        return self.split in DENSE_SPLITS

    # --- meta.json -------------------------------------------------------------------------------

    def _read_meta(self) -> dict[str, tuple[YouTubeObject, ...]]:
        if not self.meta_path.is_file():
            raise FileNotFoundError(
                f'expected the YouTube-VOS meta data {self.meta_path} ({{"videos": {{video: '
                f'{{"objects": ...}}}}}}), found no such file'
            )
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{self.meta_path} is not valid JSON: {err}") from err
        videos = meta.get("videos") if isinstance(meta, dict) else None
        if not isinstance(videos, dict) or not videos:
            raise ValueError(
                f'{self.meta_path}: expected {{"videos": {{video: {{"objects": ...}}}}}} '
                "with at least one video"
            )
        return {name: self._parse_video(name, entry) for name, entry in videos.items()}

    def _parse_video(self, name: str, entry) -> tuple[YouTubeObject, ...]:
        where = f"{self.meta_path}: video {name!r}"
        objects = entry.get("objects") if isinstance(entry, dict) else None
        if not isinstance(objects, dict) or not objects:
            raise ValueError(f'{where} has no objects (expected "objects": {{"1": ...}})')
        parsed, spelling = [], {}
        for key, obj in objects.items():
            try:
                object_id = int(key)
            except ValueError:
                raise ValueError(f"{where}: object ids must be integers, found {key!r}") from None
            if not 1 <= object_id <= 254:
                raise ValueError(f"{where}: object ids must lie in 1..254, found {object_id}")
            if object_id in spelling:
                raise ValueError(
                    f"{where}: object ids {spelling[object_id]!r} and {key!r} are both object "
                    f"{object_id}; give each object once"
                )
            spelling[object_id] = key
            if not isinstance(obj, dict):
                raise ValueError(
                    f'{where}: object {object_id} must be {{"category": ..., "frames": [...]}}, '
                    f"found {type(obj).__name__}"
                )
            frames = obj.get("frames")
            if not isinstance(frames, list) or not frames:
                raise ValueError(f"{where}: object {object_id} lists no frames")
            bad = [f for f in frames if not isinstance(f, str) or not f]
            if bad:
                raise ValueError(
                    f"{where}: object {object_id}: frames must be frame names (strings such as "
                    f'"00005"), found {bad[0]!r} ({type(bad[0]).__name__})'
                )
            category = obj.get("category")
            if category is not None and not isinstance(category, str):
                raise ValueError(
                    f"{where}: object {object_id}: category must be a string, found "
                    f"{category!r} ({type(category).__name__})"
                )
            frames = sorted(set(frames), key=lambda n: natural_key(Path(n)))
            parsed.append(YouTubeObject(object_id, category, tuple(frames)))
        return tuple(sorted(parsed, key=lambda o: o.object_id))

    # --- videos ----------------------------------------------------------------------------------

    def _make_video(self, name: str) -> YouTubeVideo:
        objects = self._objects[name]
        folder = self.frame_root / name
        paths = sorted(folder.glob("*.jpg"), key=natural_key) if folder.is_dir() else []
        if not paths:
            raise FileNotFoundError(
                f"video {name!r} of {self.meta_path} has no frames: expected {folder}/*.jpg"
            )
        stems = [p.stem for p in paths]
        index = {stem: i for i, stem in enumerate(stems)}
        wanted = sorted(
            {f for obj in objects for f in obj.frames}, key=lambda n: natural_key(Path(n))
        )
        absent = [f for f in wanted if f not in index]
        if absent:
            raise FileNotFoundError(
                f"video {name!r}: meta.json lists frame(s) {listing(absent)} but {folder} has no "
                f"such .jpg (it has {stems[0]}..{stems[-1]}, {len(stems)} frames)"
            )
        annotations = self.annotation_root / name
        for obj in objects:
            path = annotations / f"{obj.first_frame}.png"
            if not path.is_file():
                raise FileNotFoundError(
                    f"video {name!r}: object {obj.object_id} first appears at frame "
                    f"{obj.first_frame} (meta.json) but its annotation {path} is missing"
                )
        start = min(index[obj.first_frame] for obj in objects)
        return YouTubeVideo(name, self.split, tuple(paths[start:]), annotations, objects)

    @property
    def videos(self) -> list[str]:
        """The selected video names, in meta order."""
        return list(self._selected)

    def categories(self) -> list[str]:
        """Every category of the split's objects (all videos of the meta), sorted."""
        found = {o.category for objects in self._objects.values() for o in objects}
        return sorted(found - {None})

    def __len__(self) -> int:
        return len(self._selected)

    def __getitem__(self, name: str) -> YouTubeVideo:
        try:
            return self._videos[name]
        except KeyError:
            raise KeyError(
                f"no video {name!r} in YouTube-VOS {self.split}; videos: {listing(self._selected)}"
            ) from None

    def __iter__(self) -> Iterator[YouTubeVideo]:
        return (self._videos[name] for name in self._selected)

    def __repr__(self) -> str:
        return (
            f"YouTubeVOS(root={str(self.root)!r}, split={self.split!r}, "
            f"all_frames={self.all_frames}, {len(self)} videos)"
        )
