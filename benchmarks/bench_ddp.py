"""Training steps per second against the number of torch.distributed ranks (gloo, CPU), in one run.

    python benchmarks/bench_ddp.py [--ranks 1,2] [--steps 6] [--batch 4] [--crop 160] [--repeats 2]

Each rank count trains the demo preset (random weights, no ImageNet start) on the same synthetic
videos with the same global batch, one torch thread per rank, started as ``torchrun``-style
processes; the counts run alternately ``--repeats`` times and the median is printed. The first step
of every run (start-up, first allocations) is left out of the timing (the training log's
``elapsed_s``: training time without validation).
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import statistics
import sys
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def videos():
    from hmmnlab.data.synthetic import VideoSpec, generate_video
    from hmmnlab.train.clips import ArrayVideo

    specs = [VideoSpec(f"v{i}", seed=40 + i, num_frames=12, num_objects=2) for i in range(4)]
    return [ArrayVideo(s.name, *generate_video(s)) for s in specs]


def config(args):
    from hmmnlab.train.loop import TrainConfig

    return TrainConfig(
        steps=args.steps, batch_size=args.batch, micro_batch=1, crop_size=args.crop, warmup_steps=1,
        imagenet_init=False, tie_keys=False, bn_calibration=0, val_every=10_000,
        ckpt_every=10_000, log_every=1, threads=1, seed=0,
    )  # fmt: skip


def worker(rank: int, world: int, port: int, args, out: str) -> None:
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    from hmmnlab.train.loop import train

    train(config(args), videos(), out, progress=False)  # rank 0 writes out/log.csv
    if world > 1:
        torch.distributed.destroy_process_group()


def one_run(world: int, args) -> float:
    """Seconds per step (steps 2..N, from the training log's ``elapsed_s``) on ``world`` ranks."""
    with tempfile.TemporaryDirectory() as out:
        port = free_port()
        mp.spawn(worker, args=(world, port, args, out), nprocs=world, join=True)
        with open(Path(out, "log.csv"), newline="") as f:
            elapsed = [float(row["elapsed_s"]) for row in csv.DictReader(f) if row["loss"]]
    return (elapsed[-1] - elapsed[0]) / (len(elapsed) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,2", help="comma-separated rank counts")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4, help="global batch (clips per step)")
    parser.add_argument("--crop", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    ranks = [int(r) for r in args.ranks.split(",")]
    for world in ranks:
        if args.batch % world:
            sys.exit(f"--batch {args.batch} is not a multiple of {world} ranks")
    times = {world: [] for world in ranks}
    for _ in range(args.repeats):
        for world in ranks:
            times[world].append(one_run(world, args))
    print(f"demo preset, {args.batch} clips x 3 frames per step, crop {args.crop}, 1 thread per "
          f"rank, median of {args.repeats} alternating runs ({args.steps - 1} timed steps each)")  # fmt: skip
    base = statistics.median(times[ranks[0]])
    for world in ranks:
        seconds = statistics.median(times[world])
        print(f"  {world} rank{'s' if world > 1 else ' '}  {seconds:6.2f} s/step  "
              f"{1 / seconds:6.3f} steps/s  x{base / seconds:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
