"""``hmmnlab samples`` (its options: :mod:`hmmnlab.commands.cli`): the command that writes the
generated datasets.

* ``--out DIR``: the bundled sample videos in the DAVIS layout
  (:func:`hmmnlab.data.synthetic.write_samples`), and with ``--num-train N`` N random training
  videos;
* ``--youtube-vos DIR``: a small set in the YouTube-VOS layout
  (:func:`hmmnlab.data.synthetic.write_youtube_vos`);
* ``--lookalikes DIR``: the graded look-alike suite (:mod:`hmmnlab.data.lookalikes`).

An existing dataset is replaced only with ``--overwrite``
(:func:`hmmnlab.evaluation.records.check_fresh_folder`).
"""

from __future__ import annotations

import argparse

from hmmnlab.data.synthetic import write_samples, write_youtube_vos
from hmmnlab.evaluation import records


def run(args: argparse.Namespace) -> int:
    """``hmmnlab samples`` (its options: :mod:`hmmnlab.commands.cli`)."""
    if args.out is None and args.youtube_vos is None and args.lookalikes is None:
        raise ValueError(
            "expected --out DIR (DAVIS layout), --youtube-vos DIR and/or --lookalikes DIR"
        )
    if args.num_lookalikes < 1:
        raise ValueError(f"--num-lookalikes must be >= 1, got {args.num_lookalikes}")
    if args.num_train < 0:
        raise ValueError(f"--num-train must be non-negative, got {args.num_train}")
    if args.out is None and args.num_train:
        raise ValueError("--num-train writes DAVIS-layout training videos: give --out DIR too")
    if args.out is not None:
        records.check_fresh_folder(args.out, records.DAVIS_FOLDERS, overwrite=args.overwrite)
    if args.youtube_vos is not None:
        records.check_fresh_folder(
            args.youtube_vos, records.YOUTUBE_VOS_FOLDERS, "--youtube-vos", overwrite=args.overwrite
        )
    if args.out is not None:
        names = write_samples(args.out, num_train=args.num_train, seed=args.seed)
        print(f"wrote {len(names)} sequences to {args.out}")
    if args.youtube_vos is not None:
        written = write_youtube_vos(args.youtube_vos)
        splits = ", ".join(f"{len(names)} {split}" for split, names in written.items())
        print(f"wrote {splits} videos in the YouTube-VOS layout to {args.youtube_vos}")
    if args.lookalikes is not None:
        from hmmnlab.data.lookalikes import lookalike_specs, write_lookalikes

        written = write_lookalikes(args.lookalikes, lookalike_specs(args.num_lookalikes, args.seed))
        grades = sorted({r["grade"] for r in written})
        counts = ", ".join(f"{sum(r['grade'] == g for r in written)} {g}" for g in grades)
        print(f"wrote {len(written)} look-alike videos ({counts}) to {args.lookalikes}")
    return 0
