"""Cost of the hook points when nobody listens, and of tracing every hook.

Runs propagate() on the same video three ways, alternating, and prints median seconds per frame:
  bare      hook points replaced by plain identity functions (as if the model had none)
  hooks     the model as shipped, nothing attached
  traced    every hook point recorded (trace=True)
  no-op     a causal hook on every hook point that returns None (keeps every tensor)
The target is hooks / bare < 1.02 (within noise): hook points cost nothing when nobody listens.

    python benchmarks/bench_hooks.py [--preset hmmn|demo] [--size 240x432] [--frames 6] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from hmmnlab.config import preset
from hmmnlab.hooks import HookPoint, hook_points
from hmmnlab.inference import propagate
from hmmnlab.model import HMMN


def seconds_per_frame(model, frames, labels, **kwargs) -> float:
    start = time.perf_counter()
    for _ in propagate(model, frames, labels, **kwargs):
        pass
    return (time.perf_counter() - start) / (len(frames) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="hmmn")
    parser.add_argument("--size", default="240x432")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    model = HMMN(preset(args.preset)).eval()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(args.frames, height, width, 3), dtype=np.uint8)
    labels = np.zeros((height, width), np.uint8)
    labels[height // 4 : height // 2, width // 4 : width // 2] = 1
    labels[height // 2 :, width // 2 :] = 2

    identity = staticmethod(lambda x: x)
    shipped_call = HookPoint.__call__
    times = {"bare": [], "hooks": [], "traced": [], "no-op": []}
    noop = dict.fromkeys(hook_points(model), lambda value, ctx: None)
    seconds_per_frame(model, frames[:2], labels)  # warm-up
    for _ in range(args.repeats):
        HookPoint.__call__ = identity
        times["bare"].append(seconds_per_frame(model, frames, labels))
        HookPoint.__call__ = shipped_call
        times["hooks"].append(seconds_per_frame(model, frames, labels))
        times["traced"].append(seconds_per_frame(model, frames, labels, trace=True))
        times["no-op"].append(seconds_per_frame(model, frames, labels, hooks=noop))
    median = {k: statistics.median(v) for k, v in times.items()}
    deviations = [abs(t - median["bare"]) for t in times["bare"]]
    spread = statistics.median(deviations) / median["bare"]  # robust to a stray slow run
    print(
        f"{args.preset} at {height} x {width}, 2 objects, {args.frames} frames, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    for name, value in median.items():
        print(f"  {name:7s} {value:.4f} s/frame  ratio to bare {value / median['bare']:.4f}")
    print(f"  run-to-run spread of bare (median absolute deviation): {100 * spread:.1f}%")


if __name__ == "__main__":
    main()
