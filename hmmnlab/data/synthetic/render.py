"""Rendering a :class:`~hmmnlab.data.synthetic.spec.Scene`: :func:`object_masks`,
:func:`render_frame` (nearer objects over farther ones, shadows, photometric noise) and
:func:`generate_video` (frames and exact label maps)."""

from __future__ import annotations

import numpy as np

from hmmnlab.data.synthetic.scene import _object_coverage, _object_masks, build_scene
from hmmnlab.data.synthetic.spec import Scene, VideoSpec
from hmmnlab.data.synthetic.textures import _NOISE, _rng, _sample_bilinear


def object_masks(scene: Scene, t: int) -> np.ndarray:
    """Whole silhouettes of every object in frame ``t``, hidden parts included: K x H x W bool.

    Index ``k - 1`` is object ``k``. The label map of frame ``t`` keeps, at each pixel, the
    nearest object (smallest ``depth``) whose silhouette covers it.
    """
    return _object_masks(scene.objects, t, (scene.spec.height, scene.spec.width))


def render_frame(scene: Scene, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t`` of the scene: (H x W x 3 uint8 RGB image, H x W uint8 label map)."""
    spec = scene.spec
    if not 0 <= t < spec.num_frames:
        raise ValueError(f"frame index must lie in 0..{spec.num_frames - 1}, got {t}")
    height, width = spec.height, spec.width
    cam_x, cam_y, zoom = scene.camera[t]
    xs = cam_x + (np.arange(width, dtype=np.float64) - (width - 1) / 2.0) / zoom
    ys = cam_y + (np.arange(height, dtype=np.float64) - (height - 1) / 2.0) / zoom
    grid_x, grid_y = np.meshgrid(xs, ys)
    image = _sample_bilinear(scene.background, grid_x, grid_y)  # H x W x 3 float32
    labels = np.zeros((height, width), dtype=np.uint8)

    for obj in sorted(scene.objects, key=lambda o: -o.depth):  # far to near
        # A soft shadow darkens what lies behind the object (it is not part of the mask).
        shadow = _object_coverage(obj, t, (height, width), offset=scene.shadow_offset, softness=6.0)
        if shadow is not None:
            y0, y1, x0, x1 = shadow.box
            image[y0:y1, x0:x1] *= (1.0 - 0.35 * shadow.alpha)[..., None]
        cov = _object_coverage(obj, t, (height, width))
        if cov is None:
            continue
        y0, y1, x0, x1 = cov.box
        colour = _sample_bilinear(obj.texture, cov.tex_x, cov.tex_y)
        region = image[y0:y1, x0:x1]
        region += (colour - region) * cov.alpha[..., None]
        labels[y0:y1, x0:x1][cov.inside] = obj.label

    image *= np.float32(scene.gains[t])
    if spec.noise_std > 0:
        noise = _rng(spec.seed, _NOISE, t).standard_normal(image.shape, dtype=np.float32)
        image += np.float32(spec.noise_std) * noise
    frame = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return frame, labels


def generate_video(spec: VideoSpec) -> tuple[np.ndarray, np.ndarray]:
    """Render a whole video: (T x H x W x 3 uint8 RGB frames, T x H x W uint8 label maps).

    Label 0 is background and k in 1..K is object k (only its visible part). The same spec gives
    the same arrays, byte for byte.
    """
    scene = build_scene(spec)
    frames = np.empty((spec.num_frames, spec.height, spec.width, 3), dtype=np.uint8)
    labels = np.empty((spec.num_frames, spec.height, spec.width), dtype=np.uint8)
    for t in range(spec.num_frames):
        frames[t], labels[t] = render_frame(scene, t)
    return frames, labels
