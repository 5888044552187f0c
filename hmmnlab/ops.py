"""The maths of an HMMN memory read, as pure tensor functions.

Nothing here holds state or parameters. Notation (as in the paper and ``HMMN_SPEC.md``):
``B`` objects (a video's objects are processed as a batch), ``C`` channels, ``T`` memory frames,
``h x w`` the feature grid at one scale, ``HW = h * w``. Positions are flattened row-major
(``index = y * w + x``); memory positions frame-major (``index = t * HW + y * w + x``).
Affinity matrices have memory positions as rows and query positions as columns: ``B x (T*HW) x HW``.

A few functions take ``hook``: ``hook(name, x)`` returns the tensor to go on with instead of the
intermediate ``x`` called ``name`` (default: ``x`` itself). This is where the model's hook points plug
into the maths (:mod:`hmmnlab.hooks`); the functions stay pure for a pure ``hook``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

Hook = Callable[[str, Tensor], Tensor]


def _no_hook(name: str, x: Tensor) -> Tensor:
    return x


# ----------------------------------------------------------------------------------------------------
# Padding


class Padding(NamedTuple):
    """Zero padding added around a frame: (left, right, top, bottom) pixels."""

    left: int
    right: int
    top: int
    bottom: int


def padding_for(height: int, width: int, multiple: int = 16) -> Padding:
    """The authors' padding: grow each side to a multiple of ``multiple``, split as evenly as possible
    (the smaller half on top / on the left)."""

    def split(size: int) -> tuple[int, int]:
        new = size if size % multiple == 0 else size + (multiple - size % multiple)
        before = (new - size) // 2
        return before, new - size - before

    top, bottom = split(height)
    left, right = split(width)
    return Padding(left, right, top, bottom)


def padded_grid(height: int, width: int, stride: int = 16) -> tuple[int, int]:
    """(h, w) of the grid at ``stride`` of an H x W frame padded by :func:`padding_for`: the r4
    grid by default (stride 16; r3: 8, r2: 4)."""
    left, right, top, bottom = padding_for(height, width)
    return (height + top + bottom) // stride, (width + left + right) // stride


def pad(x: Tensor, padding: Padding) -> Tensor:
    """Zero-pad the last two dimensions of ``x`` (``... x H x W``)."""
    if not any(padding):
        return x
    return F.pad(x, tuple(padding))


def cells_on(onehot: Tensor, stride: int = 16) -> Tensor:
    """onehot: ... x H x W object masks in {0, 1} -> ... x h x w booleans: the cells of the padded
    grid at ``stride`` (r4 by default) of which at least half lie on the object."""
    height, width = onehot.shape[-2:]
    padded = pad(onehot.float(), padding_for(height, width)).flatten(0, -3).unsqueeze(1)
    share = F.avg_pool2d(padded, stride)[:, 0]  # (...) x h x w
    return (share >= 0.5).reshape(*onehot.shape[:-2], *share.shape[-2:])


def unpad(x: Tensor, padding: Padding) -> Tensor:
    """Crop what :func:`pad` added from the last two dimensions of ``x``."""
    left, right, top, bottom = padding
    height, width = x.shape[-2:]
    return x[..., top : height - bottom, left : width - right]


# ----------------------------------------------------------------------------------------------------
# Affinity and the Gaussian kernel (r4)


def affinity(mk: Tensor, qk: Tensor) -> Tensor:
    """Scaled dot-product affinity ``S = mk^T qk / sqrt(C)``.

    mk: B x C x T x h x w memory keys; qk: B x C x h x w query keys (or B x C x n: any n query
    positions). Returns B x (T*h*w) x (h*w) logits (rows memory positions, columns query
    positions).
    """
    B, C = mk.shape[:2]
    mk = mk.reshape(B, C, -1)  # B x C x THW
    qk = qk.reshape(B, C, -1)  # B x C x HW
    return torch.bmm(mk.transpose(1, 2), qk) / math.sqrt(C)  # B x THW x HW


def grid_coordinates(h: int, w: int, *, device=None) -> tuple[Tensor, Tensor]:
    """Row (y) and column (x) of every flattened position of an h x w grid, as float32 (HW,)."""
    index = torch.arange(h * w, device=device)
    return (index // w).float(), (index % w).float()


def window_mask(h: int, w: int, window: int, *, device=None) -> Tensor:
    """HW x HW bool: True where query position (column) lies in the ``window x window`` square
    centred on memory position (row), clipped at the borders.

    The mask depends on the grid only, so it is built once per (h, w, window, device) and the same
    tensor is returned to every caller (``functools.lru_cache``): it is shared, never modify it in
    place (``mask.clone()`` first)."""
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and device.index is None:  # "cuda" and "cuda:0" share one entry
        device = torch.device("cuda", torch.cuda.current_device())
    return _window_mask(int(h), int(w), int(window), str(device))


@functools.lru_cache(maxsize=32)
def _window_mask(h: int, w: int, window: int, device: str) -> Tensor:
    # a normal tensor even when first asked for under torch.inference_mode(): an inference tensor
    # could not be used later by code that records autograd (training)
    with torch.inference_mode(False):
        y, x = grid_coordinates(h, w, device=device)
        radius = window // 2
        near_y = (y[:, None] - y[None, :]).abs() <= radius  # HW x HW
        near_x = (x[:, None] - x[None, :]).abs() <= radius  # HW x HW
        return near_y & near_x


def window_argmax(logits_last: Tensor, h: int, w: int, window: int) -> Tensor:
    """For every position of the last memory frame, its best-matching query position nearby.

    logits_last: B x HW x HW affinity logits of the last memory frame (frame t-1).
    Returns B x HW int64: ``idx[b, m]`` = argmax over the query positions inside the window around
    memory position m. This is the flow from frame t-1 to frame t that centres the Gaussian kernels.
    """
    allowed = window_mask(h, w, window, device=logits_last.device)  # HW x HW, shared: read only
    masked = torch.where(allowed, logits_last, float("-inf"))  # B x HW x HW
    return masked.argmax(dim=2)  # B x HW


# Below this, float32 exp is subnormal or 0 (the first subnormal result is at -87.33655).
_EXP_NORMAL_FLOOR = -87.336
_EXP_ZERO = -110.0  # exp(-110) ~ 1.7e-48 is 0 in float32, as is exp of anything below it
_EXP_CHUNK = 1 << 20  # elements per piece of the float64 path (bounds its temporary memory)


def exp_without_stall(x: Tensor) -> Tensor:
    """``torch.exp(x)``, the same bits, without most of the CPU's slow path for results that
    underflow.

    On the CPU, torch's vectorised float32 exp leaves its fast path for a whole vector of lanes
    when one result is subnormal or 0 (an argument below about -87.3): measured on an Intel Xeon,
    2 x 1620 x 405 arguments take 1 ms when every result is normal and 30-45 ms when most
    underflow. A narrow Gaussian kernel is mostly such arguments (sigma 0.5 cells: every cell
    more than 6.6 cells from the centre). Where many results underflow (an eighth or more of a
    piece of ``_EXP_CHUNK`` elements), the normal results come from the fast path (arguments
    clamped at the floor: the same lanes, the same bits) and the others from float64's exp, which
    does not underflow there, rounded to float32: on x86 (AVX-512, AVX2 and torch's unvectorised
    code) the same bits as ``torch.exp`` for every float32 argument in [-110, -80], checked by the
    tests; below -110 both are 0. Elsewhere (another dtype or device, or an ``x`` that needs
    gradients) it is ``torch.exp``.
    """
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.numel() == 0 or x.requires_grad:
        return torch.exp(x)
    if not bool(x.min() < _EXP_NORMAL_FLOOR):  # nothing underflows (or x holds NaN)
        return torch.exp(x)
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    pieces = zip(x.reshape(-1).split(_EXP_CHUNK), out.view(-1).split(_EXP_CHUNK), strict=True)
    for part_x, part_out in pieces:
        low = part_x < _EXP_NORMAL_FLOOR  # the results that underflow
        if int(low.sum()) * 8 < part_x.numel():  # few: the slow path costs less than the detour
            torch.exp(part_x, out=part_out)
            continue
        torch.exp(part_x.clamp(min=_EXP_NORMAL_FLOOR), out=part_out)  # all normal: the fast path
        tiny = part_x.clamp(_EXP_ZERO, _EXP_NORMAL_FLOOR).double().exp_().float()  # 0, subnormal
        torch.where(low, tiny, part_out, out=part_out)
    return out


def gaussian_kernel(centres: Tensor, sigma: Tensor | float, h: int, w: int) -> Tensor:
    """Gaussian kernel rows over the query grid.

    centres: B x N int64, a query position per row; sigma: a number or an N tensor (per row).
    Returns B x N x HW: ``g(y, x) = exp(-((x - cx)^2 + (y - cy)^2) / (2 sigma^2))``.
    """
    y, x = grid_coordinates(h, w, device=centres.device)  # HW, HW
    cy = (centres // w).float().unsqueeze(-1)  # B x N x 1
    cx = (centres % w).float().unsqueeze(-1)  # B x N x 1
    squared = (x - cx) ** 2 + (y - cy) ** 2  # B x N x HW
    if isinstance(sigma, Tensor):
        sigma = sigma.to(squared.dtype).view(1, -1, 1)  # 1 x N x 1
    return exp_without_stall(-squared / (2 * sigma**2))


class KernelTrack(NamedTuple):
    """What the r4 kernel computes for one read.

    flow: B x HW, window argmax of each position of frame t-1 in frame t (query positions).
    centres: B x (T*HW), the query position each memory row's kernel is centred on.
    sigmas: T, the kernel width of each memory frame (oldest first; the last is ``sigma``).
    kernel: B x (T*HW) x HW, the Gaussian kernel rows (frame-major, frame 0 first).
    next_track: B x (T*HW), every memory position mapped to a position of frame t (the query frame);
        the memory bank keeps the entries of the frames it keeps, for the next read (None when the
        kernel carries nothing over time).
    """

    flow: Tensor
    centres: Tensor
    sigmas: Tensor
    kernel: Tensor
    next_track: Tensor | None


def temporal_kernel(
    logits: Tensor,
    track: Tensor | None,
    h: int,
    w: int,
    *,
    window: int = 7,
    sigma: float = 3.0,
    sigma_growth: float = 0.5,
    flow_twice: bool = True,
    hook: Hook = _no_hook,
) -> KernelTrack:
    """HMMN's kernel with temporal propagation (``HMMN_SPEC.md`` section 5, steps 2-4).

    logits: B x (T*HW) x HW affinity logits. track: B x ((T-1)*HW) int64 mapping every position of the
    older memory frames (all but the last) to a position of frame t-1, or None when T == 1.
    Frame t-1's kernel rows (sigma) are centred at its window argmax ``flow``. An older frame k steps
    back gets ``sigma * (1 + sigma_growth * k)``; its position m is followed to frame t-1 through the
    track and then to frame t through ``flow``. ``flow_twice=True`` reproduces the authors' code, which
    applies the newest flow once more (centre ``flow[flow[track[m]]]``); ``flow_twice=False`` is the
    paper's wording (centre ``flow[track[m]]``). ``hook`` sees ``flow``, ``centres``, ``sigmas``.
    """
    B, THW, HW = logits.shape
    T = THW // HW
    flow = hook("flow", window_argmax(logits[:, -HW:], h, w, window))  # B x HW
    if T == 1:
        track_new = flow.new_zeros(B, 0)
    else:
        if track is None or track.shape != (B, (T - 1) * HW):
            found = None if track is None else tuple(track.shape)
            raise ValueError(
                f"kernel track must be {(B, (T - 1) * HW)} for {T} memory frames, got {found}"
            )
        track_new = flow.gather(1, track)  # B x (T-1)HW: older positions -> frame t
    older_centres = flow.gather(1, track_new) if flow_twice else track_new
    centres = hook("centres", torch.cat([older_centres, flow], dim=1))  # B x THW
    steps_back = torch.arange(T - 1, -1, -1, device=logits.device, dtype=torch.float32)  # T
    sigmas = hook("sigmas", sigma * (1 + sigma_growth * steps_back))  # T (oldest first)
    kernel = gaussian_kernel(centres, sigmas.repeat_interleave(HW), h, w)  # B x THW x HW
    next_track = torch.cat([track_new, flow], dim=1)  # B x THW
    return KernelTrack(flow, centres, sigmas, kernel, next_track)


def kmn_kernel(
    logits: Tensor, h: int, w: int, *, sigma: float = 7.0, hook: Hook = _no_hook
) -> KernelTrack:
    """KMN's kernel (Seong et al., ECCV 2020): every memory row centred at its argmax over *all*
    query positions, one ``sigma`` for every frame, no window and no temporal propagation.

    logits: B x (T*HW) x HW. ``next_track`` is None: nothing is carried to the next frame.
    ``flow`` is the centres of frame t-1's rows; ``hook`` sees ``flow``, ``centres``, ``sigmas``.
    """
    B, THW, HW = logits.shape
    argmax = logits.argmax(dim=2)  # B x THW
    flow = hook("flow", argmax[:, -HW:])  # B x HW
    centres = hook("centres", torch.cat([argmax[:, :-HW], flow], dim=1))  # B x THW
    sigmas = hook("sigmas", torch.full((THW // HW,), float(sigma), device=logits.device))  # T
    kernel = gaussian_kernel(centres, sigmas.repeat_interleave(HW), h, w)  # B x THW x HW
    return KernelTrack(flow, centres, sigmas, kernel, None)


def kernel_softmax(logits: Tensor, kernel: Tensor | None, temperature: float = 1.0) -> Tensor:
    """``P = softmax(S / tau) * G / sum(softmax(S / tau) * G)`` over memory positions (dim 1).

    logits: B x (T*HW) x HW; kernel: same shape, or None for the plain softmax (STM's read);
    temperature tau (1: the authors' read). A larger tau flattens softmax(S), so that the kernel's
    factor can outweigh a look-alike's higher affinity far away.
    Computed in float32 and returned in the logits' dtype: in float16 (CPU autocast) the product
    ``softmax(S) * G`` underflows to 0 in whole columns, and 0 / 0 is NaN.
    """
    scaled = logits.float() if temperature == 1.0 else logits.float() / temperature
    p = torch.softmax(scaled, dim=1)
    if kernel is not None:
        p = p * kernel.float()
        p = p / p.sum(dim=1, keepdim=True)
    return p.to(logits.dtype)


def flush_denormals(p: Tensor) -> Tensor:
    """``p`` with its subnormal entries (below the smallest normal float, about 1e-38 in float32)
    set to zero, on the CPU; unchanged elsewhere.

    A sharp softmax gives subnormal weights (a logit gap beyond about 87 in float32), and a CPU
    matrix product with subnormal operands can be tens of times slower (measured: the r4 read-out
    of the demo model at 240p, 250 ms instead of 5). Zeroing them changes a read-out by less than
    1e-37. Ranking code (top-k) must use the unflushed weights: their order still means something.
    """
    if p.device.type != "cpu" or not p.dtype.is_floating_point:
        return p
    return p.masked_fill(p.abs() < torch.finfo(p.dtype).tiny, 0.0)


def read_out(mv: Tensor, p: Tensor, h: int, w: int) -> Tensor:
    """Memory read-out ``R = mv P``. mv: B x Cv x T x h x w; p: B x (T*HW) x HW -> B x Cv x h x w.

    Subnormal weights of ``p`` are read as zero on the CPU (:func:`flush_denormals`)."""
    B, Cv = mv.shape[:2]
    return torch.bmm(mv.reshape(B, Cv, -1), flush_denormals(p)).view(B, Cv, h, w)  # B x Cv x h x w


# ----------------------------------------------------------------------------------------------------
# Dense (non-local) read in chunks of query positions


def query_chunks(hw: int, chunk: int | None) -> list[slice]:
    """The query positions 0..hw-1 cut into consecutive slices of ``chunk`` (None: one slice)."""
    if chunk is None or chunk >= hw:
        return [slice(0, hw)]
    if chunk < 1:
        raise ValueError(f"chunk must be None or an int >= 1, got {chunk!r}")
    return [slice(start, min(start + chunk, hw)) for start in range(0, hw, chunk)]


def dense_attention(mk: Tensor, qk: Tensor, *, chunk: int | None = None) -> Tensor:
    """``P = softmax(mk^T qk / sqrt(C))`` over memory positions, built ``chunk`` query positions
    at a time (each column's softmax is its own: the result does not depend on ``chunk``).

    mk: B x C x T x h x w memory keys; qk: B x C x h x w query keys. Returns B x (T*HW) x HW, the
    whole attention: only a chunk's logits exist beside it (one B x THW x HW tensor, not two)."""
    B, C = qk.shape[:2]
    queries = qk.reshape(B, C, -1)  # B x C x HW
    HW = queries.shape[2]
    chunks = query_chunks(HW, chunk)
    attention = None
    for cols in chunks:
        p = torch.softmax(affinity(mk, queries[:, :, cols]), dim=1)  # B x THW x n
        if len(chunks) == 1:
            return p
        if attention is None:
            attention = p.new_empty(B, p.shape[1], HW)  # B x THW x HW
        attention[:, :, cols] = p
    return attention


def dense_read(mk: Tensor, mv: Tensor, qk: Tensor, *, chunk: int | None = None) -> Tensor:
    """The non-local read ``R = mv softmax(mk^T qk / sqrt(C))`` (STM's, without a kernel), its
    query positions ``chunk`` at a time, so that the affinity never exists whole: a chunk needs
    B x THW x chunk floats (logits, softmax, flushed softmax) instead of B x THW x HW. The result
    equals :func:`read_out` of the whole :func:`dense_attention` (each query column is
    independent).

    mk: B x Ck x T x h x w, mv: B x Cv x T x h x w memory; qk: B x Ck x h x w query keys.
    chunk: query positions per chunk (None: all at once). Returns B x Cv x h x w."""
    B, Ck = qk.shape[:2]
    Cv = mv.shape[1]
    h, w = qk.shape[-2:]
    queries = qk.reshape(B, Ck, -1)  # B x Ck x HW
    values = mv.reshape(B, Cv, -1)  # B x Cv x THW
    parts = []
    for cols in query_chunks(h * w, chunk):
        p = torch.softmax(affinity(mk, queries[:, :, cols]), dim=1)  # B x THW x n
        parts.append(torch.bmm(values, flush_denormals(p)))  # B x Cv x n
        del p  # the next chunk's logits reuse its memory
    readout = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)  # B x Cv x HW
    return readout.view(B, Cv, h, w)


# ----------------------------------------------------------------------------------------------------
# Top-k guided reads (r3, r2)


def topk_guidance(p: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k memory positions with the largest affinity for every query position.

    p: B x N x HW guidance affinity (rows memory positions). Returns (indices, values), each
    B x HW x k, sorted by decreasing affinity.
    """
    values, indices = torch.topk(p.transpose(1, 2), k, dim=2, sorted=True)  # B x HW x k
    return indices, values


def fine_memory_indices(indices: Tensor, h: int, w: int, s: int) -> Tensor:
    """Expand coarse (r4) memory cells into the fine cells they cover.

    indices: B x HW x k coarse memory positions ``t * HW + y * w + x`` on an h x w grid.
    Returns B x HW x (k*s*s) positions ``t * (HW s^2) + (s y + dy) * (s w) + (s x + dx)`` on the
    (s h) x (s w) grid, for dy, dx in 0..s-1 (cell-major: the s*s children of a cell are adjacent).
    """
    HW = h * w
    t, yx = indices // HW, indices % HW
    y, x = yx // w, yx % w
    d = torch.arange(s, device=indices.device)
    fine_y = s * y.unsqueeze(-1) + d  # B x HW x k x s
    fine_x = s * x.unsqueeze(-1) + d  # B x HW x k x s
    fine = (t * HW * s * s).unsqueeze(-1).unsqueeze(-1) + fine_y.unsqueeze(-1) * (s * w)
    fine = fine + fine_x.unsqueeze(-2)  # B x HW x k x s x s
    return fine.flatten(2)  # B x HW x (k*s*s)


def group_by_coarse_cell(x: Tensor, s: int) -> Tensor:
    """B x C x (s h) x (s w) -> B x HW x (s*s) x C: the fine positions of every coarse cell."""
    B, C, H, W = x.shape
    h, w = H // s, W // s
    x = x.view(B, C, h, s, w, s).permute(0, 2, 4, 3, 5, 1)  # B x h x w x s x s x C
    return x.reshape(B, h * w, s * s, C)


def ungroup_coarse_cells(x: Tensor, h: int, w: int, s: int) -> Tensor:
    """Inverse of :func:`group_by_coarse_cell`: B x HW x (s*s) x C -> B x C x (s h) x (s w)."""
    B, _, _, C = x.shape
    x = x.view(B, h, w, s, s, C).permute(0, 5, 1, 3, 2, 4)  # B x C x h x s x w x s
    return x.reshape(B, C, h * s, w * s)


def gather_positions(x: Tensor, positions: Tensor) -> Tensor:
    """x: B x C x T x H x W memory; positions: B x N x M flat memory positions -> B x N x M x C."""
    B, C = x.shape[:2]
    flat = x.reshape(B, C, -1).transpose(1, 2)  # B x THW x C
    batch = torch.arange(B, device=x.device).view(B, 1, 1)
    return flat[batch, positions]  # B x N x M x C


def gather_coarse_cells(x: Tensor, indices: Tensor, s: int) -> Tensor:
    """The fine features of selected coarse cells, as :func:`gather_positions` would give them for
    ``fine_memory_indices(indices, h, w, s)``, but copied a whole cell (s*s*C floats) at a time.

    x: B x C x T x (s h) x (s w) fine memory; indices: B x N x k coarse memory cells
    ``t * HW + y * w + x``. Returns B x N x (k*s*s) x C, cell-major (the s*s children of a cell
    are adjacent, dy then dx)."""
    B, C, T, H, W = x.shape
    frames = x.transpose(1, 2).reshape(B * T, C, H, W)  # (B T) x C x sh x sw
    cells = group_by_coarse_cell(frames, s)  # (B T) x hw x s^2 x C
    cells = cells.reshape(-1, s * s * C)  # (B T hw) x s^2 C: one row per coarse memory cell
    cells_per_video = T * (H // s) * (W // s)
    offsets = torch.arange(B, device=x.device).view(B, 1, 1) * cells_per_video
    rows = cells.index_select(0, (indices + offsets).flatten())  # (B N k) x s^2 C
    return rows.view(B, indices.shape[1], indices.shape[2] * s * s, C)


def topk_guided_read(
    mk: Tensor, mv: Tensor, qk: Tensor, indices: Tensor, s: int, *, hook: Hook = _no_hook
) -> tuple[Tensor, Tensor, Tensor]:
    """Attend, for every fine query position, only over the memory cells its coarse cell selected.

    mk: B x Ck x T' x (s h) x (s w), mv: B x Cv x T' x (s h) x (s w) fine memory keys and values;
    qk: B x Ck x (s h) x (s w) fine query keys; indices: B x HW x k coarse memory cells selected for
    each coarse query cell (h x w grid). Each selected cell stands for its s x s fine cells.
    Returns (read-out B x Cv x (s h) x (s w), attention B x HW x s*s x k*s*s, fine memory positions
    B x HW x k*s*s). ``hook`` sees ``attention``.
    """
    Ck = mk.shape[1]
    h, w = qk.shape[-2] // s, qk.shape[-1] // s
    positions = fine_memory_indices(indices, h, w, s)  # B x HW x ks^2
    keys = gather_coarse_cells(mk, indices, s)  # B x HW x ks^2 x Ck, the keys at ``positions``
    values = gather_coarse_cells(mv, indices, s)  # B x HW x ks^2 x Cv
    queries = group_by_coarse_cell(qk, s)  # B x HW x s^2 x Ck
    logits = torch.matmul(queries, keys.transpose(2, 3)) / math.sqrt(Ck)  # B x HW x s^2 x ks^2
    attention = hook("attention", torch.softmax(logits, dim=3))
    read = torch.matmul(attention, values)  # B x HW x s^2 x Cv
    return ungroup_coarse_cells(read, h, w, s), attention, positions


# ----------------------------------------------------------------------------------------------------
# Soft aggregation


def channel_argmax(x: Tensor) -> Tensor:
    """C x H x W -> H x W int64, the argmax over the channels (the first on ties, as ``argmax``).

    The same as ``x.argmax(dim=0)``, computed along a contiguous last dimension: on the CPU, torch's
    argmax over the strided dimension 0 is about 20x slower (75 ms for 3 x 480 x 864)."""
    return x.movedim(0, -1).contiguous().argmax(dim=-1)


def soft_aggregate(p: Tensor, eps: float = 1e-7) -> Tensor:
    """Merge per-object foreground probabilities into one distribution over background + objects.

    p: O x H x W, ``p[o]`` = probability that a pixel belongs to object o (from each object's decoder).
    Background = prod_o (1 - p_o); clamp to [eps, 1 - eps]; ``logit = log(e / (1 - e))``.
    Returns the (O+1) x H x W logits; ``softmax(logits, dim=0)`` gives the frame's probabilities.
    """
    background = torch.prod(1 - p, dim=0, keepdim=True)  # 1 x H x W
    e = torch.cat([background, p], dim=0).clamp(eps, 1 - eps)  # (O+1) x H x W
    return torch.log(e / (1 - e))
