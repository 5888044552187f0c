"""``hmmnlab demo`` (its options: :mod:`hmmnlab.commands.cli`; the tour and its report:
:mod:`hmmnlab.inside.report`)."""

from __future__ import annotations

import argparse

from hmmnlab import ablation
from hmmnlab.evaluation.records import check_output_dir
from hmmnlab.inside.demo_runs import DEMO_FRAMES
from hmmnlab.inside.report import demo


def run(args: argparse.Namespace) -> int:
    """``hmmnlab demo`` (its options: :mod:`hmmnlab.commands.cli`)."""
    check_output_dir(args.out)  # a file or a read-only folder: refused before any work
    grid = None
    frames = args.frames if args.frames is not None else (None if args.full else DEMO_FRAMES)
    if args.quick:  # for tests: two reads on 4 frames
        base = ablation.carried_read(args.weights)
        grid = [
            (label, read) for label, read in ablation.quick_grid(base) if label in ("stm", "hmmn")
        ]
        frames = args.frames or 4
    stm_weights = None if args.stm_weights.lower() == "none" else args.stm_weights
    path = demo(args.out, weights=args.weights, davis_root=args.davis, device=args.device,
                full=args.full, frames=frames, grid=grid, stm_weights=stm_weights,
                progress=not args.quiet, dtype=args.dtype)  # fmt: skip
    print(f"wrote {path}")
    return 0
