"""``hmmnlab train``: the command's data (synthetic, look-alike and DAVIS-layout videos) and its run
function (:func:`run_train_command`; its options: :mod:`hmmnlab.cli`)."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from hmmnlab.records import check_fresh_folder, check_outside, output_lock
from hmmnlab.train.checkpoints import BEST_FILE, LOG_FILE, STATE_FILE, load_state
from hmmnlab.train.clips import ArrayVideo, Video, open_davis
from hmmnlab.train.config import TrainConfig, parse_overrides
from hmmnlab.train.loop import train


def synthetic_videos(
    n: int, *, seed: int, prefix: str, cache: str | Path | None = None, split: str = "train"
) -> list[Video]:
    """``n`` random synthetic videos (:func:`hmmnlab.data.synthetic.random_specs`), generated in
    memory, or written once into ``cache`` (DAVIS 2017 layout, split ``split``) and read from it."""
    from hmmnlab.data.synthetic import generate_video, random_specs, write_davis

    specs = random_specs(max(n, 0), seed, prefix=prefix)
    return _generated_videos(specs, generate_video, write_davis, cache, split, prefix)


def lookalike_videos(
    n: int, *, seed: int, prefix: str, cache: str | Path | None = None, split: str = "train"
) -> list[Video]:
    """``n`` look-alike videos (:func:`hmmnlab.data.lookalikes.lookalike_specs`; grades in turn),
    in memory, or written once into ``cache`` (DAVIS 2017 layout, split ``split``)."""
    from hmmnlab.data.lookalikes import generate_lookalike, lookalike_specs, write_lookalikes

    specs = lookalike_specs(max(n, 0), seed, prefix=prefix)
    return _generated_videos(specs, generate_lookalike, write_lookalikes, cache, split, prefix)


def _generated_videos(specs, generate, write, cache, split: str, prefix: str) -> list[Video]:
    """The videos of ``specs``: ``generate(spec)`` in memory, or ``write(cache, specs, split=)``
    once (when ``cache``'s list of the split differs) and read back from the DAVIS layout."""
    if not specs:
        return []
    if cache is None:
        return [ArrayVideo(s.name, *generate(s)) for s in tqdm(specs, desc=f"{prefix} videos")]
    cache = Path(cache)
    listed = cache / "ImageSets" / "2017" / f"{split}.txt"
    if not listed.is_file() or listed.read_text().split() != [s.name for s in specs]:
        write(cache, specs, split=split)
    return open_davis(cache, split=split)


def davis_videos(roots: Sequence[str], hold_out: Sequence[str]) -> tuple[list[Video], list[Video]]:
    """The sequences of DAVIS-layout folders, split into (training, held-out by name)."""
    train_set, held = [], []
    for root in roots:
        for video in open_davis(root):
            (held if video.name in hold_out else train_set).append(video)
    missing = sorted(set(hold_out) - {v.name for v in held})
    if missing:
        raise ValueError(f"--hold-out names no sequence of the --davis folders: {missing}")
    return train_set, held


def run_train_command(args: argparse.Namespace) -> int:
    """``hmmnlab train`` (its options: :mod:`hmmnlab.cli`)."""
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
