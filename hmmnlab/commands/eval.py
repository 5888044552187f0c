"""``hmmnlab eval`` (its options: :mod:`hmmnlab.commands.cli`): a DAVIS split
(:mod:`hmmnlab.evaluation.davis`) or a YouTube-VOS one (:mod:`hmmnlab.evaluation.youtube`), each
imported only by its own runner, so that neither dataset's module imports the other.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hmmnlab.commands import options


def run(args: argparse.Namespace) -> int:
    """``hmmnlab eval``: the runner of ``--dataset`` (DAVIS: :func:`run_davis`, YouTube-VOS:
    :func:`run_youtube`)."""
    options.check_dataset_options(args)
    return run_youtube(args) if args.dataset == "youtube-vos" else run_davis(args)


def run_davis(args: argparse.Namespace) -> int:
    """``hmmnlab eval`` on DAVIS (:func:`run_youtube` runs ``--dataset youtube-vos``)."""
    from hmmnlab.allocator import keep_freed_memory
    from hmmnlab.evaluation.davis import evaluate
    from hmmnlab.evaluation.records import check_output_dir
    from hmmnlab.evaluation.scoring import write_results
    from hmmnlab.inference import resolve_device
    from hmmnlab.weights import load_model

    options.check_dataset_options(args)
    check_output_dir(args.out)  # a file or a read-only folder: refused before the model loads
    if args.dataset == "youtube-vos":
        raise ValueError("hmmnlab.commands.eval.run_davis is DAVIS's; run run_youtube")
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


def run_youtube(args: argparse.Namespace) -> int:
    """``hmmnlab eval --dataset youtube-vos``."""
    from hmmnlab.allocator import keep_freed_memory
    from hmmnlab.evaluation.records import atomic_path
    from hmmnlab.evaluation.scoring import OFFICIAL_FLOAT_FORMAT
    from hmmnlab.evaluation.youtube import GLOBAL_CSV, PER_OBJECT_CSV, evaluate
    from hmmnlab.inference import resolve_device
    from hmmnlab.weights import load_model

    device = resolve_device(args.device)
    read = options.read_config(args)
    keep_freed_memory()  # large tensors reuse freed pages (hmmnlab.allocator)
    model = load_model(args.weights, device=device, fast=True)
    global_df, per_object, zip_path = evaluate(
        model, args.root, args.out, split=args.split, all_frames=args.all_frames, read=read,
        videos=args.sequences, device=device, amp=args.amp, dtype=args.dtype, overwrite=args.overwrite,
        unseen_categories=args.unseen_categories,
    )  # fmt: skip
    out = Path(args.out)
    if global_df is None:
        print(
            f"split {args.split!r} is annotated only where objects first appear: no local score "
            f"(upload {zip_path} to the evaluation server)"
        )
    else:
        for table, name in ((global_df, GLOBAL_CSV), (per_object, PER_OBJECT_CSV)):
            with atomic_path(out / name) as temporary:
                table.to_csv(temporary, index=False, float_format=OFFICIAL_FLOAT_FORMAT)
        print(global_df.to_string(index=False))
        print(per_object.to_string(index=False))
        print(f"wrote {out / GLOBAL_CSV} and {out / PER_OBJECT_CSV}")
    print(f"wrote masks to {out / 'Annotations'} and {zip_path}")
    return 0
