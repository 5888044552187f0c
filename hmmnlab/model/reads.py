"""Memory reads: the kernel-guided read at r4 and the top-k guided reads at r3 and r2.

Each read is a parameter-free module around the pure functions of :mod:`hmmnlab.ops`, with hook
points on the tensors a student wants to see.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import Tensor, nn

from hmmnlab import ops
from hmmnlab.config import ReadConfig
from hmmnlab.hooks import HookPoint


class R4Result(NamedTuple):
    """Output of the r4 read. readout: B x Cv x h x w; affinity: B x (T*HW) x HW (after kernel);
    next_track: B x (T*HW), every memory position followed to the query frame."""

    readout: Tensor
    affinity: Tensor
    next_track: Tensor


class KernelGuidedRead(nn.Module):
    """HMMN's r4 read: non-local affinity, sharpened by Gaussian kernels tracked through time."""

    def __init__(self) -> None:
        super().__init__()
        self.hook_logits = HookPoint()  # B x THW x HW affinity logits S (before softmax)
        self.hook_flow = HookPoint()  # B x HW window argmax of frame t-1's positions in frame t
        self.hook_centres = HookPoint()  # B x THW kernel centre (query position) of every row
        self.hook_sigmas = HookPoint()  # T kernel width per memory frame
        self.hook_kernel = HookPoint()  # B x THW x HW Gaussian kernel G
        self.hook_affinity = HookPoint()  # B x THW x HW softmax(S) * G, renormalised
        self.hook_readout = HookPoint()  # B x Cv x h x w

    def forward(
        self, mk: Tensor, mv: Tensor, qk: Tensor, track: Tensor | None, config: ReadConfig
    ) -> R4Result:
        """mk: B x Ck x T x h x w, mv: B x Cv x T x h x w memory; qk: B x Ck x h x w query keys;
        track: B x ((T-1)*HW) older memory positions in frame t-1 (None when T == 1)."""
        h, w = qk.shape[-2:]
        logits = self.hook_logits(ops.affinity(mk, qk))  # B x THW x HW
        kernel = ops.temporal_kernel(
            logits,
            track,
            h,
            w,
            window=config.window,
            sigma=config.sigma,
            sigma_growth=config.sigma_growth,
        )
        self.hook_flow(kernel.flow)
        self.hook_centres(kernel.centres)
        self.hook_sigmas(kernel.sigmas)
        p = self.hook_affinity(ops.kernel_softmax(logits, self.hook_kernel(kernel.kernel)))
        readout = self.hook_readout(ops.read_out(mv, p, h, w))
        return R4Result(readout, p, kernel.next_track)


def guidance_affinity(p: Tensor, hw: int) -> Tensor:
    """The rows of the r4 affinity that guide the fine reads: frame 0 and frame t-1 (the frames of
    the r3/r2 memory), or all rows when the memory holds one frame. B x (T'*HW) x HW."""
    if p.shape[1] == hw:
        return p
    return torch.cat([p[:, :hw], p[:, -hw:]], dim=1)


def clamp_k(k: int, available: int, scale: str) -> int:
    """k limited to the number of memory positions, with a warning (the authors' code crashes)."""
    if k > available:
        warnings.warn(
            f"top-k at {scale}: k = {k} but the memory has only {available} r4 positions; "
            f"using k = {available}",
            stacklevel=3,
        )
        return available
    return k


class TopkGuidedRead(nn.Module):
    """A fine-scale read (r3 or r2) restricted to the memory cells selected at r4."""

    def __init__(self, scale: str, stride_ratio: int) -> None:
        super().__init__()
        self.scale = scale
        self.s = stride_ratio  # fine cells per r4 cell along each axis (2 at r3, 4 at r2)
        self.hook_topk_indices = HookPoint()  # B x HW4 x k selected r4 memory cells, best first
        self.hook_attention = HookPoint()  # B x HW4 x s^2 x k s^2 attention over the selection
        self.hook_readout = HookPoint()  # B x Cv x sh x sw

    def forward(self, mk: Tensor, mv: Tensor, qk: Tensor, indices: Tensor) -> Tensor:
        """mk, mv: B x C x T' x (s h) x (s w) memory (frame 0, frame t-1); qk: B x Ck x (s h) x (s w);
        indices: B x HW4 x k r4 memory cells (rows of the guidance affinity) per r4 query cell."""
        indices = self.hook_topk_indices(indices)
        readout, attention, _ = ops.topk_guided_read(mk, mv, qk, indices, self.s)
        self.hook_attention(attention)
        return self.hook_readout(readout)
