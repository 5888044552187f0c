"""One resumable runner: segment the videos of any dataset into an output folder.

The runner takes videos (anything with the :class:`~hmmnlab.data.video.Video` protocol) and a
:class:`Layout`, which says where a video's masks go and which frames get one. For every video it
removes the old record, propagates, hands each frame's labels to the layout's writer, and then
writes the record (``OUT/timing/<video>.json``: seconds per frame, peak memory and the settings the
masks depend on, :func:`hmmnlab.evaluation.records.run_settings`) atomically. A video counts as
finished when its record exists, was written with the same settings and the layout finds all its
masks, so a run killed mid-video redoes that video and nothing else, and a run with other settings
never takes another run's masks. One run at a time writes to a folder
(:func:`hmmnlab.evaluation.records.output_lock`).

The DAVIS layout (``OUT/<sequence>/<frame>.png``, optional overlays) is :class:`DavisLayout`; the
YouTube-VOS one is in :mod:`hmmnlab.evaluation.youtube`. A new dataset needs a reader (its videos
implement the protocol) and, when its masks go somewhere else, a layout: ``masks_dir``, ``frames``
and ``open``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
from tqdm import tqdm

from hmmnlab.config import ReadConfig
from hmmnlab.data.palette import write_label_png
from hmmnlab.data.video import Video
from hmmnlab.evaluation.records import PeakMemory, read_record, timing_path, write_json_atomically
from hmmnlab.evaluation.resources import check_memory
from hmmnlab.inference import propagate
from hmmnlab.model import HMMN
from hmmnlab.viz import overlay


class MaskWriter(Protocol):
    """Writes one video's masks as they come: ``write(t, labels)`` for every frame t (H x W
    labels), then ``close()`` once after the last frame."""

    def write(self, index: int, labels: np.ndarray) -> None: ...
    def close(self) -> None: ...


class Layout(Protocol):
    """Where a dataset's masks go in an output folder.

    ``masks_dir(out, video)``: the folder of a video's masks. ``frames(video)``: the names of the
    frames that get a mask file (``<name>.png``). ``open(out, video)``: a :class:`MaskWriter` for a
    fresh segmentation of the video. ``same_settings(found, wanted)``: whether masks written with
    the settings ``found`` serve a run asking for ``wanted``."""

    def masks_dir(self, out: Path, video: Video) -> Path: ...
    def frames(self, video: Video) -> Sequence[str]: ...
    def open(self, out: Path, video: Video) -> MaskWriter: ...
    def same_settings(self, found: dict, wanted: dict) -> bool: ...


class PngWriter:
    """Writes the frames of ``names`` as palette PNGs ``folder/<frame name>.png`` (the others are
    not written); with ``clear``, after removing the PNGs an earlier run left there (when not every
    frame gets a mask, an old run's extra masks would otherwise stay)."""

    def __init__(
        self, folder: Path, video: Video, names: Sequence[str], *, clear: bool = False
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png") if clear else ():  # the folder: this run's masks only
            old.unlink()
        self.folder, self.frame_names, self.wanted = folder, video.frame_names, set(names)

    def write(self, index: int, labels: np.ndarray) -> None:
        name = self.frame_names[index]
        if name in self.wanted:
            write_label_png(self.folder / f"{name}.png", labels)

    def close(self) -> None:
        pass


def write_overlay_video(frames: list[np.ndarray], path: Path, fps: float = 12.0) -> None:
    """H x W x 3 RGB frames -> an MP4 (OpenCV's mp4v writer)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write the video {path}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


class OverlayWriter(PngWriter):
    """A :class:`PngWriter` that also keeps the masks drawn over the frames: on ``close``,
    ``overlays/<video>/<frame>.jpg`` and ``overlays/<video>.mp4`` beside the masks' folder."""

    def __init__(self, folder: Path, video: Video, names: Sequence[str], overlays: Path) -> None:
        super().__init__(folder, video, names)
        self.video, self.overlays, self.images = video, overlays, []

    def write(self, index: int, labels: np.ndarray) -> None:
        super().write(index, labels)
        self.images.append(overlay(self.video.frame(index), labels))

    def close(self) -> None:
        folder = self.overlays / self.video.name
        folder.mkdir(parents=True, exist_ok=True)
        for name, image in zip(self.video.frame_names, self.images, strict=True):
            cv2.imwrite(str(folder / f"{name}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        write_overlay_video(self.images, self.overlays / f"{self.video.name}.mp4")


@dataclass(frozen=True)
class DavisLayout:
    """The official DAVIS toolkit's layout: ``OUT/<sequence>/<frame>.png`` for every frame; with
    ``overlays``, also ``OUT/overlays/<sequence>/<frame>.jpg`` and ``OUT/overlays/<sequence>.mp4``.
    A run with overlays also serves one without."""

    overlays: bool = False

    def masks_dir(self, out: Path, video: Video) -> Path:
        return out / video.name

    def frames(self, video: Video) -> Sequence[str]:
        return video.frame_names

    def open(self, out: Path, video: Video) -> MaskWriter:
        folder, names = self.masks_dir(out, video), self.frames(video)
        if self.overlays:
            return OverlayWriter(folder, video, names, out / "overlays")
        return PngWriter(folder, video, names)

    def same_settings(self, found: dict, wanted: dict) -> bool:
        if {**found, "overlays": None} != {**wanted, "overlays": None}:
            return False
        return bool(found.get("overlays")) or not wanted.get("overlays")


def is_finished(out: Path, video: Video, layout: Layout, settings: dict | None = None) -> bool:
    """A video is finished when its record is readable, was written with ``settings`` (when given,
    as the layout compares them) and every mask the layout asks for exists."""
    record = read_record(out, video.name)
    if record is None:
        return False
    if settings is not None:
        found = record.get("settings")
        if not isinstance(found, dict) or not layout.same_settings(found, settings):
            return False
    folder = layout.masks_dir(out, video)
    return all((folder / f"{name}.png").is_file() for name in layout.frames(video))


def segment_video(
    model: HMMN,
    video: Video,
    out: Path,
    layout: Layout,
    *,
    read: ReadConfig,
    device: torch.device,
    amp: bool = False,
    dtype: str | None = None,  # float32, bfloat16; None: hmmnlab.precision's default
    progress: bool = True,
    settings: dict | None = None,
) -> dict:
    """Segment one video into ``out`` with ``layout``; returns and stores its record (timing and
    ``settings``). The old record is removed first, so an interrupted run is never taken as
    finished."""
    timing_path(out, video.name).unlink(missing_ok=True)
    writer = layout.open(out, video)
    with PeakMemory(device) as peak:
        start = time.perf_counter()
        results = propagate(
            model, video, video.first_labels(), new_objects=video.new_objects() or None,
            read=read, device=device, amp=amp, dtype=dtype,
        )  # fmt: skip
        bar = tqdm(results, total=len(video), desc=video.name, unit="frame", leave=False,
                   disable=not progress)  # fmt: skip
        for result in bar:
            writer.write(result.index, result.labels.cpu().numpy())
        seconds = time.perf_counter() - start
    writer.close()
    record = {
        "frames": len(video),
        "masks": len(layout.frames(video)),
        "seconds_per_frame": seconds / max(len(video) - 1, 1),  # frame 0 is given
        "peak_memory_mib": peak.mib,
        "device": str(device),
        "read": read.to_dict(),
        "settings": settings,
    }
    write_json_atomically(timing_path(out, video.name), record)
    return record


def check_fits(model: HMMN, videos: Iterable[Video], read: ReadConfig, device) -> None:
    """Before any work: every video must fit in the device's memory
    (:func:`hmmnlab.evaluation.resources.check_memory`)."""
    for video in videos:
        check_memory(*video.size, video.num_objects, len(video), read, device=device,
                     what=f"video {video.name}", model=model.config)  # fmt: skip


def segment_videos(
    model: HMMN,
    videos: Iterable[Video],
    out: Path,
    layout: Layout,
    *,
    read: ReadConfig,
    device: torch.device,
    settings: dict,
    amp: bool = False,
    dtype: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    total: int | None = None,
) -> dict[str, dict]:
    """Segment every video not finished with ``settings`` (all of them with ``overwrite``) and
    return every video's record, by name. The caller holds the output lock and has checked the
    paths and the memory."""
    records = {}
    videos = tqdm(videos, desc="videos", unit="video", total=total, disable=not progress)
    for video in videos:
        if overwrite or not is_finished(out, video, layout, settings):
            segment_video(model, video, out, layout, read=read, device=device, amp=amp,
                          dtype=dtype, progress=progress, settings=settings)  # fmt: skip
        records[video.name] = read_record(out, video.name)
    return records
