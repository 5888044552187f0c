"""``hmmnlab eval``: run a model over a DAVIS split, write its masks, and score them.

Output folder layout (the official toolkit's): ``OUT/<sequence>/<frame>.png`` palette masks,
``OUT/global_results.csv``, ``OUT/per-sequence_results.csv``; ``OUT/timing/<sequence>.json`` marks a
finished sequence (seconds per frame, peak memory, and the settings that produced it), so an
interrupted run resumes where it stopped. With overlays: ``OUT/overlays/<sequence>/<frame>.jpg`` and
``OUT/overlays/<sequence>.mp4``.

Resuming never mixes runs: a sequence counts as finished only when its record exists, is complete and
was written with the same settings (model weights, model config, read config, overlays, resolution,
hmmnlab version). The record is removed before a sequence is (re)segmented and written atomically
after its last mask, so a run killed mid-sequence redoes that sequence. One ``eval`` at a time may
write to an output folder (a lock file, ``OUT/.hmmnlab.lock``, :func:`hmmnlab.records.output_lock`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from hmmnlab import options
from hmmnlab.allocator import keep_freed_memory
from hmmnlab.config import ReadConfig
from hmmnlab.data.davis import DavisDataset, DavisSequence
from hmmnlab.data.palette import write_label_png
from hmmnlab.inference import propagate, resolve_device
from hmmnlab.model import HMMN
from hmmnlab.records import (  # re-exported: the output lock and atomic writes live there
    LOCK_NAME as LOCK_NAME,
)
from hmmnlab.records import (
    check_output_dir,
    check_outside,
    output_lock,
    write_json_atomically,
)
from hmmnlab.resources import check_memory
from hmmnlab.run_records import (
    PeakMemory,
    read_record,
    run_settings,
    timing_path,
)
from hmmnlab.scoring import check_unique_names, score, write_results
from hmmnlab.viz import overlay
from hmmnlab.weights import load_model


def read_folders(dataset: DavisDataset, names: list[str], option: str = "--root") -> list:
    """The folders a DAVIS run reads, as (option, folder) pairs for
    :func:`hmmnlab.records.check_outside`: the root, its frame and annotation folders and every
    sequence's (each may be a symlink to somewhere else)."""
    folders = [dataset.root, dataset.frame_dir, dataset.mask_dir]
    for name in names:
        folders += [dataset.frame_dir / name, dataset.mask_dir / name]
    return [(option, folder) for folder in folders]


def is_finished(out: Path, sequence: DavisSequence, settings: dict | None = None) -> bool:
    """A sequence is finished when its record is readable, was written with ``settings`` (when
    given) and every mask exists."""
    record = read_record(out, sequence.name)
    if record is None:
        return False
    if settings is not None:
        found = record.get("settings")
        if not isinstance(found, dict):
            return False
        # a run with overlays also serves one without; every other setting must be equal
        if {**found, "overlays": None} != {**settings, "overlays": None}:
            return False
        if settings["overlays"] and not found.get("overlays"):
            return False
    return all((out / sequence.name / f"{stem}.png").is_file() for stem in sequence.frame_names)


def write_overlay_video(frames: list[np.ndarray], path: Path, fps: float = 12.0) -> None:
    """H x W x 3 RGB frames -> an MP4 (OpenCV's mp4v writer)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write the video {path}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def segment_sequence(
    model: HMMN,
    sequence: DavisSequence,
    out: Path,
    *,
    read: ReadConfig,
    device: torch.device,
    amp: bool = False,
    dtype: str = "float32",  # or "bfloat16" (hmmnlab.precision)
    overlays: bool = False,
    progress: bool = True,
    settings: dict | None = None,
) -> dict:
    """Segment one sequence into ``out/<name>/``; returns and stores its timing and ``settings``.

    The sequence's old record is removed first, so an interrupted run is never taken as finished."""
    timing_path(out, sequence.name).unlink(missing_ok=True)
    masks_dir = out / sequence.name
    masks_dir.mkdir(parents=True, exist_ok=True)
    overlay_frames = []
    with PeakMemory(device) as peak:
        start = time.perf_counter()
        results = propagate(
            model, sequence, sequence.first_mask(), read=read, device=device, amp=amp, dtype=dtype
        )
        bar = tqdm(results, total=len(sequence), desc=sequence.name, unit="frame", leave=False,
                   disable=not progress)  # fmt: skip
        for result in bar:
            labels = result.labels.cpu().numpy()
            write_label_png(masks_dir / f"{sequence.frame_names[result.index]}.png", labels)
            if overlays:
                overlay_frames.append(overlay(sequence.frame(result.index), labels))
        seconds = time.perf_counter() - start
    if overlays:
        folder = out / "overlays" / sequence.name
        folder.mkdir(parents=True, exist_ok=True)
        for name, image in zip(sequence.frame_names, overlay_frames, strict=True):
            cv2.imwrite(str(folder / f"{name}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        write_overlay_video(overlay_frames, out / "overlays" / f"{sequence.name}.mp4")
    timing = {
        "frames": len(sequence),
        "seconds_per_frame": seconds / max(len(sequence) - 1, 1),  # frame 0 is given
        "peak_memory_mib": peak.mib,
        "device": str(device),
        "read": read.to_dict(),
        "settings": settings,
    }
    write_json_atomically(timing_path(out, sequence.name), timing)
    return timing


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
    for name in names:  # before any work: every sequence must fit in memory
        sequence = dataset[name]
        check_memory(*sequence.size, sequence.num_objects, len(sequence), read, device=device,
                     what=f"sequence {name}", model=model.config)  # fmt: skip
    model = model.to(device).eval()
    settings = run_settings(
        model, read, resolution=resolution, overlays=overlays, amp=amp, dtype=dtype
    )
    with output_lock(out, command="eval"):
        for name in tqdm(names, desc="sequences", unit="seq", disable=not progress):
            sequence = dataset[name]
            if overwrite or not is_finished(out, sequence, settings):
                segment_sequence(model, sequence, out, read=read, device=device, amp=amp, dtype=dtype,
                                 overlays=overlays, progress=progress, settings=settings)  # fmt: skip
        global_df, per_sequence_df = score(davis_root, out, year=year, split=split,
                                           resolution=resolution, sequences=names)  # fmt: skip
        timings = {n: read_record(out, n) for n in names}
    sequence_of_row = per_sequence_df["Sequence"].str.rsplit("_", n=1).str[0]
    per_sequence_df["Seconds/frame"] = [timings[s]["seconds_per_frame"] for s in sequence_of_row]
    per_sequence_df["Peak memory (MiB)"] = [timings[s]["peak_memory_mib"] for s in sequence_of_row]
    return global_df, per_sequence_df


def run(args: argparse.Namespace) -> int:
    """``hmmnlab eval`` on DAVIS (its options: :mod:`hmmnlab.cli`, which runs
    :func:`hmmnlab.evaluate_youtube.run` for ``--dataset youtube-vos``)."""
    options.check_dataset_options(args)
    check_output_dir(args.out)  # a file or a read-only folder: refused before the model loads
    if args.dataset == "youtube-vos":
        raise ValueError("hmmnlab.evaluate.run is DAVIS's; run hmmnlab.evaluate_youtube.run")
    device = resolve_device(args.device)
    read = options.read_config(args)
    keep_freed_memory()  # large tensors reuse freed pages (hmmnlab.allocator)
    model = load_model(args.weights, device=device, fast=True)
    global_df, per_sequence_df = evaluate(
        model, args.root, args.out, year=args.year, split=args.split, resolution=args.resolution,
        read=read, sequences=args.sequences, device=device, amp=args.amp, dtype=args.dtype, overwrite=args.overwrite,
        overlays=args.overlays,
    )  # fmt: skip
    write_results(args.out, global_df, per_sequence_df)
    print(global_df.to_string(index=False))
    print(per_sequence_df.to_string(index=False))
    print(f"wrote masks and results to {args.out}")
    return 0
