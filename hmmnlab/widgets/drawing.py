"""The inspector's own pictures: the status line's text, grey placeholders while a figure loads, and
the objects' ids written on the query frame.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import cv2
import numpy as np

from hmmnlab import viz


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
