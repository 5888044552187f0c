"""One frame of HMMN's inference: the step that :func:`hmmnlab.inference.propagate`, training and
the benchmarks all run.

At frame t the step (1) puts frame t-1 with its soft masks into the memory bank, (2) encodes frame
t, (3) reads the memory (r4, then r3 and r2), (4) decodes per-object probabilities, (5) soft-
aggregates them per video and (6) finishes the bank's step (keeps frame t-1 if it is on the
schedule, carries the kernel track). Everything is at the padded size (H, W multiples of 16).

A step can run several videos at once (training batches clips): their frames are stacked
N x 3 x H x W, their objects' masks concatenated B x H x W in video order, and
``objects_per_video`` says how many rows each video has. One :class:`~hmmnlab.memory.MemoryBank`
holds all B rows (the videos share the memory schedule).

``hooks`` (hook name -> ``fn(value, ctx)``, see :func:`hmmnlab.hooks.intervene`) change the step's
tensors causally; without them the step runs exactly as if hooks did not exist.

Objects that enter a video after frame 0 (YouTube-VOS) have memory banks of their own, one per
*object group* (the objects that enter at one frame), each starting at the group's first frame
(:func:`segment_step_groups`): frame t-1 is encoded once for every object (the memory encoder's
"other objects" mask is the sum over all of them), each group reads its own bank, and the decoder and
the soft aggregation run over all objects together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from hmmnlab.config import ReadConfig
from hmmnlab.features import MemoryFeatures, ReadOut
from hmmnlab.hooks import HookFn, intervene
from hmmnlab.memory import MemoryBank
from hmmnlab.model import HMMN
from hmmnlab.model.hmmn import owners


@dataclass
class StepOutput:
    """What one step computed for frame t (padded size)."""

    object_probs: Tensor  # B x Hp x Wp foreground probability of each object (float32)
    logits: list[Tensor]  # per video: (K+1) x Hp x Wp soft-aggregation logits
    probs: list[Tensor]  # per video: (K+1) x Hp x Wp probabilities, softmax(logits) over dim 0
    memory_frames: tuple[int, ...]  # the r4 memory frames read, oldest first
    # with several memory banks (segment_step_groups): each bank's r4 memory frames
    group_memory_frames: tuple[tuple[int, ...], ...] = ()


def segment_step(
    model: HMMN,
    bank: MemoryBank,
    t: int,
    prev_frame: Tensor,
    prev_masks: Tensor,
    frame: Tensor,
    read: ReadConfig,
    *,
    objects_per_video: Sequence[int] | None = None,
    hooks: Mapping[str, HookFn] | None = None,
    object_ids: Sequence[int] | None = None,
) -> StepOutput:
    """Segment frame ``t`` (see the module docstring).

    prev_frame: N x 3 x Hp x Wp frame t-1 in [0, 1]; prev_masks: B x Hp x Wp soft masks of frame
    t-1 (objects 1..K of each video, zero in the padding); frame: N x 3 x Hp x Wp frame t.
    objects_per_video: the objects of each of the N videos (None: one video, N = 1).
    hooks: causal hook functions; object_ids: the label value of each object row, given to them in
    ``ctx.object_ids`` (default 1..B)."""
    owner = None
    if objects_per_video is not None and len(objects_per_video) > 1:
        owner = owners(objects_per_video, device=prev_masks.device)
    memory_frames = (*bank.frame_ids, t - 1)  # the r4 memory of this step, once t-1 is added
    if hooks:
        ids = tuple(object_ids) if object_ids is not None else tuple(range(1, len(prev_masks) + 1))
        hooked = intervene(model, hooks, frame=t, object_ids=ids, memory_frames=memory_frames)
    else:
        hooked = contextlib.nullcontext()
    with hooked:
        bank.add(t - 1, model.encode_memory(prev_frame, prev_masks, owner))
        query = model.encode_query(frame)
        readout = model.read(bank, query, read, owner)
        object_probs = model.decode(query, readout, owner)  # B x Hp x Wp
        if object_probs.dtype in (torch.float16, torch.bfloat16):  # under autocast
            object_probs = object_probs.float()
        bank.finish_step(readout.next_track)
        counts = objects_per_video or [object_probs.shape[0]]
        aggregated = [model.aggregate(p) for p in object_probs.split(list(counts))]
    logits = [logits for logits, _ in aggregated]
    probs = [probs for _, probs in aggregated]
    return StepOutput(object_probs, logits, probs, memory_frames)


def _rows(features: MemoryFeatures, start: int, stop: int) -> MemoryFeatures:
    """The object rows ``start:stop`` of every tensor of ``features``."""
    return MemoryFeatures(**{name: x[start:stop] for name, x in vars(features).items()})


def segment_step_groups(
    model: HMMN,
    banks: Sequence[MemoryBank],
    t: int,
    prev_frame: Tensor,
    prev_masks: Tensor,
    frame: Tensor,
    read: ReadConfig,
    *,
    group_sizes: Sequence[int],
    hooks: Mapping[str, HookFn] | None = None,
    object_ids: Sequence[int] | None = None,
    after_read: Callable[[int], None] | None = None,
) -> StepOutput:
    """Segment frame ``t`` of one video whose objects are read from several memory banks.

    banks: one bank per object group, in the order of the object rows; group_sizes: the objects of
    each (their rows of ``prev_masks`` follow one another in that order). prev_frame, frame:
    1 x 3 x Hp x Wp; prev_masks: B x Hp x Wp soft masks of frame t-1 of every object read at this
    step (B = sum of ``group_sizes``).

    Frame t-1 is encoded once for all B objects, so each object's "other objects" mask covers every
    other object, whatever its group; each group's rows go into its own bank, and each group reads
    its own bank (its r4 memory: the bank's kept frames, then t-1). The read-outs are decoded and
    soft-aggregated together. ``after_read(g)`` is called after group g's read (a trace takes the
    read's hook points there). With hooks, ``ctx.object_ids`` and ``ctx.memory_frames`` are the
    group's in its read and, elsewhere, every object's and the first group's memory frames.

    ``memory_frames`` of the output are the first group's; ``StepOutput.group_memory_frames`` has
    every group's."""
    sizes = list(group_sizes)
    if len(sizes) != len(banks) or sum(sizes) != len(prev_masks):
        raise ValueError(
            f"expected one group size per bank ({len(banks)}) adding up to the {len(prev_masks)} "
            f"mask rows, got {sizes}"
        )
    ids = tuple(object_ids) if object_ids is not None else tuple(range(1, len(prev_masks) + 1))
    bounds = [sum(sizes[:g]) for g in range(len(sizes) + 1)]
    frames_read = tuple((*bank.frame_ids, t - 1) for bank in banks)

    def hooked(rows: tuple[int, ...], memory_frames: tuple[int, ...]):
        """Hooks for a stage that runs on the objects ``rows`` with that r4 memory."""
        if not hooks:
            return contextlib.nullcontext()
        return intervene(model, hooks, frame=t, object_ids=rows, memory_frames=memory_frames)

    with hooked(ids, frames_read[0]):
        features = model.encode_memory(prev_frame, prev_masks)  # all B objects together
        query = model.encode_query(frame)
    readouts: list[ReadOut] = []
    for g, bank in enumerate(banks):
        lo, hi = bounds[g], bounds[g + 1]
        bank.add(t - 1, _rows(features, lo, hi))
        with hooked(ids[lo:hi], frames_read[g]):
            readouts.append(model.read(bank, query, read))
        if after_read is not None:
            after_read(g)
    readout = ReadOut(
        torch.cat([r.r4 for r in readouts]),
        torch.cat([r.r3 for r in readouts]),
        torch.cat([r.r2 for r in readouts]),
        None,  # each bank keeps its own track
    )
    with hooked(ids, frames_read[0]):
        object_probs = model.decode(query, readout)  # B x Hp x Wp
        if object_probs.dtype in (torch.float16, torch.bfloat16):  # under autocast
            object_probs = object_probs.float()
        logits, probs = model.aggregate(object_probs)
    for bank, r in zip(banks, readouts, strict=True):
        bank.finish_step(r.next_track)
    return StepOutput(object_probs, [logits], [probs], frames_read[0], frames_read)
