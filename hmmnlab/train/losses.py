"""Losses of the training loop.

STM and HMMN train with the cross-entropy of the soft-aggregated output: per-object foreground
probabilities ``p_o`` are merged by :func:`hmmnlab.ops.soft_aggregate` into logits ``l`` over
background + objects, whose softmax is the frame's probability map (exactly what inference
argmaxes). The loss of a pixel is ``-log softmax(l)[label]``, averaged over pixels and over
predicted frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from hmmnlab import ops
from hmmnlab.hooks import HookContext
from hmmnlab.train.clips import Clip


def aggregated_cross_entropy(logits: Tensor, labels: Tensor, *, bootstrap: float = 1.0) -> Tensor:
    """Cross-entropy of one frame's soft-aggregation logits.

    logits: (K+1) x H x W from ``ops.soft_aggregate``; labels: H x W int64 in 0..K.
    ``bootstrap`` < 1 averages only the hardest fraction of pixels (STCN's bootstrapped CE);
    1 is the plain mean (the authors').
    """
    if logits.shape[-2:] != labels.shape or labels.max() >= logits.shape[0]:
        raise ValueError(
            f"expected labels H x W in 0..{logits.shape[0] - 1} for logits {tuple(logits.shape)}, "
            f"found {tuple(labels.shape)} with max {int(labels.max())}"
        )
    pixels = F.cross_entropy(logits.unsqueeze(0), labels.unsqueeze(0), reduction="none")  # 1xHxW
    if bootstrap >= 1.0:
        return pixels.mean()
    k = max(1, int(bootstrap * pixels.numel()))
    return torch.topk(pixels.flatten(), k, sorted=False).values.mean()


def clip_loss(frame_logits: list[Tensor], labels: Tensor, *, bootstrap: float = 1.0) -> Tensor:
    """Mean cross-entropy over the predicted frames of a clip.

    frame_logits: the logits of frames 1..N-1 ((K+1) x H x W each); labels: N x H x W (frame 0's is
    the given mask and is not scored).
    """
    if len(frame_logits) != len(labels) - 1:
        raise ValueError(f"expected {len(labels) - 1} predicted frames, got {len(frame_logits)}")
    losses = [
        aggregated_cross_entropy(logits, target, bootstrap=bootstrap)
        for logits, target in zip(frame_logits, labels[1:], strict=True)
    ]
    return torch.stack(losses).mean()


# --------------------------------------------------------------------------------------------------
# The r4 attention mass (an optional second loss)


def object_cells(labels: Tensor, num_objects: int) -> Tensor:
    """labels: N x H x W int64 in 0..K -> N x K x h x w booleans: the cells of the padded r4 grid
    of which at least half lie on object k (the cells :func:`hmmnlab.inside.teaching.saturation`
    counts)."""
    onehot = F.one_hot(labels, num_objects + 1)[..., 1:].permute(0, 3, 1, 2)  # N x K x H x W
    return ops.cells_on(onehot)


def attention_off_label(
    affinity: Tensor, memory_on: Tensor, query_on: Tensor
) -> tuple[Tensor, Tensor, int, int]:
    """The r4 attention that query cells put on memory cells of the other kind: query cells on the
    row's object on memory cells off it, and query cells off the object on memory cells on it.

    affinity: B x THW x HW, the r4 read's attention of every object row (``r4.affinity``: softmax
    over memory after the kernel, each column sums to 1); memory_on: B x THW booleans, memory
    cell on the row's object; query_on: B x HW booleans, query cell on the row's object.
    Returns (the sum over query cells on the object of 1 - their same-object share, the sum over
    the other query cells of their share on the object, the number of each). The first mean is
    1 - the same-object share of :func:`hmmnlab.inside.teaching.saturation`, with gradients; the
    second keeps a loss on the first alone from being met by drawing every query onto the object."""
    on_object = (affinity * memory_on.unsqueeze(-1).to(affinity.dtype)).sum(dim=1).float()  # BxHW
    query_on = query_on.float()
    off = ((1 - on_object) * query_on).sum()
    stray = (on_object * (1 - query_on)).sum()
    return off, stray, int(query_on.sum()), int((1 - query_on).sum())


# --------------------------------------------------------------------------------------------------
# The r4 attention loss (``--set attention_loss=W``), from the affinities a causal hook keeps


def keep_in(found: list):
    """A causal hook function that appends ``(ctx, value)`` to ``found`` and changes nothing."""

    def keep(value: Tensor, ctx: HookContext) -> None:
        found.append((ctx, value))

    return keep


def attention_term(
    clips: Sequence[Clip], affinities: Sequence[tuple[HookContext, Tensor]], device: torch.device
) -> Tensor:
    """The r4 attention loss of :func:`hmmnlab.train.loop.train_step`: the mean of
    :func:`attention_shares`'s two shares (each in [0, 1])."""
    off, stray = attention_shares(clips, affinities, device)
    return (off + stray) / 2


def attention_shares(
    clips: Sequence[Clip], affinities: Sequence[tuple[HookContext, Tensor]], device: torch.device
) -> tuple[Tensor, Tensor]:
    """Over the r4 query cells of the clips' predicted frames, with the true masks of the query and
    memory frames (see :func:`attention_off_label`): (the mean attention of
    query cells on an object off that object's memory cells, i.e. 1 - the same-object share; the
    mean attention of the other query cells on the object's memory cells).

    affinities: the ``r4.affinity`` of each step of :func:`hmmnlab.train.loop.forward_clips` on
    ``clips`` with its hook context (B x THW x HW, the rows the clips' objects in order)."""
    cells = [object_cells(c.labels.to(device), c.num_objects) for c in clips]  # N x K x h x w
    off = stray = torch.zeros((), device=device)
    n_on = n_off = 0
    for ctx, affinity in affinities:
        memory = list(ctx.memory_frames)
        memory_on = torch.cat(
            [c[memory].transpose(0, 1).flatten(1) for c in cells]
        )  # B x THW (memory frames oldest first, as the affinity's rows)
        query_on = torch.cat([c[ctx.frame].flatten(1) for c in cells])  # B x HW
        if memory_on.shape[1] != affinity.shape[1] or query_on.shape != affinity.shape[::2]:
            raise ValueError(
                f"r4.affinity {tuple(affinity.shape)} does not match the clips' r4 cells: "
                f"memory {tuple(memory_on.shape)}, query {tuple(query_on.shape)}"
            )
        o, s, a, b = attention_off_label(affinity, memory_on, query_on)
        off, stray, n_on, n_off = off + o, stray + s, n_on + a, n_off + b
    return off / max(n_on, 1), stray / max(n_off, 1)
