"""What the top-k inspector shows: a video (:class:`InspectorVideo`) and the traces of its frames
(:class:`FrameTrace`), the hook points it needs (:data:`TRACE_NAMES`), and the checks that say
what is missing or misshapen before anything is drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from hmmnlab import ops, viz
from hmmnlab.data.davis import VOID_LABEL

# The hook points the inspector needs (a small part of a full trace).
TRACE_NAMES = (
    "r4.affinity",
    "r4.kernel",
    "r4.sigmas",
    "r4.readout",
    "r3.topk_indices",
    "r3.attention",
    "r2.topk_indices",
    "r2.attention",
)


#: Hook points the inspector uses when a trace has them: the raw affinity S (for "before kernel";
#: without it, softmax(S) is recovered from the affinity and the kernel).
OPTIONAL_TRACE_NAMES = ("r4.affinity_logits",)


@dataclass
class FrameTrace:
    """The trace of one frame: hook name -> tensor, the r4 memory frames it read, and optionally
    the H x W labels the model predicted for the frame (original label values; shown on the query
    frame, and the query cell placed with them, where the video has no true mask)."""

    cache: dict
    memory_frames: tuple[int, ...]
    labels: np.ndarray | None = None


@dataclass(frozen=True)
class InspectorVideo:
    """One video as the inspector shows it.

    frames: H x W x 3 uint8 images, frame 0 first; first_labels: H x W labels of frame 0 (its
    objects: every label but 0 and 255, in increasing order, as the traces' object axis); traces:
    frame index (>= 1) -> :class:`FrameTrace`, computed beforehand (the frames without one are
    asked of the inspector's ``trace_of``); truth: frame index -> H x W annotation, optional, to
    start the query cell on the object in that frame (else on its position in frame 0).
    """

    frames: Sequence[np.ndarray]
    first_labels: np.ndarray
    traces: Mapping[int, FrameTrace] = field(default_factory=dict)
    truth: Mapping[int, np.ndarray] = field(default_factory=dict)


#: ``trace_of(video, frame)``: the trace of ``frame``, or an iterable of (frame index, FrameTrace)
#: pairs that includes it (a propagation yields the earlier frames' traces on the way; all are kept).
TraceProvider = Callable[[str, int], "FrameTrace | Iterable[tuple[int, FrameTrace]]"]


def r4_grid_of(size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the padded r4 grid of an H x W frame."""
    left, right, top, bottom = ops.padding_for(*size)
    return (size[0] + top + bottom) // viz.R4_STRIDE, (size[1] + left + right) // viz.R4_STRIDE


def object_labels(first_labels: np.ndarray) -> list[int]:
    """The object labels of a first-frame label map (not background 0, not void 255)."""
    return [int(v) for v in np.unique(first_labels) if v not in (0, VOID_LABEL)]


def check_video(name: str, video: InspectorVideo) -> InspectorVideo:
    """``video`` with its frames and labels as arrays, after checking their shapes (and its traces,
    see :func:`check_trace`)."""
    if not isinstance(video, InspectorVideo):
        raise TypeError(f"video {name!r} must be an InspectorVideo, got {type(video).__name__}")
    frames = [np.asarray(frame) for frame in video.frames]
    if len(frames) < 2:
        raise ValueError(f"video {name!r} has {len(frames)} frame: nothing to read from memory")
    for t, frame in enumerate(frames):
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.shape != frames[0].shape:
            raise ValueError(
                f"video {name!r}: frames must be H x W x 3 images of one size ({frames[0].shape}), "
                f"but frame {t} has shape {frame.shape}"
            )
    size = frames[0].shape[:2]
    labels = np.asarray(video.first_labels)
    if labels.shape != size:
        raise ValueError(f"video {name!r}: frames are {size} but first_labels are {labels.shape}")
    ids = object_labels(labels)
    if not ids:
        raise ValueError(f"video {name!r}: first_labels has no object (labels {np.unique(labels)})")
    truth = {int(t): np.asarray(mask) for t, mask in video.truth.items()}
    for t, mask in truth.items():
        if mask.shape != size:
            raise ValueError(f"video {name!r}: frames are {size} but truth[{t}] is {mask.shape}")
    grid = r4_grid_of(size)
    traces = {}
    for t, trace in video.traces.items():
        t = int(t)
        if not 1 <= t < len(frames):
            raise ValueError(
                f"video {name!r} has frames 0..{len(frames) - 1}: a trace of frame {t} cannot be "
                "shown (frame 0 is given, not read from memory)"
            )
        traces[t] = check_trace(
            trace, video=name, frame=t, num_objects=len(ids), grid=grid, size=size
        )
    return InspectorVideo(frames, labels, traces, truth)


def check_trace(
    trace: FrameTrace, *, video: str, frame: int, num_objects: int, grid: tuple[int, int],
    size: tuple[int, int] | None = None,
) -> FrameTrace:  # fmt: skip
    """``trace`` with its tensors as CPU torch tensors, after checking that it has every hook point
    of
    :data:`TRACE_NAMES` with the shapes of a read of ``num_objects`` objects over memory frames
    earlier than ``frame`` on the padded r4 grid ``grid`` (see the table in
    :mod:`hmmnlab.inside.trace`), and that its predicted labels, if any, are frames of ``size`` (H,
    W)."""
    where = f"the trace of frame {frame} of video {video!r}"
    if not isinstance(trace, FrameTrace):
        raise TypeError(f"{where} must be a FrameTrace(cache, memory_frames), got {trace!r:.80}")
    if not isinstance(trace.cache, Mapping):
        raise TypeError(f"{where}: cache must map hook names to tensors, got {trace.cache!r:.80}")
    missing = [name for name in TRACE_NAMES if name not in trace.cache]
    if missing:
        raise ValueError(
            f"{where} has no {', '.join(missing)}: the inspector needs {', '.join(TRACE_NAMES)} "
            "(trace them with a read that has a kernel and top-k fine reads, e.g. ReadConfig()); "
            f"it has: {', '.join(sorted(trace.cache)) or 'nothing'}"
        )
    memory = tuple(int(f) for f in trace.memory_frames)
    if not memory or any(not 0 <= f < frame for f in memory) or len(set(memory)) != len(memory):
        raise ValueError(
            f"{where}: memory_frames must be distinct earlier frames (in 0..{frame - 1}), "
            f"got {tuple(trace.memory_frames)}"
        )
    cache = {name: torch.as_tensor(value).cpu() for name, value in trace.cache.items()}
    h, w = grid
    B, T, HW = num_objects, len(memory), h * w  # the dimension letters of hmmnlab.inside.trace
    k3, k2 = (cache[f"{s}.topk_indices"].shape[-1] if cache[f"{s}.topk_indices"].ndim else 0
              for s in ("r3", "r2"))  # fmt: skip
    expected = {  # name: (shape, in words)
        "r4.affinity": ((B, T * HW, HW), "B x THW x HW"),
        "r4.kernel": ((B, T * HW, HW), "B x THW x HW"),
        "r4.sigmas": ((T,), "T"),
        "r4.readout": ((B, None, h, w), "B x Cv x h x w"),
        "r3.topk_indices": ((B, HW, None), "B x HW x k"),
        "r3.attention": ((B, HW, 4, 4 * k3), "B x HW x 4 x 4k"),
        "r2.topk_indices": ((B, HW, None), "B x HW x k2"),
        "r2.attention": ((B, HW, 16, 16 * k2), "B x HW x 16 x 16k2"),
    }
    for name, (shape, words) in expected.items():
        found = tuple(cache[name].shape)
        fits = len(found) == len(shape) and all(
            e is None or e == f for e, f in zip(shape, found, strict=True)
        )
        if not fits:
            want = " x ".join("*" if e is None else str(e) for e in shape)
            raise ValueError(
                f"{where}: {name} should be {words} = {want} ({B} objects, memory frames {memory}, "
                f"r4 grid {h} x {w}), got {' x '.join(map(str, found)) or 'a scalar'}"
            )
    labels = None if trace.labels is None else np.asarray(trace.labels)
    if labels is not None and size is not None and labels.shape != tuple(size):
        raise ValueError(f"{where}: labels should be the frame's {size}, got {labels.shape}")
    logits = cache.get("r4.affinity_logits")
    if logits is not None and tuple(logits.shape) != (B, T * HW, HW):
        raise ValueError(
            f"{where}: r4.affinity_logits should be B x THW x HW = {B} x {T * HW} x {HW}, got "
            f"{' x '.join(map(str, logits.shape))}"
        )
    return FrameTrace(cache, memory, labels)
