"""Interactive viewers built on :mod:`hmmnlab.viz` (ipywidgets).

:func:`topk_inspector` builds the top-k inspector: pick a video, a frame, an object and a scale; click
a query position on the query frame (or move the y / x sliders, always there) and see, on every memory
frame, the r4 affinity after the kernel, the Gaussian kernel and the r4 cells selected to guide the r3
or r2 read (with their children), plus a table of the selected cells. Traces are computed on demand
and kept per (video, frame). Everything is drivable from Python: ``inspector.select(y, x)``,
``inspector.click(px, py)``, or set any widget's ``value``.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import ipywidgets as widgets
import numpy as np
from PIL import Image

from hmmnlab import ops, viz
from hmmnlab.config import ReadConfig
from hmmnlab.data.davis import DavisDataset
from hmmnlab.inference import VOID_LABEL, propagate

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


@dataclass
class FrameTrace:
    """The trace of one frame: hook name -> tensor, and the r4 memory frames it read."""

    cache: dict
    memory_frames: tuple[int, ...]


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


class TopkInspector:
    """The widget app of :func:`topk_inspector`; ``.app`` is the root widget (displaying the
    inspector displays it)."""

    def __init__(
        self,
        model,
        dataset: DavisDataset,
        *,
        sequence: str | None = None,
        frame: int | None = None,
        num_frames: int = 10,
        read: ReadConfig | None = None,
        device: str = "cpu",
        dpi: int = 100,
    ) -> None:
        if num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {num_frames}")
        names = list(dataset.sequences)
        sequence = sequence or names[0]
        if sequence not in names:
            raise ValueError(f"unknown sequence {sequence!r}; {dataset.root} has {names}")
        self.model, self.dataset, self.read = model, dataset, read or ReadConfig()
        self.num_frames, self.device, self.dpi = num_frames, device, dpi
        self.traces: dict[tuple[str, int], FrameTrace] = {}
        self._videos: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}
        self._busy = False

        self.video = widgets.Dropdown(options=names, value=sequence, description="video")
        self.frame = widgets.IntSlider(
            min=1, max=1, value=1, description="frame", continuous_update=False
        )
        self.obj = widgets.Dropdown(options=[("object 1", 0)], value=0, description="object")
        self.scale = widgets.ToggleButtons(options=["r3", "r2"], value="r3", description="scale")
        self.y = widgets.IntSlider(min=0, max=0, description="query y", continuous_update=False)
        self.x = widgets.IntSlider(min=0, max=0, description="query x", continuous_update=False)
        self.status = widgets.HTML()
        self.query_image = widgets.Image(format="png")
        self.affinity_image = widgets.Image(format="png")
        self.kernel_image = widgets.Image(format="png")
        self.topk_image = widgets.Image(format="png")
        self.table = widgets.HTML()
        self.events = self._click_events()
        hint = "click the query frame" if self.events is not None else "use the sliders"
        self.progress = widgets.IntProgress(min=0, max=1, value=0, description="tracing")
        top = widgets.Layout(align_items="flex-start")  # children at their own size, not stretched
        # The query frame and the top-k cells side by side: the effect of a click is in view.
        self.topk_box = widgets.HBox([self.topk_image, self.table], layout=top)
        self.app = widgets.VBox(
            [
                widgets.HBox([self.video, self.frame, self.obj]),
                widgets.HBox([self.scale, self.y, self.x]),
                widgets.HBox([self.progress, self.status]),
                widgets.HBox(
                    [
                        widgets.VBox(
                            [
                                widgets.HTML(f"<b>Query frame</b> ({hint} to choose the r4 cell)"),
                                self.query_image,
                            ],
                            layout=top,
                        ),
                        widgets.VBox([widgets.HTML("<b>Top-k guidance</b>"), self.topk_box]),
                    ],
                    layout=top,
                ),
                widgets.HTML("<b>r4 affinity after the kernel</b>"),
                self.affinity_image,
                widgets.HTML("<b>Gaussian kernel</b>"),
                self.kernel_image,
            ],
            layout=top,
        )
        self._load_video(sequence, frame)
        self.video.observe(self._on_video, names="value")
        for control in (self.frame, self.obj, self.scale, self.y, self.x):
            control.observe(self._on_change, names="value")
        self.update()

    # --- data ----------------------------------------------------------------------------------

    def video_frames(self, name: str) -> tuple[list[np.ndarray], np.ndarray]:
        """The first ``num_frames`` frames of video ``name`` and its first frame's labels."""
        if name not in self._videos:
            seq = self.dataset[name]
            count = min(self.num_frames, len(seq))
            self._videos[name] = ([seq[i] for i in range(count)], seq.first_mask())
        return self._videos[name]

    def trace(self, name: str, frame: int) -> FrameTrace:
        """The trace of ``frame`` of video ``name`` (computed once; the propagation keeps the
        traces of the earlier frames on the way)."""
        key = (name, frame)
        if key not in self.traces:
            frames, labels = self.video_frames(name)
            self.progress.max, self.progress.value = frame, 0
            self.status.value = html.escape(f"{name}: tracing frames 1..{frame} (once) ...")
            for result in propagate(
                self.model,
                frames[: frame + 1],
                labels,
                read=self.read,
                device=self.device,
                trace=list(TRACE_NAMES),
                trace_to_cpu=True,
            ):
                if result.index >= 1:
                    self.traces[(name, result.index)] = FrameTrace(
                        result.trace, result.memory_frames
                    )
                self.progress.value = result.index
        return self.traces[key]

    @property
    def current(self) -> FrameTrace:
        return self.trace(self.video.value, self.frame.value)

    @property
    def query_yx(self) -> tuple[int, int]:
        return self.y.value, self.x.value

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
        frames, _ = self.video_frames(self.video.value)
        size = frames[0].shape[:2]
        y, x = viz.pixel_to_cell(py, px, size)
        self.select(min(max(y, 0), self.y.max), min(max(x, 0), self.x.max))

    # --- internals -----------------------------------------------------------------------------

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
            frames, _ = self.video_frames(self.video.value)
            height, width = frames[0].shape[:2]
            px = event["relativeX"] * width / max(event.get("boundingRectWidth", width), 1)
            py = event["relativeY"] * height / max(event.get("boundingRectHeight", height), 1)
        self.click(px, py)

    def _load_video(self, name: str, frame: int | None = None) -> None:
        frames, labels = self.video_frames(name)
        if len(frames) < 2:
            raise ValueError(f"video {name!r} has {len(frames)} frame: nothing to read from memory")
        ids = [int(v) for v in np.unique(labels) if v not in (0, VOID_LABEL)]
        left, right, top, bottom = ops.padding_for(*frames[0].shape[:2])
        h = (frames[0].shape[0] + top + bottom) // viz.R4_STRIDE  # the padded r4 grid
        w = (frames[0].shape[1] + left + right) // viz.R4_STRIDE
        self._busy = True
        try:
            self.frame.max = len(frames) - 1
            self.frame.value = min(frame or len(frames) - 1, len(frames) - 1)
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

    def _object_cell(self, name: str, frame: int, label: int) -> tuple[int, int]:
        """The r4 cell of the object pixel nearest the object's centre in ``frame`` (its annotation
        when there is one, else the first frame's), so that the inspector starts on the object."""
        frames, first = self.video_frames(name)
        seq = self.dataset[name]
        labels = seq.mask(frame) if frame < len(seq.mask_paths) else first
        ys, xs = np.nonzero(labels == label)
        if not len(ys):
            ys, xs = np.nonzero(first == label)
        nearest = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
        y, x = viz.pixel_to_cell(float(ys[nearest]), float(xs[nearest]), frames[0].shape[:2])
        return min(max(y, 0), self.y.max), min(max(x, 0), self.x.max)

    def _on_video(self, change) -> None:
        # the old video's figures go at once: what is shown while the new one loads is the status
        for image in (self.query_image, self.affinity_image, self.kernel_image, self.topk_image):
            image.value = b""
        self.table.value = ""
        self.status.value = html.escape(f"loading {change['new']} ...")
        self._load_video(change["new"])
        self.update()

    def _on_change(self, change) -> None:
        if not self._busy:
            self.update()

    def _render(self, fig) -> bytes:
        return viz.figure_png(fig, dpi=self.dpi)

    def update(self) -> None:
        """Redraw every figure and the table for the current choices."""
        name, t, obj, scale = self.video.value, self.frame.value, self.obj.value, self.scale.value
        frames, _ = self.video_frames(name)
        trace = self.current
        q = self.query_yx
        image = frames[t].copy()
        top, left, bottom, right = (int(v) for v in viz.cell_box(*q, image.shape[:2]))
        cv2.rectangle(image, (left, top), (right - 1, bottom - 1), (0, 255, 255), 2)
        self.query_image.value = _png(image)
        cache, memory = trace.cache, trace.memory_frames
        self.affinity_image.value = self._render(
            viz.affinity_maps(cache, frames, memory, q, obj=obj, stage="affinity")
        )
        self.kernel_image.value = self._render(
            viz.affinity_maps(cache, frames, memory, q, obj=obj, stage="kernel")
        )
        self.topk_image.value = self._render(
            viz.topk_on_memory(cache, frames, memory, q, obj=obj, scale=scale, read=self.read)
        )
        table = viz.topk_table(cache, memory, q, obj=obj, scale=scale, read=self.read)
        self.table.value = table.to_html(index=False, float_format=lambda v: f"{v:.4f}")
        self.status.value = html.escape(
            f"{name}, frame {t}: memory frames {memory}; query r4 cell (y, x) = {q}"
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.app)


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
) -> TopkInspector:
    """The top-k inspector over the sequences of a DAVIS 2017 val root (default: the bundled
    samples) with ``model`` or the checkpoint ``weights`` (default: the demo weights, see
    :func:`hmmnlab.lesson.demo_weights`). Only the first ``num_frames`` frames of a video are used."""
    from hmmnlab.lesson import demo_weights, sample_dataset
    from hmmnlab.weights import load_model

    if model is None:
        model = load_model(demo_weights(weights), device=device)
    return TopkInspector(
        model,
        sample_dataset(root),
        sequence=sequence,
        frame=frame,
        num_frames=num_frames,
        read=read,
        device=device,
    )
