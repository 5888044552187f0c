"""Training steps per second: clips one at a time (gradients accumulated, the loop before batching)
against all clips of a step in one batched forward (today's loop), measured alternately in one run.

    python benchmarks/bench_train.py [--preset demo] [--batch 4] [--frames 3] [--crop 192]
        [--objects 2] [--repeats 3] [--threads 2]

Both arms run the same clips, weights and read, forward and backward, on the CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hmmnlab.config import ReadConfig
from hmmnlab.train.loop import (
    TrainConfig,
    build_model,
    freeze,
    frozen_modules,
    set_train_mode,
    train_step,
)
from hmmnlab.train.squares import square_clips


def timed_step(model, optimizer, clips, read, *, batched: bool) -> float:
    """Seconds of one optimizer step: all clips in one forward, or one clip at a time."""
    start = time.perf_counter()
    train_step(
        model, optimizer, clips, read, device=torch.device("cpu"),
        micro_batch=None if batched else 1,
    )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--freeze-stages", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = set_train_mode(build_model(TrainConfig(preset=args.preset)))
    freeze(frozen_modules(model, args.freeze_stages))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    clips = square_clips(
        args.batch, frames=args.frames, crop=args.crop, objects=args.objects, prefix="bench"
    )
    read = ReadConfig(mem_every=1)
    timed_step(model, optimizer, clips, read, batched=True)  # warm-up
    times = {"one clip at a time": [], "batched": []}
    for _ in range(args.repeats):
        for name in times:  # alternate A B A B
            times[name].append(timed_step(model, optimizer, clips, read, batched=name == "batched"))
    print(
        f"{args.preset}: {args.batch} clips x {args.frames} frames, {args.crop}px, "
        f"{args.objects} objects, {args.threads} threads, freeze_stages {args.freeze_stages}, "
        f"median of {args.repeats}"
    )
    median = {name: float(np.median(t)) for name, t in times.items()}
    for name, seconds in median.items():
        print(f"  {name:20s} {seconds:6.2f} s/step  {1 / seconds:6.3f} steps/s")
    print(f"  speed-up: x{median['one clip at a time'] / median['batched']:.2f}")


if __name__ == "__main__":
    main()
