"""Training clips drawn per second: in the training process (``loader_workers=0``) against 1, 2, ...
DataLoader worker processes (``--set loader_workers=N``), measured side by side in one run.

    python benchmarks/bench_loader.py [--davis data_samples] [--steps 12] [--batch 8] [--crop 192]
        [--workers 0,1,2] [--repeats 2]

Each arm draws the clips of the same ``--steps`` optimizer steps (the training's augmentation, at
its default settings) from a DAVIS-layout folder and nothing else: no model runs. Session 11's GPU
training ran 2.2-2.6 steps a second, four runs side by side, with the H200 waiting for clips drawn
in the training process; the workers draw them while it trains. The arms alternate, ``--repeats``
times; each prints its median steps per second and its ratio to the first arm.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
import types

import numpy as np

from hmmnlab.data.davis import repo_path
from hmmnlab.train.clips import open_davis
from hmmnlab.train.loop import TrainConfig, step_clips


def drawn_per_second(groups, config: TrainConfig, steps: int) -> float:
    shared = np.random.default_rng([config.seed, 2021])  # the training's stream for 0 workers
    run = types.SimpleNamespace(config=config, step=0, rng=shared)
    start = time.perf_counter()
    count = sum(1 for _ in step_clips(run, groups, steps))
    assert count == steps
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", default="data_samples", help="a DAVIS-layout folder")
    parser.add_argument("--split", default="val")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    videos = open_davis(repo_path(args.davis), split=args.split)
    config = TrainConfig(batch_size=args.batch, crop_size=args.crop, steps=args.steps)
    arms = [int(w) for w in args.workers.split(",")]
    rates: dict[int, list[float]] = {w: [] for w in arms}
    for _ in range(args.repeats):
        for workers in arms:
            arm = dataclasses.replace(config, loader_workers=workers)
            rates[workers].append(drawn_per_second([videos], arm, args.steps))
    print(
        f"{len(videos)} videos from {args.davis}, {args.steps} steps of {args.batch} clips "
        f"({args.crop} px, {config.clip_frames} frames); {os.cpu_count()} CPUs; "
        f"medians of {args.repeats} alternating runs"
    )
    first = statistics.median(rates[arms[0]])
    print(f"{'loader_workers':>14} {'steps/s':>8} {'vs ' + str(arms[0]):>7}")
    for workers in arms:
        rate = statistics.median(rates[workers])
        print(f"{workers:>14} {rate:8.2f} {rate / first:7.2f}")


if __name__ == "__main__":
    main()
