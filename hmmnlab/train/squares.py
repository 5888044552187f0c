"""Clips of moving squares over noise: the data of the training benchmarks (``bench_train``,
``gpu_check``), where only the sizes matter, not what is learnt."""

from __future__ import annotations

import numpy as np
import torch

from hmmnlab.train.clips import Clip


def square_clips(
    n: int, *, frames: int, crop: int, objects: int, seed: int = 0, prefix: str = "squares"
) -> list[Clip]:
    """``n`` clips of ``frames`` random frames 3 x ``crop`` x ``crop``, each with ``objects``
    squares of side crop/4 (labels 1..objects) moving 2 pixels down and 1 right per frame."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        labels = torch.zeros(frames, crop, crop, dtype=torch.long)
        for k in range(1, objects + 1):
            y, x = rng.integers(0, crop // 2, size=2)
            for t in range(frames):
                labels[t, y + 2 * t : y + 2 * t + crop // 4, x + t : x + t + crop // 4] = k
        pixels = torch.from_numpy(rng.random((frames, 3, crop, crop), dtype=np.float32))
        clips.append(Clip(pixels, labels, objects, f"{prefix}-{i}"))
    return clips
