"""J&F and the teaching signals of a model on DAVIS-layout sequences (``hmmnlab.inside.teaching``).

    python benchmarks/bench_teaching.py [--weights demo] [--davis ROOT] [--sequences a,b,c]
        [--topk-frames 10,30] [--variant NAME] [--read KEY=VALUE ...] [--max-frames N]

Defaults: the bundled ``demo`` weights on the DAVIS 2016 training sequences held out from its
training (``bear,car-turn,hockey`` of ``../shared/data/davis2016-train-240p``), full length.
Prints per sequence and overall: J&F, top-k precision beside its chance level, flow hits, and the
share of top-k cells on the border ring beside the ring's share of the grid.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hmmnlab.config import ReadConfig, parse_fields
from hmmnlab.inside.teaching import TeachingScores, score_video
from hmmnlab.model.reads import read_variant
from hmmnlab.train.clips import open_davis
from hmmnlab.weights import load_model

DEFAULT_DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-train-240p"
HELD_OUT = "bear,car-turn,hockey"


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="demo", help="registered name or checkpoint path")
    parser.add_argument("--davis", default=str(DEFAULT_DAVIS), help="a DAVIS-layout folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--sequences", default=HELD_OUT, help="comma-separated; 'all' for all")
    parser.add_argument("--topk-frames", default="10,30")
    parser.add_argument("--variant", default=None, help="r4 read (default: the trained one)")
    parser.add_argument(
        "--read", nargs="*", default=[], metavar="KEY=VALUE", help="read fields, e.g. sigma=1"
    )
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--lookalikes",
        default=None,
        metavar="DIR",
        help="instead: J&F per grade and the saturation signal on a look-alike suite "
        "(hmmnlab samples --lookalikes DIR) for demo, demo-stm and both same-weights swaps",
    )
    parser.add_argument("--stm-weights", default="demo-stm", help="with --lookalikes")
    parser.add_argument(
        "--no-swaps",
        action="store_true",
        help="with --lookalikes: each model with its own read only",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.lookalikes:
        return lookalike_table(args)
    model = load_model(args.weights)
    base = model.default_read  # the read the weights carry (manifest or checkpoint)
    if args.variant and args.variant != base.variant:
        base = read_variant(args.variant)
    read = dataclasses.replace(base, **parse_fields(args.read, ReadConfig, option="--read"))
    variant = read.variant
    videos = {v.name: v for v in open_davis(args.davis, split=args.split)}
    names = list(videos) if args.sequences == "all" else args.sequences.split(",")
    missing = [n for n in names if n not in videos]
    if missing:
        raise SystemExit(f"{args.davis} has no sequences {missing}; it has {sorted(videos)}")
    topk_frames = [int(f) for f in args.topk_frames.split(",")]
    rows, total = [], TeachingScores()
    for name in names:
        video = videos[name]
        n = len(video) if args.max_frames is None else min(len(video), args.max_frames)
        frames = [np.array(video.frame(i)) for i in range(n)]
        labels = np.stack([video.labels(i) for i in range(n)])
        start = time.perf_counter()
        jf, scores = score_video(model, frames, labels, topk_frames=topk_frames, read=read)
        seconds = (time.perf_counter() - start) / max(n - 1, 1)
        total.add(scores)
        rows.append({"sequence": name, "frames": n, **jf, **scores.summary(), "s/frame": seconds})
    table = pd.DataFrame(rows)
    overall = {"sequence": "mean", "frames": int(table.frames.sum())}
    overall.update({m: table[m].mean() for m in ("J", "F", "JF")})
    overall.update(total.summary())  # pooled over all query cells
    overall["s/frame"] = table["s/frame"].mean()
    table = pd.concat([table, pd.DataFrame([overall])], ignore_index=True)
    changed = " ".join(args.read)
    print(
        f"weights {args.weights} (read {variant}, sigma {read.sigma}, temperature "
        f"{read.temperature}{'; ' + changed if changed else ''}), {args.davis}"
    )
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(table.to_string(index=False))
    return table


def lookalike_table(args) -> pd.DataFrame:
    """J&F per grade, and the saturation signal (hmmnlab.inside.teaching.saturation, frames 1-3), of
    each model with its own read and with the other model's variant (same weights, read swapped)."""
    from hmmnlab.data.lookalikes import read_grades
    from hmmnlab.inside.teaching import lookalike_scores, saturation

    grades = read_grades(args.lookalikes)
    videos = {v.name: v for v in open_davis(args.lookalikes, split="val")}
    models = {
        args.weights: load_model(args.weights),
        args.stm_weights: load_model(args.stm_weights),
    }
    own = {name: m.default_read for name, m in models.items()}
    runs = [(args.weights, own[args.weights]), (args.stm_weights, own[args.stm_weights])]
    runs += [] if args.no_swaps else [
        (args.weights, dataclasses.replace(own[args.weights], variant=own[args.stm_weights].variant)),
        (args.stm_weights, dataclasses.replace(own[args.stm_weights], variant=own[args.weights].variant)),
    ]  # fmt: skip
    if args.read:  # e.g. --read temperature=1 sigma=3: the same change to every run's read
        extra = parse_fields(args.read, ReadConfig, option="--read")
        runs = [(w, dataclasses.replace(r, **extra)) for w, r in runs]
    apart = [name for name, grade in grades.items() if grade in ("apart", "pass")]
    rows = []
    for weights, read in runs:
        model = models[weights]
        label = f"{weights} / {read.variant}"
        jf = lookalike_scores(args.lookalikes, {label: (model, read, None)}).loc[label]
        sat = []
        for name in apart:  # the saturation signal where the objects never overlap
            video = videos[name]
            frames = [np.array(video.frame(i)) for i in range(len(video))]
            labels = np.stack([video.labels(i) for i in range(len(video))])
            sat.append(saturation(model, frames, labels, at=(1, 2, 3), read=read))
        row = {"weights": weights, "read": read.variant, "sigma": read.sigma,
               "temperature": read.temperature, **jf.to_dict()}  # fmt: skip
        row["same_share"] = float(np.mean([x.same_share for x in sat])) if sat else float("nan")
        row["lookalike_share"] = (
            float(np.mean([x.lookalike_share for x in sat])) if sat else float("nan")
        )
        row["logit_gap"] = float(np.median([x.logit_gap for x in sat])) if sat else float("nan")
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    print(f"look-alike suite {args.lookalikes}: {len(videos)} videos")
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
