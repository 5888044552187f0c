"""Pictures: overlays of label maps on frames (and, later, figures from traces)."""

from __future__ import annotations

import cv2
import numpy as np

from hmmnlab.data.palette import davis_palette


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
