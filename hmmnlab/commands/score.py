"""``hmmnlab score`` (its options: :mod:`hmmnlab.commands.cli`; the scores:
:mod:`hmmnlab.evaluation.scoring`, which imports pandas, OpenCV and the metrics only when a score is
computed: no torch)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hmmnlab.evaluation import scoring
from hmmnlab.evaluation.records import check_output_dir, check_outside


def run(args: argparse.Namespace) -> int:
    """``hmmnlab score`` (its options: :mod:`hmmnlab.commands.cli`)."""
    start = time.perf_counter()
    check_output_dir(args.out)  # a file or a read-only folder: refused before any work
    root = Path(args.root)
    check_outside(args.out, "--out", [("--root", root), ("--root", root / "Annotations")])
    global_df, per_sequence_df = scoring.score(
        args.root,
        args.pred,
        year=args.year,
        split=args.split,
        resolution=args.resolution,
        sequences=args.sequences,
        allow_missing=args.allow_missing,
        workers=args.workers,
        progress=True,
    )
    global_path, per_sequence_path = scoring.write_results(args.out, global_df, per_sequence_df)
    print(f"--- Global results for DAVIS {args.year} {args.split} ---")
    print(global_df.to_string(index=False))
    print(f"\n--- Per-object results for DAVIS {args.year} {args.split} ---")
    print(per_sequence_df.to_string(index=False))
    print(f"\nwrote {global_path} and {per_sequence_path}")
    print(f"total time: {time.perf_counter() - start:.1f} s")
    return 0
