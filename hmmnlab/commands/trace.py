"""``hmmnlab trace`` (its options: :mod:`hmmnlab.commands.cli`; the hook table:
:mod:`hmmnlab.inside.trace`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hmmnlab.commands.segment import load_video_inputs
from hmmnlab.evaluation.records import check_outside, file_lock
from hmmnlab.evaluation.segment import check_npz_path, save_npz
from hmmnlab.inside.trace import run_with_cache, trace_arrays


def run(args: argparse.Namespace) -> int:
    """``hmmnlab trace`` (its options: :mod:`hmmnlab.commands.cli`)."""
    check_npz_path(Path(args.out), "--out", overwrite=args.overwrite)
    check_outside(args.out, "--out", [("--frames", Path(args.frames))])
    model, frames, labels, read, device = load_video_inputs(args)
    if len(frames) < 2:
        raise ValueError(
            f"--frames {args.frames} has {len(frames)} frame: nothing to trace (frame 0 is given, "
            "not read from memory; a trace needs a video of at least 2 frames)"
        )
    if not 1 <= args.frame < len(frames):
        raise ValueError(
            f"--frame must be in 1..{len(frames) - 1} for this video, got {args.frame}"
        )
    with file_lock(args.out, command="trace"):
        check_npz_path(Path(args.out), "--out", overwrite=args.overwrite)  # again, locked
        result, cache = run_with_cache(
            model, frames, labels, frame=args.frame, read=read, device=device, amp=args.amp,
            dtype=args.dtype,
        )  # fmt: skip
        arrays = trace_arrays(result, cache, read)
        save_npz(args.out, **arrays)
    print(f"wrote {len(arrays)} arrays of frame {args.frame} to {args.out}")
    return 0
