"""Redraw time of the top-k inspector (notebook 02) once the traces are cached.

Builds the inspector on a bundled sample (DAVIS 240p, the demo weights), traces every frame once,
then times, alternating and repeated, what a student does: a click on the query frame (a new query
cell), a frame change, an object change (both snap the query cell onto the object) and a change of
the affinity view (after kernel / before kernel / log scale). Prints the median seconds of each, from the call to the
new figures being set on the widgets (PNG bytes ready to send; the browser's own part is not in it).
The target of issue 22 is 0.5 s or less on a 2-core CPU.

    python benchmarks/bench_inspector.py [--sequence twins] [--frames 9] [--repeats 7] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import numpy as np
import torch

from hmmnlab.precision import cpu_model
from hmmnlab.widgets import topk_inspector


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence", default="twins")
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print where a click's time goes")
    args = parser.parse_args()
    inspector = topk_inspector(
        sequence=args.sequence, frame=args.frames - 1, num_frames=args.frames
    )
    for t in range(1, args.frames):  # every trace cached (the build traced them on the way)
        inspector.trace(args.sequence, t)
    h, w = inspector.y.max + 1, inspector.x.max + 1
    objects = [value for _, value in inspector.obj.options]
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"click": [], "frame": [], "object": [], "view": []}
    views = list(inspector.affinity_view.options)
    for i in range(args.repeats + 1):  # the first round warms up and is not counted
        y, x = int(rng.integers(h)), int(rng.integers(w))
        took = {
            "click": timed(lambda y=y, x=x: inspector.select(y, x)),
            "frame": timed(lambda i=i: setattr(inspector.frame, "value", args.frames - 1 - i % 2)),
            "object": timed(lambda i=i: setattr(inspector.obj, "value", objects[i % len(objects)])),
            "view": timed(lambda i=i: setattr(inspector.affinity_view, "value", views[i % 3])),
        }
        if i:
            for name, value in took.items():
                times[name].append(value)
    height, width = inspector.video_data(args.sequence).frames[0].shape[:2]
    print(
        f"top-k inspector, {args.sequence} at {height} x {width} ({len(objects)} objects, r4 grid "
        f"{h} x {w}), {cpu_model()}, {torch.get_num_threads()} "
        f"threads, median of {args.repeats}"
    )
    for name, values in times.items():
        print(f"  {name:7s} {statistics.median(values):.3f} s  (min {min(values):.3f}, "
              f"max {max(values):.3f})")  # fmt: skip
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(inspector.select, h // 2, w // 2)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
