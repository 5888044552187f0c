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

The package, by job (every name importable from ``hmmnlab.widgets``, as before the split):
:mod:`~hmmnlab.widgets.traces` (the videos and traces it shows, and their checks),
:mod:`~hmmnlab.widgets.drawing` (its status line, placeholders, object ids),
:mod:`~hmmnlab.widgets.layout` (its controls and their arrangement),
:mod:`~hmmnlab.widgets.inspector` (:class:`TopkInspector`) and :mod:`~hmmnlab.widgets.builder`
(:func:`topk_inspector`, the model's traces).
"""

from hmmnlab.widgets.builder import (
    DavisVideos,
    in_jupyter_kernel,
    model_traces,
    topk_inspector,
)
from hmmnlab.widgets.drawing import (
    draw_object_ids,
    nearest_to_centre,
    status_text,
)
from hmmnlab.widgets.inspector import (
    TopkInspector,
)
from hmmnlab.widgets.layout import (
    AFFINITY_VIEWS,
)
from hmmnlab.widgets.traces import (
    OPTIONAL_TRACE_NAMES,
    TRACE_NAMES,
    FrameTrace,
    InspectorVideo,
    TraceProvider,
    check_trace,
    check_video,
    object_labels,
    r4_grid_of,
)

__all__ = [
    "AFFINITY_VIEWS",
    "DavisVideos",
    "FrameTrace",
    "InspectorVideo",
    "OPTIONAL_TRACE_NAMES",
    "TRACE_NAMES",
    "TopkInspector",
    "TraceProvider",
    "check_trace",
    "check_video",
    "draw_object_ids",
    "in_jupyter_kernel",
    "model_traces",
    "nearest_to_centre",
    "object_labels",
    "r4_grid_of",
    "status_text",
    "topk_inspector",
]
