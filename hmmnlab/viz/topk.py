"""The top-k guidance of a trace: the r4 memory cells selected for a query cell to guide the r3 or
r2 read, as a table and on the memory frames (:class:`TopkFigure`, built once per layout and
redrawn with new data).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from hmmnlab.config import ReadConfig
from hmmnlab.model.reads import guidance_frames
from hmmnlab.viz.grid import (
    SCALES,
    _draw_box,
    _figure,
    _show_frame,
    cell_box,
    check_object,
    check_query,
    frame_image,
    r4_grid,
    require,
)


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
