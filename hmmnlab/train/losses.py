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
