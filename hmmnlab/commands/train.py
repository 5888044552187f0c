"""``hmmnlab train`` (its options: :mod:`hmmnlab.commands.cli`; the videos it trains on:
:mod:`hmmnlab.train.command`; the loop: :mod:`hmmnlab.train.loop`)."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from hmmnlab.evaluation.records import check_fresh_folder, check_outside, output_lock
from hmmnlab.train.checkpoints import BEST_FILE, LOG_FILE, STATE_FILE, load_state
from hmmnlab.train.command import davis_videos, lookalike_videos, synthetic_videos
from hmmnlab.train.config import TrainConfig, parse_overrides
from hmmnlab.train.loop import train


def run(args: argparse.Namespace) -> int:
    """``hmmnlab train`` (its options: :mod:`hmmnlab.commands.cli`)."""
    config, model_overrides = parse_overrides(args.set or [], TrainConfig(preset=args.preset))
    run_files = (STATE_FILE, BEST_FILE, LOG_FILE)
    if args.resume:
        check_fresh_folder(args.out, (), overwrite=True)  # a file, or not writable: refused
        state_path = Path(args.out) / STATE_FILE
        load_state(state_path)  # unreadable or foreign: refused before the data is made
    else:  # an earlier run is replaced only with --overwrite
        check_fresh_folder(args.out, run_files, overwrite=getattr(args, "overwrite", False))
    check_outside(args.out, "--out", [("--davis", root) for root in args.davis or ()])
    hold_out = [s for s in (args.hold_out or "").split(",") if s]
    real, real_val = davis_videos(args.davis or [], hold_out)
    cache = args.synthetic_cache
    synth = synthetic_videos(args.synthetic, seed=config.seed, prefix="train", cache=cache)
    synth_val = synthetic_videos(
        args.synthetic_val, seed=config.seed + 1, prefix="val", cache=cache, split="val"
    )
    look_cache = None if cache is None else Path(cache) / "lookalikes"
    looks = lookalike_videos(
        args.lookalikes, seed=config.seed, prefix="lookalike-train", cache=look_cache
    )
    looks_val = lookalike_videos(
        args.lookalikes_val, seed=config.seed + 1, prefix="lookalike-val", cache=look_cache,
        split="val",
    )  # fmt: skip
    synth = synth + looks
    print(
        f"training on {len(synth)} synthetic ({len(looks)} of them look-alikes) + {len(real)} "
        f"DAVIS videos; held out: {len(synth_val)} synthetic, {len(looks_val)} look-alikes, "
        f"{len(real_val)} DAVIS ({', '.join(hold_out) or 'none'})"
    )
    single = int(os.environ.get("WORLD_SIZE", "1")) <= 1  # under torchrun every rank runs this
    with output_lock(args.out, command="train") if single else contextlib.nullcontext():
        if not args.resume:  # again under the lock: another run may have written since
            check_fresh_folder(args.out, run_files, overwrite=getattr(args, "overwrite", False))
        result = train(
            config,
            synth,
            args.out,
            real_videos=real,
            val_sets={"synthetic": synth_val, "lookalikes": looks_val, "davis": real_val},
            model_overrides=model_overrides,
            init=args.init,
            resume=args.resume,
            device=args.device,
            amp=args.amp,
            progress=not args.no_progress,
        )
    print(f"done: {result.step} steps; best {result.best or 'n/a'}; files in {result.out}")
    return 0
