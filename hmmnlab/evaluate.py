"""``hmmnlab eval``: run a model over a DAVIS split, write its masks, and score them.

Output folder layout (the official toolkit's): ``OUT/<sequence>/<frame>.png`` palette masks,
``OUT/global_results.csv``, ``OUT/per-sequence_results.csv``; ``OUT/timing/<sequence>.json`` marks a
finished sequence (seconds per frame, peak memory), so an interrupted run resumes where it stopped.
With overlays: ``OUT/overlays/<sequence>/<frame>.jpg`` and ``OUT/overlays/<sequence>.mp4``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from hmmnlab.config import ReadConfig
from hmmnlab.data.davis import DavisDataset, DavisSequence
from hmmnlab.data.palette import write_label_png
from hmmnlab.inference import propagate, resolve_device
from hmmnlab.model import HMMN
from hmmnlab.scoring import score, write_results
from hmmnlab.segment import parse_read_params
from hmmnlab.viz import overlay
from hmmnlab.weights import load_model


class PeakMemory:
    """Peak memory while a block runs, in MiB: allocated GPU memory on CUDA; on the CPU, the peak
    resident set of the process (reset at the start where Linux allows, else since process start)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mib = float("nan")

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:  # "5" resets the peak resident set size (VmHWM) of this process
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        try:
            status = Path("/proc/self/status").read_text()
            self.mib = int(status.split("VmHWM:")[1].split()[0]) / 1024
        except (OSError, IndexError, ValueError):
            self.mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timing_path(out: Path, name: str) -> Path:
    return out / "timing" / f"{name}.json"


def is_finished(out: Path, sequence: DavisSequence) -> bool:
    """A sequence is finished when its timing file and every mask exist."""
    return timing_path(out, sequence.name).is_file() and all(
        (out / sequence.name / f"{stem}.png").is_file() for stem in sequence.frame_names
    )


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
    overlays: bool = False,
    progress: bool = True,
) -> dict:
    """Segment one sequence into ``out/<name>/``; returns and stores its timing."""
    masks_dir = out / sequence.name
    masks_dir.mkdir(parents=True, exist_ok=True)
    overlay_frames = []
    with PeakMemory(device) as peak:
        start = time.perf_counter()
        results = propagate(
            model, sequence, sequence.first_mask(), read=read, device=device, amp=amp
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
    }
    timing_path(out, sequence.name).parent.mkdir(parents=True, exist_ok=True)
    timing_path(out, sequence.name).write_text(json.dumps(timing, indent=1))
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
    overwrite: bool = False,
    overlays: bool = False,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segment every sequence of a DAVIS split (skipping finished ones unless ``overwrite``) and
    score them. Returns the global and per-sequence tables; the latter with ``Seconds/frame`` and
    ``Peak memory (MiB)`` columns."""
    read = read or ReadConfig()
    device = resolve_device(device)
    out = Path(out)
    dataset = DavisDataset(davis_root, year=year, split=split, resolution=resolution)
    names = sequences or dataset.sequences
    unknown = [n for n in names if n not in dataset.sequences]
    if unknown:
        raise ValueError(f"sequences not in the {split} split of {davis_root}: {unknown[:5]}")
    model = model.to(device).eval()
    for name in tqdm(names, desc="sequences", unit="seq", disable=not progress):
        sequence = dataset[name]
        if overwrite or not is_finished(out, sequence):
            segment_sequence(model, sequence, out, read=read, device=device, amp=amp,
                             overlays=overlays, progress=progress)  # fmt: skip
    global_df, per_sequence_df = score(davis_root, out, year=year, split=split,
                                       resolution=resolution, sequences=names)  # fmt: skip
    timings = {n: json.loads(timing_path(out, n).read_text()) for n in names}
    sequence_of_row = per_sequence_df["Sequence"].str.rsplit("_", n=1).str[0]
    per_sequence_df["Seconds/frame"] = [timings[s]["seconds_per_frame"] for s in sequence_of_row]
    per_sequence_df["Peak memory (MiB)"] = [timings[s]["peak_memory_mib"] for s in sequence_of_row]
    return global_df, per_sequence_df


def run(args: argparse.Namespace) -> int:
    from hmmnlab.model.reads import read_variant

    device = resolve_device(args.device)
    read = read_variant(args.variant, mem_every=args.mem_every, **parse_read_params(args.read))
    model = load_model(args.weights, device=device)
    sequences = [s for s in args.sequences.split(",") if s] if args.sequences else None
    global_df, per_sequence_df = evaluate(
        model, args.davis, args.out, year=args.year, split=args.split, resolution=args.resolution,
        read=read, sequences=sequences, device=device, amp=args.amp, overwrite=args.overwrite,
        overlays=args.overlays,
    )  # fmt: skip
    write_results(args.out, global_df, per_sequence_df)
    print(global_df.to_string(index=False))
    print(per_sequence_df.to_string(index=False))
    print(f"wrote masks and results to {args.out}")
    return 0


def register_eval_command(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="run a model over a DAVIS split and score it",
        description="Segment every sequence of a DAVIS split (resumable), write palette PNGs and "
        "the official global_results.csv / per-sequence_results.csv (with seconds per frame and "
        "peak memory).",
    )
    p.add_argument("--davis", required=True, help="DAVIS root folder (e.g. data_samples)")
    p.add_argument("--year", required=True, type=int, choices=(2016, 2017))
    p.add_argument("--split", default="val")
    p.add_argument("--resolution", default="480p")
    p.add_argument("--weights", required=True, help="the authors' checkpoint or hmmnlab's")
    p.add_argument("--out", required=True)
    from hmmnlab.model.reads import KERNELS  # the registry lists the variants

    p.add_argument("--variant", default="hmmn", help=f"{', '.join(KERNELS)} (default hmmn)")
    p.add_argument("--read", action="append", metavar="KEY=VALUE", help="read parameter")
    p.add_argument("--mem-every", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--sequences", default=None, help="comma-separated subset, e.g. a,b")
    p.add_argument("--overwrite", action="store_true", help="redo finished sequences")
    p.add_argument("--overlays", action="store_true", help="also write overlay JPEGs and an MP4")
    p.set_defaults(func=run)
