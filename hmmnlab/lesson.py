"""Loading the demo model and a sample video in one call, for the notebooks.

``load_demo("twins")`` returns the demo model (the registered ``demo`` weights), the first frames of
a bundled sample sequence (``data_samples``, DAVIS 2017 layout) and its first frame's labels. Paths
are resolved from the package's checkout, so notebooks work from any working directory; the
environment variable ``HMMNLAB_DEMO_WEIGHTS`` points to another checkpoint (e.g. a fresh training run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmmnlab.data.davis import DavisDataset, DavisSequence
from hmmnlab.model import HMMN

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


@dataclass
class Demo:
    """A model and a short video ready for :func:`hmmnlab.trace.run_with_cache`."""

    model: HMMN
    sequence: DavisSequence
    frames: list[np.ndarray]  # the first frames, H x W x 3 uint8
    first_labels: np.ndarray  # H x W labels of frame 0


def demo_weights(weights: str | Path | None = None) -> Path:
    """``weights`` (a registered name such as ``"demo-stm"`` or a path), else
    ``$HMMNLAB_DEMO_WEIGHTS``, else the registered ``demo`` weights; the file must exist."""
    from hmmnlab.weights import resolve_weights

    path = resolve_weights(weights or os.environ.get("HMMNLAB_DEMO_WEIGHTS") or "demo")
    if not path.is_file():
        raise FileNotFoundError(
            f"demo weights not found: {path} (train them with `hmmnlab train`, or set "
            "HMMNLAB_DEMO_WEIGHTS to a checkpoint)"
        )
    return path


def sample_dataset(root: str | Path | None = None) -> DavisDataset:
    """The bundled samples (or the DAVIS 2017 val split at ``root``)."""
    return DavisDataset(root or SAMPLES, year=2017, split="val")


def load_demo(
    sequence: str = "twins",
    *,
    root: str | Path | None = None,
    weights: str | Path | None = None,
    num_frames: int = 10,
    device: str = "cpu",
) -> Demo:
    """The demo model and the first ``num_frames`` frames of ``sequence`` (see the module doc)."""
    from hmmnlab.weights import load_model

    dataset = sample_dataset(root)
    if sequence not in dataset.sequences:
        raise ValueError(f"unknown sequence {sequence!r}; {dataset.root} has {dataset.sequences}")
    seq = dataset[sequence]
    count = min(num_frames, len(seq))
    if count < 2:
        raise ValueError(
            f"num_frames must be >= 2 (frame 0 and one frame to read), got {num_frames}"
        )
    model = load_model(demo_weights(weights), device=device)
    return Demo(model, seq, [seq[i] for i in range(count)], seq.first_mask())


def follow_query(
    sequence: DavisSequence, frame: int, object_id: int, predicted: np.ndarray
) -> tuple[tuple[int, int], str]:
    """The r4 query cell to follow at ``frame``: under the centre of object ``object_id`` in the
    *true* mask when the sequence annotates that frame and the object is in it, else in the
    ``predicted`` label map; returns (cell, "true mask" or "predicted mask") so that the notebook can
    say which."""
    from hmmnlab.viz import query_cell_on_object

    stem = sequence.frame_names[frame]
    if stem in sequence.mask_names:
        truth = sequence.mask(sequence.mask_names.index(stem))
        if (truth == object_id).any():
            return query_cell_on_object(truth, object_id), "true mask"
    return query_cell_on_object(np.asarray(predicted), object_id), "predicted mask"
