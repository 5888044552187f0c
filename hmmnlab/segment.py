"""``hmmnlab segment``: segment a folder of frames from its first frame's mask.

The command's options are declared in :mod:`hmmnlab.cli`; :func:`run` runs it, and
:func:`load_video_inputs` checks the inputs of every command that runs a model on one video.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hmmnlab import options
from hmmnlab.allocator import keep_freed_memory
from hmmnlab.config import ReadConfig, preset
from hmmnlab.data.frames import FrameFolder
from hmmnlab.data.palette import read_label_png, write_label_png
from hmmnlab.inference import object_labels, propagate, resolve_device
from hmmnlab.model import HMMN
from hmmnlab.records import (
    atomic_path,
    check_output_dir,
    check_output_file,
    check_outside,
    file_lock,
    output_lock,
)
from hmmnlab.resources import check_memory
from hmmnlab.weights import load_model


def check_output_folder(
    out: Path, frames: Path, *, first_mask: Path | None = None, overwrite: bool = False
) -> None:
    """Refuse an output folder that would mix outputs with input or destroy files: inside (or equal
    to) the frames folder, an existing file, a folder that already holds PNGs (unless
    ``overwrite``), or the folder of the first mask."""
    check_output_dir(out, "--out")
    check_outside(out, "--out", [("--frames", frames)])
    out = out.resolve()
    if first_mask is not None and first_mask.resolve().parent == out:
        raise ValueError(
            f"--out {out} holds the --first-mask {first_mask.name}: its masks would overwrite it; "
            "choose another folder"
        )
    if not overwrite and out.is_dir():
        pngs = sorted(p.name for p in out.glob("*.png"))
        if pngs:
            raise ValueError(
                f"--out {out} already holds {len(pngs)} PNG file(s) ({', '.join(pngs[:3])}"
                f"{', ...' if len(pngs) > 3 else ''}); give --overwrite to replace them or choose "
                "an empty folder"
            )


def check_npz_path(path: Path, what: str, *, overwrite: bool = False) -> None:
    """Refuse an .npz output path that numpy would change (no .npz suffix), cannot write, or that
    exists (unless ``overwrite``)."""
    if path.name == "" or path.suffix.lower() != ".npz" or path.name.startswith("."):
        raise ValueError(f"{what} {path}: expected a file name ending in .npz, e.g. probs.npz")
    check_output_file(path, what, overwrite=overwrite)


def save_npz(path: str | Path, **arrays) -> None:
    """``np.savez_compressed`` through a temporary file beside ``path`` and a rename: a full disk
    leaves no truncated .npz (and an existing file as it was)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def segment_folder(
    model: HMMN,
    frames: FrameFolder,
    first_labels: np.ndarray,
    out: str | Path,
    *,
    read: ReadConfig | None = None,
    device=None,
    amp: bool = False,
    dtype: str | None = None,  # or "float32", "bfloat16"; None: hmmnlab.precision's default
    save_probs: str | Path | None = None,
    progress: bool = True,
) -> list[Path]:
    """Segment ``frames`` and write one palette PNG per frame (named by the frames' stems) into
    ``out``; with ``save_probs`` also an .npz whose ``probs`` is T x (K+1) x H x W float32.
    Returns the written PNG paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written, probs = [], None
    results = propagate(model, frames, first_labels, read=read, device=device, amp=amp, dtype=dtype)
    for result in tqdm(
        results, total=len(frames), desc="segment", unit="frame", disable=not progress
    ):
        path = out / f"{frames.stems[result.index]}.png"
        write_label_png(path, result.labels.cpu().numpy())
        written.append(path)
        if save_probs is not None:
            if probs is None:
                probs = np.zeros((len(frames), *result.probs.shape), dtype=np.float32)
            probs[result.index] = result.probs.float().cpu().numpy()
    if save_probs is not None:
        save_npz(save_probs, probs=probs, object_ids=np.array(result.object_ids))
    return written


def load_video_inputs(
    args: argparse.Namespace, *, out: Path | None = None, overwrite: bool = False
):
    """Check a video command's inputs before any work: (model, frames, first labels, read, device)."""
    device = resolve_device(args.device)
    read = options.read_config(args)
    frames = FrameFolder(args.frames)
    if out is not None:
        check_output_folder(
            out, Path(args.frames), first_mask=Path(args.first_mask), overwrite=overwrite
        )
    labels = read_label_png(args.first_mask)
    if labels.shape != frames.size:
        raise ValueError(
            f"first mask {args.first_mask} is {labels.shape} (H x W) but the frames are {frames.size}"
        )
    _, ids = object_labels(labels)  # no object (background and void only) is an error that says so
    what = f"--frames {args.frames}"
    # before loading: with the smallest preset (a lower bound); then with the model's own sizes
    check_memory(*frames.size, len(ids), len(frames), read, device=device, what=what,
                 model=preset("demo"))  # fmt: skip
    keep_freed_memory()  # large tensors reuse freed pages (hmmnlab.allocator)
    model = load_model(args.weights, device=device, fast=True)
    check_memory(*frames.size, len(ids), len(frames), read, device=device, what=what,
                 model=model.config)  # fmt: skip
    return model, frames, labels, read, device


def run(args: argparse.Namespace) -> int:
    if args.save_probs:
        check_npz_path(Path(args.save_probs), "--save-probs", overwrite=args.overwrite)
        check_outside(args.save_probs, "--save-probs", [("--frames", Path(args.frames))])
    model, frames, labels, read, device = load_video_inputs(
        args, out=Path(args.out), overwrite=args.overwrite
    )
    with contextlib.ExitStack() as locks:  # one segment at a time per --out (and --save-probs)
        locks.enter_context(output_lock(args.out, command="segment"))
        if not args.overwrite:  # again under the lock: another run may have written since
            check_output_folder(Path(args.out), Path(args.frames))
        if args.save_probs:
            locks.enter_context(file_lock(args.save_probs, command="segment"))
        written = segment_folder(
            model,
            frames,
            labels,
            args.out,
            read=read,
            device=device,
            amp=args.amp,
            dtype=args.dtype,
            save_probs=args.save_probs,
        )
    print(f"wrote {len(written)} masks to {args.out}")
    if args.save_probs:
        print(f"wrote probabilities to {args.save_probs}")
    return 0
