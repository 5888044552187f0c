"""The demo models' targets, measured in one run (issue: a teaching model that sees real video).

    python benchmarks/bench_demo_models.py [--demo demo] [--demo-stm demo-stm]
        [--baseline OLD.pth] [--davis ROOT] [--out results.json]

* held-out DAVIS 2016 training sequences (``bear,car-turn,hockey``, never trained on): J&F and the
  teaching signals (:mod:`hmmnlab.inside.teaching`) of ``demo`` (and of ``demo-stm``, with its
  read);
* held-out synthetic videos (``random_specs(10, seed=1, prefix="val")``, full length): J&F;
* twins: the ``twins`` sample and three held-out twins videos (seeds 1303, 2303, 3303): ``demo``
  with the hmmn read against ``demo-stm`` with the stm read;
* speed at 240p with 2 objects (the ``twins`` sample, 30 frames): s/frame of ``demo`` and, with
  ``--baseline``, of another checkpoint, and with ``--baseline-read``, of ``demo`` with another
  read (fields over the registered ``hmmn`` read, e.g. ``sigma=1.5 temperature=10``), timed
  alternately in this run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hmmnlab.config import ReadConfig, parse_fields
from hmmnlab.data.synthetic import VideoSpec, generate_video, random_specs
from hmmnlab.inference import propagate
from hmmnlab.inside.lesson import sample_dataset
from hmmnlab.model.reads import read_variant
from hmmnlab.train.clips import ArrayVideo
from hmmnlab.train.loop import evaluate
from hmmnlab.weights import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_teaching import DEFAULT_DAVIS, HELD_OUT  # noqa: E402
from bench_teaching import main as teaching  # noqa: E402

TWIN_SEEDS = (1303, 2303, 3303)


class SampleVideo:
    """A bundled sample sequence as a training-style Video (frames and labels by index)."""

    def __init__(self, sequence) -> None:
        self.sequence, self.name = sequence, sequence.name

    def __len__(self) -> int:
        return len(self.sequence)

    def frame(self, i: int) -> np.ndarray:
        return self.sequence.frame(i)

    def labels(self, i: int) -> np.ndarray:
        return self.sequence.mask(i)


def twins_videos() -> list:
    videos = [SampleVideo(sample_dataset()["twins"])]
    for seed in TWIN_SEEDS:
        spec = VideoSpec(f"twins-{seed}", seed=seed, num_frames=30, num_objects=2, twins=True)
        videos.append(ArrayVideo(spec.name, *generate_video(spec)))
    return videos


def seconds_per_frame(model, frames, labels, read) -> float:
    start = time.perf_counter()
    for _ in propagate(model, frames, labels, read=read):
        pass
    return (time.perf_counter() - start) / (len(frames) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="demo")
    parser.add_argument("--demo-stm", default="demo-stm")
    parser.add_argument("--baseline", default=None, help="a checkpoint to time against demo")
    parser.add_argument(
        "--baseline-read", nargs="*", default=None, metavar="KEY=VALUE",
        help="time demo with this read (fields over the registered hmmn read) against its own",
    )  # fmt: skip
    parser.add_argument("--davis", default=str(DEFAULT_DAVIS))
    parser.add_argument("--sequences", default=HELD_OUT)
    parser.add_argument("--synthetic", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", default="davis,synthetic,twins,speed", help="what to measure")
    parser.add_argument("--repeats", type=int, default=3, help="alternating speed runs")
    parser.add_argument("--out", default=None, help="write the numbers to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {}
    parts = set(args.parts.split(","))
    for name, weights in (("demo", args.demo), ("demo-stm", args.demo_stm)):
        if "davis" not in parts:
            break
        # no --variant: each model runs the read its weights carry (manifest or checkpoint)
        table = teaching(["--weights", weights, "--davis", args.davis, "--sequences",
                          args.sequences, "--threads", str(args.threads)])  # fmt: skip
        mean = table.iloc[-1]
        results[f"{name}/davis_heldout"] = {k: float(mean[k]) for k in (
            "JF", "J", "F", "topk_precision", "topk_chance", "flow_hits", "border_topk_share",
            "border_grid_share")}  # fmt: skip
        results[f"{name}/davis_heldout"]["per_sequence"] = dict(
            zip(table.sequence[:-1], table.JF[:-1].round(4), strict=True)
        )

    demo, demo_stm = load_model(args.demo), load_model(args.demo_stm)
    hmmn, stm = demo.default_read, demo_stm.default_read  # each model's own read
    specs = random_specs(args.synthetic, 1, prefix="val") if "synthetic" in parts else []
    synthetic = [ArrayVideo(s.name, *generate_video(s)) for s in specs]
    for name, model, read in (("demo", demo, hmmn), ("demo-stm", demo_stm, stm)):
        if not synthetic:
            break
        results[f"{name}/synthetic_heldout"] = evaluate(
            model, synthetic, device=torch.device("cpu"), read=read
        )
        print(name, "synthetic", results[f"{name}/synthetic_heldout"])

    rows = []
    for video in twins_videos() if "twins" in parts else []:
        row = {"video": video.name}
        for name, model, read in (("demo (hmmn)", demo, hmmn), ("demo-stm (stm)", demo_stm, stm)):
            row[name] = evaluate(model, [video], device=torch.device("cpu"), read=read)["JF"]
        rows.append(row)
    twins = pd.DataFrame(rows)
    print(twins.to_string(index=False))
    results["twins"] = (
        {}
        if twins.empty
        else {
            "per_video": twins.set_index("video").round(4).to_dict(orient="index"),
            "demo_hmmn_mean": float(twins["demo (hmmn)"].mean()),
            "demo_stm_mean": float(twins["demo-stm (stm)"].mean()),
        }
    )

    sample = sample_dataset()["twins"]
    frames = [sample.frame(i) for i in range(len(sample))]
    labels = sample.first_mask()
    models = {"demo": (demo, hmmn)}
    if args.baseline:
        models["baseline"] = (load_model(args.baseline), hmmn)
    if args.baseline_read is not None:
        fields = parse_fields(args.baseline_read, ReadConfig, option="--baseline-read")
        models["demo, baseline read"] = (demo, read_variant("hmmn", **fields))
    for model, read in models.values():
        seconds_per_frame(model, frames[:3], labels, read)  # warm-up
    times = {name: [] for name in models}
    for _ in range(args.repeats if "speed" in parts else 0):
        for name, (model, read) in models.items():  # alternating
            times[name].append(seconds_per_frame(model, frames, labels, read))
    results["speed_240p_2_objects_s_per_frame"] = {
        n: float(np.median(t)) for n, t in times.items() if t
    }
    print("s/frame at 240p, 2 objects:", results["speed_240p_2_objects_s_per_frame"])
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
