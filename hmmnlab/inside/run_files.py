"""A run's files read back for the notebooks and the demo report: per-frame scores of a results
folder, its worst frames, the predicted labels of a frame, filmstrips, and two reads compared.

The run itself is :func:`hmmnlab.evaluation.davis.evaluate` (or ``hmmnlab eval``); the figures these
helpers build come from :mod:`hmmnlab.viz`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hmmnlab import ablation, viz


def frame_scores(
    davis_root, pred_dir, sequence: str, *, year: int = 2017, split: str = "val"
) -> pd.DataFrame:
    """Per-frame scores of one predicted sequence: one row per (scored frame, object) with the
    frame index, its name, the object id, J, F and J&F (their mean)."""
    from hmmnlab.data.davis import DavisDataset
    from hmmnlab.evaluation.scoring import score_sequence

    seq = DavisDataset(ablation.repo_path(davis_root), year=year, split=split)[sequence]
    scores = score_sequence(seq, pred_dir)
    index_of = {name: i for i, name in enumerate(seq.frame_names)}
    rows = [
        (sequence, index_of[name], name, k + 1, scores.j[k, t], scores.f[k, t])
        for k in range(scores.num_objects)
        for t, name in enumerate(scores.frame_names)
    ]
    df = pd.DataFrame(rows, columns=["sequence", "frame", "name", "object", "J", "F"])
    df["J&F"] = (df["J"] + df["F"]) / 2
    return df


def worst_frames(
    scores: pd.DataFrame, n: int = 4, *, one_per_sequence: bool = True
) -> pd.DataFrame:
    """The ``n`` frames with the lowest J&F averaged over their objects (from
    :func:`frame_scores` tables, concatenated for several sequences); by default at most one
    frame per sequence, so that different failures show."""
    per_frame = scores.groupby(["sequence", "frame"], as_index=False)[["J", "F", "J&F"]].mean()
    per_frame = per_frame.sort_values("J&F", kind="stable")
    if one_per_sequence:
        per_frame = per_frame.drop_duplicates("sequence")
    return per_frame.head(n).reset_index(drop=True)


def predicted_labels(pred_dir, sequence, index: int) -> np.ndarray:
    """The predicted label map of frame ``index`` of a DavisSequence, from ``pred_dir``."""
    from hmmnlab.data.palette import read_label_png

    return read_label_png(Path(pred_dir) / sequence.name / f"{sequence.frame_names[index]}.png")


def filmstrip_panels(sequence, pred_dir, *, count: int = 6) -> list:
    """(title, frame, predicted labels) of ``count`` evenly spaced frames of a segmented
    DavisSequence, for :func:`hmmnlab.viz.overlay_panels`."""
    indices = np.linspace(0, len(sequence) - 1, min(count, len(sequence))).round().astype(int)
    return [
        (f"frame {i}" + (" (given)" if i == 0 else ""), sequence.frame(i),
         predicted_labels(pred_dir, sequence, i))
        for i in indices
    ]  # fmt: skip


def filmstrip(sequence, pred_dir, *, count: int = 6):
    """Overlays of ``count`` evenly spaced frames of a segmented DavisSequence."""
    panels = filmstrip_panels(sequence, pred_dir, count=count)
    return viz.overlay_panels(panels, columns=min(len(panels), 3))


def frames_against_truth(
    davis_root, pred_dir, frames: pd.DataFrame, *, year: int = 2017, split: str = "val"
):
    """Ground truth and prediction side by side (one row of panels per row of ``frames``, a table
    with ``sequence`` and ``frame`` columns such as :func:`worst_frames` returns)."""
    from hmmnlab.data.davis import DavisDataset

    dataset = DavisDataset(ablation.repo_path(davis_root), year=year, split=split)
    panels = []
    for _, row in frames.iterrows():
        seq, t = dataset[row["sequence"]], int(row["frame"])
        score = f", J&F {row['J&F']:.2f}" if "J&F" in row else ""
        panels.append((f"{seq.name} {t}: ground truth", seq.frame(t), seq.mask(t)))
        panels.append((f"prediction{score}", seq.frame(t), predicted_labels(pred_dir, seq, t)))
    return viz.overlay_panels(panels, columns=4)


def compare_reads(davis_root, folders: dict[str, Path], sequence: str, **kwargs) -> pd.DataFrame:
    """Per-frame J&F (mean over objects) of the same sequence under several reads: one column
    per read, one row per scored frame. ``folders``: read label -> prediction folder."""
    columns = {}
    for label, folder in folders.items():
        df = frame_scores(davis_root, folder, sequence, **kwargs)
        columns[label] = df.groupby("frame")["J&F"].mean()
    return pd.DataFrame(columns)
