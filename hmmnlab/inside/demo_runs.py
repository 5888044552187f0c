"""The runs of ``hmmnlab demo`` (:mod:`hmmnlab.inside.report`): its setup (model, data, read grid)
and the four runs, each writing its files under ``out`` and returning what it measured: a sample
video segmented, one memory read traced, a small read ablation, and the twins read by ``stm`` and
``hmmn``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hmmnlab import ablation, viz
from hmmnlab.inside.run_files import compare_reads, filmstrip_panels, predicted_labels

if TYPE_CHECKING:
    import torch

    from hmmnlab.config import ReadConfig
    from hmmnlab.data.davis import DavisDataset, DavisSequence
    from hmmnlab.model import HMMN


#: The sequence segmented in the first section, and the one of the twins case.
SEGMENT_SEQUENCE = "trio-crossing"
TWINS_SEQUENCE = "twins"
TRACE_FRAME = 10  # the frame whose memory read is explained (or the last frame of a short video)
#: `hmmnlab demo` cuts the videos to their first 20 frames (the twins cross at 12-14).
DEMO_FRAMES = 20
#: The width in pixels of one panel of the report's animations.
MOVIE_WIDTH = 240


@dataclass
class DemoSetup:
    """What the demo's runs share: the output folder, the model, the data and the read grid."""

    out: Path
    model: HMMN
    weights_name: str  # how the report names the weights
    root: Path  # the DAVIS root read (a copy cut to ``frames`` frames when given)
    dataset: DavisDataset  # the split of ``root``
    grid: ablation.Grid
    device: torch.device
    frames: int | None
    full: bool
    dtype: str = "float32"  # every run's precision (hmmnlab.precision)

    @property
    def reads(self) -> dict[str, ReadConfig]:
        return dict(self.grid)

    @property
    def ablation_sequences(self) -> list[str] | None:
        """The sequences of the read ablation (None: every sequence of the split)."""
        return None if self.full else [TWINS_SEQUENCE]


def prepare_demo(
    out: str | Path,
    *,
    weights=None,
    davis_root: str | Path = "data_samples",
    device: str = "cpu",
    full: bool = False,
    frames: int | None = None,
    grid: ablation.Grid | None = None,
    dtype: str | None = None,
) -> DemoSetup:
    """Create ``out``, load the model (see :func:`hmmnlab.ablation.resolve_model`), cut the data to
    ``frames`` frames when given and check the read grid (see :func:`demo` for the arguments)."""
    from hmmnlab.data.davis import DavisDataset
    from hmmnlab.inference import resolve_device
    from hmmnlab.precision import resolve_dtype

    dtype = resolve_dtype(dtype)  # fails early on a bad $HMMNLAB_DTYPE

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    model = ablation.resolve_model(weights, device)
    root = ablation.repo_path(davis_root)
    frames = frames or None  # 0: whole videos
    if frames is not None:
        names = None if full else [SEGMENT_SEQUENCE, TWINS_SEQUENCE]
        root = ablation.short_davis(root, out / f"data-{frames}", frames=frames, sequences=names)
    dataset = DavisDataset(root, year=2017, split="val")
    base = ablation.carried_read(model)  # hmmn as the weights were trained to read
    grid = grid or (ablation.default_grid(base) if full else ablation.quick_grid(base))
    reads = dict(grid)
    for needed in ("stm", "hmmn"):
        if needed not in reads:
            raise ValueError(
                f"the demo's read grid needs a read labelled {needed!r}: {list(reads)}"
            )
    weights_name = "the demo weights" if weights is None else str(weights)
    if not isinstance(weights, (str, Path, type(None))):
        weights_name = "a model passed in"
    return DemoSetup(out, model, weights_name, root, dataset, grid, device, frames, full, dtype)


@dataclass
class Segmented:
    """A video segmented with the hmmn read: its per-sequence scores and overlay panels."""

    sequence: DavisSequence
    folder: Path  # the predictions (and overlays/)
    scores: pd.DataFrame  # the per-sequence table of evaluate()
    panels: list  # filmstrip_panels()
    movie: list = field(default_factory=list)  # every frame's overlay (viz.labelled_row images)


def segment_video(setup: DemoSetup, *, progress: bool = True) -> Segmented:
    """Segment and score :data:`SEGMENT_SEQUENCE` with the hmmn read, writing the masks, overlay
    frames and MP4 to ``out/segment``."""
    from hmmnlab.evaluation.davis import evaluate

    sequence = setup.dataset[SEGMENT_SEQUENCE]
    folder = setup.out / "segment"
    _, per_sequence_df = evaluate(
        setup.model, setup.root, folder, year=2017, read=setup.reads["hmmn"],
        sequences=[sequence.name], device=setup.device, dtype=setup.dtype, overlays=True,
        progress=progress,
    )  # fmt: skip
    movie = [
        viz.labelled_row([(f"frame {t}", sequence.frame(t), predicted_labels(folder, sequence, t))],
                         width=2 * MOVIE_WIDTH)
        for t in range(len(sequence))
    ]  # fmt: skip
    return Segmented(sequence, folder, per_sequence_df, filmstrip_panels(sequence, folder), movie)


@dataclass
class TracedRead:
    """The trace of one frame's memory read, and the query cell to explain."""

    sequence: DavisSequence  # the frames of the figures
    frame: int
    cache: dict  # hook name -> tensor
    memory_frames: tuple[int, ...]
    obj: int  # the object explained (an index of the trace's objects)
    object_id: int  # its label
    query: tuple[int, int]  # the r4 query cell, on the object
    read: ReadConfig  # the read traced


def trace_read(setup: DemoSetup, sequence: DavisSequence) -> TracedRead:
    """Trace frame :data:`TRACE_FRAME` (or the last) of ``sequence`` with the hmmn read; the query
    cell is on the first object (in the annotation, else in the prediction)."""
    from hmmnlab.inside.trace import run_with_cache

    read = setup.reads["hmmn"]
    t = min(TRACE_FRAME, len(sequence) - 1)
    result, cache = run_with_cache(
        setup.model, sequence, sequence.first_mask(), frame=t, read=read, device=setup.device,
        dtype=setup.dtype,
    )  # fmt: skip
    obj = 0  # the first object
    # the query cell: on the object in the annotation (the samples annotate every frame)
    truth = sequence.mask(t) if t < len(sequence.mask_paths) else result.labels.cpu().numpy()
    object_id = result.object_ids[obj]
    query = viz.query_cell_on_object(truth, object_id)
    return TracedRead(sequence, t, cache, result.memory_frames, obj, object_id, query, read)


def run_ablation(setup: DemoSetup, *, progress: bool = True) -> pd.DataFrame:
    """The read ablation of the grid (:func:`hmmnlab.ablation.run`) into ``out/ablation``; its
    table is also written to ``out/ablation.csv``."""
    table = ablation.run(setup.root, setup.model, variants=setup.grid,
                         sequences=setup.ablation_sequences, out=setup.out / "ablation",
                         device=str(setup.device), dtype=setup.dtype,
                         progress=progress)  # fmt: skip
    table.to_csv(setup.out / "ablation.csv", index=False)
    return table


@dataclass
class TwinsComparison:
    """stm against hmmn on :data:`TWINS_SEQUENCE`: per-frame J&F tables and the frame of the last
    comparison where they differ most, as overlay panels."""

    swapped: pd.DataFrame  # (a) same weights, read swapped at inference
    trained: pd.DataFrame | None  # (b) trained with each read (None: no stm weights)
    where: int
    panels: list  # (title, frame, labels): the ground truth, then each read's prediction
    crossing: tuple[int, ...] = ()  # the frames run where the twins touch (ground truth)
    movie: list = field(default_factory=list)  # every frame: truth and each prediction side by side


def compare_twins(
    setup: DemoSetup, *, stm_weights="demo-stm", progress: bool = True
) -> TwinsComparison:
    """Compare the reads on the twins from the ablation's folders (``hmmn`` and ``stm``, so run
    :func:`run_ablation` first) and, unless ``stm_weights`` is None, the model trained with the stm
    read (segmented into ``out/trained-stm``) against the hmmn one."""
    from hmmnlab.evaluation.davis import evaluate

    twins = setup.dataset[TWINS_SEQUENCE]
    folders = {
        "hmmn read": setup.out / "ablation" / "hmmn",
        "stm read": setup.out / "ablation" / "stm",
    }
    swapped = compare_reads(setup.root, folders, TWINS_SEQUENCE)
    trained = None
    if stm_weights is not None:
        stm_model = ablation.resolve_model(stm_weights, setup.device)
        evaluate(
            stm_model, setup.root, setup.out / "trained-stm", year=2017,
            read=ablation.carried_read(stm_model), sequences=[TWINS_SEQUENCE], device=setup.device,
            dtype=setup.dtype, progress=progress,
        )  # fmt: skip
        folders = {"demo (hmmn)": folders["hmmn read"], "demo-stm (stm)": setup.out / "trained-stm"}
        trained = compare_reads(setup.root, folders, TWINS_SEQUENCE)
    last = swapped if trained is None else trained
    where = int((last.iloc[:, 0] - last.iloc[:, 1]).abs().idxmax())
    panels = [(f"ground truth, frame {where}", twins.frame(where), twins.mask(where))]
    for label, folder in folders.items():
        panels.append((f"{label}, frame {where}", twins.frame(where),
                       predicted_labels(folder, twins, where)))  # fmt: skip
    movie = []
    for t in range(len(twins)):
        row = [(f"ground truth, frame {t}", twins.frame(t), twins.mask(t))]
        row += [(label, twins.frame(t), predicted_labels(folder, twins, t))
                for label, folder in folders.items()]  # fmt: skip
        movie.append(viz.labelled_row(row, width=MOVIE_WIDTH))
    return TwinsComparison(swapped, trained, where, panels, touching_frames(twins), movie)


def touching_frames(sequence, first: int = 1, second: int = 2, *, gap: float = 2.0) -> tuple:
    """The frames of a DavisSequence whose ground truth has objects ``first`` and ``second``
    within ``gap`` pixels of each other (touching or overlapping: where the twins cross)."""
    import cv2

    frames = []
    for t in range(min(len(sequence), len(sequence.mask_paths))):
        labels = sequence.mask(t)
        a, b = labels == first, labels == second
        if not a.any() or not b.any():
            continue
        distance = cv2.distanceTransform((~a).astype(np.uint8), cv2.DIST_L2, 3)  # to object a
        if distance[b].min() <= gap:
            frames.append(t)
    return tuple(frames)
