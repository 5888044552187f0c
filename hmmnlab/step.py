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
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from hmmnlab.config import ReadConfig
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
