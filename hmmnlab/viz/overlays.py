"""Label maps on frames: :func:`overlay` (the DAVIS colours blended over a frame, boundaries in full
colour), panels and rows of overlays, the legend of the object colours, and the per-frame J&F plot
of a score table.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
from matplotlib.figure import Figure

from hmmnlab.data.palette import davis_palette

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
    ``legend``, one colour patch per object id found in the panels' labels (see
    :func:`object_legend`)."""
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


def compare_plot(per_frame, *, title: str = "") -> Figure:
    """A line plot of a per-frame J&F table (one row per frame, one column per read, as
    :func:`hmmnlab.inside.run_files.compare_reads` returns): J&F per frame, one line per read."""
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


def palette_ids_in(images: list[np.ndarray], *, min_pixels: int = 20) -> list[int]:
    """The object ids (1..255) whose exact DAVIS palette colour covers at least ``min_pixels``
    pixels of some image: the boundaries :func:`overlay` draws in each object's colour."""
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
