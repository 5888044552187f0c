"""Figures to pixels: a kept figure drawn on its Agg canvas, images and figures as PNG bytes."""

from __future__ import annotations

import io

import cv2
import numpy as np
from matplotlib.figure import Figure


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


def figure_png(fig: Figure, *, dpi: int = 80) -> bytes:
    """A figure rendered to PNG bytes (for an ipywidgets.Image)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
