"""Seconds per frame and peak memory of hmmnlab's HMMN inference at 480 x 854 with 2 objects.

It runs the per-frame step of inference and training (:func:`hmmnlab.step.segment_step`) and splits
its time into memorize (the memory encoder of frame t-1, timed up to the ``memory_features.v2`` hook
point) and segment (the rest). It prints hmmnlab's figures only: a speed ratio against the authors'
code must be measured side by side in one run, not against a figure from another day.

    python benchmarks/bench_segment.py [--frames 8] [--device cpu|cuda] [--threads N] [--amp]

Weights are random (speed does not depend on them); frames are smooth noise.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from hmmnlab import ops
from hmmnlab.config import ReadConfig
from hmmnlab.inference import resolve_device
from hmmnlab.memory import MemoryBank
from hmmnlab.model import HMMN
from hmmnlab.step import segment_step


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frames to segment after frame 0")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--amp", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = HMMN().to(device).eval()
    H, W, K = args.height, args.width, args.objects
    padding = ops.padding_for(H, W)
    frames = torch.rand(args.frames + 1, 1, 3, H // 8, W // 8)
    frames = torch.nn.functional.interpolate(frames[:, 0], size=(H, W), mode="bilinear")
    frames = ops.pad(frames.to(device), padding).unsqueeze(1)  # T x 1 x 3 x Hp x Wp
    masks = torch.zeros(K, H, W, device=device)
    for o in range(K):
        masks[o, 50 + 100 * o : 200 + 100 * o, 100 + 200 * o : 300 + 200 * o] = 1
    masks = ops.pad(masks, padding)
    bank, read = MemoryBank(), ReadConfig()
    times = {"memorize": [], "segment": []}
    autocast = torch.autocast(
        "cuda", dtype=torch.float16, enabled=args.amp and device.type == "cuda"
    )
    memorized = []

    def mark_memorized(value, ctx):  # a hook that only notes when frame t-1 is encoded
        synchronize(device)
        memorized.append(time.perf_counter())

    hooks = {"memory_features.v2": mark_memorized}
    with torch.inference_mode(), autocast:
        for t in range(1, args.frames + 1):
            synchronize(device)
            start = time.perf_counter()
            step = segment_step(model, bank, t, frames[t - 1], masks, frames[t], read, hooks=hooks)
            masks = step.probs[0][1:]
            synchronize(device)
            end = time.perf_counter()
            times["memorize"].append(memorized[-1] - start)
            times["segment"].append(end - memorized[-1])
    skip = 1 if args.frames > 2 else 0  # the first step warms up
    memorize = float(np.mean(times["memorize"][skip:]))
    segment = float(np.mean(times["segment"][skip:]))
    total = memorize + segment
    print(
        f"device {device}, {torch.get_num_threads()} threads, {H} x {W}, {K} objects, "
        f"{args.frames} frames (first excluded from the means)"
    )
    print(
        f"memorize {memorize:.3f} s/frame, segment {segment:.3f} s/frame, total {total:.3f} s/frame"
    )
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        print(f"peak GPU memory allocated: {peak:.0f} MiB")
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory of the process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
