"""Memory reads and their variants, chosen at inference time with the same weights.

The r4 read is non-local matching sharpened by a Gaussian kernel; which kernel is a registered
*variant* (:data:`KERNELS`):

=============  ===================================================================================
``hmmn``       the authors' code: window argmax on frame t-1, kernels propagated to older frames
               (the newest flow applied twice, as their code does); the default, exact parity
``hmmn-paper`` the same, with temporal propagation as the paper words it (newest flow once)
``kmn``        KMN's kernel: argmax over all query positions for every memory row, no window, no
               propagation, one sigma for all frames (KMN used 7)
``stm``        no kernel: STM's plain non-local read
=============  ===================================================================================

The r3/r2 reads (:data:`FINE_READS`) are ``topk`` (HMMN's top-k guided read), ``dense`` (full
non-local read over the fine memory; its affinity is T' HW x HW floats per object, e.g. 2 x 25920^2 x 4 B
= 5.4 GB per object at r2 for 480p, so it is refused above ``ReadConfig.dense_max_gib``) and ``none``
(no memory read at r3/r2: the "no hierarchy" ablation; the decoder gets zeros).

:func:`read_variant` builds a :class:`~hmmnlab.config.ReadConfig` from a variant name and parameters.
Each read is a parameter-free module with hook points on the tensors a student wants to see.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from hmmnlab import ops
from hmmnlab.config import ReadConfig
from hmmnlab.hooks import HookPoint

# ----------------------------------------------------------------------------------------------------
# Registries

KernelFn = Callable[[Tensor, Tensor | None, int, int, ReadConfig], ops.KernelTrack | None]
KERNELS: dict[str, KernelFn] = {}
FINE_READS: dict[str, str] = {}

# Parameters a named variant sets unless the caller gives them.
VARIANT_DEFAULTS: dict[str, dict] = {"kmn": {"sigma": 7.0}}


def register_kernel(name: str) -> Callable[[KernelFn], KernelFn]:
    """Register an r4 kernel function under ``name`` (names must be unique)."""

    def decorate(fn: KernelFn) -> KernelFn:
        if name in KERNELS:
            raise ValueError(f"an r4 read variant named {name!r} is already registered")
        KERNELS[name] = fn
        return fn

    return decorate


def _temporal(logits, track, h, w, config, *, flow_twice: bool):
    return ops.temporal_kernel(
        logits, track, h, w, window=config.window, sigma=config.sigma,
        sigma_growth=config.sigma_growth, flow_twice=flow_twice,
    )  # fmt: skip


@register_kernel("hmmn")
def hmmn_kernel(logits, track, h, w, config):
    """The authors' temporal kernel (``HMMN_SPEC.md`` section 5): newest flow applied twice."""
    return _temporal(logits, track, h, w, config, flow_twice=True)


@register_kernel("hmmn-paper")
def hmmn_paper_kernel(logits, track, h, w, config):
    """Temporal propagation as in the paper: older positions followed by the newest flow once."""
    return _temporal(logits, track, h, w, config, flow_twice=False)


@register_kernel("kmn")
def kmn_kernel(logits, track, h, w, config):
    """KMN's kernel: every memory row centred at its global argmax over query positions."""
    return ops.kmn_kernel(logits, h, w, sigma=config.sigma)


@register_kernel("stm")
def no_kernel(logits, track, h, w, config):
    """STM: no kernel."""
    return None


def read_variant(name: str = "hmmn", **params) -> ReadConfig:
    """A read configuration: the variant ``name`` (see :data:`KERNELS`) with ``params`` overriding
    any :class:`~hmmnlab.config.ReadConfig` field, e.g. ``read_variant("kmn", sigma=7, fine="dense")``."""
    if name not in KERNELS:
        raise ValueError(f"unknown read variant {name!r}; known: {sorted(KERNELS)}")
    fields = {f.name for f in dataclasses.fields(ReadConfig)}
    unknown = set(params) - fields
    if unknown:
        raise ValueError(f"unknown read parameters {sorted(unknown)}; known: {sorted(fields)}")
    return ReadConfig(**{**VARIANT_DEFAULTS.get(name, {}), **params, "variant": name})


# ----------------------------------------------------------------------------------------------------
# r4


class R4Result(NamedTuple):
    """Output of the r4 read. readout: B x Cv x h x w; affinity: B x (T*HW) x HW (after kernel);
    next_track: B x (T*HW), every memory position followed to the query frame (None without one)."""

    readout: Tensor
    affinity: Tensor
    next_track: Tensor | None


class KernelGuidedRead(nn.Module):
    """The r4 read: non-local affinity, sharpened by the variant's Gaussian kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.affinity_logits = HookPoint()  # B x THW x HW affinity S = mk^T qk / sqrt(Ck)
        self.flow = HookPoint()  # B x HW window argmax of frame t-1's positions in frame t
        self.centres = HookPoint()  # B x THW kernel centre (query position) of every memory row
        self.sigmas = HookPoint()  # T kernel width of every memory frame, oldest first
        self.kernel = HookPoint()  # B x THW x HW Gaussian kernel G
        self.affinity = HookPoint()  # B x THW x HW softmax(S) * G, renormalised over memory
        self.readout = HookPoint()  # B x Cv x h x w

    def forward(
        self, mk: Tensor, mv: Tensor, qk: Tensor, track: Tensor | None, config: ReadConfig
    ) -> R4Result:
        """mk: B x Ck x T x h x w, mv: B x Cv x T x h x w memory; qk: B x Ck x h x w query keys;
        track: B x ((T-1)*HW) older memory positions in frame t-1 (None when T == 1)."""
        h, w = qk.shape[-2:]
        logits = self.affinity_logits(ops.affinity(mk, qk))  # B x THW x HW
        kernel = KERNELS[config.variant](logits, track, h, w, config)
        if kernel is not None:
            self.flow(kernel.flow)
            self.centres(kernel.centres)
            self.sigmas(kernel.sigmas)
        g = None if kernel is None else self.kernel(kernel.kernel)
        p = self.affinity(ops.kernel_softmax(logits, g))
        readout = self.readout(ops.read_out(mv, p, h, w))
        return R4Result(readout, p, None if kernel is None else kernel.next_track)


# ----------------------------------------------------------------------------------------------------
# r3, r2


def guidance_affinity(p: Tensor, hw: int, guidance: str = "first-last") -> Tensor:
    """The rows of the r4 affinity that guide the fine reads. "first-last": frame 0 and frame t-1
    (the frames of the r3/r2 memory), or all rows when the memory holds one frame; "all": every
    memory frame. B x (T'*HW) x HW."""
    if guidance == "all" or p.shape[1] == hw:
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


def register_fine_read(name: str, description: str) -> None:
    if name in FINE_READS:
        raise ValueError(f"a fine read named {name!r} is already registered")
    FINE_READS[name] = description


register_fine_read("topk", "attend over the fine cells of the k r4 cells chosen by the r4 affinity")
register_fine_read("dense", "attend over every fine memory position (memory grows as HW^2)")
register_fine_read("none", "no memory read at this scale: the decoder gets zeros")


class FineRead(nn.Module):
    """A fine-scale read (r3 or r2): top-k guided, dense, or none (``ReadConfig.fine``)."""

    def __init__(self, scale: str, stride_ratio: int) -> None:
        super().__init__()
        self.scale = scale
        self.s = stride_ratio  # fine cells per r4 cell along each axis (2 at r3, 4 at r2)
        self.topk_indices = HookPoint()  # B x HW4 x k selected r4 memory cells, best first
        self.attention = HookPoint()  # topk: B x HW4 x s^2 x k s^2; dense: B x T'HW x HW
        self.readout = HookPoint()  # B x Cv x sh x sw

    def forward(
        self, mk: Tensor, mv: Tensor, qk: Tensor, indices: Tensor | None, config: ReadConfig
    ) -> Tensor:
        """mk, mv: B x C x T' x (s h) x (s w) fine memory; qk: B x Ck x (s h) x (s w) query keys;
        indices: B x HW4 x k r4 memory cells (rows of the guidance affinity) per r4 query cell."""
        if config.fine == "none":
            B, Cv = mv.shape[:2]
            return self.readout(mv.new_zeros(B, Cv, *qk.shape[-2:]))
        if config.fine == "dense":
            check_dense_fits(mk, qk, config, self.scale)
            p = self.attention(torch.softmax(ops.affinity(mk, qk), dim=1))  # B x T'HW x HW
            return self.readout(ops.read_out(mv, p, *qk.shape[-2:]))
        indices = self.topk_indices(indices)
        readout, attention, _ = ops.topk_guided_read(mk, mv, qk, indices, self.s)
        self.attention(attention)
        return self.readout(readout)


def check_dense_fits(mk: Tensor, qk: Tensor, config: ReadConfig, scale: str) -> None:
    """Refuse a dense read whose affinity (and its softmax) would exceed ``config.dense_max_gib``."""
    B, _, T = mk.shape[:3]
    hw = qk.shape[-2] * qk.shape[-1]
    gib = 2 * B * T * hw * hw * mk.element_size() / 2**30
    if gib > config.dense_max_gib:
        raise ValueError(
            f"a dense read at {scale} needs about {gib:.1f} GiB for its affinity ({B} objects x "
            f"{T * hw} memory x {hw} query positions, twice), over ReadConfig.dense_max_gib = "
            f"{config.dense_max_gib}; use fine='topk', a smaller video, or raise the limit"
        )
