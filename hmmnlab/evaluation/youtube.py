"""``hmmnlab eval --dataset youtube-vos``: segment a YouTube-VOS split into the official submission
layout, and score a split with full annotations (``train``) locally.

Output folder layout::

    OUT/Annotations/<video>/<frame>.png   palette PNGs, one per frame that meta.json asks for
                                          (the union of the objects' frames)
    OUT/submission.zip                    the same files as Annotations/<video>/<frame>.png: what
                                          the evaluation server takes
    OUT/timing/<video>.json               the record of a finished video (resume, as for DAVIS)
    OUT/global_results.csv                train split only: J, F (and seen / unseen) means
    OUT/per-object_results.csv            train split only: one row per object

Each video is propagated from the first frame where an object appears; an object that first appears
later enters there with its given mask and a memory bank of its own (``new_objects`` of
:func:`hmmnlab.inference.propagate`). With ``--all-frames`` the model runs over every frame of
``<split>_all_frames`` and the masks written are still the meta's frames.

Local scoring (train, whose every kept frame is annotated): an object is scored on the frames of the
meta's union that come after its first frame (given, not scored) and have an annotation, with J
(region IoU) and F (boundary) of :mod:`hmmnlab.evaluation.metrics`; its scores are the means over
those frames, and the global numbers average over objects. With ``unseen_categories`` the objects of
those categories are the unseen ones: J and F seen / unseen, and their mean as ``Overall``
(YouTube-VOS's leaderboard columns). Which categories are unseen is the user's choice (the official
split's unseen categories are those absent from its training set); nothing is assumed.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hmmnlab.config import ReadConfig
from hmmnlab.data.davis import listing
from hmmnlab.data.palette import read_label_png
from hmmnlab.data.youtube import YouTubeVideo, YouTubeVOS
from hmmnlab.evaluation import runner
from hmmnlab.evaluation.metrics import boundary_f_measure, jaccard_index
from hmmnlab.evaluation.records import (
    atomic_path,
    check_output_dir,
    check_outside,
    output_lock,
    run_settings,
)
from hmmnlab.evaluation.scoring import check_unique_names
from hmmnlab.inference import resolve_device
from hmmnlab.model import HMMN

SUBMISSION_ZIP = "submission.zip"
GLOBAL_CSV = "global_results.csv"
PER_OBJECT_CSV = "per-object_results.csv"


def masks_dir(out: Path, video: str) -> Path:
    return out / "Annotations" / video


@dataclass(frozen=True)
class YouTubeLayout:
    """The submission layout: ``OUT/Annotations/<video>/<frame>.png`` for the frames meta.json
    asks for (:attr:`~hmmnlab.data.youtube.YouTubeVideo.output_frames`), and those only."""

    def masks_dir(self, out: Path, video: YouTubeVideo) -> Path:
        return masks_dir(out, video.name)

    def frames(self, video: YouTubeVideo) -> tuple[str, ...]:
        return video.output_frames

    def open(self, out: Path, video: YouTubeVideo) -> runner.PngWriter:
        return runner.PngWriter(self.masks_dir(out, video), video, self.frames(video), clear=True)

    def same_settings(self, found: dict, wanted: dict) -> bool:
        return found == wanted


def is_finished(out: Path, video: YouTubeVideo, settings: dict) -> bool:
    """A video is finished when its record was written with ``settings`` and every mask the meta
    asks for exists."""
    return runner.is_finished(out, video, YouTubeLayout(), settings)


def write_submission(out: Path, videos: list[YouTubeVideo]) -> Path:
    """``out/submission.zip`` holding ``Annotations/<video>/<frame>.png`` for every output frame
    of ``videos`` (and nothing else), written through a temporary file."""
    path = out / SUBMISSION_ZIP
    with atomic_path(path) as temporary:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for video in videos:
                for name in video.output_frames:
                    archive.write(masks_dir(out, video.name) / f"{name}.png",
                                  f"Annotations/{video.name}/{name}.png")  # fmt: skip
    return path


# --- local scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectScores:
    """Per-frame J and F of one object over its scored frames."""

    video: str
    object_id: int
    category: str | None
    frame_names: tuple[str, ...]
    j: np.ndarray  # T float64
    f: np.ndarray  # T float64


def score_video(video: YouTubeVideo, pred_root: Path) -> list[ObjectScores]:
    """J and F of every object of ``video`` against its annotations: per object, the output
    frames after its first frame that have an annotation; predictions from
    ``pred_root/<video>/<frame>.png``."""
    annotated = set(video.annotation_names)
    order = video.output_frames
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def masks(name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in cache:
            path = pred_root / video.name / f"{name}.png"
            if not path.is_file():
                raise FileNotFoundError(f"prediction not found: {path}")
            gt, pred = video.mask(name), read_label_png(path, binary=False)
            if pred.shape != gt.shape:
                raise ValueError(
                    f"{path}: expected a prediction of H x W = {gt.shape[0]} x {gt.shape[1]} (as "
                    f"the annotation), found {pred.shape[0]} x {pred.shape[1]}"
                )
            cache[name] = (gt, pred)
        return cache[name]

    scores = []
    for obj in video.objects:
        after = order[order.index(obj.first_frame) + 1 :]
        names = tuple(name for name in after if name in annotated)
        j, f = [], []
        for name in names:
            gt, pred = masks(name)
            j.append(jaccard_index(gt == obj.object_id, pred == obj.object_id))
            f.append(boundary_f_measure(gt == obj.object_id, pred == obj.object_id))
        scores.append(ObjectScores(video.name, obj.object_id, obj.category, names,
                                   np.array(j, np.float64), np.array(f, np.float64)))  # fmt: skip
    return scores


def _mean(values) -> float:
    values = np.asarray(list(values), dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def results_tables(
    scores: list[ObjectScores], *, unseen_categories: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(global_df, per_object_df). Per object: its mean J and F over its scored frames (NaN with
    none). Global: the means over objects, ``J&F-Mean``, ``J-Mean``, ``F-Mean``; with
    ``unseen_categories``: ``Overall`` (the mean of the four), ``J-Seen``, ``F-Seen``,
    ``J-Unseen``, ``F-Unseen``."""
    rows = []
    for s in scores:
        row = {"Video": s.video, "Object": s.object_id, "Category": s.category}
        if unseen_categories is not None:
            row["Unseen"] = s.category in unseen_categories
        row |= {"Frames": len(s.frame_names), "J-Mean": _mean(s.j), "F-Mean": _mean(s.f)}
        rows.append(row)
    per_object = pd.DataFrame(rows)
    j, f = per_object["J-Mean"], per_object["F-Mean"]
    if unseen_categories is None:
        table = {"J&F-Mean": (_mean(j) + _mean(f)) / 2, "J-Mean": _mean(j), "F-Mean": _mean(f)}
    else:
        unseen = per_object["Unseen"].to_numpy(bool)
        parts = {
            "J-Seen": _mean(j[~unseen]),
            "F-Seen": _mean(f[~unseen]),
            "J-Unseen": _mean(j[unseen]),
            "F-Unseen": _mean(f[unseen]),
        }
        table = {"Overall": float(np.mean(list(parts.values()))), **parts}
    return pd.DataFrame([table]), per_object


def score(
    dataset: YouTubeVOS,
    pred_root: str | Path,
    *,
    unseen_categories: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score the predictions ``pred_root/<video>/<frame>.png`` of every selected video of a split
    with full annotations (see the module docstring); returns :func:`results_tables`."""
    if not dataset.dense:
        raise ValueError(
            f"split {dataset.split!r} is annotated only where objects first appear: nothing to "
            "score locally; score a split held out from train (--split train --sequences a,b)"
        )
    check_categories(dataset, unseen_categories)
    scores = [s for video in dataset for s in score_video(video, Path(pred_root))]
    return results_tables(scores, unseen_categories=unseen_categories)


def check_categories(dataset: YouTubeVOS, categories: list[str] | None) -> None:
    """Every category named must be one of the split's (a misspelt name would leave it seen)."""
    unknown = sorted(set(categories or ()) - set(dataset.categories()))
    if unknown:
        raise ValueError(
            f"unseen categories not in {dataset.meta_path}: {listing(unknown)}; its categories: "
            f"{listing(dataset.categories())}"
        )


def read_folders(dataset: YouTubeVOS, option: str = "--root") -> list:
    """The folders a YouTube-VOS run reads, as (option, folder) pairs for
    :func:`hmmnlab.evaluation.records.check_outside`: the root, the split's folder, its frame and
    annotation folders and every selected video's (each may be a symlink to somewhere else)."""
    folders = [dataset.root, dataset.split_dir, dataset.frame_root, dataset.annotation_root]
    for name in dataset.videos:
        folders += [dataset.frame_root / name, dataset.annotation_root / name]
    return [(option, folder) for folder in folders]


# --- the command -----------------------------------------------------------------------------------


def evaluate(
    model: HMMN,
    root: str | Path,
    out: str | Path,
    *,
    split: str = "valid",
    all_frames: bool = False,
    read: ReadConfig | None = None,
    videos: list[str] | None = None,
    device=None,
    amp: bool = False,
    dtype: str | None = None,  # float32, bfloat16; None: hmmnlab.precision's default
    overwrite: bool = False,
    progress: bool = True,
    unseen_categories: list[str] | None = None,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None, Path]:
    """Segment the videos of a YouTube-VOS split into ``out`` (skipping finished ones unless
    ``overwrite``), write ``submission.zip`` and, for a split with full annotations, score them.

    Returns (global_df, per_object_df, zip path); the tables are None for valid and test. The
    per-object table has ``Seconds/frame`` and ``Peak memory (MiB)`` of its video."""
    read = read or getattr(model, "default_read", None) or ReadConfig()  # the weights' read
    device = resolve_device(device)
    out = Path(out)
    videos = check_unique_names(videos) if videos else None
    dataset = YouTubeVOS(root, split=split, all_frames=all_frames, videos=videos)
    if unseen_categories is not None:
        if not dataset.dense:
            raise ValueError(
                f"--unseen-categories applies to local scoring, which needs full annotations "
                f"(the train split); split {split!r} has them only where objects first appear"
            )
        check_categories(dataset, unseen_categories)
    check_output_dir(out)  # never inside the dataset: its Annotations are the ground truth
    check_outside(out, "--out", read_folders(dataset))
    runner.check_fits(model, dataset, read, device)  # before any work
    model = model.to(device).eval()
    frames = str(dataset.frame_root.relative_to(dataset.root))
    settings = {
        **run_settings(model, read, resolution=frames, overlays=False, amp=amp, dtype=dtype),
        "dataset": "youtube-vos",
    }
    with output_lock(out, command="eval"):
        timings = runner.segment_videos(
            model, dataset, out, YouTubeLayout(), read=read, device=device, settings=settings,
            amp=amp, dtype=dtype, overwrite=overwrite, progress=progress, total=len(dataset),
        )  # fmt: skip
        zip_path = write_submission(out, list(dataset))
        if not dataset.dense:
            return None, None, zip_path
        global_df, per_object = score(
            dataset, out / "Annotations", unseen_categories=unseen_categories
        )
    per_object["Seconds/frame"] = [timings[v]["seconds_per_frame"] for v in per_object["Video"]]
    per_object["Peak memory (MiB)"] = [timings[v]["peak_memory_mib"] for v in per_object["Video"]]
    return global_df, per_object, zip_path
