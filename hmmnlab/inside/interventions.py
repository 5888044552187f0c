"""Interventions: the classic "what if this tensor were different?" experiments, one call each.

Every experiment runs :func:`~hmmnlab.inference.propagate` with causal hooks
(:func:`hmmnlab.hooks.intervene`) and returns a pandas table, which keeps the masks of its runs
(``table.attrs["masks"]``) for :func:`mask_figure` to draw:

- :func:`knock_out_memory_frame` - one r4 memory frame's affinity rows set to zero: J&F per frame;
- :func:`replace_kernel` - the r4 kernel replaced by a function of yours: J&F per frame;
- :func:`zero_readouts` - one scale's read-out (r4, r3 or r2) set to zero, one scale at a time;
- :func:`transplant_first_memory` - frame 0's memory taken from another video: J&F per frame;
- :func:`patch_activations` - activation patching: one hook's tensor copied from a clean run into a
  corrupted run (:func:`occlude`, :func:`swap_labels`), and how much of the clean output it
  restores.

A :class:`Video` holds the frames, the first frame's labels and (optionally) the ground truth of
every frame; :func:`sample_video` reads one of the bundled samples. The hook functions behind the
experiments (:func:`knock_out`, :func:`zero`, :func:`patch_from`) are plain functions to reuse with
``propagate(..., hooks=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from hmmnlab.config import ReadConfig
from hmmnlab.evaluation.metrics import object_scores
from hmmnlab.hooks import HookContext, HookFn, hook_points
from hmmnlab.inference import FrameResult, propagate
from hmmnlab.model import HMMN


@dataclass(frozen=True)
class Video:
    """A short video to experiment on.

    frames: T x H x W x 3 uint8; first_labels: H x W labels of frame 0 (0 background);
    truth: T x H x W labels of every frame (for J&F), or None; name: for table titles."""

    frames: np.ndarray
    first_labels: np.ndarray
    truth: np.ndarray | None = None
    name: str = ""


def sample_video(name: str = "twins", *, frames: int | None = 12, root=None) -> Video:
    """A bundled sample video (``data_samples/``), cut to its first ``frames`` frames (None:
    all)."""
    from hmmnlab.inside.lesson import sample_dataset

    sequence = sample_dataset(root)[name]
    count = len(sequence) if frames is None else min(frames, len(sequence))
    images = np.stack([sequence.frame(i) for i in range(count)])  # T x H x W x 3
    truth = np.stack([sequence.mask(i) for i in range(count)])  # T x H x W
    return Video(images, truth[0], truth, name)


def occlude(video: Video, frame: int, *, box: tuple[int, int, int, int] | None = None) -> Video:
    """``video`` with a grey square pasted over frame ``frame``: a corrupted input for patching.

    box: (top, left, height, width) in pixels; default: a square of half the frame's height centred
    on object 1 of the first frame's labels."""
    if not 0 < frame < len(video.frames):
        raise ValueError(f"frame must be in 1..{len(video.frames) - 1}, got {frame}")
    height, width = video.frames.shape[1:3]
    if box is None:
        ys, xs = np.nonzero(
            video.first_labels == np.unique(video.first_labels[video.first_labels > 0])[0]
        )
        side = height // 2
        top = int(np.clip(ys.mean() - side / 2, 0, height - side))
        left = int(np.clip(xs.mean() - side / 2, 0, width - side))
        box = (top, left, side, side)
    top, left, box_h, box_w = box
    frames = video.frames.copy()
    frames[frame, top : top + box_h, left : left + box_w] = 128
    return replace(video, frames=frames, name=f"{video.name} occluded at frame {frame}")


def swap_labels(video: Video, a: int = 1, b: int = 2) -> Video:
    """``video`` with objects ``a`` and ``b`` swapped in the first frame's labels (and in the
    truth): the model must now follow each object with the other's identity."""
    present = set(np.unique(video.first_labels).tolist())
    if not {a, b} <= present:
        raise ValueError(
            f"labels {a} and {b} must both be in the first frame, found {sorted(present)}"
        )

    def swapped(labels):
        return np.where(labels == a, b, np.where(labels == b, a, labels)).astype(labels.dtype)

    truth = None if video.truth is None else swapped(video.truth)
    return replace(
        video, first_labels=swapped(video.first_labels), truth=truth,
        name=f"{video.name} with labels {a} and {b} swapped",
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# Running and scoring


def run(
    model: HMMN,
    video: Video,
    *,
    hooks: dict[str, HookFn] | None = None,
    read: ReadConfig | None = None,
    device=None,
    frames: int | None = None,
) -> list[FrameResult]:
    """Every frame's result of ``video`` (its first ``frames`` frames, None: all) with ``hooks``."""
    images = video.frames if frames is None else video.frames[:frames]
    return list(propagate(model, images, video.first_labels, read=read, device=device, hooks=hooks))


def frame_scores(video: Video, results: Sequence[FrameResult]) -> np.ndarray:
    """J&F of every frame (mean over objects) of ``results`` against ``video.truth``: a T array."""
    if video.truth is None:
        raise ValueError(f"video {video.name!r} has no ground truth (Video.truth) to score against")
    ids = results[0].object_ids
    lookup = np.zeros(256, np.int64)  # label value -> object number 1..K
    lookup[list(ids)] = np.arange(1, len(ids) + 1)
    truth = lookup[video.truth[: len(results)].astype(np.int64)]  # T x H x W
    predicted = [lookup[r.labels.cpu().numpy()] for r in results]
    j, f = object_scores(truth, predicted, len(ids))  # K x T each
    return ((j + f) / 2).mean(axis=0)


def per_frame_table(video: Video, clean: Sequence[FrameResult], changed: Sequence[FrameResult],
                    label: str) -> pd.DataFrame:  # fmt: skip
    """Frames 1..T-1: J&F of the clean run, J&F of the changed run (``label``) and the change."""
    before, after = frame_scores(video, clean), frame_scores(video, changed)
    table = pd.DataFrame(
        {
            "frame": range(len(before)),
            "J&F": before,
            f"J&F {label}": after,
            "change": after - before,
        }
    )
    table = table.iloc[1:].reset_index(drop=True)  # frame 0 is given, not segmented
    table.attrs["masks"] = {"clean": label_maps(clean), label: label_maps(changed)}
    return table


def label_maps(results: Sequence[FrameResult]) -> np.ndarray:
    """The predicted labels of every frame of a run: T x H x W (the label values of the video)."""
    return np.stack([r.labels.cpu().numpy() for r in results])


def mask_figure(video: Video, table: pd.DataFrame, *, frames: Sequence[int] | None = None):
    """The masks behind an experiment's table, one row per run (the clean run first, then the
    changed ones) and one column per frame: a matplotlib Figure with an object colour legend.

    table: what an experiment of this module returned (its ``attrs["masks"]``: run name -> T x H x W
    labels; a run on other frames, as the corrupted runs of :func:`patch_activations`, has them in
    ``attrs["frames"]``). video: the clean video. frames: which frames to show (default: up to
    four, spread over frames 1..T-1; the patched frame of :func:`patch_activations`)."""
    from hmmnlab import viz

    masks = table.attrs.get("masks")
    if not masks:
        raise ValueError(
            "this table holds no masks: give the table an experiment of hmmnlab.inside.interventions "
            "returned (knock_out_memory_frame, replace_kernel, zero_readouts, "
            "transplant_first_memory, patch_activations)"
        )
    count = min(len(labels) for labels in masks.values())
    if frames is None:
        if "frame" in table.attrs:
            frames = [int(table.attrs["frame"])]
        else:
            frames = sorted({int(t) for t in np.linspace(1, count - 1, min(4, count - 1))})
    bad = [t for t in frames if not 0 <= t < count]
    if bad:
        raise ValueError(f"frames {bad} are not among the runs' frames 0..{count - 1}")
    images = table.attrs.get("frames", {})  # the runs on other frames than ``video``'s
    panels = [
        (f"{name}, frame {t}", images.get(name, video.frames)[t], labels[t])
        for name, labels in masks.items()
        for t in frames
    ]
    return viz.overlay_panels(panels, columns=len(frames) if len(frames) > 1 else len(masks))


# ----------------------------------------------------------------------------------------------------
# Hook functions


def knock_out(memory_frame: int) -> HookFn:
    """A hook function for ``r4.affinity``: the rows of r4 memory frame ``memory_frame`` set to zero
    and the rest renormalised over memory, so that no query position reads that frame (the top-k
    guidance of r3/r2 then avoids it too). A no-op at steps whose memory does not hold the frame, or
    holds nothing else."""

    def hook(p: Tensor, ctx: HookContext) -> Tensor | None:
        if memory_frame not in ctx.memory_frames or len(ctx.memory_frames) == 1:
            return None
        hw = p.shape[-1]
        index = ctx.memory_frames.index(memory_frame)
        p = p.clone()  # B x THW x HW
        p[:, index * hw : (index + 1) * hw] = 0
        return p / p.sum(dim=1, keepdim=True)

    return hook


def soften(temperature: float) -> HookFn:
    """A hook function for ``r4.affinity_logits``: the logits S divided by ``temperature``, so that
    softmax(S) is flatter and the kernel's factor weighs more (the same as the read's
    ``temperature``, done from outside: ``hooks={"r4.affinity_logits": soften(10)}``)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")

    def hook(logits: Tensor, ctx: HookContext) -> Tensor:
        return logits / temperature

    return hook


def zero(value: Tensor, ctx: HookContext) -> Tensor:
    """A hook function replacing any tensor by zeros."""
    return torch.zeros_like(value)


def patch_from(cache: dict[str, Tensor], frame: int) -> HookFn:
    """A hook function that returns ``cache[ctx.name]`` at frame ``frame`` (None elsewhere): the
    tensor of another run (a trace of the same frame) patched into this one."""

    def hook(value: Tensor, ctx: HookContext) -> Tensor | None:
        return cache[ctx.name] if ctx.frame == frame else None

    return hook


class _Counted:
    """A hook function that counts its calls (to tell a hook point that never fired)."""

    def __init__(self, fn: HookFn) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, value: Tensor, ctx: HookContext) -> Tensor | None:
        self.calls += 1
        return self.fn(value, ctx)


# ----------------------------------------------------------------------------------------------------
# The experiments


def knock_out_memory_frame(
    model: HMMN, video: Video, memory_frame: int = 0, *, read: ReadConfig | None = None, device=None
) -> pd.DataFrame:
    """J&F per frame with and without r4 memory frame ``memory_frame`` (see :func:`knock_out`);
    ``in memory`` says whether the frame was in the memory (and not alone there) at that step."""
    clean = run(model, video, read=read, device=device)
    knocked = run(model, video, hooks={"r4.affinity": knock_out(memory_frame)}, read=read,
                  device=device)  # fmt: skip
    table = per_frame_table(video, clean, knocked, f"without memory frame {memory_frame}")
    table.insert(1, "in memory", [
        memory_frame in r.memory_frames and len(r.memory_frames) > 1 for r in clean[1:]
    ])  # fmt: skip
    return table


def replace_kernel(
    model: HMMN,
    video: Video,
    fn: Callable[[Tensor, HookContext], Tensor | None],
    *,
    label: str = "own kernel",
    read: ReadConfig | None = None,
    device=None,
) -> pd.DataFrame:
    """J&F per frame with the r4 kernel replaced by ``fn(kernel, ctx)`` (B x THW x HW, the
    Gaussian kernel G; return the kernel to use, or None to keep it). ``read`` defaults to the read
    the weights carry (``model.default_read``), as in :func:`~hmmnlab.inference.propagate`."""
    read = read or getattr(model, "default_read", None) or ReadConfig()
    hook = _Counted(fn)
    clean = run(model, video, read=read, device=device)
    changed = run(model, video, hooks={"r4.kernel": hook}, read=read, device=device)
    if hook.calls == 0:
        raise ValueError(f"the read variant {read.variant!r} has no r4 kernel to replace")
    return per_frame_table(video, clean, changed, label)


def zero_readouts(
    model: HMMN,
    video: Video,
    scales: Iterable[str] = ("r4", "r3", "r2"),
    *,
    read: ReadConfig | None = None,
    device=None,
) -> pd.DataFrame:
    """Mean J&F over frames 1..T-1 with one scale's memory read-out set to zero, one row per scale
    (and a first row with nothing zeroed): how much the decoder relies on each scale."""
    clean = run(model, video, read=read, device=device)
    baseline = frame_scores(video, clean)[1:].mean()
    rows = [{"zeroed": "nothing", "J&F": baseline, "change": 0.0}]
    masks = {"clean": label_maps(clean)}
    for scale in scales:
        results = run(model, video, hooks={f"{scale}.readout": zero}, read=read, device=device)
        score = frame_scores(video, results)[1:].mean()
        rows.append({"zeroed": f"{scale}.readout", "J&F": score, "change": score - baseline})
        masks[f"{scale}.readout zeroed"] = label_maps(results)
    table = pd.DataFrame(rows)
    table.attrs["masks"] = masks
    return table


def transplant_first_memory(
    model: HMMN, video: Video, donor: Video, *, read: ReadConfig | None = None, device=None
) -> pd.DataFrame:
    """J&F per frame of ``video`` when the memory of its frame 0 (keys and values at r4, r3, r2,
    with its mask) is encoded from ``donor``'s frame 0 instead. The donor must have the same size;
    its object rows are reused in turn when it has fewer objects."""
    from hmmnlab.inside.trace import run_with_cache

    if donor.frames.shape[1:3] != video.frames.shape[1:3]:
        raise ValueError(
            f"donor {donor.name!r} is {donor.frames.shape[1:3]} (H x W) but {video.name!r} is "
            f"{video.frames.shape[1:3]}: frame 0's memory must come from a video of the same size"
        )
    names = [n for n in hook_points(model) if n.startswith("memory_features.")]
    _, cache = run_with_cache(model, donor.frames[:2], donor.first_labels, frame=1,
                              names_filter=names, to_cpu=False, read=read, device=device)  # fmt: skip

    def transplant(value: Tensor, ctx: HookContext) -> Tensor | None:
        if ctx.frame != 1:  # frame 0 enters the memory at step 1, and stays
            return None
        rows = torch.arange(value.shape[0]) % cache[ctx.name].shape[0]
        return cache[ctx.name][rows.to(value.device)]

    clean = run(model, video, read=read, device=device)
    hooks = dict.fromkeys(names, transplant)
    changed = run(model, video, hooks=hooks, read=read, device=device)
    return per_frame_table(video, clean, changed, f"frame 0 memory from {donor.name}")


def _scale(name: str) -> str:
    head = name.split(".")[0]
    return {"memory_features": "memory", "query_features": "query"}.get(head, head)


def patch_activations(
    model: HMMN,
    clean: Video,
    corrupted: Video,
    frame: int,
    *,
    names: Iterable[str] | None = None,
    read: ReadConfig | None = None,
    device=None,
) -> pd.DataFrame:
    """Activation patching at frame ``frame``: for each hook name (default: every hook point that
    fires), run ``corrupted`` with that one tensor of frame ``frame`` taken from the ``clean`` run,
    and measure how much of the clean output it brings back.

    Columns: ``hook``, ``scale`` (memory, query, r4, r3, r2, decoder, output), ``distance`` (mean
    absolute difference of frame ``frame``'s probabilities to the clean run's) and ``restored``
    = 1 - distance / distance of the unpatched corrupted run (1: the clean output, 0: no help).
    The two videos must have the same size and number of objects; frames after ``frame`` are not
    run."""
    from hmmnlab.inside.trace import run_with_cache

    if clean.frames.shape != corrupted.frames.shape:
        raise ValueError(
            f"clean and corrupted videos must have the same frames shape, found "
            f"{clean.frames.shape} and {corrupted.frames.shape}"
        )
    count = frame + 1
    traced, cache = run_with_cache(model, clean.frames[:count], clean.first_labels, frame=frame,
                                   to_cpu=False, read=read, device=device)  # fmt: skip
    names = list(cache) if names is None else list(names)
    missing = [n for n in names if n not in cache]
    if missing:
        raise ValueError(
            f"hook points {missing} did not fire at frame {frame}; fired: {sorted(cache)}"
        )
    target = traced.probs

    def distance(results: list[FrameResult]) -> float:
        probs = results[frame].probs
        if probs.shape != target.shape:
            raise ValueError(
                f"the corrupted run has {probs.shape[0] - 1} objects, the clean run "
                f"{target.shape[0] - 1}: patching needs the same objects"
            )
        return float((probs - target).abs().mean())

    unpatched = run(model, corrupted, read=read, device=device, frames=count)
    corrupted_distance = distance(unpatched)
    rows, best = [], (float("inf"), "", unpatched)  # the patch closest to the clean run
    patch = patch_from(cache, frame)
    for name in names:
        results = run(model, corrupted, hooks={name: patch}, read=read, device=device, frames=count)
        d = distance(results)
        restored = 1 - d / corrupted_distance if corrupted_distance > 0 else float("nan")
        rows.append({"hook": name, "scale": _scale(name), "distance": d, "restored": restored})
        best = min(best, (d, name, results), key=lambda b: b[0])
    table = pd.DataFrame(rows)
    table.attrs["corrupted distance"] = corrupted_distance
    table.attrs["frame"] = frame
    clean_run = run(model, clean, read=read, device=device, frames=count)
    table.attrs["masks"] = {"clean": label_maps(clean_run), "corrupted": label_maps(unpatched)}
    table.attrs["frames"] = {"corrupted": corrupted.frames}
    if best[1]:
        table.attrs["masks"][f"{best[1]} patched"] = label_maps(best[2])
        table.attrs["frames"][f"{best[1]} patched"] = corrupted.frames
    return table
