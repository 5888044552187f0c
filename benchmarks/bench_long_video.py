"""Long videos: what the memory policy costs and what it keeps, measured in one run.

    python benchmarks/bench_long_video.py [--parts tradeoff,rss] [--weights demo]
        [--frames 300] [--height 240] [--width 427] [--policies default,cap10,every20]
        [--rss-frames 1000] [--rss-height 480] [--rss-width 854] [--rss-uncapped 300]

``tradeoff``: one synthetic video (``--frames`` long, 2 objects, the same spec for every policy) is
segmented under each memory policy, each in its own process. It prints, per block of 50 frames,
the J&F of the block and its seconds per frame, and each policy's peak RSS:

* ``default``: every 5th frame is kept, no cap (the authors' inference; the memory grows);
* ``cap10``: ``--max-memory-frames 10`` (frame 0, the 8 newest kept frames and frame t-1);
* ``every20``: ``--mem-every 20``, no cap (4x fewer frames, still growing).

``rss``: ``hmmnlab segment`` itself, as a user runs it, on a ``--rss-frames``-frame video at
``--rss-height`` x ``--rss-width`` (a 100-frame synthetic clip played forwards and backwards) with
``--max-memory-frames 10``, and on its first ``--rss-uncapped`` frames without a cap. The
process's resident memory is sampled while it runs and printed against the number of frames
written.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

POLICIES = {
    "default": {},
    "cap10": {"max_memory_frames": 10},
    "every20": {"mem_every": 20},
}
BLOCK = 50  # frames per row of the trade-off table


def long_spec(frames: int, height: int, width: int):
    from hmmnlab.data.synthetic import VideoSpec

    return VideoSpec("long", seed=2024, num_frames=frames, height=height, width=width,
                     num_objects=2, occlusion=True, pan=0.3, max_rotation=180.0)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# tradeoff: one process per policy


def tradeoff_child(args) -> None:
    """Segment the long video under one policy; print one JSON line with per-frame J, F, seconds."""
    import torch

    from hmmnlab.data.synthetic import generate_video
    from hmmnlab.evaluation.metrics import evaluate_semisupervised
    from hmmnlab.inference import propagate
    from hmmnlab.model.reads import read_variant
    from hmmnlab.weights import load_model

    torch.set_num_threads(args.threads)
    frames, gt = generate_video(long_spec(args.frames, args.height, args.width))
    model = load_model(args.weights)
    read = read_variant(model.checkpoint_meta.get("trained_read", "hmmn"), **POLICIES[args.child])
    pred, seconds = np.zeros_like(gt), []
    start = time.perf_counter()
    for result in propagate(model, list(frames), gt[0], read=read):
        pred[result.index] = result.labels.cpu().numpy()
        now = time.perf_counter()
        seconds.append(now - start)
        start = now
    scores = evaluate_semisupervised(gt, pred, name="long")  # per object x frame
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    nan = [float("nan")]  # frame 0 is given: index i of j and f is frame i (1..T-2 scored)
    print(json.dumps({"j": nan + np.nanmean(scores.j, axis=0).tolist(),
                      "f": nan + np.nanmean(scores.f, axis=0).tolist(),
                      "seconds": seconds, "peak_rss_mib": rss}))  # fmt: skip


def tradeoff(args) -> pd.DataFrame:
    runs = {}
    for policy in args.policies.split(","):
        if policy not in POLICIES:
            raise SystemExit(f"unknown policy {policy!r}; known: {sorted(POLICIES)}")
        command = [sys.executable, __file__, "--child", policy, "--weights", args.weights,
                   "--frames", str(args.frames), "--height", str(args.height),
                   "--width", str(args.width), "--threads", str(args.threads)]  # fmt: skip
        print(f"segmenting {args.frames} frames under {policy} ...", flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"policy {policy} failed:\n{done.stderr}")
        runs[policy] = json.loads(done.stdout.strip().splitlines()[-1])
    rows = []
    for start in range(1, args.frames - 1, BLOCK):  # frame 0 is given; the last frame is unscored
        stop = min(start + BLOCK, args.frames - 1)
        row = {"frames": f"{start}-{stop - 1}"}
        for policy, run in runs.items():
            jf = (np.nanmean(run["j"][start:stop]) + np.nanmean(run["f"][start:stop])) / 2
            row[f"{policy} J&F"] = jf
            row[f"{policy} s/frame"] = np.mean(run["seconds"][start:stop])
        rows.append(row)
    table = pd.DataFrame(rows)
    summary = {"frames": "all"}
    for policy, run in runs.items():
        summary[f"{policy} J&F"] = (np.nanmean(run["j"][1:]) + np.nanmean(run["f"][1:])) / 2
        summary[f"{policy} s/frame"] = np.mean(run["seconds"][1:])
    table = pd.concat([table, pd.DataFrame([summary])], ignore_index=True)
    print(f"\n{args.frames} frames at {args.height} x {args.width}, 2 objects, weights "
          f"{args.weights}, {args.threads} thread(s); J&F and s/frame per block of {BLOCK} frames")  # fmt: skip
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(table.to_string(index=False))
    print("peak RSS MiB: " + ", ".join(f"{p} {r['peak_rss_mib']:.0f}" for p, r in runs.items()))
    return table


# --------------------------------------------------------------------------------------------------
# rss: hmmnlab segment on a long video, resident memory against frames written


def write_long_video(folder: Path, frames: int, height: int, width: int) -> Path:
    """``frames`` JPEGs (a 100-frame clip played forwards, backwards, ...) and the first mask."""
    from PIL import Image

    from hmmnlab.data.palette import write_label_png
    from hmmnlab.data.synthetic import generate_video

    clip, labels = generate_video(long_spec(min(frames, 100), height, width))
    order = np.concatenate([np.arange(len(clip)), np.arange(len(clip) - 2, 0, -1)])  # ping-pong
    images = folder / "frames"
    images.mkdir(parents=True)
    for t in range(frames):
        Image.fromarray(clip[order[t % len(order)]]).save(images / f"{t:05d}.jpg", quality=90)
    write_label_png(folder / "first.png", labels[0])
    return images


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def segment_rss(frames_dir: Path, first: Path, out: Path, weights: str, threads: int,
                cap: int | None, every: int) -> list[tuple[int, float]]:  # fmt: skip
    """Run ``hmmnlab segment`` and sample (frames written, RSS MiB) each time ``every`` more frames
    are written."""
    command = [sys.executable, "-m", "hmmnlab", "segment", "--weights", weights,
               "--frames", str(frames_dir), "--first-mask", str(first), "--out", str(out)]  # fmt: skip
    if cap is not None:
        command += ["--max-memory-frames", str(cap)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    samples, peak, next_mark = [], 0.0, every
    log = out.parent / f"{out.name}.log"  # a file, not a pipe: the progress bar would fill a pipe
    with (
        log.open("w") as stderr,
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr) as p,
    ):
        while p.poll() is None:
            try:
                rss = rss_mib(p.pid)
            except OSError:
                break
            peak = max(peak, rss)
            written = len(list(out.glob("*.png"))) if out.exists() else 0
            if written >= next_mark:
                samples.append((written, peak))
                print(f"  {written} frames written: peak RSS {peak:.0f} MiB", flush=True)
                next_mark = written - written % every + every
            time.sleep(0.5)
    err = log.read_text()
    if p.returncode != 0:
        raise SystemExit(f"hmmnlab segment failed:\n{err[-2000:]}")
    samples.append((len(list(out.glob("*.png"))), peak))
    return samples


def rss(args) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"writing a {args.rss_frames}-frame {args.rss_height} x {args.rss_width} video ...",
              flush=True)  # fmt: skip
        frames_dir = write_long_video(
            tmp / "video", args.rss_frames, args.rss_height, args.rss_width
        )
        first = tmp / "video" / "first.png"
        short = tmp / "short"
        short.mkdir()
        for path in sorted(frames_dir.glob("*.jpg"))[: args.rss_uncapped]:
            (short / path.name).symlink_to(path)
        step = max(args.rss_frames // 10, 1)
        print("hmmnlab segment --max-memory-frames 10 ...", flush=True)
        capped = segment_rss(
            frames_dir, first, tmp / "capped", args.weights, args.threads, 10, step
        )
        print("hmmnlab segment, no cap ...", flush=True)
        uncapped = segment_rss(short, first, tmp / "uncapped", args.weights, args.threads, None,
                               step)  # fmt: skip
    table = pd.merge(
        pd.DataFrame(capped, columns=["frames written", "cap 10: peak RSS MiB"]),
        pd.DataFrame(uncapped, columns=["frames written", "no cap: peak RSS MiB"]),
        on="frames written",
        how="outer",
    ).drop_duplicates("frames written", keep="last")
    print(f"\nhmmnlab segment --weights {args.weights}, {args.rss_height} x {args.rss_width}, "
          f"2 objects, {args.threads} thread(s): peak resident memory so far against frames written")  # fmt: skip
    print(table.to_string(index=False, na_rep="", float_format=lambda x: f"{x:.0f}"))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="tradeoff,rss")
    parser.add_argument("--weights", default="demo")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=427)
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--rss-frames", type=int, default=1000)
    parser.add_argument("--rss-height", type=int, default=480)
    parser.add_argument("--rss-width", type=int, default=854)
    parser.add_argument("--rss-uncapped", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=sorted(POLICIES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tradeoff_child(args)
        return
    parts = set(args.parts.split(","))
    if "tradeoff" in parts:
        tradeoff(args)
    if "rss" in parts:
        rss(args)


if __name__ == "__main__":
    main()
