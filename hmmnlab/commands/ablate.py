"""``hmmnlab ablate`` (its options: :mod:`hmmnlab.commands.cli`; the grid and its runner:
:mod:`hmmnlab.ablation`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hmmnlab import ablation


def run(args: argparse.Namespace) -> int:
    """``hmmnlab ablate`` (its options: :mod:`hmmnlab.commands.cli`)."""
    if args.ray is not None:
        ablation.import_ray()  # without Ray: the one-line error, before any work
    elif args.num_cpus is not None:
        raise ValueError("--num-cpus sets the CPUs of a local Ray: give it with --ray")
    if args.ray and args.num_cpus is not None:
        raise ValueError(f"--num-cpus is for a local Ray, not the cluster at {args.ray}")
    # the reads of the weights' variant start from theirs
    base = ablation.carried_read(args.weights)
    variants = (
        ablation.named_grid(args.variants, base) if args.variants else ablation.quick_grid(base)
    )
    table = ablation.run(
        args.root, args.weights, variants=variants, year=args.year, split=args.split,
        resolution=args.resolution, sequences=args.sequences, out=args.out, device=args.device,
        amp=args.amp, dtype=args.dtype, overlays=args.overlays, progress=not args.no_progress, threads=args.threads,
        executor="local" if args.ray is None else "ray", ray_address=args.ray or None,
        num_cpus=args.num_cpus,
    )  # fmt: skip
    columns = ["label", *ablation.varying_columns(table), *ablation.RESULT_COLUMNS]
    print(table[columns].to_string(index=False))
    print(f"wrote {Path(args.out) / ablation.TABLE_NAME} and the masks and CSVs of each read")
    return 0
