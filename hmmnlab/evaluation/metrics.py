"""DAVIS metrics: region similarity J, boundary accuracy F and their statistics.

Everything here follows the official DAVIS toolkit (``davis2017-evaluation``), and the tests check
it against numbers produced by that toolkit:

* **J** (region similarity) is the intersection over union of the predicted and true object masks,
  with J = 1 when both are empty (empty union).
* **F** (boundary accuracy) compares the one-pixel boundaries of the two masks (``seg2bmap``): a
  boundary pixel counts as matched when the other mask's boundary passes within ``bound_pix``
  pixels, where ``bound_pix = ceil(0.008 * image diagonal)`` (8 at 480 x 854) and "within" means
  inside a disk of that radius. Precision P is the matched fraction of the predicted boundary,
  recall R the matched fraction of the true boundary, and F = 2PR / (P + R). Empty boundaries: both
  empty gives F = 1, only one empty gives F = 0.
* **Statistics** of the per-frame values of one object: mean M, recall R = fraction of frames with a
  value strictly above 0.5, and decay D = mean of the first quarter minus mean of the last quarter
  (4 overlapping bins, see :func:`decay_bins`).
* **Semi-supervised evaluation** (:func:`evaluate_semisupervised`): the first frame (given as input)
  and the last frame are not scored; the objects are the labels 1..K of the first annotation; the
  global numbers average the statistics over all objects of all sequences.

The official code has one defect kept out of here: it stores the decay bin indices as uint8, so for
256 frames or more they wrap around and the decay is NaN or wrong. :func:`db_statistics` uses int64
indices, which gives the same numbers below 256 frames and the correct decay above;
``uint8_bin_indices=True`` reproduces the official behaviour.

Speed: F dilates only a window around the two objects instead of the whole frame, which gives the
same counts (tested) at a fraction of the cost; :func:`boundary_f_measure` with ``fast=False`` is
the plain full-frame version, written to be read side by side with the official code.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from hmmnlab.data.palette import VOID_LABEL

#: Boundary tolerance as a fraction of the image diagonal (the official ``bound_th``).
BOUND_TH = 0.008

#: Number of bins of the decay statistic.
DECAY_BINS = 4


# --- building blocks ---------------------------------------------------------------------------


def disk(radius: int) -> np.ndarray:
    """The (2r+1) x (2r+1) uint8 disk used to dilate boundaries: 1 where dy^2 + dx^2 <= r^2.

    This is the same set of pixels as ``skimage.morphology.disk(r)``, which the official code uses.
    OpenCV's ``getStructuringElement(MORPH_ELLIPSE, ...)`` is a different set (16 pixels differ at
    r = 8), so it is not used.
    """
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)


def boundary_tolerance(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Boundary tolerance in pixels: ``ceil(bound_th * hypot(H, W))``, or ``bound_th`` if >= 1."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(
                f"a tolerance in pixels (bound_th >= 1) must be whole, found {bound_th}"
            )
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(height, width)))


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a binary mask, as the official ``_seg2bmap`` computes it.

    Args:
        mask: H x W array, non-zero = object.

    Returns:
        H x W bool array, True where a pixel differs from its right, lower or lower-right neighbour.
        The image is extended by repeating its last row and column, so the last row only compares
        with the right neighbour, the last column with the lower one, and the corner is never a
        boundary (exactly the official special cases).
    """
    seg = np.asarray(mask).astype(bool, copy=False)
    padded = np.pad(seg, ((0, 1), (0, 1)), mode="edge")  # (H+1) x (W+1)
    right = padded[:-1, 1:]
    down = padded[1:, :-1]
    down_right = padded[1:, 1:]
    return (seg != right) | (seg != down) | (seg != down_right)


def _as_bool(mask: np.ndarray, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name}: expected an H x W mask, found shape {mask.shape}")
    if shape is not None and mask.shape != shape:
        raise ValueError(
            f"{name}: expected shape {shape} (as the ground truth), found {mask.shape}"
        )
    return mask.astype(bool, copy=False)


def _precision_recall_f(n_pred: int, n_gt: int, pred_matched: int, gt_matched: int) -> float:
    """F from the boundary pixel counts, with the official special cases for empty boundaries."""
    if n_pred == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_pred > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = pred_matched / float(n_pred)
        recall = gt_matched / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


# --- J and F of one frame ----------------------------------------------------------------------


def jaccard_index(gt: np.ndarray, pred: np.ndarray, *, void: np.ndarray | None = None) -> float:
    """Region similarity J of one frame: |gt & pred| / |gt | pred|, void pixels left out.

    Args:
        gt, pred: H x W masks of one object (non-zero = object).
        void: optional H x W mask of pixels to ignore (the official semi-supervised evaluation
            passes none).

    Returns:
        J in [0, 1]; 1.0 when the union is empty (nothing to find, nothing predicted).
    """
    gt = _as_bool(gt, "gt")
    pred = _as_bool(pred, "pred", gt.shape)
    inter = gt & pred
    union = gt | pred
    if void is not None:
        keep = ~_as_bool(void, "void", gt.shape)
        inter &= keep
        union &= keep
    n_union = np.count_nonzero(union)
    if n_union == 0:
        return 1.0
    return np.count_nonzero(inter) / n_union


def _boundary_counts(gt: np.ndarray, pred: np.ndarray, radius: int) -> tuple[int, int, int, int]:
    """(n_pred, n_gt, pred_matched, gt_matched) boundary pixel counts over whole frames."""
    element = disk(radius)
    pred_b = seg2bmap(pred)
    gt_b = seg2bmap(gt)
    pred_dil = cv2.dilate(pred_b.view(np.uint8), element)  # pixels near the predicted boundary
    gt_dil = cv2.dilate(gt_b.view(np.uint8), element)
    gt_matched = np.count_nonzero(gt_b & pred_dil.view(bool))
    pred_matched = np.count_nonzero(pred_b & gt_dil.view(bool))
    return np.count_nonzero(pred_b), np.count_nonzero(gt_b), pred_matched, gt_matched


def _boundary_counts_windowed(
    gt: np.ndarray, pred: np.ndarray, radius: int
) -> tuple[int, int, int, int]:
    """The same counts as :func:`_boundary_counts`, computed on a window around the objects.

    Every boundary pixel lies in the objects' bounding box grown by one pixel up and left (seg2bmap
    marks a background pixel whose right or lower neighbour is object). The counts read the
    dilations only at boundary pixels, and the dilation at a pixel depends only on the boundary
    pixels within ``radius`` of it, so any window that holds every boundary pixel gives the
    full-frame counts. The bounding box grown by one pixel on every side (clipped to the image) is
    such a window, and its last row and column lie outside the objects, so seg2bmap's edge rule adds
    no false boundary there (a window side on the image border gets the official rule, as the full
    frame does).
    """
    height, width = gt.shape
    x, y, w, h = cv2.boundingRect((gt | pred).view(np.uint8))  # bounding box of both objects
    if w == 0 or h == 0:
        return 0, 0, 0, 0
    top, bottom = max(y - 1, 0), min(y + h + 1, height)
    left, right = max(x - 1, 0), min(x + w + 1, width)
    window = np.s_[top:bottom, left:right]
    return _boundary_counts(gt[window], pred[window], radius)


def boundary_f_measure(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    void: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
    fast: bool = True,
) -> float:
    """Boundary accuracy F of one frame (the official ``f_measure``).

    Args:
        gt, pred: H x W masks of one object (non-zero = object).
        void: optional H x W mask of pixels removed from both masks before taking boundaries.
        bound_th: tolerance as a fraction of the image diagonal, or in pixels if >= 1.
        fast: compute on a window around the objects (same result, much faster); False dilates the
            whole frame like the official code.

    Returns:
        F in [0, 1]. F is symmetric in gt and pred.
    """
    gt = _as_bool(gt, "gt")
    pred = _as_bool(pred, "pred", gt.shape)
    if void is not None:
        keep = ~_as_bool(void, "void", gt.shape)
        gt = gt & keep
        pred = pred & keep
    radius = boundary_tolerance(*gt.shape, bound_th)
    counts = _boundary_counts_windowed if fast else _boundary_counts
    return _precision_recall_f(*counts(gt, pred, radius))


# --- sequences -----------------------------------------------------------------------------------


def object_scores(
    gt_frames: Iterable[np.ndarray],
    pred_frames: Iterable[np.ndarray],
    num_objects: int,
    *,
    bound_th: float = BOUND_TH,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of every object over a sequence of label maps.

    Args:
        gt_frames, pred_frames: iterables of H x W integer label maps (0 = background, k =
            object k), read one frame at a time, so generators that load PNGs keep memory flat.
            Labels other than 1..K (void 255, objects absent from the first frame) are background
            for every object, as in the official semi-supervised evaluation.
        num_objects: K; object k is compared as ``gt == k`` against ``pred == k``.

    Returns:
        (J, F): two K x T float64 arrays.
    """
    j_rows: list[list[float]] = []
    f_rows: list[list[float]] = []
    for t, (gt, pred) in enumerate(zip(gt_frames, pred_frames, strict=True)):
        gt, pred = np.asarray(gt), np.asarray(pred)
        if gt.ndim != 2 or gt.shape != pred.shape:
            raise ValueError(
                f"frame {t}: expected H x W label maps of the same shape, "
                f"found gt {gt.shape} and prediction {pred.shape}"
            )
        radius = boundary_tolerance(*gt.shape, bound_th)
        j_frame, f_frame = [], []
        for k in range(1, num_objects + 1):
            gt_k = gt == k
            pred_k = pred == k
            j_frame.append(jaccard_index(gt_k, pred_k))
            f_frame.append(_precision_recall_f(*_boundary_counts_windowed(gt_k, pred_k, radius)))
        j_rows.append(j_frame)
        f_rows.append(f_frame)
    shape = (len(j_rows), num_objects)
    j = np.array(j_rows, dtype=np.float64).reshape(shape).T  # K x T
    f = np.array(f_rows, dtype=np.float64).reshape(shape).T
    return j, f


def count_objects(first_mask: np.ndarray) -> int:
    """K, the number of objects of a sequence: the largest label of its first annotation, void
    (255) excluded (a label missing in between still counts, as in the official code)."""
    labels = np.asarray(first_mask)
    labels = labels[labels != VOID_LABEL]
    return int(labels.max()) if labels.size else 0


@dataclass(frozen=True)
class DavisStatistics:
    """Statistics of one object's per-frame J (or F) values."""

    mean: float  # M: mean over frames, NaN frames ignored
    recall: float  # R: fraction of frames with value > 0.5 (a NaN frame counts as a miss)
    decay: float  # D: mean of the first bin minus mean of the last bin


@dataclass(frozen=True)
class SequenceScores:
    """Per-frame J and F of the objects of one sequence, over the scored frames."""

    name: str
    frame_names: tuple[str, ...]  # the T scored frames
    j: np.ndarray  # K x T float64
    f: np.ndarray  # K x T float64

    @property
    def num_objects(self) -> int:
        return self.j.shape[0]

    @property
    def object_names(self) -> list[str]:
        """``<sequence>_<object id>`` for objects 1..K, the official per-object row names."""
        return [f"{self.name}_{k}" for k in range(1, self.num_objects + 1)]

    def statistics(self, *, uint8_bin_indices: bool = False) -> list[tuple[DavisStatistics, ...]]:
        """Per object, the (J statistics, F statistics) pair."""
        return [
            (
                db_statistics(j_k, uint8_bin_indices=uint8_bin_indices),
                db_statistics(f_k, uint8_bin_indices=uint8_bin_indices),
            )
            for j_k, f_k in zip(self.j, self.f, strict=True)
        ]


def evaluate_semisupervised(
    gt_masks: np.ndarray,
    pred_masks: np.ndarray,
    *,
    name: str = "",
    frame_names: Iterable[str] | None = None,
    bound_th: float = BOUND_TH,
) -> SequenceScores:
    """Score a whole sequence held in memory, with the official semi-supervised conventions.

    Args:
        gt_masks: T x H x W label maps of every frame (0 background, 1..K objects, 255 void).
        pred_masks: T x H x W predicted label maps (frames 0 and T-1 are not read).
        name: the sequence name, used for the object names.
        frame_names: T frame names (default "00000", "00001", ...).

    The objects are 1..K with K from ``gt_masks[0]``; frames 1..T-2 are scored (the first frame is
    the input, the last is dropped by the official code). A prediction label above K is an error,
    as in the official toolkit. Streaming from files is done by :mod:`hmmnlab.evaluation.scoring`.
    """
    gt_masks, pred_masks = np.asarray(gt_masks), np.asarray(pred_masks)
    if gt_masks.ndim != 3 or gt_masks.shape != pred_masks.shape:
        raise ValueError(
            f"expected T x H x W ground truth and prediction of the same shape, "
            f"found {gt_masks.shape} and {pred_masks.shape}"
        )
    names = tuple(frame_names) if frame_names is not None else None
    if names is None:
        names = tuple(f"{t:05d}" for t in range(len(gt_masks)))
    elif len(names) != len(gt_masks):
        raise ValueError(f"expected {len(gt_masks)} frame names, found {len(names)}")
    num_objects = count_objects(gt_masks[0])
    scored = slice(1, len(gt_masks) - 1)
    check_prediction_labels(pred_masks[scored], num_objects, where=name or "prediction")
    j, f = object_scores(gt_masks[scored], pred_masks[scored], num_objects, bound_th=bound_th)
    return SequenceScores(name=name, frame_names=names[scored], j=j, f=f)


def check_prediction_labels(pred: np.ndarray, num_objects: int, *, where: str) -> None:
    """Raise if a prediction uses a label above K (the official toolkit refuses those too)."""
    pred = np.asarray(pred)
    if pred.size and int(pred.max()) > num_objects:
        found = sorted(int(v) for v in np.unique(pred) if v > num_objects)
        raise ValueError(
            f"{where}: expected labels 0..{num_objects} (the objects of the first annotation), "
            f"found label(s) {found}"
        )


# --- statistics ----------------------------------------------------------------------------------


def decay_bins(num_frames: int, *, uint8_bin_indices: bool = False) -> list[tuple[int, int]]:
    """The 4 decay bins as (start, stop) slices of the per-frame values.

    Official rule: ``ids = round(linspace(1, N, 5) + 1e-10) - 1`` and bin i = ``values[ids[i] :
    ids[i+1] + 1]``, so neighbouring bins share their boundary frame. The official code stores
    ``ids`` as uint8, which wraps at 256 frames; ``uint8_bin_indices=True`` reproduces that (e.g.
    N = 256 gives an empty last bin (191, 0)), the default uses exact integers.
    """
    ids = np.round(np.linspace(1, num_frames, DECAY_BINS + 1) + 1e-10) - 1
    ids = ids.astype(np.int64)
    if uint8_bin_indices:
        return [(int(ids[i]) % 256, (int(ids[i + 1]) % 256 + 1) % 256) for i in range(DECAY_BINS)]
    return [(int(ids[i]), int(ids[i + 1]) + 1) for i in range(DECAY_BINS)]


def _nanmean(values: np.ndarray) -> float:
    """Mean of the non-NaN values; NaN (without a warning) when there are none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.nanmean(values)) if values.size else math.nan


def db_statistics(
    values: Sequence[float] | np.ndarray, *, uint8_bin_indices: bool = False
) -> DavisStatistics:
    """Mean, recall and decay of one object's per-frame values (the official ``db_statistics``).

    Args:
        values: the N per-frame J or F values of one object (NaN allowed: ignored by the mean and
            the decay, counted as a miss by the recall, as in the official code).
        uint8_bin_indices: reproduce the official uint8 decay-bin indices, which are wrong for
            N >= 256 (see :func:`decay_bins`). The default gives the same numbers below 256.

    Returns:
        DavisStatistics(mean, recall, decay); all NaN when ``values`` is empty.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"expected a 1-D array of per-frame values, found shape {values.shape}")
    if values.size == 0:
        return DavisStatistics(math.nan, math.nan, math.nan)
    mean = _nanmean(values)
    recall = float(np.mean(values > 0.5))  # NaN > 0.5 is False
    bins = decay_bins(values.size, uint8_bin_indices=uint8_bin_indices)
    decay = _nanmean(values[slice(*bins[0])]) - _nanmean(values[slice(*bins[-1])])
    return DavisStatistics(mean=mean, recall=recall, decay=decay)


def global_statistics(
    scores: Iterable[SequenceScores], *, uint8_bin_indices: bool = False
) -> dict[str, float]:
    """The official global numbers: statistics averaged over all objects of all sequences.

    Returns:
        ``{"J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"}`` in the
        official column order. ``J&F-Mean`` is the average of ``J-Mean`` and ``F-Mean``.
    """
    per_object = [
        pair for seq in scores for pair in seq.statistics(uint8_bin_indices=uint8_bin_indices)
    ]
    if not per_object:
        raise ValueError("expected at least one object to average over, found none")
    j_stats = [j for j, _ in per_object]
    f_stats = [f for _, f in per_object]
    result = {
        "J-Mean": float(np.mean([s.mean for s in j_stats])),
        "J-Recall": float(np.mean([s.recall for s in j_stats])),
        "J-Decay": float(np.mean([s.decay for s in j_stats])),
        "F-Mean": float(np.mean([s.mean for s in f_stats])),
        "F-Recall": float(np.mean([s.recall for s in f_stats])),
        "F-Decay": float(np.mean([s.decay for s in f_stats])),
    }
    return {"J&F-Mean": (result["J-Mean"] + result["F-Mean"]) / 2.0, **result}
