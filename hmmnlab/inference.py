"""Semi-supervised video object segmentation with HMMN, one frame at a time.

:func:`propagate` is a generator: given the frames and the first frame's labels it yields a
:class:`FrameResult` per frame, so long videos stream without holding every probability map. The only
state is the :class:`~hmmnlab.memory.VideoMemory` it creates: one memory bank per object group
(``result.memory`` is a snapshot of the first group's bank after each frame). ``hooks=`` changes tensors of the network causally (:func:`hmmnlab.hooks.intervene`).

Objects may also enter after frame 0 (``new_objects={t: label_map}``, as in YouTube-VOS): the objects
that enter at frame t form an *object group* with a memory bank of its own that starts at frame t, as
if their video began there (STM's and HMMN's way: nothing of the frames before t is read for them);
one :func:`~hmmnlab.step.segment_step` reads every group.
The frames before t are segmented exactly as without them; at frame t their given masks are what
their memory gets, and from frame t+1 on they are segmented with the others (one soft aggregation
over every object present).
"""

from __future__ import annotations

import contextlib
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hmmnlab import ops, precision
from hmmnlab.config import ReadConfig
from hmmnlab.data.palette import VOID_LABEL  # DAVIS 2017 "void": ignored in a first mask
from hmmnlab.hooks import HookFn, NamesFilter, capture, check_names
from hmmnlab.memory import MemoryBank, VideoMemory
from hmmnlab.model import HMMN
from hmmnlab.step import segment_step

FLOAT_SLACK = 0.01  # float frames may overshoot [0, 1] this much (resampling); more means 0..255


@dataclass
class FrameResult:
    """The segmentation of one frame.

    probs: (K+1) x H x W float32, background then the objects in ``object_ids`` order.
    labels: H x W int64, argmax of ``probs`` written with the original label values.
    logits: (K+1) x H x W soft-aggregation logits (``probs = softmax(logits, 0)``); None for frame 0.
    memory: a snapshot of the video's memory bank after this frame (``results[3].memory`` stays the
    memory after frame 3 while later frames are segmented); memory_frames: the r4 memory frames read
    for this frame, oldest first. trace: hook name -> tensor of this frame, when tracing (see ``trace``
    of :func:`propagate`). Tensors live on the device the model ran on (traces: see ``trace_to_cpu``).

    With objects entering after frame 0 (``new_objects`` of :func:`propagate`): ``object_ids`` are
    the objects present at this frame, in the order they entered (then by label value), and
    ``probs`` has a row for each; ``memory``, ``memory_frames`` are those of the first object group
    (the objects of frame 0) and ``groups`` has every group's. At a frame where objects enter, their
    rows of ``probs`` are their given masks (0/1) and the other rows are what the model predicted
    (so columns under a given mask do not sum to one there); ``labels`` is the argmax of the earlier
    objects' probabilities with the given masks painted over it, and ``logits`` covers only the
    earlier objects.
    """

    index: int
    probs: Tensor
    labels: Tensor
    object_ids: tuple[int, ...]
    logits: Tensor | None
    memory: MemoryBank
    memory_frames: tuple[int, ...] = ()
    trace: dict[str, Tensor] | None = None
    groups: tuple[ObjectGroup, ...] = ()


@dataclass
class ObjectGroup:
    """The objects that entered the video at frame ``start``, and their own memory bank.

    memory: a snapshot of the group's bank after this frame; memory_frames: the r4 memory frames
    the group read for this frame (empty at ``start``, where its masks are given); trace: the read's
    hook points (``r4.*``, ``r3.*``, ``r2.*``) of the group's read at this frame, when tracing."""

    start: int
    object_ids: tuple[int, ...]
    memory: MemoryBank
    memory_frames: tuple[int, ...] = ()
    trace: dict[str, Tensor] | None = None


#: The modules whose hook points belong to a memory read (one read per object group).
READ_MODULES = ("r4", "r3", "r2")


def is_read_hook(name: str) -> bool:
    """Whether the hook point ``name`` belongs to a memory read (``r4.kernel``: yes)."""
    return name.split(".", 1)[0] in READ_MODULES


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CUDA if available, else CPU; an unknown or unavailable device is an error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {str(device)!r}: expected 'cpu' or 'cuda[:N]'") from err
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {str(device)!r}: expected 'cpu' or 'cuda[:N]'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch finds no CUDA GPU")
    return device


def to_frame_tensor(frame, *, index: int = 0) -> Tensor:
    """A frame as a 3 x H x W float32 tensor in [0, 1].

    Accepts H x W x 3 (RGB) / H x W x 4 (RGBA, alpha dropped) / H x W (grey) uint8 arrays, float
    arrays already in [0, 1] (H x W x C or C x H x W), or tensors of the same layouts.
    """
    x = frame if isinstance(frame, Tensor) else torch.tensor(np.asarray(frame))  # a copy
    # uint8 arrays are images: H x W x C even where H is 1, 3 or 4 (a 1 x 1 RGB frame)
    channels_last = not isinstance(frame, Tensor) and x.dtype == torch.uint8
    if x.dtype == torch.uint8:
        x = x.float() / 255
    elif x.is_floating_point():
        x = x.float()
        if not torch.isfinite(x).all():
            raise ValueError(
                f"frame {index}: expected finite pixel values, found "
                f"{int((~torch.isfinite(x)).sum())} NaN or infinite value(s)"
            )
        if x.numel() and (x.min() < -FLOAT_SLACK or x.max() > 1 + FLOAT_SLACK):
            raise ValueError(
                f"frame {index}: float pixels must lie in [0, 1], found {float(x.min()):g}.."
                f"{float(x.max()):g}; pass uint8 pixels (0..255) or divide by 255"
            )
    else:
        raise ValueError(f"frame {index}: expected uint8 or float pixels, got {x.dtype}")
    if x.ndim == 2:
        x = x.unsqueeze(0)
    elif (
        x.ndim == 3 and x.shape[-1] in (1, 3, 4) and (channels_last or x.shape[0] not in (1, 3, 4))
    ):
        x = x.permute(2, 0, 1)  # H x W x C -> C x H x W
    if x.ndim != 3 or x.shape[0] not in (1, 3, 4):
        raise ValueError(f"frame {index}: expected H x W x 3 or 3 x H x W, got {tuple(x.shape)}")
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x[:3].contiguous()


def object_labels(first_labels, *, what: str = "first-frame") -> tuple[Tensor, tuple[int, ...]]:
    """The first frame's label map renumbered 0..K, and the original id of each object 1..K.

    ``what`` names the map in error messages (``new_objects[5]`` for objects entering later)."""
    array = np.asarray(first_labels)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or (array != np.round(array)).any():
            odd = array[~np.isfinite(array) | (array != np.round(array))]
            raise ValueError(
                f"{what} labels must be integer values, found {odd.size} pixel(s) such as "
                f"{odd.flat[0]:g} (a soft mask? threshold it, e.g. (mask > 0.5).astype(np.uint8))"
            )
    elif array.dtype.kind not in "biu":
        raise ValueError(f"{what} labels must be integers, got dtype {array.dtype}")
    labels = torch.as_tensor(array.astype(np.int64))
    if labels.ndim != 2:
        raise ValueError(f"{what} labels must be H x W, got shape {tuple(labels.shape)}")
    void = labels == VOID_LABEL
    labels = labels.masked_fill(void, 0)
    ids = tuple(int(v) for v in torch.unique(labels).tolist() if v != 0)
    if not ids:
        raise ValueError(
            f"{what} mask has no object: {int(void.sum())} pixel(s) are void "
            f"({VOID_LABEL}, ignored) and {int((~void).sum())} background (0); expected at "
            "least one pixel of an object label 1..254"
        )
    consecutive = torch.zeros_like(labels)
    for new, old in enumerate(ids, start=1):
        consecutive[labels == old] = new
    return consecutive, ids


def check_new_objects(
    new_objects: Mapping[int, object] | None,
    first_ids: tuple[int, ...],
    size: tuple[int, int],
    num_frames: int | None,
) -> dict[int, tuple[Tensor, tuple[int, ...]]]:
    """``new_objects`` ({frame t >= 1: H x W label map of the objects entering at t}) checked and
    renumbered: {t: (map with labels 1..k of the entering objects, their original ids)}, by frame.

    Errors: a frame that is not an integer >= 1 (or lies beyond ``num_frames``, when known), a map
    of another size or without objects, an object id that is already in the video."""
    entries: dict[int, tuple[Tensor, tuple[int, ...]]] = {}
    seen = {object_id: 0 for object_id in first_ids}
    new_objects = dict(new_objects or {})
    for t in new_objects:
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or t < 1:
            raise ValueError(
                f"new_objects: expected frame indices >= 1 (frame 0's objects come in "
                f"first_labels), found {t!r}"
            )
    for key in sorted(new_objects):
        t = int(key)
        if num_frames is not None and t >= num_frames:
            raise ValueError(
                f"new_objects gives frame {t} but the video has {num_frames} frames (0.."
                f"{num_frames - 1})"
            )
        labels, ids = object_labels(new_objects[key], what=f"new_objects[{t}]")
        if labels.shape != size:
            raise ValueError(
                f"new_objects[{t}] is {tuple(labels.shape)} (H x W) but frame 0 is {size}"
            )
        known = [object_id for object_id in ids if object_id in seen]
        if known:
            where = ", ".join(f"object {i} at frame {seen[i]}" for i in known)
            raise ValueError(
                f"new_objects[{t}] has labels {list(ids)} but {where} already entered the video; "
                "an object enters once, with a new id"
            )
        seen.update(dict.fromkeys(ids, t))
        entries[t] = (labels, ids)
    return entries


class FrameRecorder:
    """The trace of one frame, recorded while the frame runs inside ``with recorder:``: the hook
    points ``names`` accepts (:func:`hmmnlab.hooks.capture`) and, after each object group's read
    (:meth:`after_read`), that read's hook points in ``reads[g]`` (moved out of the capture when a
    next group's read would overwrite them)."""

    def __init__(self, model: HMMN, names: NamesFilter, *, to_cpu: bool, groups: int) -> None:
        self._capture = capture(model, names, to_cpu=to_cpu)
        self._move = groups > 1
        self.cache: dict[str, Tensor] = {}
        self.reads: list[dict[str, Tensor]] = []

    def __enter__(self) -> FrameRecorder:
        self.cache = self._capture.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._capture.__exit__(*exc)

    def after_read(self, g: int) -> None:
        names = [n for n in self.cache if is_read_hook(n)]
        self.reads.append({n: self.cache.pop(n) if self._move else self.cache[n] for n in names})

    def frame_trace(self) -> dict[str, Tensor]:
        """Every recorded hook point, with the read's from the first group (the objects of frame
        0)."""
        return {**self.cache, **self.reads[0]}


def _open_video(frames: Iterable, first_labels, new_objects):
    """The frame iterator after frame 0, frame 0 (3 x H x W), its labels (H x W, 0..K), the object
    ids and the checked new objects ({t: (labels, ids)}), with the errors of a bad input."""
    labels0, ids = object_labels(first_labels)
    num_frames = len(frames) if hasattr(frames, "__len__") else None
    iterator = iter(frames)
    try:
        first = to_frame_tensor(next(iterator), index=0)
    except StopIteration:
        raise ValueError("the video has no frames") from None
    height, width = first.shape[-2:]
    if labels0.shape != (height, width):
        raise ValueError(
            f"first-frame mask is {tuple(labels0.shape)} (H x W) but frame 0 is {(height, width)}"
        )
    entries = check_new_objects(new_objects, ids, (height, width), num_frames)
    return iterator, first, labels0, ids, entries


def check_size(frame: Tensor, t: int, size: tuple[int, int]) -> None:
    """Frame ``t`` (3 x H x W) has frame 0's size."""
    if frame.shape[-2:] != size:
        raise ValueError(f"frame {t} is {tuple(frame.shape[-2:])} (H x W) but frame 0 is {size}")


def check_finite(probs: Tensor, t: int) -> None:
    """The probabilities of frame ``t`` hold no NaN or infinity."""
    if not torch.isfinite(probs).all():
        raise RuntimeError(
            f"frame {t}: the model produced NaN or infinite probabilities "
            f"({int((~torch.isfinite(probs)).sum())} values); check the weights and the read "
            "parameters (with --amp or --dtype bfloat16, try float32)"
        )


def _enter(entry, probs: Tensor, labels: Tensor, id_values: Tensor, ids: tuple[int, ...]):
    """Objects entering at this frame (``entry``: their H x W labels 0..n and their ids) join the
    frame's result with their given masks: ``probs`` gains their one-hot rows (the others stay as
    they were), ``labels`` takes their ids where they are; returns (probs, labels, id_values, ids)."""
    entering, new_ids = entry
    given = entering.to(probs.device)
    one_hot = torch.nn.functional.one_hot(given, len(new_ids) + 1).permute(2, 0, 1)
    probs = torch.cat([probs, one_hot[1:].to(probs.dtype)])  # (K+1+n) x H x W
    id_values = torch.cat([id_values, torch.tensor(new_ids, device=probs.device)])
    labels = torch.where(given > 0, id_values[given + len(ids)], labels)
    return probs, labels, id_values, (*ids, *new_ids)


def object_groups(
    memory: VideoMemory, ids: tuple[int, ...], frames_read=(), traces=None
) -> tuple[ObjectGroup, ...]:
    """Every object group present now: its objects, a snapshot of its bank, what it read."""
    return tuple(
        ObjectGroup(
            bank.start, ids[memory.rows(g)], bank.snapshot(),
            frames_read[g] if g < len(frames_read) else (),
            traces[g] if traces is not None and g < len(traces) else None,
        )
        for g, bank in enumerate(memory.banks)
    )  # fmt: skip


def propagate(
    model: HMMN,
    frames: Iterable,
    first_labels,
    *,
    new_objects: Mapping[int, object] | None = None,
    mem_every: int | None = None,
    read: ReadConfig | None = None,
    device: str | torch.device | None = None,
    amp: bool = False,
    dtype: str | torch.dtype | None = None,
    trace: NamesFilter | bool = False,
    trace_frames: Container[int] | None = None,
    trace_to_cpu: bool = False,
    hooks: Mapping[str, HookFn] | None = None,
) -> Iterator[FrameResult]:
    """Segment a video from its first frame's labels, yielding one :class:`FrameResult` per frame.

    model: an HMMN (moved to ``device`` and set to eval mode). frames: any iterable of frames (a
    list, a T x H x W x 3 array, a lazy reader), see :func:`to_frame_tensor`. first_labels: H x W
    integer labels of frame 0 (0 background; object ids need not be consecutive; 255 is ignored).
    new_objects: objects that enter later, {frame t: H x W label map with the ids of the objects
    entering at t, 0 elsewhere} (ids not used before). They get a memory bank of their own from
    frame t on (see the module docstring); their given mask wins in ``labels`` at frame t.
    amp: float16 autocast on CUDA. dtype: ``"bfloat16"`` (or ``torch.bfloat16``) runs the
    convolutions in bfloat16 under autocast and the memory read in float32
    (:mod:`hmmnlab.precision`); ``"float32"``: float32 throughout (parity); None: the process-wide
    default (:func:`hmmnlab.precision.set_default_dtype`, ``$HMMNLAB_DTYPE``), float32 unless set.
    read: the read configuration (default: the read the model's weights carry,
    ``model.default_read`` from :func:`~hmmnlab.weights.load_model`, else the authors');
    ``mem_every`` overrides its field.
    trace: hook names to record per frame (a list, a name, a predicate, or True for all); they come
    back in ``result.trace`` for the frames in ``trace_frames`` (default: every frame). With tracing
    off nothing is recorded and nothing extra is computed. A frame read from several object groups'
    memories runs one read per group: ``result.trace`` then holds the read's hook points
    (``r4.*``, ``r3.*``, ``r2.*``) of the first group (the objects of frame 0) and the others for
    every object read (rows in ``object_ids`` order, without the objects entering at that frame);
    ``result.groups[g].trace`` holds group g's read.
    hooks: hook name -> ``fn(value, ctx)`` returning a same-shape replacement (or None to keep the
    value), called at every frame t >= 1 (``ctx.frame``, ``ctx.name``, ``ctx.object_ids``,
    ``ctx.memory_frames``); the replacement is what the rest of the network uses, and what a trace
    records. Unknown names are an error listing the known ones. With several object groups a read's
    hooks are called once per group, with that group's ``object_ids`` and ``memory_frames``.
    """
    read = read or getattr(model, "default_read", None) or ReadConfig()
    if mem_every is not None:
        read = ReadConfig(**{**read.to_dict(), "mem_every": mem_every})
    device = resolve_device(device)
    model = model.to(device).eval()
    autocast = precision.autocast(device, amp=amp, dtype=dtype)  # re-entered every frame
    if hooks:
        check_names(model, hooks)
    iterator, first, labels0, ids, entries = _open_video(frames, first_labels, new_objects)
    K = len(ids)
    height, width = first.shape[-2:]
    padding = ops.padding_for(height, width)

    memory = VideoMemory.for_read(read)  # one memory bank per object group
    bank = memory.add_group(0, K)
    names = None if trace is True else (trace or None)
    id_values = torch.tensor((0, *ids), device=device)

    probs = torch.nn.functional.one_hot(labels0, K + 1).permute(2, 0, 1).float().to(device)
    yield FrameResult(
        0, probs, id_values[labels0.to(device)], ids, None, bank.snapshot(),
        groups=object_groups(memory, ids),
    )  # fmt: skip
    prev_frame = ops.pad(first.to(device).unsqueeze(0), padding)  # 1 x 3 x Hp x Wp
    t = 0
    for t, frame in enumerate(iterator, start=1):
        frame = to_frame_tensor(frame, index=t)
        check_size(frame, t, (height, width))
        frame = ops.pad(frame.to(device).unsqueeze(0), padding)  # 1 x 3 x Hp x Wp
        masks = ops.pad(probs[1:], padding)  # K x Hp x Wp, zero in the padding
        recorder = None
        if trace is not False and (trace_frames is None or t in trace_frames):
            recorder = FrameRecorder(model, names, to_cpu=trace_to_cpu, groups=len(memory.banks))
        with torch.inference_mode(), autocast, recorder or contextlib.nullcontext():
            step = segment_step(
                model, memory, t, prev_frame, masks, frame, read, hooks=hooks, object_ids=ids,
                after_read=recorder.after_read if recorder else None,
            )  # fmt: skip
            logits = ops.unpad(step.logits[0], padding)  # (K+1) x H x W
            probs = ops.unpad(step.probs[0], padding).contiguous()  # (K+1) x H x W
        memory_frames = step.memory_frames
        check_finite(probs, t)
        labels = id_values[ops.channel_argmax(probs)]
        if t in entries:  # objects entering at t: their given masks, their own memory from t on
            probs, labels, id_values, ids = _enter(entries[t], probs, labels, id_values, ids)
            memory.add_group(t, len(entries[t][1]))
        yield FrameResult(
            t, probs, labels, ids, logits, bank.snapshot(), memory_frames,
            recorder.frame_trace() if recorder else None,
            object_groups(memory, ids, step.group_memory_frames, recorder and recorder.reads),
        )  # fmt: skip
        prev_frame = frame
    late = [frame for frame in entries if frame > t]
    if late:
        raise ValueError(
            f"new_objects gives frame(s) {late} but the video has {t + 1} frames (0..{t})"
        )
