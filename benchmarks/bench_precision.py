"""float32 against bfloat16 on this CPU, side by side in one run (``--dtype bfloat16``).

    python benchmarks/bench_precision.py [--threads 2] [--frames 6] [--repeats 2] [--parts
    240p,480p]

For each case, the three modes are timed alternately, ``--repeats`` times, on the same frames:

* ``float32 readable``: the model as it loads (``load_model(weights)``);
* ``float32 fast``: the fast inference path the commands run (``fast=True``: BatchNorms folded,
  channels-last);
* ``bfloat16``: the fast path under ``propagate(..., dtype="bfloat16")`` (convolutions in
  bfloat16, the memory read in float32, :mod:`hmmnlab.precision`).

Cases: ``240p``: the ``demo`` weights on the ``twins`` sample (240 x 427, 2 objects); ``480p``: the
``hmmn`` preset (two ResNet-50 encoders; random weights of the recipe, the speed does not depend on
them) on the ``twins`` sample resized to 480 x 854. Each mode's s/frame (median over repeats) is
printed with the work per frame (``torch.utils.flop_counter`` on one run) as a fraction of this
machine's ``torch.mm`` peak for its dtype, measured in this run, and the share of label pixels
that bfloat16 changes. The CPU model and its bfloat16 flags come first.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from hmmnlab import precision
from hmmnlab.config import preset
from hmmnlab.inference import propagate
from hmmnlab.inside.lesson import sample_dataset
from hmmnlab.model import HMMN
from hmmnlab.model.fast import fast_inference
from hmmnlab.weights import load_model

MODES = ("float32 readable", "float32 fast", "bfloat16")


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "").split()
    shown = [f for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return " ".join(shown) or "none of avx512f, avx512_bf16, amx_bf16"


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of ``torch.mm`` on n x n matrices of ``dtype`` (best of ``repeats``)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def case_240p():
    sequence = sample_dataset()["twins"]
    frames = [sequence.frame(i) for i in range(len(sequence))]
    return "demo", (lambda: load_model("demo")), frames, sequence.first_mask()


def case_480p():
    sequence = sample_dataset()["twins"]
    frames = [cv2.resize(sequence.frame(i), (854, 480)) for i in range(len(sequence))]
    labels = cv2.resize(sequence.first_mask(), (854, 480), interpolation=cv2.INTER_NEAREST)

    def build():
        torch.manual_seed(0)
        return HMMN(preset("hmmn")).eval()

    return "hmmn preset", build, frames, labels


def run(model, frames, labels, dtype) -> tuple[float, list[np.ndarray]]:
    start = time.perf_counter()
    out = [r.labels.numpy() for r in propagate(model, frames, labels, dtype=dtype)]
    return (time.perf_counter() - start) / (len(frames) - 1), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=6, help="frames per run (the first 6)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parts", default="240p,480p")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"CPU: {precision.cpu_model()}; flags: {cpu_flags()}; native bfloat16: {precision.native_bf16()}"
    )
    peak = {"float32": matmul_peak(torch.float32), "bfloat16": matmul_peak(torch.bfloat16)}
    print(f"torch.mm peak, {args.threads} thread(s): float32 {peak['float32']:.0f} GFLOP/s, "
          f"bfloat16 {peak['bfloat16']:.0f} GFLOP/s")  # fmt: skip
    cases = {"240p": case_240p, "480p": case_480p}
    rows = []
    for part in args.parts.split(","):
        weights, build, frames, labels = cases[part]()
        frames = frames[: args.frames]
        readable, fast = build(), fast_inference(build())
        modes = {
            "float32 readable": (readable, "float32"),
            "float32 fast": (fast, "float32"),
            "bfloat16": (fast, "bfloat16"),
        }
        with FlopCounterMode(display=False) as counter:
            run(readable, frames[:3], labels, "float32")
        gflop = counter.get_total_flops() / 2 / 1e9  # per frame: 2 frames read memory
        for model, dtype in modes.values():
            run(model, frames[:2], labels, dtype)  # warm-up
        times = {mode: [] for mode in MODES}
        labels_of = {}
        for _ in range(args.repeats):
            for mode, (model, dtype) in modes.items():  # alternating
                seconds, out = run(model, frames, labels, dtype)
                times[mode].append(seconds)
                labels_of[mode] = out
        reference = labels_of["float32 fast"]
        for mode in MODES:
            seconds = statistics.median(times[mode])
            changed = np.mean([(a != b).mean() for a, b in zip(labels_of[mode], reference,
                                                                strict=True)])  # fmt: skip
            kind = "bfloat16" if mode == "bfloat16" else "float32"
            rows.append({
                "case": f"{part} {weights}, 2 objects", "mode": mode, "s/frame": seconds,
                "x float32 fast": statistics.median(times["float32 fast"]) / seconds,
                "GFLOP/frame": gflop, "share of mm peak": gflop / seconds / peak[kind],
                "label pixels changed": changed,
            })  # fmt: skip
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
