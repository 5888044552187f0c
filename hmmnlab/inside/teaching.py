"""Does a model's memory read land on the object? Two teaching signals and a border check.

For a model trained well, the cells a read uses should lie on the object it segments. With ground
truth for every frame (a DAVIS-layout training sequence) this is measured on the r4 grid of the
padded frame; a cell is *on the object* when at least half of its 16 x 16 pixels are.

* **top-k precision**: for every r4 query cell on object o at the chosen frames, the share of its
  r3 top-k memory cells (``r3.topk_indices``, as (memory frame, y, x)) that are on object o in their
  memory frame. Chance is the object's share of the cells of those memory frames.
* **flow hits**: for every r4 cell of frame t-1 on object o, whether its window argmax
  (``r4.flow``, where the position lands in frame t) is on object o in frame t.
* **border share**: the share of all top-k cells that lie on the outermost ring of the padded r4
  grid (the cells that touch the padding or the image edge), beside the ring's share of the grid.
  A model that uses the border as a position signal picks ring cells far more often than that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hmmnlab import ops
from hmmnlab.config import ReadConfig
from hmmnlab.evaluation.metrics import evaluate_semisupervised
from hmmnlab.inference import object_labels, propagate
from hmmnlab.inside.trace import guidance_frames, topk_coordinates

CELL = 16  # pixels per r4 cell


def cells_on_objects(labels: np.ndarray, object_ids: Sequence[int]) -> np.ndarray:
    """labels: H x W ground truth -> K x h x w booleans, cell on object k (padded r4 grid)."""
    onehot = torch.stack([torch.from_numpy(labels == i) for i in object_ids])  # K x H x W
    return ops.cells_on(onehot, CELL).numpy()


def ring_mask(h: int, w: int) -> np.ndarray:
    """h x w booleans: the outermost ring of cells."""
    ring = np.ones((h, w), dtype=bool)
    ring[1:-1, 1:-1] = False
    return ring


@dataclass
class TeachingScores:
    """Sums over a sequence (or several): divide to get the shares."""

    topk_on: float = 0.0  # top-k cells on the query cell's object
    topk_total: float = 0.0  # top-k cells of query cells on an object
    chance_sum: float = 0.0  # object share of the memory frames, summed over query cells
    flow_on: float = 0.0
    flow_total: float = 0.0
    ring_hits: float = 0.0  # top-k cells (of every query cell) on the border ring
    ring_total: float = 0.0
    ring_share: float = 0.0  # the ring's share of the grid

    def add(self, other: TeachingScores) -> None:
        for name in vars(self):
            if name != "ring_share":
                setattr(self, name, getattr(self, name) + getattr(other, name))
        self.ring_share = other.ring_share or self.ring_share

    def summary(self) -> dict[str, float]:
        nan = float("nan")
        return {
            "topk_precision": self.topk_on / self.topk_total if self.topk_total else nan,
            "topk_chance": self.chance_sum / self.topk_total if self.topk_total else nan,
            "flow_hits": self.flow_on / self.flow_total if self.flow_total else nan,
            "border_topk_share": self.ring_hits / self.ring_total if self.ring_total else nan,
            "border_grid_share": self.ring_share,
        }


def score_video(
    model,
    frames: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    topk_frames: Sequence[int] = (10, 30),
    read: ReadConfig | None = None,
    device: str = "cpu",
) -> tuple[dict[str, float], TeachingScores]:
    """Segment a video with ground truth for every frame (labels: T x H x W); returns its J, F,
    J&F (official conventions) and its :class:`TeachingScores`."""
    read = read or ReadConfig()
    _, ids = object_labels(labels[0])
    on = np.stack([cells_on_objects(lb, ids) for lb in labels])  # T x K x h x w
    T, K, h, w = on.shape
    ring = ring_mask(h, w)
    scores = TeachingScores(ring_share=float(ring.mean()))
    names = ["r3.topk_indices", "r4.flow"]
    preds = []
    for result in propagate(model, frames, labels[0], read=read, device=device, trace=names):
        preds.append(result.labels.cpu().numpy())
        t, cache = result.index, result.trace or {}
        if "r4.flow" in cache:  # B x HW: frame t-1's cells in frame t
            flow = cache["r4.flow"].cpu().numpy()
            src = on[t - 1].reshape(K, h * w)  # K x HW
            dst = np.take_along_axis(on[t].reshape(K, h * w), flow, axis=1)  # K x HW
            scores.flow_on += float((src & dst).sum())
            scores.flow_total += float(src.sum())
        if t in topk_frames and "r3.topk_indices" in cache:
            frame_ids = guidance_frames(result.memory_frames, read)
            coords = topk_coordinates(cache["r3.topk_indices"].cpu(), frame_ids, h, w).numpy()
            f, y, x = coords[..., 0], coords[..., 1], coords[..., 2]  # K x HW x k
            query_on = on[t].reshape(K, h * w)  # K x HW
            for k in range(K):
                hits = on[f[k], k, y[k], x[k]]  # HW x k
                rows = query_on[k]
                scores.topk_on += float(hits[rows].sum())
                scores.topk_total += float(rows.sum() * hits.shape[1])
                chance = float(np.mean([on[i, k].mean() for i in frame_ids]))
                scores.chance_sum += chance * float(rows.sum() * hits.shape[1])
            scores.ring_hits += float(ring[y, x].sum())
            scores.ring_total += float(y.size)
    pred = np.stack(preds).astype(labels.dtype)
    s = evaluate_semisupervised(labels, pred)
    j, f = float(np.nanmean(s.j.mean(axis=1))), float(np.nanmean(s.f.mean(axis=1)))
    return {"J": j, "F": f, "JF": (j + f) / 2}, scores


# --------------------------------------------------------------------------------------------------
# Saturation on look-alikes

#: A memory cell is inside the kernel's 2-sigma disc of a query cell when its kernel weight there is
#: at least exp(-2) (the Gaussian at a distance of 2 sigma from the cell's centre).
DISC_WEIGHT = float(np.exp(-2.0))

SATURATION_NAMES = ("r4.affinity_logits", "r4.kernel", "r4.affinity")


@dataclass
class Saturation:
    """Where the r4 attention of query cells on an object goes, pooled over objects and frames.

    same_share: mean over query cells on object o of the share of their r4 attention
    (``r4.affinity``, after the kernel) on memory cells of object o; lookalike_share: the share on
    memory cells of the other objects (in a look-alike video: its identical copies);
    logit_gap: median over those query cells of max_m S(m, q) - max_{m in disc} S(m, q), S the r4
    logits (``r4.affinity_logits``) and the disc the memory cells whose kernel weight at q is at
    least exp(-2); 0 when the best match lies inside the disc, nan without a kernel. A gap of many
    logits is a saturated read: the kernel's factor cannot overturn the best match far away."""

    same_share: float
    lookalike_share: float
    logit_gap: float
    queries: int


def saturation(
    model,
    frames: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    at: Sequence[int] = (1,),
    read: ReadConfig | None = None,
    device: str = "cpu",
) -> Saturation:
    """:class:`Saturation` of a video with ground truth for every frame (labels: T x H x W),
    measured at the frames ``at`` (>= 1) with the true masks of the query and memory frames."""
    _, ids = object_labels(labels[0])
    on = np.stack([cells_on_objects(lb, ids) for lb in labels])  # T x K x h x w
    T, K, h, w = on.shape
    at = [t for t in at if 1 <= t < T]
    if not at or K < 2:
        raise ValueError(f"saturation needs frames in 1..{T - 1} and 2 objects, got {at}, {K}")
    same, other, gaps, queries = [], [], [], 0
    last = max(at)
    results = propagate(
        model, frames[: last + 1], labels[0], read=read, device=device,
        trace=list(SATURATION_NAMES), trace_frames=set(at),
    )  # fmt: skip
    for result in results:
        if result.index not in at:
            continue
        cache = result.trace
        p = cache["r4.affinity"].float().cpu()  # K x THW x HW
        s = cache["r4.affinity_logits"].float().cpu()  # K x THW x HW
        kernel = cache.get("r4.kernel")
        memory_on = on[list(result.memory_frames)].reshape(len(result.memory_frames), K, h * w)
        memory_on = torch.from_numpy(memory_on.transpose(1, 0, 2).reshape(K, -1))  # K x THW
        for k in range(K):
            rows = torch.from_numpy(on[result.index, k].reshape(-1))  # HW query cells on k
            if not rows.any():
                continue
            others = memory_on[[j for j in range(K) if j != k]].any(dim=0)  # THW
            pk = p[k][:, rows]  # THW x Q
            same.append(pk[memory_on[k]].sum(dim=0))
            other.append(pk[others].sum(dim=0))
            queries += int(rows.sum())
            if kernel is not None:
                sk = s[k][:, rows]
                disc = kernel[k].float().cpu()[:, rows] >= DISC_WEIGHT
                inside = sk.masked_fill(~disc, float("-inf")).max(dim=0).values
                gap = sk.max(dim=0).values - inside
                gaps.append(gap[torch.isfinite(gap)])
    if not same:
        raise ValueError("no r4 query cell lies on an object at the frames asked")
    gap = torch.cat(gaps) if gaps else torch.empty(0)
    return Saturation(
        same_share=float(torch.cat(same).mean()),
        lookalike_share=float(torch.cat(other).mean()),
        logit_gap=float(gap.median()) if len(gap) else float("nan"),
        queries=queries,
    )


def lookalike_scores(root, runs: dict, *, max_frames: int | None = None):
    """J&F per grade of a look-alike suite (``hmmnlab samples --lookalikes ROOT``) for each run:
    ``runs`` maps a label to ``(model, read, hooks)`` (read None: the model's own; hooks None or
    causal hooks). A pandas DataFrame, one row per run, one column per grade present."""
    import pandas as pd

    from hmmnlab.data.lookalikes import read_grades
    from hmmnlab.train.clips import open_davis

    grades = read_grades(root)
    videos = open_davis(root, split="val")
    rows = []
    for label, (model, read, hooks) in runs.items():
        per_grade: dict[str, list[float]] = {}
        for video in videos:
            n = len(video) if max_frames is None else min(len(video), max_frames)
            frames = [np.array(video.frame(i)) for i in range(n)]
            truth = np.stack([video.labels(i) for i in range(n)])
            pred = np.stack(
                [r.labels.cpu().numpy()
                 for r in propagate(model, frames, truth[0], read=read, hooks=hooks)]
            ).astype(truth.dtype)  # fmt: skip
            s = evaluate_semisupervised(truth, pred, name=video.name)
            jf = (np.nanmean(s.j.mean(axis=1)) + np.nanmean(s.f.mean(axis=1))) / 2
            per_grade.setdefault(grades[video.name], []).append(float(jf))
        rows.append({"run": label, **{g: float(np.mean(v)) for g, v in per_grade.items()}})
    return pd.DataFrame(rows).set_index("run")
