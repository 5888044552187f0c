"""Losses of the training loop.

STM and HMMN train with the cross-entropy of the soft-aggregated output: per-object foreground
probabilities ``p_o`` are merged by :func:`hmmnlab.ops.soft_aggregate` into logits ``l`` over
background + objects, whose softmax is the frame's probability map (exactly what inference argmaxes).
The loss of a pixel is ``-log softmax(l)[label]``, averaged over pixels and over predicted frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hmmnlab import ops


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
    of which at least half lie on object k (the cells :func:`hmmnlab.teaching.saturation`
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
    1 - the same-object share of :func:`hmmnlab.teaching.saturation`, with gradients; the second
    keeps a loss on the first alone from being met by drawing every query onto the object."""
    on_object = (affinity * memory_on.unsqueeze(-1).to(affinity.dtype)).sum(dim=1).float()  # BxHW
    query_on = query_on.float()
    off = ((1 - on_object) * query_on).sum()
    stray = (on_object * (1 - query_on)).sum()
    return off, stray, int(query_on.sum()), int((1 - query_on).sum())
