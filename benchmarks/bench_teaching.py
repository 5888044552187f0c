"""J&F and the teaching signals of a model on DAVIS-layout sequences (``hmmnlab.teaching``).

    python benchmarks/bench_teaching.py [--weights demo] [--davis ROOT] [--sequences a,b,c]
        [--topk-frames 10,30] [--variant NAME] [--read KEY=VALUE ...] [--max-frames N]

Defaults: the bundled ``demo`` weights on the DAVIS 2016 training sequences held out from its
training (``bear,car-turn,hockey`` of ``../shared/data/davis2016-train-240p``), full length.
Prints per sequence and overall: J&F, top-k precision beside its chance level, flow hits, and the
share of top-k cells on the border ring beside the ring's share of the grid.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hmmnlab.config import ReadConfig
from hmmnlab.model.reads import read_variant
from hmmnlab.options import parse_fields
from hmmnlab.teaching import TeachingScores, score_video
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
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.weights)
    variant = args.variant or model.checkpoint_meta.get("trained_read", "hmmn")
    read = read_variant(variant, **parse_fields(args.read, ReadConfig, option="--read"))
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
        f"weights {args.weights} (read {variant}{' ' + changed if changed else ''}), {args.davis}"
    )
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
