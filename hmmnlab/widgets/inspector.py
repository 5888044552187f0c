""":class:`TopkInspector`: the viewer of given traces (bertviz's ``head_view`` for a memory read)."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import ipywidgets as widgets
import numpy as np

from hmmnlab import viz
from hmmnlab.config import ReadConfig
from hmmnlab.model.reads import guidance_frames
from hmmnlab.widgets.drawing import _placeholder, draw_object_ids, nearest_to_centre, status_text
from hmmnlab.widgets.layout import AFFINITY_VIEWS, IMAGE_LAYOUT, control_layout, inspector_app
from hmmnlab.widgets.traces import (
    FrameTrace,
    InspectorVideo,
    TraceProvider,
    check_trace,
    check_video,
    object_labels,
    r4_grid_of,
)


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
        self._build_widgets(names, sequence)
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

    def _build_widgets(self, names: list[str], sequence: str) -> None:
        """The controls, the images, the progress bar and the table, and ``self.app``, the root
        widget that arranges them (:func:`hmmnlab.widgets.layout.inspector_app`)."""
        self.video = widgets.Dropdown(
            options=names, value=sequence, description="video", **control_layout("32%")
        )
        self.frame = widgets.IntSlider(
            min=1, max=1, value=1, description="frame", continuous_update=False,
            **control_layout("32%"),
        )  # fmt: skip
        self.obj = widgets.Dropdown(
            options=[("object 1", 0)], value=0, description="object", **control_layout("32%")
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
            min=0, max=0, description="query y", continuous_update=False, **control_layout("24%")
        )
        self.x = widgets.IntSlider(
            min=0, max=0, description="query x", continuous_update=False, **control_layout("24%")
        )
        self.status = widgets.HTML(layout=widgets.Layout(width="auto", max_width="100%"))
        self.query_image = widgets.Image(format="png", layout=widgets.Layout(**IMAGE_LAYOUT))
        self.affinity_image = widgets.Image(format="png", layout=widgets.Layout(**IMAGE_LAYOUT))
        self.kernel_image = widgets.Image(format="png", layout=widgets.Layout(**IMAGE_LAYOUT))
        self.topk_image = widgets.Image(format="png", layout=widgets.Layout(**IMAGE_LAYOUT))
        self.table = widgets.HTML()
        self.events = self._click_events()
        hint = "click the query frame" if self.events is not None else "use the sliders"
        self.progress = widgets.IntProgress(
            min=0, max=1, value=0, description="tracing",
            layout=widgets.Layout(visibility="hidden", width="30%"),
        )  # fmt: skip
        top = widgets.Layout(align_items="flex-start")  # children at their own size, not stretched
        self.topk_box = widgets.Box([self.topk_image], layout=top)
        self.app = inspector_app(self, hint)

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
