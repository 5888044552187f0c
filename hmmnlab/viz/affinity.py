"""The r4 read of a trace: the affinity rows of a query cell on every memory frame (before and after
the Gaussian kernel), the kernel widths, and the window-argmax flow. :class:`AffinityFigure` is
built once per layout and redrawn with new data (the inspector's fast path).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from hmmnlab import ops
from hmmnlab.viz.grid import (
    R4_STRIDE,
    STAGES,
    _draw_box,
    _figure,
    _memory_row_blocks,
    _move_box,
    _show_frame,
    cell_box,
    check_object,
    check_query,
    frame_image,
    grid_extent,
    r4_grid,
    require,
)


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
