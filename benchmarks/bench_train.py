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
from hmmnlab.train.clips import Clip
from hmmnlab.train.loop import (
    TrainConfig,
    build_model,
    forward_clips,
    freeze,
    frozen_modules,
    set_train_mode,
)
from hmmnlab.train.losses import clip_loss


def make_clips(n: int, frames: int, crop: int, objects: int, seed: int = 0) -> list[Clip]:
    """Random frames with ``objects`` moving squares each (labels 0..objects)."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        labels = torch.zeros(frames, crop, crop, dtype=torch.long)
        for k in range(1, objects + 1):
            y, x = rng.integers(0, crop // 2, size=2)
            for t in range(frames):
                labels[t, y + 2 * t : y + 2 * t + crop // 4, x + t : x + t + crop // 4] = k
        frames_t = torch.from_numpy(rng.random((frames, 3, crop, crop), dtype=np.float32))
        clips.append(Clip(frames_t, labels, objects, f"bench-{i}"))
    return clips


def train_step(model, optimizer, clips, read, *, batched: bool) -> float:
    optimizer.zero_grad(set_to_none=True)
    groups = [clips] if batched else [[c] for c in clips]
    total = 0.0
    for group in groups:
        logits = forward_clips(model, group, read, torch.device("cpu"))
        loss = torch.stack(
            [clip_loss(x, c.labels) for c, x in zip(group, logits, strict=True)]
        ).sum() / len(clips)
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total


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
    clips = make_clips(args.batch, args.frames, args.crop, args.objects)
    read = ReadConfig(mem_every=1)
    train_step(model, optimizer, clips, read, batched=True)  # warm-up
    times = {"one clip at a time": [], "batched": []}
    for _ in range(args.repeats):
        for name in times:  # alternate A B A B
            start = time.perf_counter()
            train_step(model, optimizer, clips, read, batched=name == "batched")
            times[name].append(time.perf_counter() - start)
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
