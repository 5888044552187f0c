"""What each CPU optimisation of the inference path gains, measured side by side in one run.

    python benchmarks/bench_fast_path.py [--frames 5] [--height 480] [--width 854] [--objects 2]
        [--threads 2] [--repeats 2] [--weights recipe-1 | FILE.pth]

Each step adds one change to the one before, and each runs in its own process, alternately
(step 0, 1, 2, ... then again ``--repeats`` times); frame 1 warms up and frames 2.. are timed:

0. ``readable``: the readable model as ``load_model`` gives it, with the readable versions of the
   two per-frame operations below put back (top-k gather position by position, labels by
   ``argmax(dim=0)``);
1. ``+ gather cells``: the top-k reads copy whole coarse cells (``ops.gather_coarse_cells``);
2. ``+ label argmax``: the labels by ``ops.channel_argmax`` (argmax along a contiguous axis);
3. ``+ fold BN``: the encoders' BatchNorms folded into their convolutions;
4. ``+ channels-last``: the encoders' convolution weights stored channels-last (3 and 4 are
   ``load_model(..., fast=True)``);
5. ``+ allocator``: glibc keeps freed memory (``hmmnlab.allocator.keep_freed_memory``): what the
   commands run.

Prints seconds per frame of each step (median over the repeats) and its gain over the step before.
The synthetic video and the recipe weights are those of ``bench_vs_authors.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_authors import MEM_EVERY, make_video, weights_file  # noqa: E402

STEPS = ("readable", "+ gather cells", "+ label argmax", "+ fold BN", "+ channels-last",
         "+ allocator")  # fmt: skip


def child(step: int, video_path: str, weights: str, threads: int) -> None:
    from hmmnlab import ops
    from hmmnlab.allocator import keep_freed_memory
    from hmmnlab.inference import propagate
    from hmmnlab.model.fast import fast_inference, fold_batchnorms
    from hmmnlab.weights import load_model

    torch.set_num_threads(threads)
    if step < 1:  # the readable gather: every fine position on its own
        ops.gather_coarse_cells = lambda x, indices, s: ops.gather_positions(
            x, ops.fine_memory_indices(indices, x.shape[-2] // s, x.shape[-1] // s, s)
        )
    if step < 2:
        ops.channel_argmax = lambda x: x.argmax(dim=0)
    if step >= 5:
        keep_freed_memory()
    model = load_model(weights)
    if step == 3:
        fold_batchnorms(model)
    if step >= 4:
        fast_inference(model)  # folded, and the encoders' weights channels-last
    video = dict(np.load(video_path))
    frames = [torch.from_numpy(frame) for frame in video["frames"]]
    results = propagate(model, frames, video["labels0"], mem_every=MEM_EVERY, device="cpu")
    next(results)  # frame 0: the given mask
    times = []
    while True:
        start = time.perf_counter()
        try:
            next(results)
        except StopIteration:
            break
        times.append(time.perf_counter() - start)
    print(json.dumps({"step": step, "s_per_frame": float(np.mean(times[1:]))}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5, help="frames after frame 0 (1 warms up)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--weights", default="recipe-1", help="recipe-N (seed N) or a .pth file")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--weights-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.video, args.weights_file, args.threads)
        return
    if args.frames < 2:
        raise SystemExit(f"--frames must be >= 2 (frame 1 warms up), got {args.frames}")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    times: dict[int, list[float]] = {step: [] for step in range(len(STEPS))}
    with tempfile.TemporaryDirectory(prefix="bench-fast-path-") as tmp:
        video = Path(tmp) / "video.npz"
        make_video(video, frames=args.frames, height=args.height, width=args.width,
                   objects=args.objects)  # fmt: skip
        weights = weights_file(args.weights, Path(tmp))
        for repeat in range(args.repeats):
            for step in times:  # alternately
                command = [sys.executable, __file__, "--child", str(step), "--video", str(video),
                           "--weights-file", str(weights), "--threads", str(args.threads)]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True, env=env)
                lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
                if done.returncode != 0 or not lines:
                    raise SystemExit(f"step {STEPS[step]!r} failed:\n{done.stderr[-2000:]}")
                times[step].append(json.loads(lines[-1])["s_per_frame"])
                print(f"  run {repeat + 1} {STEPS[step]}: {times[step][-1]:.3f} s/frame",
                      file=sys.stderr, flush=True)  # fmt: skip
    print(f"hmmnlab on the CPU, {args.threads} thread(s), {args.height} x {args.width}, "
          f"{args.objects} object(s), weights {args.weights}, frames 2..{args.frames} timed; "
          f"medians of {args.repeats} alternating run(s)")  # fmt: skip
    print(f"{'step':18s}{'s/frame':>10s}{'gain':>8s}{'vs readable':>13s}")
    first = previous = None
    for step, name in enumerate(STEPS):
        median = statistics.median(times[step])
        gain = "" if previous is None else f"x{previous / median:.2f}"
        total = "" if first is None else f"x{first / median:.2f}"
        print(f"{name:18s}{median:10.3f}{gain:>8s}{total:>13s}")
        first = median if first is None else first
        previous = median


if __name__ == "__main__":
    main()
