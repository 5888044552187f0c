"""Seconds per frame and peak memory of hmmnlab's HMMN inference at 480 x 854 with 2 objects.

The authors' code takes about 5.6 s per frame for this case on the project's 2-core CPU machine
(4.5 s to segment, 0.9 s to memorize; measured once when the issue was written, not re-run here).
This script prints our figures and the ratio against that reference.

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

AUTHORS_CPU_SECONDS = {"total": 5.6, "segment": 4.5, "memorize": 0.9}


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
    with torch.inference_mode(), autocast:
        for t in range(1, args.frames + 1):
            synchronize(device)
            start = time.perf_counter()
            bank.add(t - 1, model.encode_memory(frames[t - 1], masks))
            synchronize(device)
            middle = time.perf_counter()
            query = model.encode_query(frames[t])
            readout = model.read(bank, query, read)
            probs = model.decode(query, readout).float()
            bank.finish_step(readout.next_track)
            masks = torch.softmax(ops.soft_aggregate(probs), dim=0)[1:]
            synchronize(device)
            end = time.perf_counter()
            times["memorize"].append(middle - start)
            times["segment"].append(end - middle)
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
        ref = AUTHORS_CPU_SECONDS
        print(
            f"speed-up over the authors' code on the 2-core machine (reference {ref['total']} s): "
            f"total x{ref['total'] / total:.2f}, segment x{ref['segment'] / segment:.2f}, "
            f"memorize x{ref['memorize'] / memorize:.2f}"
        )


if __name__ == "__main__":
    main()
