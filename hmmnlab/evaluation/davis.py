"""``hmmnlab eval``: run a model over a DAVIS split, write its masks, and score them.

Output folder layout (the official toolkit's): ``OUT/<sequence>/<frame>.png`` palette masks,
``OUT/global_results.csv``, ``OUT/per-sequence_results.csv``; ``OUT/timing/<sequence>.json`` marks a
finished sequence (seconds per frame, peak memory, and the settings that produced it), so an
interrupted run resumes where it stopped. With overlays: ``OUT/overlays/<sequence>/<frame>.jpg`` and
``OUT/overlays/<sequence>.mp4``.

Resuming never mixes runs: a sequence counts as finished only when its record exists, is complete
and was written with the same settings (model weights, model config, read config, overlays,
resolution, hmmnlab version). The record is removed before a sequence is (re)segmented and written
atomically after its last mask, so a run killed mid-sequence redoes that sequence. One ``eval`` at a
time may write to an output folder (a lock file, ``OUT/.hmmnlab.lock``,
:func:`hmmnlab.evaluation.records.output_lock`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hmmnlab.config import ReadConfig
from hmmnlab.data.davis import DavisDataset, DavisSequence
from hmmnlab.evaluation import runner
from hmmnlab.evaluation.records import (  # re-exported: the output lock and atomic writes live there
    LOCK_NAME as LOCK_NAME,
)
from hmmnlab.evaluation.records import check_output_dir, check_outside, output_lock, run_settings
from hmmnlab.evaluation.runner import DavisLayout
from hmmnlab.evaluation.runner import write_overlay_video as write_overlay_video  # re-exported
from hmmnlab.evaluation.scoring import check_unique_names, score
from hmmnlab.inference import resolve_device
from hmmnlab.model import HMMN


def read_folders(dataset: DavisDataset, names: list[str], option: str = "--root") -> list:
    """The folders a DAVIS run reads, as (option, folder) pairs for
    :func:`hmmnlab.evaluation.records.check_outside`: the root, its frame and annotation folders and
    every sequence's (each may be a symlink to somewhere else)."""
    folders = [dataset.root, dataset.frame_dir, dataset.mask_dir]
    for name in names:
        folders += [dataset.frame_dir / name, dataset.mask_dir / name]
    return [(option, folder) for folder in folders]


def is_finished(out: Path, sequence: DavisSequence, settings: dict | None = None) -> bool:
    """A sequence is finished when its record is readable, was written with ``settings`` (when
    given; a run with overlays also serves one without) and every mask exists."""
    return runner.is_finished(out, sequence, DavisLayout(), settings)


def evaluate(
    model: HMMN,
    davis_root: str | Path,
    out: str | Path,
    *,
    year: int,
    split: str = "val",
    resolution: str = "480p",
    read: ReadConfig | None = None,
    sequences: list[str] | None = None,
    device=None,
    amp: bool = False,
    dtype: str | None = None,  # float32, bfloat16; None: hmmnlab.precision's default
    overwrite: bool = False,
    overlays: bool = False,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segment every sequence of a DAVIS split (skipping finished ones unless ``overwrite``) and
    score them. Returns the global and per-sequence tables; the latter with ``Seconds/frame`` and
    ``Peak memory (MiB)`` columns."""
    read = read or getattr(model, "default_read", None) or ReadConfig()  # the weights' read
    device = resolve_device(device)
    out = Path(out)
    sequences = check_unique_names(sequences) if sequences else None
    dataset = DavisDataset(
        davis_root, year=year, split=split, resolution=resolution, sequences=sequences
    )
    names = sequences or dataset.sequences
    unknown = [n for n in names if n not in dataset.sequences]
    if unknown:
        raise ValueError(f"sequences not in the {split} split of {davis_root}: {unknown[:5]}")
    check_output_dir(out)  # never inside the dataset, however the path is spelled
    check_outside(out, "--out", read_folders(dataset, names))
    runner.check_fits(model, (dataset[name] for name in names), read, device)  # before any work
    model = model.to(device).eval()
    settings = run_settings(
        model, read, resolution=resolution, overlays=overlays, amp=amp, dtype=dtype
    )
    with output_lock(out, command="eval"):
        timings = runner.segment_videos(
            model, (dataset[name] for name in names), out, DavisLayout(overlays), read=read,
            device=device, settings=settings, amp=amp, dtype=dtype, overwrite=overwrite,
            progress=progress, total=len(names),
        )  # fmt: skip
        global_df, per_sequence_df = score(davis_root, out, year=year, split=split,
                                           resolution=resolution, sequences=names)  # fmt: skip
    sequence_of_row = per_sequence_df["Sequence"].str.rsplit("_", n=1).str[0]
    per_sequence_df["Seconds/frame"] = [timings[s]["seconds_per_frame"] for s in sequence_of_row]
    per_sequence_df["Peak memory (MiB)"] = [timings[s]["peak_memory_mib"] for s in sequence_of_row]
    return global_df, per_sequence_df
