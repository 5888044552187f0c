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
non-local read over the fine memory; its affinity is T' HW x HW floats per object, e.g. 2 x 25920^2
x 4 B = 5.4 GB per object at r2 for 480p, so its query positions are read in chunks whose affinity
fits in ``ReadConfig.dense_chunk_mib``, with the same result) and ``none`` (no memory read at r3/r2:
the "no hierarchy" ablation; the decoder gets zeros).

:func:`read_variant` builds a :class:`~hmmnlab.config.ReadConfig` from a variant name and
parameters. Each read is a parameter-free module with hook points on the tensors a student wants to
see.

Both registries (:mod:`hmmnlab.registry`, re-exported here) are the only lists of variants:
:class:`~hmmnlab.config.ReadConfig` validates against them, and the CLI help and the tests read
them. A new variant is one function (a kernel may register ``defaults=``, the ReadConfig fields it
sets, and a fine read ``memory=``, its working memory for :mod:`hmmnlab.evaluation.resources`)::

    @register_kernel("box")                       # then read_variant("box") works everywhere
    def box_kernel(logits, track, h, w, config, module):
        # a box of side 5 around each memory row's best query position
        centres = module.centres(logits.argmax(dim=2))           # B x THW, a hook point
        y, x = ops.grid_coordinates(h, w, device=logits.device)  # HW, HW
        cy, cx = (centres // w).unsqueeze(-1), (centres % w).unsqueeze(-1)  # B x THW x 1
        box = ((y - cy).abs() <= 2) & ((x - cx).abs() <= 2)      # B x THW x HW
        return 0.1 + 0.9 * box.float()  # never 0: every query still reads something

A kernel function returns the kernel (B x THW x HW), a :class:`~hmmnlab.ops.KernelTrack`, or None
(no kernel); a fine read (:func:`~hmmnlab.registry.register_fine_read`) returns the read-out
B x Cv x sh x sw.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import NamedTuple

import torch
from torch import Tensor, nn

from hmmnlab import ops
from hmmnlab.allocator import available_bytes
from hmmnlab.config import ReadConfig
from hmmnlab.hooks import HookPoint, in_use
from hmmnlab.registry import (
    FINE_READ_MEMORY,
    FINE_READS,
    KERNEL_DEFAULTS,
    KERNELS,
    FineReadFn,
    KernelFn,
    describe,
    register_fine_read,
    register_kernel,
)

__all__ = [
    "FINE_READS",
    "FINE_READ_MEMORY",
    "KERNELS",
    "KERNEL_DEFAULTS",
    "VARIANT_DEFAULTS",
    "FineReadFn",
    "KernelFn",
    "describe",
    "read_variant",
    "register_fine_read",
    "register_kernel",
]

# ----------------------------------------------------------------------------------------------------
# Registries: hmmnlab.registry (re-exported here, where the built-in reads register themselves)

VARIANT_DEFAULTS = KERNEL_DEFAULTS  # the earlier name of the kernels' defaults


def _temporal(logits, track, h, w, config, module, *, flow_twice: bool):
    return ops.temporal_kernel(
        logits, track, h, w, window=config.window, sigma=config.sigma,
        sigma_growth=config.sigma_growth, flow_twice=flow_twice, hook=module.hook,
    )  # fmt: skip


@register_kernel("hmmn")
def hmmn_kernel(logits, track, h, w, config, module):
    """The authors' temporal kernel (``HMMN_SPEC.md`` section 5): newest flow applied twice."""
    return _temporal(logits, track, h, w, config, module, flow_twice=True)


@register_kernel("hmmn-paper")
def hmmn_paper_kernel(logits, track, h, w, config, module):
    """Temporal propagation as in the paper: older positions followed by the newest flow once."""
    return _temporal(logits, track, h, w, config, module, flow_twice=False)


@register_kernel("kmn", defaults={"sigma": 7.0})  # KMN used 7
def kmn_kernel(logits, track, h, w, config, module):
    """KMN's kernel: every memory row centred at its global argmax over query positions."""
    return ops.kmn_kernel(logits, h, w, sigma=config.sigma, hook=module.hook)


@register_kernel("stm")
def no_kernel(logits, track, h, w, config, module):
    """STM: no kernel, the plain non-local read."""
    return None


def read_variant(name: str = "hmmn", **params) -> ReadConfig:
    """A read configuration: the variant ``name`` (see :data:`KERNELS`) with ``params`` overriding
    any :class:`~hmmnlab.config.ReadConfig` field, e.g.
    ``read_variant("kmn", sigma=7, fine="dense")``."""
    if name not in KERNELS:
        raise ValueError(f"unknown read variant {name!r}; known: {sorted(KERNELS)}")
    fields = {f.name for f in dataclasses.fields(ReadConfig)}
    unknown = set(params) - fields
    if unknown:
        raise ValueError(f"unknown read parameters {sorted(unknown)}; known: {sorted(fields)}")
    return ReadConfig(**{**KERNEL_DEFAULTS.get(name, {}), **params, "variant": name})


class _HookPoints(nn.Module):
    """A read module whose hook points can also be called by name (``module.hook("flow", x)``)."""

    def hook(self, name: str, x: Tensor) -> Tensor:
        return self._modules[name](x)


# ----------------------------------------------------------------------------------------------------
# r4


class R4Result(NamedTuple):
    """Output of the r4 read. readout: B x Cv x h x w; affinity: B x (T*HW) x HW (after kernel);
    next_track: B x (T*HW), every memory position followed to the query frame (None without one)."""

    readout: Tensor
    affinity: Tensor
    next_track: Tensor | None


class KernelGuidedRead(_HookPoints):
    """The r4 read: non-local affinity, sharpened by the variant's Gaussian kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.affinity_logits = HookPoint()  # B x THW x HW affinity S = mk^T qk / sqrt(Ck)
        self.flow = HookPoint()  # B x HW window argmax of frame t-1's positions in frame t
        self.centres = HookPoint()  # B x THW kernel centre (query position) of every memory row
        self.sigmas = HookPoint()  # T kernel width of every memory frame, oldest first
        self.kernel = HookPoint()  # B x THW x HW Gaussian kernel G
        self.affinity = HookPoint()  # B x THW x HW softmax(S / temperature) * G, renormalised
        self.readout = HookPoint()  # B x Cv x h x w

    def forward(
        self, mk: Tensor, mv: Tensor, qk: Tensor, track: Tensor | None, config: ReadConfig
    ) -> R4Result:
        """mk: B x Ck x T x h x w, mv: B x Cv x T x h x w memory; qk: B x Ck x h x w query keys;
        track: B x ((T-1)*HW) older memory positions in frame t-1 (None when T == 1)."""
        h, w = qk.shape[-2:]
        logits = self.affinity_logits(ops.affinity(mk, qk))  # B x THW x HW
        kernel = KERNELS[config.variant](logits, track, h, w, config, self)
        next_track = None
        if isinstance(kernel, ops.KernelTrack):
            kernel, next_track = kernel.kernel, kernel.next_track
        if kernel is not None:
            if kernel.shape != logits.shape:
                raise ValueError(
                    f"r4 kernel {config.variant!r} returned shape {tuple(kernel.shape)}, "
                    f"expected the affinity's {tuple(logits.shape)} (B x THW x HW)"
                )
            kernel = self.kernel(kernel.to(logits.dtype))
        p = self.affinity(ops.kernel_softmax(logits, kernel, config.temperature))
        readout = self.readout(ops.read_out(mv, p, h, w))
        return R4Result(readout, p, next_track)


# ----------------------------------------------------------------------------------------------------
# r3, r2


def guidance_affinity(p: Tensor, hw: int, guidance: str = "first-last") -> Tensor:
    """The rows of the r4 affinity that guide the fine reads. "first-last": frame 0 and frame t-1
    (the frames of the r3/r2 memory), or all rows when the memory holds one frame; "all": every
    memory frame. B x (T'*HW) x HW."""
    if guidance == "all" or p.shape[1] == hw:
        return p
    return torch.cat([p[:, :hw], p[:, -hw:]], dim=1)


def guidance_frames(memory_frames: tuple[int, ...], read: ReadConfig) -> list[int]:
    """The r4 memory frames whose affinity rows guide the fine reads (see
    :func:`guidance_affinity`)."""
    if read.guidance == "all" or len(memory_frames) == 1:
        return list(memory_frames)
    return [memory_frames[0], memory_frames[-1]]


def clamp_k(k: int, available: int, scale: str) -> int:
    """k limited to the number of memory positions, with a warning (the authors' code crashes)."""
    if k > available:
        warnings.warn(
            f"top-k at {scale}: k = {k} but the memory has only {available} r4 positions; "
            f"using k = {available}",
            stacklevel=4,
        )
        return available
    return k


class Guidance:
    """What guides the fine reads of one step: the r4 affinity rows of the guiding frames
    (:func:`guidance_affinity`, computed on first use) and their top-k selection, computed once
    for the largest k and shared by r3 and r2 (r2 takes the first k of r3's selection)."""

    def __init__(self, p4: Tensor, hw: int, guidance: str) -> None:
        self.p4, self.hw, self.guidance = p4, hw, guidance  # p4: B x THW x HW r4 affinity
        self._rows: Tensor | None = None
        self._indices: Tensor | None = None

    @property
    def rows(self) -> Tensor:
        """B x T'HW x HW: the guiding rows of the r4 affinity."""
        if self._rows is None:
            self._rows = guidance_affinity(self.p4, self.hw, self.guidance)
        return self._rows

    def topk(self, k: int, scale: str) -> Tensor:
        """B x HW x k guiding rows (memory cells) with the largest affinity per r4 query cell, best
        first; k is clamped (with a warning) to the rows available, and to an earlier selection."""
        if self._indices is None:
            k = clamp_k(k, self.rows.shape[1], scale)
            self._indices, _ = ops.topk_guidance(self.rows, k)  # B x HW x k, best first
        return self._indices[:, :, :k]


DENSE_COPIES = 3  # a chunk of the dense read holds its logits, their softmax and a flushed copy
FLOAT_BYTES = 4  # the softmax is float32, under autocast too


def topk_bytes(num_objects: int, hw: int, frames: int, config: ReadConfig) -> int:
    """The top-k reads' attention: B x HW x s^2 x k s^2 floats at r3 (s = 2) and r2 (s = 4)."""
    return num_objects * hw * (4 * config.k_r3 * 4 + 16 * config.k_r2 * 16) * FLOAT_BYTES


@register_fine_read("topk", memory=topk_bytes)
def topk_read(mk, mv, qk, guidance, config, module):
    """Attend over the fine cells of the k r4 cells chosen by the r4 affinity (HMMN)."""
    k = config.k_r3 if module.scale == "r3" else config.k_r2
    indices = module.topk_indices(guidance.topk(k, module.scale))  # B x HW4 x k
    readout, _, _ = ops.topk_guided_read(mk, mv, qk, indices, module.s, hook=module.hook)
    return readout


def dense_bytes(num_objects: int, hw: int, frames: int, config: ReadConfig) -> int:
    """The dense read at r2 (16 HW positions), in chunks of at most ``dense_chunk_mib``."""
    fine_frames = frames if config.guidance == "all" else min(frames, 2)
    whole = DENSE_COPIES * num_objects * fine_frames * (16 * hw) ** 2 * FLOAT_BYTES
    return min(whole, int(config.dense_chunk_mib * 2**20))


@register_fine_read("dense", memory=dense_bytes)
def dense_read(mk, mv, qk, guidance, config, module):
    """Attend over every fine memory position (in chunks of queries within dense_chunk_mib)."""
    chunk = dense_chunk(mk, qk, config, module.scale)
    if not in_use(module.attention):
        return ops.dense_read(mk, mv, qk, chunk=chunk)  # the affinity never exists whole
    # a trace or a causal hook sees (and may replace) the whole attention B x T'HW x HW
    check_whole_attention_fits(mk, qk, chunk, module.scale)
    p = module.attention(ops.dense_attention(mk, qk, chunk=chunk))  # B x T'HW x HW
    return ops.read_out(mv, p, *qk.shape[-2:])


@register_fine_read("none", memory=lambda num_objects, hw, frames, config: 0)
def no_read(mk, mv, qk, guidance, config, module):
    """No memory read at this scale: the decoder gets zeros (the "no hierarchy" ablation)."""
    B, Cv = mv.shape[:2]
    return mv.new_zeros(B, Cv, *qk.shape[-2:])


class FineRead(_HookPoints):
    """A fine-scale read (r3 or r2): the registered fine read ``ReadConfig.fine``."""

    def __init__(self, scale: str, stride_ratio: int) -> None:
        super().__init__()
        self.scale = scale
        self.s = stride_ratio  # fine cells per r4 cell along each axis (2 at r3, 4 at r2)
        self.topk_indices = HookPoint()  # B x HW4 x k selected r4 memory cells, best first
        self.attention = HookPoint()  # topk: B x HW4 x s^2 x k s^2; dense: B x T'HW x HW
        self.readout = HookPoint()  # B x Cv x sh x sw

    def forward(
        self, mk: Tensor, mv: Tensor, qk: Tensor, guidance: Guidance, config: ReadConfig
    ) -> Tensor:
        """mk, mv: B x C x T' x (s h) x (s w) fine memory; qk: B x Ck x (s h) x (s w) query keys;
        guidance: the r4 affinity rows that guide the read (shared by r3 and r2)."""
        readout = FINE_READS[config.fine](mk, mv, qk, guidance, config, self)
        expected = (mk.shape[0], mv.shape[1], *qk.shape[-2:])
        if readout.shape != expected:
            raise ValueError(
                f"fine read {config.fine!r} at {self.scale} returned shape "
                f"{tuple(readout.shape)}, expected {expected} (B x Cv x H x W)"
            )
        return self.readout(readout)


def dense_chunk(mk: Tensor, qk: Tensor, config: ReadConfig, scale: str) -> int | None:
    """Query positions per chunk of a dense read so that a chunk's B x T'HW x n floats (times
    :data:`DENSE_COPIES`) fit in ``config.dense_chunk_mib``; None when the whole read fits. A
    budget below one query position's column is refused, saying how much one column needs."""
    B, _, T = mk.shape[:3]
    hw = qk.shape[-2] * qk.shape[-1]
    column = DENSE_COPIES * B * T * hw * FLOAT_BYTES  # bytes per query position
    budget = config.dense_chunk_mib * 2**20
    if column > budget:
        raise ValueError(
            f"a dense read at {scale} needs about {column / 2**20:.3g} MiB for even one query "
            f"position ({B} objects x {T * hw} memory positions x {DENSE_COPIES} float32 "
            f"copies), over ReadConfig.dense_chunk_mib = {config.dense_chunk_mib}; raise it or "
            "use fine='topk'"
        )
    chunk = int(budget // column)
    return None if chunk >= hw else chunk


def check_whole_attention_fits(mk: Tensor, qk: Tensor, chunk: int | None, scale: str) -> None:
    """Refuse to build the whole dense attention (for a hook on it) beyond the device's free
    memory, before allocating it."""
    B, _, T = mk.shape[:3]
    hw = qk.shape[-2] * qk.shape[-1]
    need = B * T * hw * (hw + 2 * (chunk or hw)) * FLOAT_BYTES  # the whole, and a chunk's work
    free = available_bytes(mk.device)
    if free is not None and need > free:
        raise ValueError(
            f"a hook on {scale}.attention needs the whole dense attention ({B} objects x "
            f"{T * hw} memory x {hw} query positions), about {need / 2**30:.1f} GiB, but "
            f"{mk.device} has {free / 2**30:.1f} GiB free; trace other names, or use a smaller "
            "video"
        )
