"""Interactive viewers built on :mod:`hmmnlab.viz` (ipywidgets).

:class:`TopkInspector` shows traces it is given, as bertviz's ``head_view`` shows tensors: pick a
video, a frame, an object and a scale; click a query position on the query frame (or move the y / x
sliders, always there) and see, on every memory frame, the r4 affinity after the kernel, the Gaussian
kernel and the r4 cells selected to guide the r3 or r2 read (with their children), plus a table of
the selected cells. It never runs a model: each video is an :class:`InspectorVideo` (frames, first
labels, and the traces of its frames as :class:`FrameTrace`), and traces not given are asked of a
``trace_of(video, frame)`` provider, once per (video, frame).

:func:`topk_inspector` is the thin builder that runs the model: it reads the videos of a DAVIS root
and hands the viewer :func:`model_traces` as its provider. Everything is drivable from Python:
``inspector.select(y, x)``, ``inspector.click(px, py)``, or set any widget's ``value``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import ipywidgets as widgets
import numpy as np
import torch

from hmmnlab import ops, viz
from hmmnlab.config import ReadConfig
from hmmnlab.data.davis import VOID_LABEL
from hmmnlab.model.reads import guidance_frames

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
    """``trace`` with its tensors as CPU torch tensors, after checking that it has every hook point of
    :data:`TRACE_NAMES` with the shapes of a read of ``num_objects`` objects over memory frames
    earlier than ``frame`` on the padded r4 grid ``grid`` (see the table in :mod:`hmmnlab.trace`),
    and that its predicted labels, if any, are frames of ``size`` (H, W)."""
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
    B, T, HW = num_objects, len(memory), h * w  # the dimension letters of hmmnlab.trace
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


def status_text(text: str) -> str:
    """``text`` as the HTML of the status line (escaped; quotes kept as they are)."""
    return html.escape(text, quote=False)


def _placeholder(size: tuple[int, int], text: str) -> bytes:
    """A grey H x W PNG with ``text`` in the middle: what an image shows while its content loads."""
    height, width = size
    image = np.full((height, width, 3), 200, np.uint8)
    scale = max(0.4, min(1.0, width / 600))
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    origin = (max((width - w) // 2, 2), (height + h) // 2)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (60, 60, 60), 1, cv2.LINE_AA)
    return viz.png_bytes(image)


def draw_object_ids(image: np.ndarray, labels: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """``image`` (H x W x 3 uint8) with each object's id written on it: a dark disc with the id in
    white, at the object pixel nearest the object's centre (so it lies on the object)."""
    out = image.copy()
    for label in ids:
        spot = nearest_to_centre(labels, label)
        if spot is None:
            continue
        py, px = spot
        text = str(label)
        (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.circle(out, (px, py), max(w, h) // 2 + 4, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.putText(out, text, (px - w // 2, py + h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
    return out


def nearest_to_centre(labels: np.ndarray, label: int) -> tuple[int, int] | None:
    """(y, x) of the pixel of object ``label`` nearest its centre of mass (None when absent)."""
    ys, xs = np.nonzero(labels == label)
    if not len(ys):
        return None
    nearest = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
    return int(ys[nearest]), int(xs[nearest])


#: The affinity options: button label -> (stage of viz.affinity_maps, log colour scale).
AFFINITY_VIEWS = {
    "after kernel": ("affinity", False),
    "before kernel": ("pre_kernel", False),
    "log scale": ("affinity", True),
}


class TopkInspector:
    """The top-k inspector over ``videos`` (name -> :class:`InspectorVideo`, read when the video is
    first shown; a lazy mapping works). ``trace_of(video, frame)`` computes the traces the videos do
    not hold (see :data:`TraceProvider`); without it every frame 1..T-1 of a video needs a trace.
    read: the ReadConfig the traces were made with (its guidance frames). ``.app`` is the root
    widget (displaying the inspector displays it). draw: draw the figures now (True, the default),
    or only when the inspector is first displayed (False: the widgets, the status line and the
    tracing progress bar show at once, and the figures follow when the first trace is ready).

    Redrawing is the fast path of :class:`hmmnlab.viz.AffinityFigure` and
    :class:`hmmnlab.viz.TopkFigure`: their figures are built once per layout and kept, and a new
    query cell, frame or object only sets their data and repaints them (PNG through OpenCV).
    A redraw asked for while one is running (``update`` called from inside a draw) is not
    started at once: the latest choices are drawn once the running draw ends (``pending``)."""

    def __init__(
        self,
        videos: Mapping[str, InspectorVideo],
        *,
        trace_of: TraceProvider | None = None,
        sequence: str | None = None,
        frame: int | None = None,
        read: ReadConfig | None = None,
        dpi: int = 100,
        draw: bool = True,
    ) -> None:
        names = list(videos)
        if not names:
            raise ValueError("the inspector needs at least one video, got none")
        sequence = names[0] if sequence is None else sequence
        if sequence not in names:
            raise ValueError(f"unknown sequence {sequence!r}; the videos are {names}")
        if trace_of is not None and not callable(trace_of):
            raise TypeError(f"trace_of must be a function (video, frame), got {trace_of!r:.80}")
        self.videos, self.trace_of, self.read = videos, trace_of, read or ReadConfig()
        self.dpi = dpi
        self.traces: dict[tuple[str, int], FrameTrace] = {}
        self._checked: dict[str, InspectorVideo] = {}
        self._figures: dict[tuple, viz.AffinityFigure | viz.TopkFigure] = {}  # kept, by layout
        self._busy = False  # setting several controls at once: no redraw per control
        self.drawing = False  # a draw is running
        self.pending = False  # a redraw was asked for during the running draw
        self._snapped = ""  # where the last snap of the query cell took the object from
        self._snap_note = ""  # the status line's note on it, until the next draw
        self.placeholders = False  # whether the images show placeholders, not figures

        def control(width: str) -> dict:
            return {"layout": widgets.Layout(width=width, max_width="100%"),
                    "style": {"description_width": "initial"}}  # fmt: skip

        self.video = widgets.Dropdown(
            options=names, value=sequence, description="video", **control("32%")
        )
        self.frame = widgets.IntSlider(
            min=1, max=1, value=1, description="frame", continuous_update=False, **control("32%")
        )
        self.obj = widgets.Dropdown(
            options=[("object 1", 0)], value=0, description="object", **control("32%")
        )
        self.scale = widgets.ToggleButtons(
            options=["r3", "r2"], value="r3", description="scale",
            layout=widgets.Layout(width="auto", max_width="100%"),
            style={"description_width": "initial", "button_width": "48px"},
        )  # fmt: skip
        self.affinity_view = widgets.ToggleButtons(
            options=list(AFFINITY_VIEWS), value="after kernel", description="affinity",
            layout=widgets.Layout(width="auto", max_width="100%"),
            style={"description_width": "initial", "button_width": "96px"},
        )  # fmt: skip
        self.y = widgets.IntSlider(
            min=0, max=0, description="query y", continuous_update=False, **control("24%")
        )
        self.x = widgets.IntSlider(
            min=0, max=0, description="query x", continuous_update=False, **control("24%")
        )
        self.status = widgets.HTML(layout=widgets.Layout(width="auto", max_width="100%"))
        # at their own size, shrunk (keeping their aspect) to the width of their column and to
        # under half the window's height, so that the four figures are in view together
        image_layout = {"width": "auto", "height": "auto", "max_width": "100%",
                        "max_height": "45vh", "object_fit": "contain", "margin": "0"}  # fmt: skip
        self.query_image = widgets.Image(format="png", layout=widgets.Layout(**image_layout))
        self.affinity_image = widgets.Image(format="png", layout=widgets.Layout(**image_layout))
        self.kernel_image = widgets.Image(format="png", layout=widgets.Layout(**image_layout))
        self.topk_image = widgets.Image(format="png", layout=widgets.Layout(**image_layout))
        self.table = widgets.HTML()
        self.events = self._click_events()
        hint = "click the query frame" if self.events is not None else "use the sliders"
        self.progress = widgets.IntProgress(
            min=0, max=1, value=0, description="tracing",
            layout=widgets.Layout(visibility="hidden", width="30%"),
        )  # fmt: skip
        top = widgets.Layout(align_items="flex-start")  # children at their own size, not stretched

        def cell(title: str, child) -> widgets.VBox:  # one of the 2 x 2 figures
            return widgets.VBox(
                [widgets.HTML(title), child],
                layout=widgets.Layout(width="49%", min_width="320px", align_items="flex-start"),
            )

        def row(children) -> widgets.HBox:  # wraps to one column when the page is narrow
            return widgets.HBox(
                children,
                layout=widgets.Layout(flex_flow="row wrap", width="100%", align_items="flex-start",
                                      justify_content="space-between"),
            )  # fmt: skip

        self.topk_box = widgets.Box([self.topk_image], layout=top)
        self.app = widgets.VBox(
            [
                row([self.video, self.frame, self.obj]),
                row([self.scale, self.affinity_view, self.y, self.x]),
                widgets.HBox([self.progress, self.status], layout=widgets.Layout(width="100%")),
                row(
                    [
                        cell(
                            f"<b>Query frame</b> ({hint} to choose the r4 cell)", self.query_image
                        ),
                        cell("<b>Top-k guidance</b>", self.topk_box),
                    ]
                ),  # fmt: skip
                row(
                    [
                        cell("<b>r4 affinity</b> (over the memory frames)", self.affinity_image),
                        cell("<b>Gaussian kernel</b>", self.kernel_image),
                    ]
                ),
                widgets.HTML("<b>The selected r4 cells</b> (best first)"),
                widgets.Box(
                    [self.table],
                    layout=widgets.Layout(max_height="240px", overflow="auto", width="100%"),
                ),
            ],
            layout=widgets.Layout(width="100%", max_width="100%"),
        )
        self._load_video(sequence, frame)
        self.video.observe(self._on_video, names="value")
        for control in (self.frame, self.obj):
            control.observe(self._on_object_or_frame, names="value")
        for control in (self.scale, self.affinity_view, self.y, self.x):
            control.observe(self._on_change, names="value")
        self.drawn = False  # whether update() has drawn the figures yet
        if draw:
            self.update()
        else:
            self._show_placeholders(f"{sequence}: tracing frame {self.frame.value} ...")
            self.status.value = status_text(
                f"{sequence}: the figures follow once frame {self.frame.value} is traced ..."
            )

    # --- data ----------------------------------------------------------------------------------

    def video_data(self, name: str) -> InspectorVideo:
        """Video ``name``, checked (with :func:`check_video`) when first used."""
        if name not in self._checked:
            video = check_video(name, self.videos[name])
            missing = [t for t in range(1, len(video.frames)) if t not in video.traces]
            if self.trace_of is None and missing:
                raise ValueError(
                    f"video {name!r} has frames 0..{len(video.frames) - 1} but no trace of frames "
                    f"{missing}, and the inspector has no trace_of to compute them: give every "
                    "frame's trace, cut the frames to the traced ones, or pass trace_of"
                )
            self._checked[name] = video
            for t, trace in video.traces.items():
                self.traces.setdefault((name, t), trace)
        return self._checked[name]

    def video_frames(self, name: str) -> tuple[list[np.ndarray], np.ndarray]:
        """The frames of video ``name`` and its first frame's labels."""
        video = self.video_data(name)
        return list(video.frames), video.first_labels

    def trace(self, name: str, frame: int) -> FrameTrace:
        """The trace of ``frame`` of video ``name``: given, or asked of ``trace_of`` once (with the
        other frames' traces it yields on the way, all checked and kept). The progress bar shows
        while ``trace_of`` runs, and only then."""
        key = (name, frame)
        if key in self.traces:
            return self.traces[key]
        video = self.video_data(name)
        if not 1 <= frame < len(video.frames):
            raise ValueError(
                f"video {name!r} has frames 0..{len(video.frames) - 1}: frame {frame} has no "
                f"memory read to show (frames 1..{len(video.frames) - 1} have)"
            )
        self.progress.max, self.progress.value = frame, 0
        self.progress.layout.visibility = "visible"
        self.status.value = status_text(f"{name}: tracing frame {frame} (once) ...")
        try:
            made = self.trace_of(name, frame)
            pairs = [(frame, made)] if isinstance(made, FrameTrace) else made
            for t, trace in pairs:
                t = int(t)
                if (name, t) not in self.traces and 1 <= t < len(video.frames):
                    self.traces[(name, t)] = check_trace(
                        trace, video=name, frame=t, num_objects=self._num_objects(name),
                        grid=r4_grid_of(video.frames[0].shape[:2]),
                        size=video.frames[0].shape[:2],
                    )  # fmt: skip
                self.progress.value = min(max(t, 0), frame)
        finally:
            self.progress.layout.visibility = "hidden"
        if key not in self.traces:
            raise ValueError(f"trace_of({name!r}, {frame}) gave no trace of frame {frame}")
        self.progress.value = frame
        return self.traces[key]

    @property
    def current(self) -> FrameTrace:
        return self.trace(self.video.value, self.frame.value)

    @property
    def query_yx(self) -> tuple[int, int]:
        return self.y.value, self.x.value

    def masks_of(self, name: str, frame: int) -> tuple[np.ndarray, str]:
        """The H x W labels to show on ``frame`` and where they come from: the frame's true mask
        when the video has one, else the mask the model predicted (when its trace, already made,
        holds it), else frame 0's labels."""
        video = self.video_data(name)
        if frame in video.truth:
            return video.truth[frame], "true mask"
        trace = self.traces.get((name, frame))
        if trace is not None and trace.labels is not None:
            return trace.labels, "predicted mask"
        return video.first_labels, "frame 0's labels"

    # --- driving from Python -------------------------------------------------------------------

    def select(self, y: int, x: int) -> None:
        """Choose the query r4 cell (y, x) of the padded grid and update the figures once."""
        viz.check_query((y, x), (self.y.max + 1, self.x.max + 1))
        self._busy = True
        try:
            self.y.value, self.x.value = int(y), int(x)
        finally:
            self._busy = False
        self.update()

    def click(self, px: float, py: float) -> None:
        """A click at pixel (px, py) of the (unpadded) query frame: select the r4 cell there."""
        size = self.video_data(self.video.value).frames[0].shape[:2]
        y, x = viz.pixel_to_cell(py, px, size)
        self.select(min(max(y, 0), self.y.max), min(max(x, 0), self.x.max))

    # --- internals -----------------------------------------------------------------------------

    def _num_objects(self, name: str) -> int:
        return len(object_labels(self.video_data(name).first_labels))

    def _click_events(self):
        try:
            from ipyevents import Event
        except ImportError:  # the sliders remain
            return None
        events = Event(source=self.query_image, watched_events=["click"])
        events.on_dom_event(self._on_click)
        return events

    def _on_click(self, event: dict) -> None:
        if "dataX" in event:
            px, py = event["dataX"], event["dataY"]
        else:  # scale the position in the displayed element to image pixels
            height, width = self.video_data(self.video.value).frames[0].shape[:2]
            px = event["relativeX"] * width / max(event.get("boundingRectWidth", width), 1)
            py = event["relativeY"] * height / max(event.get("boundingRectHeight", height), 1)
        self.click(px, py)

    def _load_video(self, name: str, frame: int | None = None) -> None:
        video = self.video_data(name)
        ids = object_labels(video.first_labels)
        h, w = r4_grid_of(video.frames[0].shape[:2])
        last = len(video.frames) - 1
        self._busy = True
        try:
            self.frame.max = last
            self.frame.value = min(frame or last, last)
            # "object n" counts objects from 1, as the figures' titles do; the label if it differs
            self.obj.options = [
                (f"object {n + 1}" + (f" (label {i})" if i != n + 1 else ""), n)
                for n, i in enumerate(ids)
            ]
            self.obj.value = 0
            self.y.max, self.x.max = h - 1, w - 1
            self.y.value, self.x.value = self._object_cell(name, self.frame.value, ids[0])
        finally:
            self._busy = False
        self._snap_note = f"query on object 1 ({self._snapped})"

    def _object_cell(self, name: str, frame: int, label: int) -> tuple[int, int]:
        """The r4 cell of the object pixel nearest the object's centre in ``frame`` (in its masks,
        see :meth:`masks_of`; in frame 0's labels when the object is not in them), so that the
        query starts on the object. Remembers where the object was taken from, for the status."""
        video = self.video_data(name)
        labels, source = self.masks_of(name, frame)
        spot = nearest_to_centre(labels, label)
        if spot is None:
            spot, source = nearest_to_centre(video.first_labels, label), "frame 0's labels"
        self._snapped = source
        size = video.frames[0].shape[:2]
        y, x = viz.pixel_to_cell(float(spot[0]), float(spot[1]), size)
        return min(max(y, 0), self.y.max), min(max(x, 0), self.x.max)

    def _show_placeholders(self, text: str) -> None:
        """Grey images saying ``text`` in place of the figures (and an empty table)."""
        size = self.video_data(self.video.value).frames[0].shape[:2]
        self.query_image.value = _placeholder(size, text)
        for image in (self.affinity_image, self.kernel_image, self.topk_image):
            image.value = _placeholder((300, 720), text)
        self.table.value = ""
        self.placeholders = True

    def _on_video(self, change) -> None:
        # the old video's figures go at once: placeholders show while the new one loads
        self.status.value = status_text(f"loading {change['new']} ...")
        self._load_video(change["new"])
        self._show_placeholders(f"loading {change['new']} ...")
        self.update()

    def _on_object_or_frame(self, change) -> None:
        """Another object or frame: the query cell snaps onto the chosen object, then redraw."""
        if self._busy:
            return
        name, t = self.video.value, self.frame.value
        label = object_labels(self.video_data(name).first_labels)[self.obj.value]
        self.status.value = status_text(f"{name}, frame {t}: computing ...")
        self.trace(name, t)  # its predicted mask places the object where there is no true one
        self._busy = True
        try:
            self.y.value, self.x.value = self._object_cell(name, t, label)
        finally:
            self._busy = False
        self._snap_note = f"query snapped to object {self.obj.value + 1} ({self._snapped})"
        self.update()

    def _on_change(self, change) -> None:
        if not self._busy:
            self.update()

    def _kept(self, key: tuple, build):
        """The kept figure of layout ``key``, built by ``build()`` the first time."""
        if key not in self._figures:
            if len(self._figures) >= 32:  # many videos of many sizes: start again
                self._figures.clear()
            self._figures[key] = build()
        return self._figures[key]

    def _png(self, figure) -> bytes:
        return viz.png_bytes(viz.render(figure, dpi=self.dpi))

    def update(self) -> None:
        """Redraw every figure and the table for the current choices. Called while a draw runs
        (from a callback inside it), it only marks a redraw ``pending``: the draw in progress
        then draws once more, with the choices as they are at its end (so of many clicks made
        during one draw, only the latest is drawn)."""
        if self.drawing:
            self.pending = True
            return
        self.drawing = True
        try:
            while True:
                self.pending = False
                self._draw()
                if not self.pending:
                    break
        except Exception as error:  # not "computing ..." forever: say what went wrong
            self.status.value = status_text(f"error: {error}")
            raise
        finally:
            self.drawing = False

    def query_frame_image(self, name: str, t: int) -> tuple[np.ndarray, str]:
        """Frame ``t`` as the query panel shows it (H x W x 3 uint8): the masks (see
        :meth:`masks_of`) in the DAVIS colours, the query cell's box in cyan and each object's id
        written on the object; and where the masks come from."""
        video = self.video_data(name)
        labels, source = self.masks_of(name, t)
        ids = object_labels(video.first_labels)
        shown = np.where(np.isin(labels, ids), labels, 0)  # no void (255) colour
        image = viz.overlay(video.frames[t], shown, alpha=0.35)
        top, left, bottom, right = (int(v) for v in viz.cell_box(*self.query_yx, image.shape[:2]))
        cv2.rectangle(image, (left, top), (right - 1, bottom - 1), (0, 255, 255), 2)
        return draw_object_ids(image, labels, ids), source  # the ids over the box: readable

    def _draw(self) -> None:
        name, t, obj, scale = self.video.value, self.frame.value, self.obj.value, self.scale.value
        doing = f"loading {name}: frame {t}" if self.placeholders else f"{name}, frame {t}"
        self.status.value = status_text(f"{doing}: computing ...")
        frames = self.video_data(name).frames
        trace = self.current
        q = self.query_yx
        size = frames[0].shape[:2]
        grid = r4_grid_of(size)
        image, source = self.query_frame_image(name, t)
        self.query_image.value = viz.png_bytes(image)
        cache, memory = trace.cache, trace.memory_frames
        stage, log = AFFINITY_VIEWS[self.affinity_view.value]
        shown = {}
        for key, (stage_of, log_of) in (("affinity", (stage, log)), ("kernel", ("kernel", False))):
            figure = self._kept(
                ("maps", stage_of, log_of, len(memory), size),
                lambda s=stage_of, g=log_of: viz.AffinityFigure(s, len(memory), size, grid, log=g),
            )
            figure.show(cache, frames, memory, q, obj=obj)
            shown[key] = self._png(figure)
        table = viz.topk_table(cache, memory, q, obj=obj, scale=scale, read=self.read)
        guide = guidance_frames(tuple(memory), self.read)
        figure = self._kept(
            ("topk", scale, len(guide), size), lambda: viz.TopkFigure(scale, len(guide), size)
        )
        figure.show(cache, frames, memory, q, obj=obj, read=self.read, table=table)
        shown["topk"] = self._png(figure)
        self.affinity_image.value = shown["affinity"]
        self.kernel_image.value = shown["kernel"]
        self.topk_image.value = shown["topk"]
        self.table.value = table.to_html(index=False, float_format=lambda v: f"{v:.4f}")
        self.placeholders = False
        note, self._snap_note = self._snap_note, ""
        self.status.value = status_text(
            f"{name}, frame {t}: memory frames {memory}; query r4 cell (y, x) = {q}; "
            f"masks: {source}" + (f"; {note}" if note else "")
        )
        self.drawn = True

    def _ipython_display_(self) -> None:
        """Show the widgets first, then (if not drawn yet) trace and draw, so that the progress
        bar and the status line are on screen during the first, slow trace."""
        from IPython.display import display

        display(self.app)
        if not self.drawn:
            self.update()


# --- the builder: videos from a DAVIS root, traces from a model -------------------------------------


class DavisVideos(Mapping):
    """The sequences of a DAVIS dataset as :class:`InspectorVideo`, cut to their first
    ``num_frames`` frames and read from disk when first used (name -> video)."""

    def __init__(self, dataset, *, num_frames: int = 10) -> None:
        if num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {num_frames}")
        self.dataset, self.num_frames = dataset, num_frames
        self._loaded: dict[str, InspectorVideo] = {}

    def __getitem__(self, name: str) -> InspectorVideo:
        if name not in self._loaded:
            if name not in self.dataset.sequences:
                raise KeyError(f"unknown sequence {name!r}; {self.dataset.root} has {list(self)}")
            seq = self.dataset[name]
            count = min(self.num_frames, len(seq))
            annotated = min(count, len(seq.mask_paths))  # the annotations of the first frames
            self._loaded[name] = InspectorVideo(
                [seq[i] for i in range(count)],
                seq.first_mask(),
                truth={i: seq.mask(i) for i in range(1, annotated)},
            )
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self.dataset.sequences

    def __iter__(self) -> Iterator[str]:
        return iter(self.dataset.sequences)

    def __len__(self) -> int:
        return len(self.dataset.sequences)


def model_traces(
    model, videos: Mapping[str, InspectorVideo], *, read: ReadConfig | None = None,
    device: str = "cpu",
) -> TraceProvider:  # fmt: skip
    """A ``trace_of`` for :class:`TopkInspector` that runs ``model``: propagate over the frames of
    ``videos[video]`` up to ``frame``, yielding every frame's trace (:data:`TRACE_NAMES`) on the way."""
    from hmmnlab.inference import propagate

    read = read or ReadConfig()

    def trace_of(name: str, frame: int) -> Iterator[tuple[int, FrameTrace]]:
        video = videos[name]
        for result in propagate(
            model,
            list(video.frames[: frame + 1]),
            video.first_labels,
            read=read,
            device=device,
            trace=[*TRACE_NAMES, *OPTIONAL_TRACE_NAMES],
            trace_to_cpu=True,
        ):
            if result.index >= 1:
                labels = result.labels.cpu().numpy()  # the predicted mask, shown on the frame
                yield result.index, FrameTrace(result.trace, result.memory_frames, labels)

    return trace_of


def topk_inspector(
    root: str | Path | None = None,
    *,
    weights: str | Path | None = None,
    model=None,
    sequence: str | None = None,
    frame: int | None = None,
    num_frames: int = 10,
    read: ReadConfig | None = None,
    device: str = "cpu",
    draw: bool | None = None,
) -> TopkInspector:
    """The top-k inspector over the sequences of a DAVIS 2017 val root (default: the bundled
    samples) with ``model`` or the checkpoint ``weights`` (default: the demo weights, see
    :func:`hmmnlab.lesson.demo_weights`). Only the first ``num_frames`` frames of a video are used;
    a frame's trace is computed when it is first shown. draw: see :class:`TopkInspector` (None:
    in a Jupyter kernel, draw when displayed, so the progress bar shows during the first trace;
    elsewhere, draw now)."""
    from hmmnlab.lesson import demo_weights, sample_dataset
    from hmmnlab.weights import load_model

    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    if model is None:
        model = load_model(demo_weights(weights), device=device)
    dataset = sample_dataset(root)
    if sequence is not None and sequence not in dataset.sequences:
        raise ValueError(f"unknown sequence {sequence!r}; {dataset.root} has {dataset.sequences}")
    videos = DavisVideos(dataset, num_frames=num_frames)
    return TopkInspector(
        videos,
        trace_of=model_traces(model, videos, read=read, device=device),
        sequence=sequence,
        frame=frame,
        read=read,
        draw=not in_jupyter_kernel() if draw is None else draw,
    )


def in_jupyter_kernel() -> bool:
    """Whether this code runs in a Jupyter (IPython) kernel, where widgets are shown."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
