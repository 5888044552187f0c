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

The memory is a :class:`~hmmnlab.memory.MemoryBank` (one bank for every object row) or a
:class:`~hmmnlab.memory.VideoMemory`, whose *object groups* (objects entering at one frame, as in
YouTube-VOS) each read a bank of their own that starts at the group's first frame. Frame t-1 is
encoded once for every object (the memory encoder's "other objects" mask is the sum over all of
them), each group's rows go into its bank and each group reads its bank; the decoder and the soft
aggregation run over all objects together. With one group this is exactly the single-bank step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from hmmnlab import precision
from hmmnlab.config import ReadConfig
from hmmnlab.features import MemoryFeatures, ReadOut
from hmmnlab.hooks import HookFn, intervene
from hmmnlab.memory import MemoryBank, VideoMemory
from hmmnlab.model import HMMN
from hmmnlab.model.hmmn import owners


@dataclass
class StepOutput:
    """What one step computed for frame t (padded size)."""

    object_probs: Tensor  # B x Hp x Wp foreground probability of each object (float32)
    logits: list[Tensor]  # per video: (K+1) x Hp x Wp soft-aggregation logits
    probs: list[Tensor]  # per video: (K+1) x Hp x Wp probabilities, softmax(logits) over dim 0
    memory_frames: tuple[int, ...]  # the r4 memory frames read (the first group's), oldest first
    group_memory_frames: tuple[tuple[int, ...], ...] = ()  # each group's r4 memory frames


def _rows(features: MemoryFeatures, rows: slice) -> MemoryFeatures:
    """The object rows ``rows`` of every tensor of ``features``."""
    return MemoryFeatures(**{name: x[rows] for name, x in vars(features).items()})


def _banks_and_rows(
    memory: MemoryBank | VideoMemory, num_rows: int
) -> tuple[list[MemoryBank], list[slice]]:
    """The banks a step reads and the object rows (of ``prev_masks``) of each."""
    if isinstance(memory, MemoryBank):
        return [memory], [slice(0, num_rows)]
    if memory.num_objects != num_rows:
        raise ValueError(
            f"the memory's object groups have {memory.sizes} objects, adding up to "
            f"{memory.num_objects}, but prev_masks has {num_rows} rows"
        )
    return memory.banks, [memory.rows(g) for g in range(len(memory.banks))]


def _joined(readouts: list[ReadOut]) -> ReadOut:
    """The read-outs of every group, their object rows one after the other (one group: its own)."""
    if len(readouts) == 1:
        return readouts[0]
    return ReadOut(
        torch.cat([r.r4 for r in readouts]),
        torch.cat([r.r3 for r in readouts]),
        torch.cat([r.r2 for r in readouts]),
        None,  # each bank keeps its own track
    )


def segment_step(
    model: HMMN,
    memory: MemoryBank | VideoMemory,
    t: int,
    prev_frame: Tensor,
    prev_masks: Tensor,
    frame: Tensor,
    read: ReadConfig,
    *,
    objects_per_video: Sequence[int] | None = None,
    hooks: Mapping[str, HookFn] | None = None,
    object_ids: Sequence[int] | None = None,
    after_read: Callable[[int], None] | None = None,
) -> StepOutput:
    """Segment frame ``t`` (see the module docstring).

    memory: one bank for every row of ``prev_masks``, or a :class:`VideoMemory` whose groups'
    sizes add up to them. prev_frame: N x 3 x Hp x Wp frame t-1 in [0, 1]; prev_masks: B x Hp x Wp
    soft masks of frame t-1 (objects 1..K of each video, zero in the padding); frame: N x 3 x Hp x
    Wp frame t. objects_per_video: the objects of each of the N videos (None: one video, N = 1).
    hooks: causal hook functions; object_ids: the label value of each object row, given to them in
    ``ctx.object_ids`` (default 1..B). In group g's read ``ctx.object_ids`` and
    ``ctx.memory_frames`` are the group's; elsewhere every object's and the first group's memory
    frames. ``after_read(g)`` is called after group g's read (a trace takes the read's hook points
    there)."""
    banks, rows = _banks_and_rows(memory, len(prev_masks))
    owner = None
    if objects_per_video is not None and len(objects_per_video) > 1:
        owner = owners(objects_per_video, device=prev_masks.device)
    ids = tuple(object_ids) if object_ids is not None else tuple(range(1, len(prev_masks) + 1))
    # each group's r4 memory at this step, once t-1 is added
    frames_read = tuple((*bank.frame_ids, t - 1) for bank in banks)

    def hooked(rows: slice, memory_frames: tuple[int, ...]):
        """Hooks for a stage that runs on the object rows ``rows`` with that r4 memory."""
        if not hooks:
            return contextlib.nullcontext()
        return intervene(model, hooks, frame=t, object_ids=ids[rows], memory_frames=memory_frames)

    every = slice(0, len(prev_masks))
    with hooked(every, frames_read[0]):
        features = model.encode_memory(prev_frame, prev_masks, owner)  # every object at once
        query = model.encode_query(frame)
    reduced = precision.bf16_on_cpu()  # bfloat16 convolutions: the read stays float32
    if reduced:
        features, query = precision.as_float32(features), precision.as_float32(query)
    readouts: list[ReadOut] = []
    for g, bank in enumerate(banks):
        bank.add(t - 1, features if len(banks) == 1 else _rows(features, rows[g]))
        group_owner = owner if owner is None or len(banks) == 1 else owner[rows[g]]
        with (
            hooked(rows[g], frames_read[g]),
            precision.float32_read() if reduced else contextlib.nullcontext(),
        ):
            readouts.append(model.read(bank, query, read, group_owner))
        if after_read is not None:
            after_read(g)
    readout = _joined(readouts)
    with hooked(every, frames_read[0]):
        object_probs = model.decode(query, readout, owner)  # B x Hp x Wp
        if object_probs.dtype in (torch.float16, torch.bfloat16):  # under autocast
            object_probs = object_probs.float()
        counts = objects_per_video or [object_probs.shape[0]]
        aggregated = [model.aggregate(p) for p in object_probs.split(list(counts))]
    for bank, r in zip(banks, readouts, strict=True):
        bank.finish_step(r.next_track)
    logits = [logits for logits, _ in aggregated]
    probs = [probs for _, probs in aggregated]
    return StepOutput(object_probs, logits, probs, frames_read[0], frames_read)
