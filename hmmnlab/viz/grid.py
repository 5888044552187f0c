"""What every figure of a trace shares: the checks of a trace, the padded r4 grid and its cells,
and the helpers that build a figure and draw a frame or a cell's box on it.

The figures of :mod:`hmmnlab.viz` take a trace (the ``cache`` dict of
:func:`hmmnlab.inside.trace.run_with_cache`: hook name -> tensor, see the table in
:mod:`hmmnlab.inside.trace`) plus plain arrays (frames as H x W x 3 images, the memory frame indices
of ``FrameResult.memory_frames``), and return a matplotlib ``Figure`` built without pyplot (no
global state, nothing shown: display it, ``savefig`` it, or let a notebook render it). Objects are
indexed
0..B-1 in the trace's order (``FrameResult.object_ids``).

Coordinates: the network works on the frame padded to a multiple of 16
(:func:`hmmnlab.ops.padding_for`). An r4 cell ``(y, x)`` of the padded grid covers the padded pixels
``[16 y, 16 y + 16) x [16 x, 16 x + 16)``, i.e. the frame pixels shifted by the top / left padding;
an r3 (r2) cell covers 8 (4) pixels.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from hmmnlab import ops
from hmmnlab.viz.overlays import MIN_FIGURE_WIDTH

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
    """The imshow ``extent`` (left, right, bottom, top) that lays a padded-grid map over the
    frame."""
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
