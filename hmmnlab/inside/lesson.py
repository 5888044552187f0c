"""Loading the demo model and a sample video in one call, for the notebooks.

``load_demo("twins")`` returns the demo model (the registered ``demo`` weights), the first frames of
a bundled sample sequence (``data_samples``, DAVIS 2017 layout) and its first frame's labels. Paths
are resolved from the package's checkout, so notebooks work from any working directory; the
environment variable ``HMMNLAB_DEMO_WEIGHTS`` points to another checkpoint (e.g. a fresh training
run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hmmnlab.data.davis import DavisDataset, DavisSequence
from hmmnlab.model import HMMN
from hmmnlab.weights import demo_weights  # noqa: F401  (its home; notebooks import it from here)

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"  # the repository's


@dataclass
class Demo:
    """A model and a short video ready for :func:`hmmnlab.inside.trace.run_with_cache`."""

    model: HMMN
    sequence: DavisSequence
    frames: list[np.ndarray]  # the first frames, H x W x 3 uint8
    first_labels: np.ndarray  # H x W labels of frame 0


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
    ``predicted`` label map; returns (cell, "true mask" or "predicted mask") so that the notebook
    can say which."""
    from hmmnlab.viz import query_cell_on_object

    stem = sequence.frame_names[frame]
    if stem in sequence.mask_names:
        truth = sequence.mask(sequence.mask_names.index(stem))
        if (truth == object_id).any():
            return query_cell_on_object(truth, object_id), "true mask"
    return query_cell_on_object(np.asarray(predicted), object_id), "predicted mask"


# ----------------------------------------------------------------------------------------------------
# What a picture shows, measured: the notebooks assert the sentences they say about these numbers.


def overlap_table(truth: np.ndarray, predicted: np.ndarray):
    """Which predicted label covers each true object: a DataFrame with one row per true object
    ("true 1", ...) and one column per predicted label ("predicted 0" = background, ...), each the
    share of the object's pixels given that label. A merge shows as one column holding most of two
    rows."""
    import pandas as pd

    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise ValueError(f"the truth is {truth.shape} but the prediction is {predicted.shape}")
    objects = [int(k) for k in np.unique(truth) if k not in (0, 255)]  # 255: void
    labels = sorted({0, *(int(p) for p in np.unique(predicted))})
    rows = {
        f"true {k}": [
            float(((truth == k) & (predicted == p)).sum() / (truth == k).sum()) for p in labels
        ]
        for k in objects
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=[f"predicted {p}" for p in labels])


def object_cells(labels: np.ndarray, object_id: int, *, stride: int = 16) -> np.ndarray:
    """An h x w boolean map of the cells of the padded grid at ``stride`` (16: r4, 8: r3) more than
    half covered by object ``object_id`` (0: background) of an H x W label map."""
    from hmmnlab import ops

    labels = np.asarray(labels)
    left, right, top, bottom = ops.padding_for(*labels.shape)
    padded = np.pad(labels == object_id, ((top, bottom), (left, right)))  # H' x W', multiples of 16
    h, w = padded.shape[0] // stride, padded.shape[1] // stride
    return padded.reshape(h, stride, w, stride).mean(axis=(1, 3)) > 0.5


def key_similarity(key, labels: np.ndarray):
    """Cosine similarity of the mean key over each object's cells and over the background's,
    pairwise: a symmetric DataFrame indexed "background", "object 1", ... ``key``: C x h x w, or
    1 x C x h x w (the trace's ``query_features.k4``; for ``memory_features.*`` pass one object's
    row); ``labels``: the H x W label map of the same frame. Look-alike objects have similar
    keys."""
    import pandas as pd

    from hmmnlab import ops

    key = np.asarray(key, dtype=np.float64)
    key = key[0] if key.ndim == 4 else key  # C x h x w
    labels = np.asarray(labels)
    padding = ops.padding_for(*labels.shape)
    stride = (labels.shape[0] + padding.top + padding.bottom) // key.shape[1]
    names, means = [], []
    for object_id in (int(k) for k in np.unique(labels) if k != 255):
        cells = object_cells(labels, object_id, stride=stride)
        if cells.shape != key.shape[1:]:
            raise ValueError(f"the key's grid is {key.shape[1:]} but the labels give {cells.shape}")
        if cells.any():
            names.append("background" if object_id == 0 else f"object {object_id}")
            means.append(key[:, cells].mean(axis=1))
    means = np.stack(means)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return pd.DataFrame(means @ means.T, index=names, columns=names)


def border_contrast(feature) -> tuple[float, float]:
    """How much the outermost columns of a feature map stand out: (left, right), each the mean
    distance of that column's features to the map's mean feature, divided by the median of that
    distance over the interior columns; about 1: no border stripe. ``feature``: C x h x w, or
    B x C x h x w (the first row is measured)."""
    feature = np.asarray(feature, dtype=np.float64)
    while feature.ndim > 3:
        feature = feature[0]
    centre = feature.mean(axis=(1, 2), keepdims=True)
    distance = np.linalg.norm(feature - centre, axis=0).mean(axis=0)  # w: per column
    interior = float(np.median(distance[1:-1]))
    return float(distance[0] / interior), float(distance[-1] / interior)
