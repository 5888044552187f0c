"""Pictures: overlays of label maps on frames, figures from traces (see below), figures of score
tables, and an offline animation player. Pure functions: arrays, tensors and DataFrames in,
matplotlib Figures (or HTML) out; no model runs, no files read."""

from __future__ import annotations

import io
import numbers
import re
from collections.abc import Mapping

import cv2
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from hmmnlab import ops
from hmmnlab.config import ReadConfig
from hmmnlab.data.palette import davis_palette
from hmmnlab.model.reads import guidance_frames

#: The narrowest figure (inches) these functions draw: 700 px at a notebook's 100 dpi.
MIN_FIGURE_WIDTH = 7.0


def overlay(frame: np.ndarray, labels: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """Object colours (DAVIS palette) blended over an H x W x 3 uint8 RGB frame, with each object's
    boundary drawn in full colour. labels: H x W integer label map (0 = background)."""
    if frame.shape[:2] != labels.shape:
        raise ValueError(f"frame is {frame.shape[:2]} but labels are {labels.shape}")
    colours = davis_palette()[labels.astype(np.int64) % 256]  # H x W x 3
    objects = labels > 0
    out = frame.astype(np.float32)
    out[objects] = (1 - alpha) * out[objects] + alpha * colours[objects]
    out = out.astype(np.uint8)
    edges = cv2.morphologyEx(labels.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    boundary = (edges > 0) & objects
    out[boundary] = colours[boundary]
    return out


def overlay_panels(
    panels: list[tuple[str, np.ndarray, np.ndarray]], *, columns: int = 4, legend: bool = True
) -> Figure:
    """A Figure of labelled overlays: ``panels`` = (title, H x W x 3 frame, H x W labels); with
    ``legend``, one colour patch per object id found in the panels' labels (see :func:`object_legend`)."""
    if not panels:
        raise ValueError("overlay_panels needs at least one (title, frame, labels) panel")
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    height, width = panels[0][1].shape[:2]
    size = max(3.2, MIN_FIGURE_WIDTH / columns)
    fig = Figure(figsize=(size * columns, size * height / width * rows + 0.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (title, frame, labels) in zip(axes, panels, strict=False):
        ax.imshow(overlay(np.asarray(frame), np.asarray(labels)))
        ax.set_title(title, fontsize=11)
    if legend:
        ids = sorted({int(i) for _, _, labels in panels for i in np.unique(labels) if i != 0})
        object_legend(fig, ids)
    return fig


def object_legend(fig: Figure, object_ids, *, names: Mapping[int, str] | None = None) -> None:
    """A legend under the figure: the DAVIS palette colour of each object id ("object 1", ...,
    or ``names[id]``), the colours :func:`overlay` draws."""
    from matplotlib.patches import Patch

    palette = davis_palette()
    names = names or {}
    handles = [
        Patch(
            facecolor=palette[i % 256] / 255, edgecolor="black", label=names.get(i, f"object {i}")
        )
        for i in object_ids
    ]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6),
                   fontsize=10, frameon=False)  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# Figures from traces
#
# Every function below takes a trace (the ``cache`` dict of :func:`hmmnlab.trace.run_with_cache`:
# hook name -> tensor, see the table in :mod:`hmmnlab.trace`) plus plain arrays (frames as H x W x 3
# images, the memory frame indices of ``FrameResult.memory_frames``), and returns a matplotlib
# ``Figure`` built without pyplot (no global state, nothing shown: display it, ``savefig`` it, or let
# a notebook render it). Objects are indexed 0..B-1 in the trace's order (``FrameResult.object_ids``).
#
# Coordinates: the network works on the frame padded to a multiple of 16 (:func:`hmmnlab.ops.padding_for`).
# An r4 cell ``(y, x)`` of the padded grid covers the padded pixels ``[16 y, 16 y + 16) x [16 x, 16 x +
# 16)``, i.e. the frame pixels shifted by the top / left padding; an r3 (r2) cell covers 8 (4) pixels.

STAGES = {
    "logits": ("r4.affinity_logits", "raw affinity S = mk^T qk / sqrt(C)"),
    "pre_kernel": ("r4.affinity_logits", "affinity before the kernel: softmax(S)"),
    "kernel": ("r4.kernel", "Gaussian kernel G"),
    "affinity": ("r4.affinity", "affinity after the kernel: softmax(S) G / sum"),
}
SCALES = {"r4": 1, "r3": 2, "r2": 4}  # fine cells per r4 cell along each axis
R4_STRIDE = 16


def require(cache: Mapping[str, Tensor], *names: str) -> None:
    """Raise a ValueError naming the hook points missing from ``cache`` and listing what it has."""
    missing = [name for name in names if name not in cache]
    if missing:
        raise ValueError(
            f"the trace has no {', '.join(missing)}; it has: {', '.join(sorted(cache)) or 'nothing'}"
            " (trace them with run_with_cache(..., names_filter=None), and a read variant that "
            "computes them)"
        )


def check_object(cache: Mapping[str, Tensor], name: str, obj: int) -> None:
    """``obj`` must index the objects (first dimension) of ``cache[name]``."""
    count = cache[name].shape[0]
    if not isinstance(obj, numbers.Integral) or not 0 <= obj < count:
        raise ValueError(f"obj must be an object index in 0..{count - 1} (the trace has {count} "
                         f"objects), got {obj!r}")  # fmt: skip


def r4_grid(cache: Mapping[str, Tensor]) -> tuple[int, int]:
    """(h, w) of the padded r4 grid of a trace."""
    for name in ("query_features.k4", "memory_features.k4", "r4.readout"):
        if name in cache:
            return tuple(cache[name].shape[-2:])
    for name in ("output.probs", "decoder.logits", "output.object_probs"):
        if name in cache:
            height, width = cache[name].shape[-2:]
            return height // R4_STRIDE, width // R4_STRIDE
    raise ValueError(
        "cannot tell the r4 grid of this trace: it has none of query_features.k4, "
        f"memory_features.k4, r4.readout, output.probs; it has: {', '.join(sorted(cache))}"
    )


def check_query(query_yx, grid: tuple[int, int]) -> tuple[int, int]:
    """``query_yx`` as a (y, x) pair of ints inside the r4 grid ``(h, w)``."""
    try:
        y, x = (int(v) for v in query_yx)
    except (TypeError, ValueError):
        raise ValueError(f"query_yx must be an r4 cell (y, x), got {query_yx!r}") from None
    h, w = grid
    if not (0 <= y < h and 0 <= x < w):
        raise ValueError(
            f"query cell (y, x) = ({y}, {x}) is outside the r4 grid of {h} x {w} cells "
            f"(y in 0..{h - 1}, x in 0..{w - 1}; the padded frame is {16 * h} x {16 * w} pixels)"
        )
    return y, x


def pixel_to_cell(py: float, px: float, size: tuple[int, int], *, scale: str = "r4"):
    """The (y, x) cell of the padded grid at ``scale`` holding frame pixel (py, px); ``size`` is the
    unpadded frame's (H, W)."""
    padding = ops.padding_for(*size)
    stride = R4_STRIDE // SCALES[scale]
    return int((py + padding.top) // stride), int((px + padding.left) // stride)


def query_cell_on_object(labels: np.ndarray, obj_label: int = 1) -> tuple[int, int]:
    """The r4 cell under the centre of mass of object ``obj_label`` in a label map (or the frame
    centre when the object is absent)."""
    ys, xs = np.nonzero(np.asarray(labels) == obj_label)
    h, w = np.asarray(labels).shape
    py, px = (ys.mean(), xs.mean()) if len(ys) else (h / 2, w / 2)
    return pixel_to_cell(py, px, (h, w))


def cell_box(y: int, x: int, size: tuple[int, int], *, scale: str = "r4") -> tuple[float, ...]:
    """(top, left, bottom, right) frame pixels of cell (y, x) of the padded grid at ``scale``
    (the box may reach into the padding, outside the frame)."""
    padding = ops.padding_for(*size)
    stride = R4_STRIDE // SCALES[scale]
    top, left = stride * y - padding.top, stride * x - padding.left
    return top, left, top + stride, left + stride


def grid_extent(size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The imshow ``extent`` (left, right, bottom, top) that lays a padded-grid map over the frame."""
    left, right, top, bottom = ops.padding_for(*size)
    height, width = size
    return (-left, width + right, height + bottom, -top)


def frame_image(frames, index: int) -> np.ndarray:
    """Frame ``index`` of ``frames`` (a list, a T x H x W x 3 array or a DavisSequence) as an
    H x W x 3 array for imshow."""
    try:
        count = len(frames)
    except TypeError:
        count = None
    if count is not None and not 0 <= index < count:
        raise ValueError(f"frames has {count} frames but frame {index} is needed")
    image = np.asarray(frames[index])
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)  # 3 x H x W -> H x W x 3
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"frame {index}: expected an H x W x 3 image, got shape {image.shape}")
    return image


def _figure(rows: int, cols: int, *, width: float = 3.2, height: float = 2.4, title: str = ""):
    if width * cols < MIN_FIGURE_WIDTH:  # grow the panels, keeping their shape
        scale = MIN_FIGURE_WIDTH / (width * cols)
        width, height = width * scale, height * scale
    fig = Figure(
        figsize=(width * cols, height * rows + (0.4 if title else 0)), layout="constrained"
    )
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    if title:
        fig.suptitle(title)
    return fig, axes


def _show_frame(ax, image: np.ndarray, title: str):
    """``image`` (H x W x 3) on ``ax`` in frame pixel coordinates, titled, without ticks; returns
    the AxesImage (``set_data`` shows another frame of that size)."""
    shown = ax.imshow(image, extent=(0, image.shape[1], image.shape[0], 0))
    ax.set_xlim(0, image.shape[1])
    ax.set_ylim(image.shape[0], 0)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def _draw_box(ax, box, *, color="white", style="-", width=1.5, fill=None, alpha=1.0) -> Rectangle:
    """A rectangle over ``box`` = (top, left, bottom, right) frame pixels: an outline, or filled
    with ``fill``; returns the patch. (Added as an artist: the axes' limits are the frame's, set
    by :func:`_show_frame`, so the patch need not update them, which costs more than drawing it.)"""
    top, left, bottom, right = box
    return ax.add_artist(
        Rectangle(
            (left, top),
            right - left,
            bottom - top,
            fill=fill is not None,
            facecolor=fill,
            edgecolor=color if fill is None else "none",
            linestyle=style,
            linewidth=width,
            alpha=alpha,
        )
    )


def _move_box(patch: Rectangle, box) -> None:
    """Move ``patch`` (a :func:`_draw_box` rectangle) onto ``box`` = (top, left, bottom, right)."""
    top, left, bottom, right = box
    patch.set_bounds(left, top, right - left, bottom - top)


def _memory_row_blocks(cache: Mapping[str, Tensor], name: str, memory_frames) -> int:
    """Number of memory frames in the rows of ``cache[name]`` (B x THW x ...), checked against
    ``memory_frames``."""
    h, w = r4_grid(cache)
    rows = cache[name].shape[1]
    if rows != len(memory_frames) * h * w:
        raise ValueError(
            f"{name} has {rows} memory rows = {rows / (h * w):g} frames of {h} x {w}, but "
            f"memory_frames lists {len(memory_frames)} frames {tuple(memory_frames)}"
        )
    return len(memory_frames)


def affinity_rows(cache: Mapping[str, Tensor], query_yx, *, obj: int = 0, stage: str = "affinity"):
    """The r4 ``stage`` ("logits", "pre_kernel", "kernel" or "affinity") for one query cell:
    T x h x w numpy, one map per memory frame (oldest first) over the memory frame's padded r4 grid.

    "pre_kernel" is softmax(S) over all memory positions, the read STM would do: from
    ``r4.affinity_logits`` when traced, else recovered from the affinity after the kernel as
    P / G renormalised (exact where G > 0; positions whose kernel underflowed to 0 show 0)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {sorted(STAGES)}, got {stage!r}")
    name = STAGES[stage][0]
    if stage == "pre_kernel" and name not in cache:
        return _pre_kernel_from_affinity(cache, query_yx, obj=obj)
    require(cache, name)
    check_object(cache, name, obj)
    h, w = r4_grid(cache)
    y, x = check_query(query_yx, (h, w))
    column = cache[name][obj, :, y * w + x].float()  # THW
    if stage == "pre_kernel":
        column = column.softmax(0)  # softmax over every memory position, as the read does
    return column.reshape(-1, h, w).numpy()  # T x h x w


def _pre_kernel_from_affinity(cache: Mapping[str, Tensor], query_yx, *, obj: int) -> np.ndarray:
    """softmax(S) for one query cell from P = softmax(S) G / sum (T x h x w): P / G, renormalised."""
    require(cache, "r4.affinity", "r4.kernel")
    affinity = affinity_rows(cache, query_yx, obj=obj, stage="affinity")
    kernel = affinity_rows(cache, query_yx, obj=obj, stage="kernel")
    ratio = np.divide(affinity, kernel, out=np.zeros_like(affinity), where=kernel > 0)
    return ratio / max(float(ratio.sum()), 1e-30)


class AffinityFigure:
    """The figure of :func:`affinity_maps`, kept to be drawn again: built once for a layout (stage,
    colour scale, number of memory frames, frame size, with or without the query panel), then
    :meth:`show` sets its artists' data (frames, heat maps, titles, boxes, colour range) for
    another query cell, object or frame. Redrawing it costs one canvas draw, not a new figure and
    its layout: the top-k inspector's fast path. log: a logarithmic colour scale (4 decades)."""

    DECADES = 4  # the range of the log colour scale, in powers of ten below the maximum

    def __init__(
        self, stage: str, num_memory: int, size: tuple[int, int], grid: tuple[int, int], *,
        query_panel: bool = False, alpha: float = 0.6, log: bool = False,
    ) -> None:  # fmt: skip
        from matplotlib.colors import LogNorm, Normalize

        if stage not in STAGES:
            raise ValueError(f"stage must be one of {sorted(STAGES)}, got {stage!r}")
        self.stage, self.log = stage, log
        self.key = (stage, log, num_memory, tuple(size), tuple(grid), query_panel, alpha)
        self.fig, axes = _figure(1, num_memory + query_panel, title=" ")
        self.title = self.fig.suptitle(" ")  # set_text later: suptitle() would move it back
        axes = list(axes[0])
        blank = np.zeros((*size, 3), np.uint8)
        self.query_ax = axes.pop(0) if query_panel else None
        if self.query_ax is not None:
            self.query_frame = _show_frame(self.query_ax, blank, "query")
            self.query_box = _draw_box(self.query_ax, (0, 0, 1, 1), color="cyan", width=2)
        self.axes = axes
        norm = LogNorm(1e-4, 1.0, clip=True) if log else Normalize(0.0, 1.0)
        self.frames, self.heats, self.boxes = [], [], []
        for ax in axes:
            self.frames.append(_show_frame(ax, blank, "memory"))
            heat = ax.imshow(np.zeros(grid), extent=grid_extent(size), cmap="inferno", norm=norm,
                             alpha=alpha, interpolation="nearest")  # fmt: skip
            self.heats.append(heat)
            self.boxes.append(_draw_box(ax, (0, 0, 1, 1), color="white", style="--"))
        label = f"log10 {stage}" if log else stage
        self.colorbar = self.fig.colorbar(self.heats[-1], ax=axes, shrink=0.8, label=label)
        self.drawn = False  # see render()

    def show(
        self, cache: Mapping[str, Tensor], frames, memory_frames, query_yx, *, obj: int = 0,
        query_frame: int | None = None,
    ) -> Figure:  # fmt: skip
        """The figure for these choices (see :func:`affinity_maps` for the arguments)."""
        stage = self.stage
        rows = affinity_rows(cache, query_yx, obj=obj, stage=stage)  # T x h x w
        if stage != "pre_kernel" or STAGES[stage][0] in cache:
            _memory_row_blocks(cache, STAGES[stage][0], memory_frames)
        y, x = check_query(query_yx, r4_grid(cache))
        if len(memory_frames) != len(self.axes) or (query_frame is None) != (self.query_ax is None):
            raise ValueError(
                f"this figure has {len(self.axes)} memory panels and "
                f"{'a' if self.query_ax else 'no'} query panel; got memory frames "
                f"{tuple(memory_frames)} and query_frame {query_frame}"
            )
        sigmas = cache.get("r4.sigmas")
        title = STAGES[stage][1] + (" (log scale)" if self.log else "")
        self.title.set_text(f"{title}; object {obj + 1}, query cell ({y}, {x})")
        if self.query_ax is not None:
            image = frame_image(frames, query_frame)
            self.query_frame.set_data(image)
            self.query_ax.set_title(f"query: frame {query_frame}", fontsize=9)
            _move_box(self.query_box, cell_box(y, x, image.shape[:2]))
        if stage == "logits":
            vmin, vmax = float(rows.min()), float(rows.max())
        else:
            vmin, vmax = 0.0, max(float(rows.max()), 1e-12)
        if self.log:
            vmin, vmax = vmax * 10.0**-self.DECADES, vmax
        for t, frame_index in enumerate(memory_frames):
            image = frame_image(frames, frame_index)
            title = f"memory: frame {frame_index}"
            if stage in ("affinity", "pre_kernel"):
                title += f", mass {rows[t].sum():.2f}"
            elif stage == "kernel" and sigmas is not None:
                title += f", sigma {float(sigmas[t]):.1f}"
            else:
                title += f", max {rows[t].max():.2f}"
            self.frames[t].set_data(image)
            self.axes[t].set_title(title, fontsize=9)
            self.heats[t].set_data(rows[t])
            self.heats[t].set_clim(vmin, vmax)
            _move_box(self.boxes[t], cell_box(y, x, image.shape[:2]))
        return self.fig


def affinity_maps(
    cache: Mapping[str, Tensor],
    frames,
    memory_frames,
    query_yx,
    *,
    obj: int = 0,
    stage: str = "affinity",
    query_frame: int | None = None,
    alpha: float = 0.6,
    log: bool = False,
) -> Figure:
    """For one query r4 cell, the r4 ``stage`` over every memory frame, drawn on the memory frame.

    stage: "logits" (the raw affinity S), "pre_kernel" (softmax(S) over all memory positions: the
    read without a kernel), "kernel" (the Gaussian kernel G of every memory position, evaluated at
    the query cell) or "affinity" (softmax(S) G renormalised over all memory positions: the
    weights of the read-out). frames: the video's frames (indexable by frame index);
    memory_frames: ``FrameResult.memory_frames``; query_frame: the traced frame's index, to add a
    first panel with the query cell; log: a log colour scale (the 4 decades below the maximum),
    where the small weights far from the kernel centre show. A white dashed box marks the query
    cell's position on every memory frame. One panel per memory frame (plus the query panel),
    titled with the frame index. (:class:`AffinityFigure` draws the same figure again, faster.)
    """
    affinity_rows(cache, query_yx, obj=obj, stage=stage)  # check the inputs before building
    size = frame_image(frames, memory_frames[0] if len(memory_frames) else 0).shape[:2]
    figure = AffinityFigure(stage, len(memory_frames), size, r4_grid(cache),
                            query_panel=query_frame is not None, alpha=alpha, log=log)  # fmt: skip
    return figure.show(cache, frames, memory_frames, query_yx, obj=obj, query_frame=query_frame)


def kernel_sigmas(cache: Mapping[str, Tensor], memory_frames=None) -> Figure:
    """The Gaussian kernel width of every memory frame (left) and the kernel profiles
    ``exp(-d^2 / 2 sigma^2)`` against the distance d in r4 cells (right)."""
    require(cache, "r4.sigmas")
    sigmas = cache["r4.sigmas"].float().numpy()
    labels = [str(f) for f in memory_frames] if memory_frames is not None else None
    if labels is not None and len(labels) != len(sigmas):
        raise ValueError(
            f"r4.sigmas has {len(sigmas)} frames but memory_frames lists {len(labels)}"
        )
    labels = labels or [f"memory {i}" for i in range(len(sigmas))]
    fig, axes = _figure(1, 2, width=4.0, height=2.8, title="Gaussian kernel width per memory frame")
    bars, profiles = axes[0]
    bars.bar(labels, sigmas, color="tab:orange")
    bars.set_xlabel("memory frame")
    bars.set_ylabel("sigma (r4 cells)")
    bars.set_title("sigma grows for older frames", fontsize=9)
    distance = np.linspace(0, 3 * float(sigmas.max()), 200)
    for label, sigma in zip(labels, sigmas, strict=True):
        profiles.plot(distance, np.exp(-(distance**2) / (2 * sigma**2)), label=f"frame {label}")
    profiles.set_xlabel("distance to the kernel centre (r4 cells)")
    profiles.set_ylabel("G")
    profiles.set_title("kernel profiles", fontsize=9)
    profiles.legend(fontsize=8)
    return fig


def flow_arrows(
    cache: Mapping[str, Tensor],
    frames,
    query_frame: int,
    *,
    obj: int = 0,
    query_yx=None,
    step: int = 1,
) -> Figure:
    """The window argmax (``r4.flow``): an arrow from every r4 cell of frame t-1 to the cell of the
    query frame it matches best inside the window, drawn on the query frame (every ``step``-th cell;
    red: the cells of frame t-1 whose kernel is centred on ``query_yx``, when given)."""
    require(cache, "r4.flow")
    check_object(cache, "r4.flow", obj)
    h, w = r4_grid(cache)
    image = frame_image(frames, query_frame)
    size = image.shape[:2]
    flow = cache["r4.flow"][obj].numpy()  # HW: query position of each position of frame t-1
    source = np.arange(h * w)
    padding = ops.padding_for(*size)
    sy = (source // w) * R4_STRIDE + 8 - padding.top
    sx = (source % w) * R4_STRIDE + 8 - padding.left
    ty = (flow // w) * R4_STRIDE + 8 - padding.top
    tx = (flow % w) * R4_STRIDE + 8 - padding.left
    keep = ((source // w) % step == 0) & ((source % w) % step == 0)
    fig, axes = _figure(1, 1, width=6.0, height=3.8, title=f"window argmax: frame t-1 -> frame "
                        f"{query_frame}, object {obj + 1}")  # fmt: skip
    ax = axes[0, 0]
    _show_frame(ax, image, "arrow: r4 cell of frame t-1 -> best match in the window")
    ax.quiver(sx[keep], sy[keep], (tx - sx)[keep], (ty - sy)[keep], color="yellow",
              angles="xy", scale_units="xy", scale=1, width=0.003)  # fmt: skip
    ax.scatter(sx[keep], sy[keep], s=3, color="yellow")
    if query_yx is not None:
        y, x = check_query(query_yx, (h, w))
        hits = flow == y * w + x
        ax.quiver(sx[hits], sy[hits], (tx - sx)[hits], (ty - sy)[hits], color="red",
                  angles="xy", scale_units="xy", scale=1, width=0.005)  # fmt: skip
        _draw_box(ax, cell_box(y, x, size), color="cyan", width=2)
    return fig


def _guidance(cache, memory_frames, scale: str, read) -> tuple[str, list[int]]:
    if scale not in ("r3", "r2"):
        raise ValueError(f"scale must be 'r3' or 'r2', got {scale!r}")
    name = f"{scale}.topk_indices"
    require(cache, name)
    return name, guidance_frames(tuple(memory_frames), read or ReadConfig())


def topk_table(
    cache: Mapping[str, Tensor],
    memory_frames,
    query_yx,
    *,
    obj: int = 0,
    scale: str = "r3",
    read: ReadConfig | None = None,
):
    """The r4 memory cells selected for one query r4 cell at ``scale``, best first, as a
    DataFrame: rank, memory frame, r4 cell (y, x), the r4 affinity after the kernel at that cell
    (when traced) and the mean attention the query's fine cells give to the cell's children."""
    import pandas as pd

    name, frames = _guidance(cache, memory_frames, scale, read)
    check_object(cache, name, obj)
    h, w = r4_grid(cache)
    y, x = check_query(query_yx, (h, w))
    q = y * w + x
    rows = cache[name][obj, q].numpy()  # k rows of the guidance affinity
    if rows.max(initial=0) >= len(frames) * h * w:
        raise ValueError(
            f"{name} selects row {rows.max()} but the guidance frames {frames} have only "
            f"{len(frames) * h * w} rows: is `read` the configuration the trace was made with?"
        )
    frame = np.asarray(frames)[rows // (h * w)]
    table = pd.DataFrame(
        {
            "rank": np.arange(1, len(rows) + 1),
            "frame": frame,
            "y": (rows % (h * w)) // w,
            "x": rows % w,
        }  # fmt: skip
    )
    if "r4.affinity" in cache:
        memory_rows = [list(memory_frames).index(f) * h * w for f in frame]
        memory_rows = np.asarray(memory_rows) + rows % (h * w)
        table["r4 affinity"] = cache["r4.affinity"][obj, memory_rows, q].numpy()
    attention = f"{scale}.attention"
    if attention in cache and cache[attention].ndim == 4:
        s2 = SCALES[scale] ** 2
        weights = cache[attention][obj, q].float().mean(0).reshape(len(rows), s2)  # k x s^2
        table[f"{scale} attention"] = weights.sum(1).numpy()
    return table


class TopkFigure:
    """The figure of :func:`topk_on_memory`, kept to be drawn again (as :class:`AffinityFigure`):
    built once for a layout (scale, number of guidance frames, frame size, query panel or not);
    :meth:`show` sets the frames and titles and replaces the cells' patches."""

    def __init__(
        self, scale: str, num_guide: int, size: tuple[int, int], *, query_panel: bool = False
    ) -> None:
        if scale not in ("r3", "r2"):
            raise ValueError(f"scale must be 'r3' or 'r2', got {scale!r}")
        self.scale = scale
        self.key = (scale, num_guide, tuple(size), query_panel)
        self.fig, axes = _figure(1, num_guide + query_panel, width=3.6, height=2.6, title=" ")
        self.title = self.fig.suptitle(" ")  # set_text later: suptitle() would move it back
        axes = list(axes[0])
        blank = np.zeros((*size, 3), np.uint8)
        self.query_ax = axes.pop(0) if query_panel else None
        if self.query_ax is not None:
            self.query_frame = _show_frame(self.query_ax, blank, "query")
        self.axes = axes
        self.frames = [_show_frame(ax, blank, "memory") for ax in axes]
        self.patches: list[Rectangle] = []  # the patches of the last show(), removed by the next
        self.drawn = False  # see render()

    def show(
        self, cache: Mapping[str, Tensor], frames, memory_frames, query_yx, *, obj: int = 0,
        query_frame: int | None = None, read: ReadConfig | None = None, opacity: bool = True,
        table=None,
    ) -> Figure:  # fmt: skip
        """The figure for these choices (see :func:`topk_on_memory`; table: the
        :func:`topk_table` of these choices, when already made)."""
        scale = self.scale
        if table is None:
            table = topk_table(cache, memory_frames, query_yx, obj=obj, scale=scale, read=read)
        _, guide = _guidance(cache, memory_frames, scale, read)
        y, x = check_query(query_yx, r4_grid(cache))
        if len(guide) != len(self.axes) or (query_frame is None) != (self.query_ax is None):
            raise ValueError(
                f"this figure has {len(self.axes)} guidance panels and "
                f"{'a' if self.query_ax else 'no'} query panel; got guidance frames {guide} "
                f"and query_frame {query_frame}"
            )
        for patch in self.patches:
            patch.remove()
        self.patches = []
        s = SCALES[scale]
        self.title.set_text(
            f"top-{len(table)} r4 cells guiding {scale}; object {obj + 1}, query cell ({y}, {x})"
            + ("; outline opacity: P" if opacity and "r4 affinity" in table else "")
        )

        def box(ax, *args, **kwargs) -> None:
            self.patches.append(_draw_box(ax, *args, **kwargs))

        if self.query_ax is not None:
            image = frame_image(frames, query_frame)
            self.query_frame.set_data(image)
            self.query_ax.set_title(f"query: frame {query_frame}", fontsize=9)
            box(self.query_ax, cell_box(y, x, image.shape[:2]), color="cyan", width=2)
            for dy in range(s):
                for dx in range(s):
                    child = cell_box(s * y + dy, s * x + dx, image.shape[:2], scale=scale)
                    box(self.query_ax, child, color="cyan", width=0.5)
        attention = f"{scale} attention"
        weights = None
        if attention in table:
            weights = cache[f"{scale}.attention"][obj, y * r4_grid(cache)[1] + x].float().mean(0)
            weights = weights.reshape(len(table), s * s).numpy()  # k x s^2, cell-major children
            top = max(float(weights.max()), 1e-12)
        ranks = colormaps["viridis_r"](np.linspace(0, 1, max(len(table), 2)))
        # outline opacity: the cell's r4 affinity P relative to the best one's (0.25 .. 1)
        alphas = np.ones(len(table))
        if opacity and "r4 affinity" in table:
            p = table["r4 affinity"].to_numpy(dtype=float)
            alphas = 0.25 + 0.75 * p / max(float(p.max()), 1e-12)
        for ax, frame_index, shown in zip(self.axes, guide, self.frames, strict=True):
            image = frame_image(frames, frame_index)
            size = image.shape[:2]
            chosen = table[table["frame"] == frame_index]
            shown.set_data(image)
            ax.set_title(f"memory: frame {frame_index}, {len(chosen)} cells", fontsize=9)
            for i, row in chosen.iterrows():
                cy, cx = int(row["y"]), int(row["x"])
                if weights is not None:
                    for child in range(s * s):
                        dy, dx = divmod(child, s)
                        child_box = cell_box(s * cy + dy, s * cx + dx, size, scale=scale)
                        box(ax, child_box, fill="red", alpha=float(weights[i, child]) / top * 0.9)
                box(ax, cell_box(cy, cx, size), color=ranks[i], width=1.2, alpha=alphas[i])
            box(ax, cell_box(y, x, size), color="white", style="--")
        return self.fig


def topk_on_memory(
    cache: Mapping[str, Tensor],
    frames,
    memory_frames,
    query_yx,
    *,
    obj: int = 0,
    scale: str = "r3",
    query_frame: int | None = None,
    read: ReadConfig | None = None,
    opacity: bool = True,
) -> Figure:
    """The top-k guidance of one query r4 cell at ``scale`` drawn on the memory frames it reads.

    Selected r4 cells: outlines coloured by rank (bright = best) and, with ``opacity``, as opaque
    as their r4 affinity P is large (from 0.25 for P = 0 to 1 for the best cell's P); their r3
    (2 x 2) or r2 (4 x 4) children: squares shaded by the mean attention the query cell's fine
    cells give them (when ``{scale}.attention`` is traced). Panels: the query frame with the query
    cell (when ``query_frame`` is given), then each guidance frame (frame 0 and frame t-1 by
    default; ``read``: the ReadConfig of the trace, for ``guidance="all"``).
    (:class:`TopkFigure` draws the same figure again, faster.)
    """
    table = topk_table(cache, memory_frames, query_yx, obj=obj, scale=scale, read=read)
    _, guide = _guidance(cache, memory_frames, scale, read)
    size = frame_image(frames, guide[0]).shape[:2]
    figure = TopkFigure(scale, len(guide), size, query_panel=query_frame is not None)
    return figure.show(cache, frames, memory_frames, query_yx, obj=obj, query_frame=query_frame,
                       read=read, opacity=opacity, table=table)  # fmt: skip


def render(figure, *, dpi: int = 100) -> np.ndarray:
    """An :class:`AffinityFigure` or :class:`TopkFigure` drawn on its Agg canvas at ``dpi``:
    H x W x 3 uint8 RGB. The first draw lays the figure out (constrained layout); the layout is
    then kept, so that later draws only paint (titles keep their room; the look stays)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figure.fig
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)  # attaches itself to the figure
    fig.set_dpi(dpi)
    fig.canvas.draw()
    if not figure.drawn:
        fig.set_layout_engine("none")  # keep the positions the first layout found
        figure.drawn = True
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def png_bytes(image: np.ndarray, *, compression: int = 1) -> bytes:
    """An H x W x 3 uint8 RGB (or H x W grey) image as PNG bytes, encoded with OpenCV at a low
    ``compression`` (0-9): a few times faster than the default level, files a little larger."""
    image = np.ascontiguousarray(image)
    bgr = image[..., ::-1] if image.ndim == 3 else image
    ok, encoded = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as PNG")
    return encoded.tobytes()


def decoder_output(cache: Mapping[str, Tensor], frame: np.ndarray, *, obj: int = 0) -> Figure:
    """The decoder's foreground probability of object ``obj``, its probability after soft
    aggregation with the other objects, and the frame's labels (argmax) over the frame."""
    require(cache, "decoder.logits", "output.probs")
    check_object(cache, "decoder.logits", obj)
    image = np.asarray(frame)
    padding = ops.padding_for(*image.shape[:2])
    decoder = torch.softmax(cache["decoder.logits"][obj].float(), dim=0)[1]  # Hp x Wp
    decoder = ops.unpad(decoder, padding).numpy()
    probs = ops.unpad(cache["output.probs"].float(), padding)  # (B+1) x H x W
    if probs.shape[-2:] != image.shape[:2]:
        raise ValueError(
            f"the trace's output is {tuple(probs.shape[-2:])} once unpadded but the frame is "
            f"{image.shape[:2]}: is it the traced frame?"
        )
    fig, axes = _figure(1, 3, title=f"decoder output, object {obj + 1}")
    axes = axes[0]
    for ax, data, title in (
        (axes[0], decoder, "decoder: P(object | pixel)"),
        (axes[1], probs[obj + 1].numpy(), "after soft aggregation"),
    ):
        ax.imshow(data, cmap="magma", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    labels = probs.argmax(dim=0).numpy()
    if image.dtype != np.uint8:  # float frames in [0, 1]
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    _show_frame(axes[2], overlay(image, labels), "labels (argmax)")
    return fig


def pca_rgb(maps: list[np.ndarray]) -> list[np.ndarray]:
    """Project C x h x w feature maps (same C) on their 3 joint principal components, scaled to
    [0, 1] per component: a list of h x w x 3 images. Each map is centred on its own mean first, so
    a constant offset between maps (e.g. memory vs query keys) does not take the first component."""
    flat = np.concatenate(
        [(m.reshape(m.shape[0], -1).T - m.reshape(m.shape[0], -1).mean(1)) for m in maps]
    )  # N x C
    _, vectors = np.linalg.eigh(flat.T @ flat)  # C x C covariance: ascending eigenvalues
    comps = vectors[:, ::-1][:, :3].T  # 3 x C principal directions
    if comps.shape[0] < 3:
        comps = np.concatenate([comps, np.zeros((3 - comps.shape[0], flat.shape[1]))])
    projected = flat @ comps.T  # N x 3
    low, high = projected.min(0), projected.max(0)
    projected = (projected - low) / np.where(high > low, high - low, 1)
    out, start = [], 0
    for m in maps:
        n = m.shape[1] * m.shape[2]
        out.append(projected[start : start + n].reshape(m.shape[1], m.shape[2], 3))
        start += n
    return out


def features_pca(
    cache: Mapping[str, Tensor],
    names,
    *,
    obj: int = 0,
    images: list[np.ndarray] | None = None,
) -> Figure:
    """Feature maps (hook names, each B x C x h x w or 1 x C x h x w) as RGB images of their first
    3 principal components; maps with the same number of channels share one PCA, so equal colours
    mean similar features. ``images``: one frame per name, under its map (laid over the padded
    grid)."""
    names = list(names)
    require(cache, *names)
    if images is not None and len(images) != len(names):
        raise ValueError(f"images must give one frame per name ({len(names)}), got {len(images)}")
    maps = []
    for name in names:
        tensor = cache[name]
        if tensor.ndim != 4:
            raise ValueError(f"{name} is {tuple(tensor.shape)}, not a B x C x h x w feature map")
        if tensor.shape[0] > 1:
            check_object(cache, name, obj)
        maps.append(tensor[obj if tensor.shape[0] > 1 else 0].float().numpy())
    rgb: list = [None] * len(maps)
    for channels in {m.shape[0] for m in maps}:
        group = [i for i, m in enumerate(maps) if m.shape[0] == channels]
        for i, picture in zip(group, pca_rgb([maps[i] for i in group]), strict=True):
            rgb[i] = picture
    title = f"first 3 principal components as RGB, object {obj + 1}"
    fig, axes = _figure(1, len(names), title=title)
    for ax, name, picture, i in zip(axes[0], names, rgb, range(len(names)), strict=True):
        if images is not None:
            image = np.asarray(images[i])
            _show_frame(ax, image, name)
            ax.imshow(
                picture, extent=grid_extent(image.shape[:2]), interpolation="nearest", alpha=0.8
            )
        else:
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def keys_pca(cache, *, scale: str = "r4", obj: int = 0, images=None) -> Figure:
    """Memory key (frame t-1) and query key at ``scale`` in one PCA (see :func:`features_pca`);
    ``images``: (frame t-1, query frame)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    n = scale[1]
    return features_pca(
        cache, [f"memory_features.k{n}", f"query_features.k{n}"], obj=obj, images=images
    )


def values_pca(cache, *, obj: int = 0, images=None) -> Figure:
    """Memory value (frame t-1) and query value at r4 (see :func:`features_pca`)."""
    return features_pca(cache, ["memory_features.v4", "query_features.v4"], obj=obj, images=images)


def readouts_pca(cache, *, obj: int = 0) -> Figure:
    """The memory read-outs at r4, r3 and r2 as PCA RGB images (one PCA per scale)."""
    return features_pca(cache, ["r4.readout", "r3.readout", "r2.readout"], obj=obj)


def figure_png(fig: Figure, *, dpi: int = 80) -> bytes:
    """A figure rendered to PNG bytes (for an ipywidgets.Image)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------
# Score tables and animations


def compare_plot(per_frame, *, title: str = "") -> Figure:
    """A line plot of a per-frame J&F table (one row per frame, one column per read, as
    :func:`hmmnlab.report.compare_reads` returns): J&F per frame, one line per read."""
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.subplots()
    for label in per_frame.columns:
        ax.plot(per_frame.index, per_frame[label], marker=".", label=label)
    ax.set_xlabel("frame")
    ax.set_ylabel("J&F (mean over objects)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def animate(
    images: list[np.ndarray],
    *,
    fps: float = 6.0,
    width: float = 6.0,
    counter: bool = True,
    legend: Mapping[int, str] | list[int] | str | None = "auto",
    first: int = 0,
) -> str:
    """A JavaScript player (play, pause, frame slider) for H x W x 3 images, as an HTML string:
    ``IPython.display.HTML(animate(images))`` in a notebook; it plays without a running kernel.

    counter: write "frame t / T" above the picture (t counted from ``first``). legend: object ids
    (or {id: name}) whose DAVIS palette colours get a legend under the picture; "auto" finds the
    colours :func:`overlay` draws object boundaries in (at least 20 pixels of the exact palette
    colour in some image), None draws no legend."""
    from matplotlib.animation import FuncAnimation

    if not images:
        raise ValueError("animate needs at least one image")
    if isinstance(legend, str):
        if legend != "auto":
            raise ValueError(f"legend must be 'auto', None, ids or {{id: name}}, got {legend!r}")
        legend = palette_ids_in(images)
    names = (
        dict(legend) if isinstance(legend, Mapping) else {i: f"object {i}" for i in legend or []}
    )
    extra = (0.35 if counter else 0) + (0.4 if names else 0)
    height = width * images[0].shape[0] / images[0].shape[1]
    fig = Figure(figsize=(width, height + extra))
    bottom = (0.4 if names else 0) / (height + extra)
    ax = fig.add_axes((0, bottom, 1, height / (height + extra)))
    ax.axis("off")
    shown = ax.imshow(images[0])
    label = fig.text(0.5, 1 - 0.05 / (height + extra), "", ha="center", va="top", fontsize=12)
    if names:
        object_legend(fig, list(names), names=names)

    def draw(t):
        shown.set_data(images[t])
        if counter:
            label.set_text(f"frame {first + t} / {first + len(images) - 1}")
        return (shown, label)

    movie = FuncAnimation(fig, draw, frames=len(images), interval=1000 / fps, blit=True)
    return offline_player(movie.to_jshtml(default_mode="loop"))


def palette_ids_in(images: list[np.ndarray], *, min_pixels: int = 20) -> list[int]:
    """The object ids (1..255) whose exact DAVIS palette colour covers at least ``min_pixels`` pixels
    of some image: the boundaries :func:`overlay` draws in each object's colour."""
    palette = davis_palette().astype(np.int64)
    codes = palette @ np.array([65536, 256, 1])  # one integer per colour
    found = set()
    for image in images:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3:
            continue
        pixels = image.reshape(-1, 3).astype(np.int64) @ np.array([65536, 256, 1])
        values, counts = np.unique(pixels, return_counts=True)
        common = set(values[counts >= min_pixels].tolist())
        found |= {i for i in range(1, 256) if int(codes[i]) in common}
    return sorted(found)


# matplotlib's player draws its buttons with Font Awesome icons fetched from a CDN (which fails
# offline and in classrooms without internet); plain characters instead.
PLAYER_ICONS = {
    "fa fa-minus": "&#8722;",
    "fa fa-fast-backward": "&#9198;",
    "fa fa-step-backward": "&#9664;|",
    "fa fa-play fa-flip-horizontal": "&#9664;",
    "fa fa-pause": "&#9208;",
    "fa fa-play": "&#9654;",
    "fa fa-step-forward": "|&#9654;",
    "fa fa-fast-forward": "&#9197;",
    "fa fa-plus": "+",
}


def offline_player(page: str) -> str:
    """matplotlib's JavaScript player without any request to the network (see PLAYER_ICONS)."""
    page = re.sub(r"<link[^>]*font-awesome[^>]*>", "", page)
    for icon, text in PLAYER_ICONS.items():
        page = page.replace(f'<i class="{icon}"></i>', text)
    return page


# ----------------------------------------------------------------------------------------------------
# The hierarchical read as a diagram, and animated GIFs (for the HTML report)


def read_diagram(read: ReadConfig | None = None) -> Figure:
    """HMMN's hierarchical memory read as boxes and arrows: the r4 (stride 16) kernel-guided memory
    matching, whose best matches guide the top-k matching at r3 (stride 8) and r2 (stride 4), then
    the decoder. read: the read whose top-k sizes are written on the arrows (None: "k")."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    k3, k2 = ("k", "k") if read is None else (read.k_r3, read.k_r2)
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 3.6)
    ax.axis("off")
    boxes = {  # name: (centre x, centre y, text, colour)
        "query": (0.9, 2.2, "query frame t\nencoder: keys at\nstrides 16, 8, 4", "#eeeeee"),
        "r4": (3.0, 2.2, "r4 (stride 16)\nkernel-guided\nmemory matching\nsoftmax(S) G", "#cfe2f3"),
        "r3": (5.2, 2.2, f"r3 (stride 8)\ntop-k guided\nmatching (k={k3})", "#d9ead3"),
        "r2": (7.2, 2.2, f"r2 (stride 4)\ntop-k guided\nmatching (k={k2})", "#d9ead3"),
        "decoder": (9.2, 2.2, "decoder\nr4, r3, r2\nread-outs\n-> mask of t", "#fce5cd"),
        "memory": (5.1, 0.45, "memory: keys and values of past frames at r4, r3, r2", "#fff2cc"),
    }
    size = {"memory": (6.2, 0.5)}
    for name, (x, y, text, colour) in boxes.items():
        w, h = size.get(name, (1.55, 1.25))
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                    facecolor=colour, edgecolor="#555555"))  # fmt: skip
        ax.text(x, y, text, ha="center", va="center", fontsize=9.5)

    def arrow(start, end, label="", *, bend=0.0, dy=0.12, style="-", color="#333333"):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14,
                                     connectionstyle=f"arc3,rad={bend}", color=color,
                                     linestyle=style))  # fmt: skip
        if label:
            mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
            ax.text(mx, my + dy, label, ha="center", va="bottom", fontsize=8.5, color="#1c4587")

    arrow((1.72, 2.2), (2.18, 2.2))
    arrow((3.82, 2.45), (4.38, 2.45), "top-k", dy=0.05)
    arrow((3.2, 2.88), (7.0, 2.88), f"the same r4 matches guide r2 (k={k2})", bend=-0.12, dy=0.25)
    for x in (3.0, 5.2, 7.2):  # each scale matches the memory's keys at its own stride
        arrow((x, 0.72), (x, 1.52))
    for x in (3.6, 5.8, 7.8):  # each scale's read-out goes to the decoder
        arrow((x, 1.52), (9.0, 1.52), bend=0.25 if x < 7 else 0.35, style="--", color="#b45f06")
    ax.text(8.6, 1.0, "read-outs", ha="center", va="top", fontsize=8.5, color="#b45f06")
    ax.set_title("One memory read of HMMN, coarse to fine", fontsize=11)
    return fig


def labelled_row(
    panels: list[tuple[str, np.ndarray, np.ndarray]], *, width: int = 256
) -> np.ndarray:
    """One H x W x 3 uint8 image: each (title, frame, labels) panel as an :func:`overlay` scaled
    to ``width`` pixels, its title on a white band above it, the panels side by side."""
    from PIL import Image, ImageDraw

    if not panels:
        raise ValueError("labelled_row needs at least one (title, frame, labels) panel")
    band = 16
    images = []
    for title, frame, labels in panels:
        image = Image.fromarray(overlay(np.asarray(frame), np.asarray(labels)))
        height = round(image.height * width / image.width)
        tile = Image.new("RGB", (width, height + band), "white")
        tile.paste(image.resize((width, height), Image.Resampling.BILINEAR), (0, band))
        ImageDraw.Draw(tile).text((4, 2), title, fill=(0, 0, 0))
        images.append(np.asarray(tile))
    if len({image.shape for image in images}) > 1:
        raise ValueError(f"panels of different shapes: {[image.shape for image in images]}")
    return np.concatenate(images, axis=1)


def animation_format() -> str:
    """ "webp" (lossy animated WebP: the noisy textures of the samples take a tenth of a GIF's
    bytes; every current browser shows it) when Pillow can write it, else "gif"."""
    from PIL import features

    return "webp" if features.check("webp") else "gif"


def animation_bytes(images: list[np.ndarray], *, fps: float = 4.0, format: str = "webp") -> bytes:
    """A looping animation of H x W x 3 uint8 images, as the bytes of an animated ``format``
    file: "webp" (lossy, quality 70) or "gif" (128 colours)."""
    from PIL import Image

    if not images:
        raise ValueError("animation_bytes needs at least one image")
    if format not in ("webp", "gif"):
        raise ValueError(f"format must be 'webp' or 'gif', got {format!r}")
    frames = [Image.fromarray(np.asarray(image, np.uint8)) for image in images]
    options = {"quality": 70, "method": 4} if format == "webp" else {"optimize": True}
    if format == "gif":
        frames = [frame.quantize(128) for frame in frames]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=format.upper(), save_all=True, append_images=frames[1:],
                   duration=round(1000 / fps), loop=0, **options)  # fmt: skip
    return buffer.getvalue()
