"""``hmmnlab segment`` (its options: :mod:`hmmnlab.commands.cli`; the work:
:mod:`hmmnlab.evaluation.segment`), and
:func:`load_video_inputs`, the check of every command that runs a model on one video (``segment``,
``trace``).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from hmmnlab.allocator import keep_freed_memory
from hmmnlab.commands import options
from hmmnlab.config import preset
from hmmnlab.data.frames import FrameFolder
from hmmnlab.data.palette import read_label_png
from hmmnlab.evaluation.records import check_outside, file_lock, output_lock
from hmmnlab.evaluation.resources import check_memory
from hmmnlab.evaluation.segment import check_npz_path, check_output_folder, segment_folder
from hmmnlab.inference import object_labels, resolve_device
from hmmnlab.weights import load_model


def load_video_inputs(
    args: argparse.Namespace, *, out: Path | None = None, overwrite: bool = False
):
    """Check a video command's inputs before any work: (model, frames, first labels, read,
    device)."""
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
    """``hmmnlab segment``: the masks of --frames from --first-mask, written to --out."""
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
