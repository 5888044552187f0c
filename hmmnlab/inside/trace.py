"""Traces: the intermediate tensors of one frame's memory read, by hook name.

Hook points (all tensors of the frame being segmented; ``B`` objects, ``T`` r4 memory frames,
``h x w`` the padded r4 grid, ``HW = h w``; memory rows frame-major, oldest frame first; query
columns):

=============================  =====================  ============================================
name                           shape                  meaning
=============================  =====================  ============================================
memory_features.k4 / v4        B x C x h x w          key / value of frame t-1 at r4 (also k3, v3,
                                                      k2, v2 at r3 and r2)
query_features.k4 / v4         1 x C x h x w          query key / value at r4 (also k3, k2)
r4.affinity_logits             B x THW x HW           S = mk^T qk / sqrt(C), before softmax
r4.flow                        B x HW                 window argmax: the query position each
position
                                                      of frame t-1 matches best (kernel centres of
                                                      t-1)
r4.centres                     B x THW                kernel centre of every memory row (older
                                                      frames: propagated through time)
r4.sigmas                      T                      kernel width of every memory frame
r4.kernel                      B x THW x HW           Gaussian kernel G
r4.affinity                    B x THW x HW           softmax(S) * G, renormalised over memory
r4.readout                     B x Cv x h x w         memory read-out at r4
r3.topk_indices                B x HW x k             guidance: r4 memory rows selected per r4 query
                                                      cell, best first (frame 0 then t-1)
r3.attention                   B x HW x 4 x 4k        attention of the 4 r3 cells of an r4 cell over
                                                      the 4k r3 memory cells of its selection
r3.readout                     B x Cv x 2h x 2w       memory read-out at r3
r2.topk_indices                B x HW x k/4           the first k/4 of the r3 selection
r2.attention                   B x HW x 16 x 16k/4    as r3, with 4 x 4 children per r4 cell
r2.readout                     B x Cv x 4h x 4w       memory read-out at r2
decoder.logits                 B x 2 x H x W          decoder output (background, object), padded
output.object_probs            B x H x W              each object's foreground probability, padded
output.logits / output.probs   (B+1) x H x W          soft aggregation over background + objects
=============================  =====================  ============================================

Without a kernel (``stm``) the r4 flow/centres/sigmas/kernel points do not fire; with a dense fine
read ``r3.attention`` is B x T'HW3 x HW3 and no ``topk_indices`` fire. :func:`trace_arrays` adds
``memory_frames`` (frame indices of the r4 memory) and ``r3.topk_coords`` / ``r2.topk_coords``
(B x HW x k x 3: memory frame index, y, x of every selected r4 cell).

Objects entering after frame 0 (``new_objects`` of :func:`~hmmnlab.inference.propagate`) are read
from memory banks of their own, one per group of objects entering at one frame. At a frame read from
several banks the r4/r3/r2 rows above are those of the first group (the objects of frame 0, whose
``memory_frames`` the result gives), ``result.groups[g].trace`` holds group g's read (its own
``memory_frames``), and the other names cover every object read at that frame (B of them, in
``object_ids`` order; objects entering at that frame are not read there).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from hmmnlab import ops
from hmmnlab.config import ReadConfig
from hmmnlab.hooks import NamesFilter
from hmmnlab.inference import FrameResult, propagate
from hmmnlab.model import HMMN
from hmmnlab.model.reads import guidance_frames

__all__ = ["guidance_frames", "run_with_cache", "topk_coordinates", "trace_arrays"]


def run_with_cache(
    model: HMMN,
    frames,
    first_labels,
    *,
    frame: int,
    names_filter: NamesFilter = None,
    to_cpu: bool = True,
    read: ReadConfig | None = None,
    device=None,
    new_objects=None,
    amp: bool = False,
    dtype: str | None = None,
) -> tuple[FrameResult, dict[str, Tensor]]:
    """Propagate from frame 0 to ``frame`` and return that frame's result and its cache (hook name
    -> detached tensor, on the CPU unless ``to_cpu=False``). ``new_objects``: objects entering
    later, ``amp`` and ``dtype`` (the precision), as for :func:`~hmmnlab.inference.propagate`."""
    if frame < 1:
        raise ValueError(
            f"frame must be >= 1 (frame 0 is given, not read from memory), got {frame}"
        )
    last = -1
    for result in propagate(
        model,
        frames,
        first_labels,
        new_objects=new_objects,
        read=read,
        device=device,
        amp=amp,
        dtype=dtype,
        trace=True if names_filter is None else names_filter,
        trace_frames={frame},
        trace_to_cpu=to_cpu,
    ):
        last = result.index
        if result.index == frame:
            return result, result.trace
    raise ValueError(f"frame {frame} is beyond the video's last frame ({last})")


def topk_coordinates(indices: Tensor, frame_ids: list[int], h: int, w: int) -> Tensor:
    """indices: B x HW x k guidance rows -> B x HW x k x 3 (memory frame index, y, x).

    ``frame_ids``: the frame index of each block of HW guidance rows, in order."""
    frame_of_row = torch.as_tensor(frame_ids, device=indices.device)[indices // (h * w)]
    yx = indices % (h * w)
    return torch.stack([frame_of_row, yx // w, yx % w], dim=-1)


def trace_arrays(result: FrameResult, cache: dict[str, Tensor], read: ReadConfig) -> dict:
    """A cache as numpy arrays for an .npz, plus ``memory_frames`` and the top-k coordinates."""
    arrays = {name: value.cpu().numpy() for name, value in cache.items()}
    arrays["memory_frames"] = np.array(result.memory_frames, dtype=np.int64)
    arrays["frame"] = np.array(result.index)
    h, w = ops.padded_grid(*result.probs.shape[-2:])
    for scale in ("r3", "r2"):
        name = f"{scale}.topk_indices"
        if name in cache:
            frames = guidance_frames(result.memory_frames, read)
            arrays[f"{scale}.topk_coords"] = topk_coordinates(cache[name], frames, h, w).numpy()
    return arrays
