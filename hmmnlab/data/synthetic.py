"""Deterministic synthetic videos with exact masks, written in the DAVIS layout.

Each video shows a few textured objects moving over a textured background seen by a panning,
slowly zooming camera. The objects change size, turn, hide one another (the nearer one wins, and
the label map shows only what is visible), may leave the frame and come back, and may come as
**twins**: two objects with the same shape and the same texture whose paths cross, so that only
the continuity of their motion tells them apart. Mild photometric noise (a gain flicker and
Gaussian pixel noise) and soft shadows keep the task from being a pure colour lookup; the
``camouflage`` option draws the object colours from the background's.

Everything is procedural numpy maths (value noise, stripes, warped checkers, colour ramps, smooth
star-shaped blobs) so that a spec gives the same video byte for byte on any machine:
``VideoSpec.seed`` seeds ``numpy.random.Generator`` streams derived from it and nothing reads a
global random state.

Coordinates: a pixel ``(row i, column j)`` has its centre at ``(x, y) = (j, i)``. Object centres
are ``(x, y)`` in frame pixels; angles are radians, counter-clockwise as seen on screen.

Typical use::

    frames, labels = generate_video(VideoSpec("demo", seed=1, num_objects=3))
    # frames: T x H x W x 3 uint8 RGB, labels: T x H x W uint8 (0 background, k object k)
    write_davis("data/synth", random_specs(100, seed=0), split="train")

``hmmnlab samples --out data_samples`` (:mod:`hmmnlab.samples`, the command) regenerates the
bundled samples.

:func:`write_youtube_vos` (``hmmnlab samples --youtube-vos DIR``) writes a small set in the
YouTube-VOS layout (``train/``, ``valid/``, ``valid_all_frames/``, each with ``meta.json``): objects
that enter after the first frame (not drawn before), every 5th frame kept, validation annotated only
where objects first appear.
"""

from __future__ import annotations

import colorsys
import dataclasses
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hmmnlab.data.palette import write_label_png

# Seeds of the independent random streams derived from VideoSpec.seed (see _rng).
_APPEARANCE, _LAYOUT, _NOISE = 0, 1, 2
_MAX_LAYOUT_ATTEMPTS = 200
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class VideoSpec:
    """What to generate: the same spec always gives the same video.

    ``twins`` makes objects 1 and 2 identical in shape, texture, size and turning, and makes their
    paths cross. ``occlusion`` makes two objects cross (the twins if there are twins, else objects 1
    and 2; it needs two objects besides the one that leaves the frame). ``exit_reenter`` makes the
    last object leave the frame completely for a while and come back; it is never a twin.
    """

    name: str  # sequence folder name, e.g. "twins-crossing"
    seed: int  # seeds every random choice; same seed, same video
    num_frames: int = 30
    height: int = 240
    width: int = 427  # 240 x 427 is half the DAVIS 480p size (480 x 854)
    num_objects: int = 2
    object_size: float = 0.13  # mean object radius, as a fraction of the frame's short side
    twins: bool = False
    occlusion: bool = True
    exit_reenter: bool = False
    camouflage: bool = False  # object colours are drawn from the background's palette
    distractors: int = 0  # unlabelled textured shapes painted on the background
    pan: float = 0.15  # camera pan over the whole video, as a fraction of the frame width
    scale_change: float = 0.3  # an object's size changes by a factor up to exp(scale_change)
    max_rotation: float = 90.0  # degrees an object turns at most over the whole video
    noise_std: float = 2.0  # std of the Gaussian pixel noise, in grey levels (0..255)
    description: str = ""  # one line saying what the sequence shows (for README files)

    def __post_init__(self) -> None:
        if not _NAME_PATTERN.match(self.name):
            raise ValueError(
                f"sequence name must be letters, digits, '-', '_' or '.', got {self.name!r}"
            )
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {self.num_frames}")
        if not (64 <= self.height <= 2160 and 64 <= self.width <= 3840):
            raise ValueError(
                f"height and width must lie in 64..2160 and 64..3840, got "
                f"{self.height} x {self.width}"
            )
        if not 1 <= self.num_objects <= 8:
            raise ValueError(f"num_objects must lie in 1..8, got {self.num_objects}")
        if not 0.03 <= self.object_size <= 0.4:
            raise ValueError(f"object_size must lie in 0.03..0.4, got {self.object_size}")
        if self.twins and self.num_objects < 2:
            raise ValueError(f"twins need at least 2 objects, got num_objects={self.num_objects}")
        if self.exit_reenter:
            if self.num_frames < 12:
                raise ValueError(
                    f"exit_reenter needs at least 12 frames to leave and come back, "
                    f"got num_frames={self.num_frames}"
                )
            if self.twins and self.num_objects < 3:
                raise ValueError(
                    "exit_reenter with twins needs at least 3 objects (objects 1 and 2 are the "
                    f"twins, the last one leaves), got num_objects={self.num_objects}"
                )
        if not 0 <= self.distractors <= 8:
            raise ValueError(f"distractors must lie in 0..8, got {self.distractors}")
        if not 0.0 <= abs(self.pan) <= 1.0:
            raise ValueError(f"pan must lie in -1..1 (fraction of the width), got {self.pan}")
        if not 0.0 <= self.scale_change <= 1.0:
            raise ValueError(f"scale_change must lie in 0..1, got {self.scale_change}")
        if not 0.0 <= self.max_rotation <= 720.0:
            raise ValueError(f"max_rotation must lie in 0..720 degrees, got {self.max_rotation}")
        if not 0.0 <= self.noise_std <= 50.0:
            raise ValueError(f"noise_std must lie in 0..50 grey levels, got {self.noise_std}")


@dataclass(frozen=True, eq=False)
class Shape:
    """A smooth star-shaped blob.

    In shape coordinates ``(qx, qy)`` the boundary is at radius
    ``r(phi) = radius * (1 + sum_k a_k cos(k phi + p_k))`` with ``(k, a_k, p_k)`` in ``harmonics``.
    Object coordinates ``(ux, uy)`` (texture pixels, origin at the centre) are stretched into shape
    coordinates by ``qx = ux / sqrt(aspect)``, ``qy = uy * sqrt(aspect)``.
    """

    radius: float  # mean boundary radius, in texture pixels (= frame pixels at scale 1)
    aspect: float  # width / height stretch of the blob (1 is round on average)
    harmonics: tuple[tuple[int, float, float], ...]  # (k, amplitude, phase) of r(phi)

    def boundary(self, phi: np.ndarray) -> np.ndarray:
        """Boundary radius r(phi) for angles ``phi`` (any shape, radians), in shape coordinates."""
        r = np.ones_like(phi)
        for k, amplitude, phase in self.harmonics:
            r += amplitude * np.cos(k * phi + phase)
        return self.radius * r

    @property
    def extent(self) -> float:
        """Radius of a disc (object coordinates, scale 1) that contains the whole blob."""
        peak = self.radius * (1.0 + sum(abs(a) for _, a, _ in self.harmonics))
        return peak * math.sqrt(max(self.aspect, 1.0 / self.aspect))


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One labelled object: its look, its path and its depth.

    Frame ``t`` shows the object with its origin at ``centres[t]`` (x, y frame pixels), scaled by
    ``scales[t]`` and turned by ``angles[t]`` radians; ``texture`` is painted in object
    coordinates with the origin at the texture's centre pixel.
    """

    label: int  # 1..K, the value of its pixels in the label maps
    shape: Shape
    texture: np.ndarray  # S x S x 3 float32 RGB in 0..255
    centres: np.ndarray  # T x 2 float64, (x, y) in frame pixels
    scales: np.ndarray  # T float64
    angles: np.ndarray  # T float64, radians
    depth: int  # 0 is nearest the camera; nearer objects hide farther ones
    twin_of: int | None = None  # label of the identical twin, if any
    leaves_frame: bool = False  # the path leaves the frame completely and comes back


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything needed to render a video of ``spec``; ``render_frame`` draws frame ``t``.

    The camera looks at the ``background`` canvas: frame pixel ``(x, y)`` shows canvas point
    ``camera[t, :2] + ((x, y) - frame centre) / camera[t, 2]``.
    """

    spec: VideoSpec
    background: np.ndarray  # Hb x Wb x 3 float32 RGB in 0..255, larger than a frame
    camera: np.ndarray  # T x 3 float64: canvas x, canvas y of the frame centre, zoom
    objects: tuple[SceneObject, ...]  # labels 1..K in order
    gains: np.ndarray  # T float64, brightness flicker multiplying every pixel
    shadow_offset: tuple[float, float]  # (dx, dy) frame pixels from an object to its shadow


# ----------------------------------------------------------------------------------------------
# Random streams and small helpers


def _rng(seed: int, stream: int, *more: int) -> np.random.Generator:
    """An independent generator for one use of ``seed`` (appearance, layout or noise)."""
    return np.random.default_rng([seed, stream, *more])


def _sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear lookup of an Hs x Ws x C image at float positions ``x``, ``y`` (same shape N...).

    Positions outside the image are clamped to its border. Returns N... x C float32.
    """
    h, w = image.shape[:2]
    x = np.clip(x, 0.0, w - 1.0001)
    y = np.clip(y, 0.0, h - 1.0001)
    x0 = np.floor(x).astype(np.intp)
    y0 = np.floor(y).astype(np.intp)
    fx = (x - x0).astype(np.float32)[..., None]
    fy = (y - y0).astype(np.float32)[..., None]
    top = image[y0, x0] + (image[y0, x0 + 1] - image[y0, x0]) * fx
    bottom = image[y0 + 1, x0] + (image[y0 + 1, x0 + 1] - image[y0 + 1, x0]) * fx
    return top + (bottom - top) * fy


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def _value_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth random H x W float32 field in 0..1 varying over about ``cell`` pixels."""
    gh = int(math.ceil(height / cell)) + 2
    gw = int(math.ceil(width / cell)) + 2
    grid = rng.random((gh, gw), dtype=np.float32)
    ys = np.arange(height, dtype=np.float32) / np.float32(cell)
    xs = np.arange(width, dtype=np.float32) / np.float32(cell)
    y0 = np.floor(ys).astype(np.intp)
    x0 = np.floor(xs).astype(np.intp)
    fy = _smoothstep(ys - y0)[:, None]
    fx = _smoothstep(xs - x0)[None, :]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    top = a + (b - a) * fx
    bottom = c + (d - c) * fx
    return top + (bottom - top) * fy


def _fractal_noise(
    rng: np.random.Generator, height: int, width: int, cell: float, *, octaves: int = 4
) -> np.ndarray:
    """Sum of value-noise octaves (cell halves, weight halves), rescaled to 0..1. H x W float32."""
    total = np.zeros((height, width), dtype=np.float32)
    weight = 1.0
    for _ in range(octaves):
        total += np.float32(weight) * _value_noise(rng, height, width, max(cell, 1.5))
        cell /= 2.0
        weight /= 2.0
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / np.float32(max(hi - lo, 1e-6))


def _colour_ramp(values: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Map H x W values in 0..1 through K x 3 colours (evenly spaced stops) to H x W x 3 float32."""
    stops = len(colours) - 1
    pos = np.clip(values, 0.0, 1.0) * stops
    i = np.minimum(np.floor(pos).astype(np.intp), stops - 1)
    f = (pos - i)[..., None].astype(np.float32)
    colours = colours.astype(np.float32)
    return colours[i] + (colours[i + 1] - colours[i]) * f


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    """One RGB colour (3 float32, 0..255) from hue (wraps), saturation and value (0..1)."""
    rgb = colorsys.hsv_to_rgb(hue % 1.0, min(max(saturation, 0.0), 1.0), min(max(value, 0.0), 1.0))
    return np.array(rgb, dtype=np.float32) * 255.0


def _hermite_path(times: np.ndarray, points: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Smooth curve through ``points`` (N x 2) at increasing ``times`` (N), read at ``query`` (T).

    Cubic Hermite pieces with Catmull-Rom tangents (one-sided at the ends), so the curve passes
    every waypoint with continuous velocity. Returns T x 2 float64.
    """
    n = len(times)
    tangents = np.empty_like(points)
    for i in range(n):
        lo, hi = max(i - 1, 0), min(i + 1, n - 1)
        tangents[i] = (points[hi] - points[lo]) / (times[hi] - times[lo])
    seg = np.clip(np.searchsorted(times, query, side="right") - 1, 0, n - 2)
    dt = times[seg + 1] - times[seg]
    s = ((query - times[seg]) / dt)[:, None]
    h00 = 2 * s**3 - 3 * s**2 + 1
    h10 = s**3 - 2 * s**2 + s
    h01 = -2 * s**3 + 3 * s**2
    h11 = s**3 - s**2
    return (
        h00 * points[seg]
        + h10 * dt[:, None] * tangents[seg]
        + h01 * points[seg + 1]
        + h11 * dt[:, None] * tangents[seg + 1]
    )


# ----------------------------------------------------------------------------------------------
# Appearance: shapes and textures


def _random_shape(rng: np.random.Generator, radius: float) -> Shape:
    """A random smooth blob of mean radius ``radius``: a few low harmonics, never too thin."""
    harmonics = []
    budget = 0.45  # sum of |a_k| stays below this, so r(phi) >= 0.55 radius
    for k in (2, 3, 4, 5):
        amplitude = float(rng.uniform(0.0, budget * (0.55 if k == 2 else 0.45)))
        budget -= amplitude
        harmonics.append((k, amplitude, float(rng.uniform(0.0, 2.0 * math.pi))))
    aspect = float(np.exp(rng.uniform(-0.35, 0.35)))
    return Shape(radius=radius, aspect=aspect, harmonics=tuple(harmonics))


def _pattern(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A size x size float32 pattern in 0..1 of the given kind."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    warp = _fractal_noise(rng, size, size, size / 2.0, octaves=3) - 0.5
    if kind == "noise":
        return _fractal_noise(rng, size, size, float(rng.uniform(8.0, 24.0)))
    if kind == "stripes":
        angle = float(rng.uniform(0.0, math.pi))
        period = float(rng.uniform(7.0, 16.0))
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period + 1.5 * warp
        return 0.5 + 0.5 * np.tanh(3.0 * np.sin(2.0 * math.pi * phase))
    if kind == "checker":
        period = float(rng.uniform(9.0, 18.0))
        u = xx / period + 1.2 * warp
        v = yy / period - 1.2 * warp
        return 0.5 + 0.5 * np.tanh(3.0 * np.sin(math.pi * u) * np.sin(math.pi * v))
    if kind == "gradient":
        angle = float(rng.uniform(0.0, 2.0 * math.pi))
        ramp = (xx * math.cos(angle) + yy * math.sin(angle)) / size + 0.5
        spots = _fractal_noise(rng, size, size, float(rng.uniform(6.0, 12.0)), octaves=2)
        return np.clip(0.8 * ramp + 0.5 * (spots - 0.5), 0.0, 1.0)
    if kind == "spots":
        field = _fractal_noise(rng, size, size, float(rng.uniform(5.0, 10.0)), octaves=2)
        return 0.5 + 0.5 * np.tanh(12.0 * (field - 0.55))
    raise ValueError(f"unknown pattern kind {kind!r}")


_OBJECT_PATTERNS = ("noise", "stripes", "checker", "gradient", "spots")


def _shade(texture: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fine grain and a light from the top left, as if the S x S x 3 texture were a rounded body."""
    size = texture.shape[0]
    grain = _fractal_noise(rng, size, size, 4.0, octaves=2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / np.float32(size) - 0.5
    shading = 1.0 - 0.35 * (xx + yy) + 0.16 * (grain - 0.5)
    return np.clip(texture * shading[..., None], 0.0, 255.0).astype(np.float32)


def _object_texture(
    rng: np.random.Generator, size: int, camouflage: np.ndarray | None = None
) -> np.ndarray:
    """A size x size x 3 float32 RGB object texture.

    A coloured pattern (noise, stripes, warped checker, gradient or spots) in random colours, or,
    with ``camouflage`` (the background's K x 3 colour stops), a patch of background-like texture.
    """
    if camouflage is not None:
        return _shade(_background_texture(rng, size, size, camouflage), rng)
    kind = _OBJECT_PATTERNS[int(rng.integers(len(_OBJECT_PATTERNS)))]
    colours = np.stack(
        [
            _hsv(float(rng.random()), float(rng.uniform(0.3, 0.9)), float(rng.uniform(0.3, 0.95)))
            for _ in range(int(rng.integers(2, 4)))
        ]
    )
    return _shade(_colour_ramp(_pattern(rng, size, kind), colours), rng)


def _background_colours(rng: np.random.Generator) -> np.ndarray:
    """3 or 4 x 3 colour stops for a background: muted hues around one base hue."""
    base = float(rng.random())
    return np.stack(
        [
            _hsv(
                base + float(rng.uniform(-0.15, 0.15)),
                float(rng.uniform(0.08, 0.5)),
                float(rng.uniform(0.2, 0.85)),
            )
            for _ in range(int(rng.integers(3, 5)))
        ]
    )


_BACKGROUND_PATTERNS = ("meadow", "tiles", "wood")


def _background_texture(
    rng: np.random.Generator, height: int, width: int, colours: np.ndarray
) -> np.ndarray:
    """An H x W x 3 float32 RGB canvas with structure at several scales, coloured by the stops."""
    kind = _BACKGROUND_PATTERNS[int(rng.integers(len(_BACKGROUND_PATTERNS)))]
    base = _fractal_noise(rng, height, width, float(rng.uniform(40.0, 90.0)), octaves=5)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    warp = _fractal_noise(rng, height, width, 60.0, octaves=3) - 0.5
    if kind == "meadow":
        detail = _fractal_noise(rng, height, width, 6.0, octaves=3)
        values = 0.75 * base + 0.25 * detail
    elif kind == "tiles":
        period = float(rng.uniform(28.0, 48.0))
        mortar = np.minimum(
            np.abs(np.sin(math.pi * (xx / period + 0.4 * warp))),
            np.abs(np.sin(math.pi * (yy / period - 0.4 * warp))),
        )
        values = 0.7 * base + 0.3 * np.clip(mortar * 4.0, 0.0, 1.0)
    else:  # wood: warped bands
        angle = float(rng.uniform(0.0, math.pi))
        bands = np.sin(
            2.0 * math.pi * ((xx * math.cos(angle) + yy * math.sin(angle)) / 35.0 + 2.5 * warp)
        )
        values = 0.6 * base + 0.4 * (0.5 + 0.5 * bands)
    canvas = _colour_ramp(values, colours)
    grain = _fractal_noise(rng, height, width, 3.0, octaves=2)
    return np.clip(canvas * (0.9 + 0.2 * grain)[..., None], 0.0, 255.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Drawing one object


@dataclass(frozen=True)
class _Coverage:
    """Where an object lies in a frame: a box and, inside it, its silhouette and texture lookup."""

    box: tuple[int, int, int, int]  # y0, y1, x0, x1 (end exclusive), clipped to the frame
    inside: np.ndarray  # h x w bool: pixel centre inside the silhouette (the exact mask)
    alpha: np.ndarray  # h x w float32 in 0..1, anti-aliased coverage; >= 0.5 exactly where inside
    tex_x: np.ndarray  # h x w float64 texture column at each pixel
    tex_y: np.ndarray  # h x w float64 texture row at each pixel


def _coverage(
    shape: Shape,
    texture_size: int,
    centre: tuple[float, float],
    scale: float,
    angle: float,
    frame_hw: tuple[int, int],
    *,
    softness: float = 1.0,
) -> _Coverage | None:
    """The object's footprint in a frame of ``frame_hw``, or None when it is wholly outside.

    Geometry is computed in float64 so that masks do not depend on rounding details.
    ``softness`` widens the anti-aliased edge (in frame pixels), used for shadows.
    """
    height, width = frame_hw
    cx, cy = centre
    reach = shape.extent * scale + 2.0 + softness
    y0, y1 = max(int(math.floor(cy - reach)), 0), min(int(math.ceil(cy + reach)) + 1, height)
    x0, x1 = max(int(math.floor(cx - reach)), 0), min(int(math.ceil(cx + reach)) + 1, width)
    if y0 >= y1 or x0 >= x1:
        return None
    dy = np.arange(y0, y1, dtype=np.float64)[:, None] - cy
    dx = np.arange(x0, x1, dtype=np.float64)[None, :] - cx
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    # Frame offset -> object coordinates: undo the turn (screen y points down, so a
    # counter-clockwise turn on screen is R(-angle) in pixel axes), then undo the scale.
    ux = (cos_a * dx - sin_a * dy) / scale
    uy = (sin_a * dx + cos_a * dy) / scale
    stretch = math.sqrt(shape.aspect)
    qx, qy = ux / stretch, uy * stretch
    rho = np.hypot(qx, qy)
    margin = shape.boundary(np.arctan2(qy, qx)) - rho  # > 0 inside, in shape units
    inside = margin >= 0.0
    pixels_per_unit = scale * min(stretch, 1.0 / stretch)
    alpha = np.clip(0.5 + margin * (pixels_per_unit / softness), 0.0, 1.0).astype(np.float32)
    middle = (texture_size - 1) / 2.0
    return _Coverage((y0, y1, x0, x1), inside, alpha, ux + middle, uy + middle)


def _object_coverage(
    obj: SceneObject, t: int, frame_hw: tuple[int, int], *, offset=(0.0, 0.0), softness=1.0
) -> _Coverage | None:
    cx, cy = obj.centres[t]
    return _coverage(
        obj.shape,
        obj.texture.shape[0],
        (float(cx) + offset[0], float(cy) + offset[1]),
        float(obj.scales[t]),
        float(obj.angles[t]),
        frame_hw,
        softness=softness,
    )


def _paint(canvas: np.ndarray, shape: Shape, texture: np.ndarray, centre, scale, angle) -> None:
    """Paint a textured blob onto an H x W x 3 float32 canvas in place (used for distractors)."""
    cov = _coverage(shape, texture.shape[0], centre, scale, angle, canvas.shape[:2])
    if cov is None:
        return
    y0, y1, x0, x1 = cov.box
    colour = _sample_bilinear(texture, cov.tex_x, cov.tex_y)
    region = canvas[y0:y1, x0:x1]
    region += (colour - region) * cov.alpha[..., None]


# ----------------------------------------------------------------------------------------------
# Layout: paths, sizes, turns


@dataclass(frozen=True)
class _Look:
    shape: Shape
    texture: np.ndarray


def _frame_times(num_frames: int) -> np.ndarray:
    """Normalised time u in 0..1 of each frame (T float64)."""
    if num_frames == 1:
        return np.zeros(1)
    return np.arange(num_frames, dtype=np.float64) / (num_frames - 1)


def _inside_point(rng, spec: VideoSpec, margin: float) -> np.ndarray:
    """A random (x, y) at least ``margin`` pixels from every frame edge (or the centre if none)."""
    xs = (margin, spec.width - margin)
    ys = (margin, spec.height - margin)
    x = rng.uniform(*xs) if xs[0] < xs[1] else spec.width / 2.0
    y = rng.uniform(*ys) if ys[0] < ys[1] else spec.height / 2.0
    return np.array([x, y], dtype=np.float64)


def _clip_point(p: np.ndarray, spec: VideoSpec, margin: float) -> np.ndarray:
    """``p`` moved inside the frame by ``margin`` (to the centre line when the frame is smaller)."""
    lo = np.array([min(margin, spec.width / 2.0), min(margin, spec.height / 2.0)])
    hi = np.array([spec.width, spec.height]) - lo
    return np.clip(p, lo, hi)


def _wander_path(rng, spec: VideoSpec, start: np.ndarray, reach: float) -> np.ndarray:
    """A free object's path: smooth turns at a random speed, kept on screen. T x 2 float64."""
    u = _frame_times(spec.num_frames)
    legs = 3
    speed = rng.uniform(0.008, 0.022) * min(spec.height, spec.width)  # pixels per frame
    leg_length = speed * max(spec.num_frames - 1, 1) / legs
    heading = rng.uniform(0.0, 2.0 * math.pi)
    points = [start]
    for _ in range(legs):
        heading += rng.normal(0.0, 0.9)
        step = leg_length * np.array([math.cos(heading), math.sin(heading)])
        points.append(_clip_point(points[-1] + step, spec, 0.6 * reach))
    return _hermite_path(np.linspace(0.0, 1.0, legs + 1), np.stack(points), u)


def _crossing_paths(rng, spec: VideoSpec, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Paths of two objects that meet near the middle of the frame halfway through. 2 x (T x 2)."""
    u = _frame_times(spec.num_frames)
    meet_time = rng.uniform(0.4, 0.6)
    centre = np.array([spec.width, spec.height], dtype=np.float64) / 2.0
    meet = centre + rng.uniform(-0.12, 0.12, size=2) * np.array([spec.width, spec.height])
    heading = rng.uniform(-0.6, 0.6) + (math.pi if rng.random() < 0.5 else 0.0)
    direction = np.array([math.cos(heading), math.sin(heading)])
    normal = np.array([-direction[1], direction[0]])
    # Start as far apart as the frame allows along the crossing direction, both fully visible.
    half = min(
        (spec.width / 2.0 - reach) / max(abs(direction[0]), 1e-6),
        (spec.height / 2.0 - reach) / max(abs(direction[1]), 1e-6),
        0.45 * spec.width,
    )
    half = max(half, 1.1 * reach)
    # Passing side by side at ``offset``: the nearer one hides a good part of the farther one.
    offset = rng.uniform(0.1, 0.45) * reach * (1.0 if rng.random() < 0.5 else -1.0)
    after = half * (1.0 - meet_time) / meet_time
    paths = []
    for sign in (1.0, -1.0):
        start = _clip_point(meet - sign * half * direction, spec, reach)
        middle = meet + sign * 0.5 * offset * normal
        end = _clip_point(
            meet + sign * after * direction + sign * offset * normal, spec, 0.5 * reach
        )
        points = np.stack([start, middle, end])
        paths.append(_hermite_path(np.array([0.0, meet_time, 1.0]), points, u))
    return paths[0], paths[1]


def _exit_path(rng, spec: VideoSpec, reach: float, inner: float) -> np.ndarray:
    """A path that leaves the frame through one edge, stays out a while, and comes back in.

    ``reach`` bounds the object's footprint radius over the whole video; ``inner`` is how far from
    the edge its centre is while on screen. T x 2 float64.
    """
    u = _frame_times(spec.num_frames)
    edge = int(rng.integers(4))  # 0 left, 1 right, 2 top, 3 bottom
    along_size = spec.height if edge < 2 else spec.width
    across_size = spec.width if edge < 2 else spec.height

    def point(depth_in: float, along: float) -> np.ndarray:
        """(x, y) at ``depth_in`` pixels inside the chosen edge (negative: outside)."""
        across = depth_in if edge in (0, 2) else across_size - depth_in
        return np.array([across, along] if edge < 2 else [along, across], dtype=np.float64)

    def along() -> float:
        return float(rng.uniform(0.3, 0.7) * along_size)

    outside = -(reach + 6.0)
    times = np.array([0.0, rng.uniform(0.28, 0.36), rng.uniform(0.6, 0.68), 1.0])
    depth_in = min(inner, across_size / 2.0)
    points = np.stack(
        [
            point(depth_in, along()),
            point(outside, along()),
            point(outside, along()),
            point(depth_in, along()),
        ]
    )
    return _hermite_path(times, points, u)


def _scales_and_angles(rng, spec: VideoSpec) -> tuple[np.ndarray, np.ndarray]:
    """Smooth size and turn over time: scale = exp(linear ramp), angle = steady turn. T each."""
    u = _frame_times(spec.num_frames)
    change = spec.scale_change * rng.uniform(0.5, 1.0) * (1.0 if rng.random() < 0.5 else -1.0)
    scales = np.exp(change * (u - 0.5))
    turn = math.radians(spec.max_rotation) * rng.uniform(0.3, 1.0)
    turn *= 1.0 if rng.random() < 0.5 else -1.0
    angles = rng.uniform(0.0, 2.0 * math.pi) + turn * u
    return scales, angles


def _layout(
    spec: VideoSpec, looks: Sequence[_Look], rng: np.random.Generator
) -> tuple[SceneObject, ...]:
    """Assign paths, sizes, turns and depths to the objects (labels 1..K)."""
    k = spec.num_objects
    motions = [_scales_and_angles(rng, spec) for _ in range(k)]
    twin_pair = (0, 1) if spec.twins else None
    if twin_pair:
        motions[1] = motions[0]  # same size and turn over time: only the path differs
    reaches = [looks[i].shape.extent * float(motions[i][0].max()) for i in range(k)]
    leaver = k - 1 if spec.exit_reenter else None
    free = [i for i in range(k) if i != leaver]
    crossing = None
    if spec.twins:
        crossing = (0, 1)
    elif spec.occlusion and len(free) >= 2:
        crossing = (free[0], free[1])

    paths: list[np.ndarray | None] = [None] * k
    if crossing:
        a, b = crossing
        paths[a], paths[b] = _crossing_paths(rng, spec, max(reaches[a], reaches[b]))
    if leaver is not None:
        inner = reaches[leaver] + rng.uniform(0.1, 0.6) * looks[leaver].shape.radius
        paths[leaver] = _exit_path(rng, spec, reaches[leaver], inner)
    for i in range(k):
        if paths[i] is None:
            start = _inside_point(rng, spec, reaches[i] + 2.0)
            paths[i] = _wander_path(rng, spec, start, reaches[i])

    depths = rng.permutation(k)
    return tuple(
        SceneObject(
            label=i + 1,
            shape=looks[i].shape,
            texture=looks[i].texture,
            centres=paths[i],
            scales=motions[i][0],
            angles=motions[i][1],
            depth=int(depths[i]),
            twin_of=(2 - i if twin_pair and i in twin_pair else None),
            leaves_frame=i == leaver,
        )
        for i in range(k)
    )


def _first_frame_ok(objects: Sequence[SceneObject], spec: VideoSpec) -> bool:
    """Whether every object shows at least half of its silhouette (and 40 pixels) in frame 0."""
    masks = _object_masks(objects, 0, (spec.height, spec.width))
    labels = _labels_from_masks(objects, masks)
    for obj, mask in zip(objects, masks, strict=True):
        whole = int(mask.sum())
        visible = int((labels == obj.label).sum())
        if visible < 40 or visible < 0.5 * whole:
            return False
    return True


# ----------------------------------------------------------------------------------------------
# Scene building and rendering


def build_scene(spec: VideoSpec) -> Scene:
    """Draw every random choice of ``spec``: looks, background, camera path and object paths.

    Looks come from one random stream and the layout from another, re-drawn (deterministically)
    until every object shows at least half of itself in the first frame.
    """
    rng = _rng(spec.seed, _APPEARANCE)
    short_side = min(spec.height, spec.width)
    background_colours = _background_colours(rng)
    camouflage = background_colours if spec.camouflage else None

    looks: list[_Look] = []
    for i in range(spec.num_objects):
        if spec.twins and i == 1:
            looks.append(looks[0])  # the twin shares the very same shape and texture
            continue
        radius = spec.object_size * short_side * float(rng.uniform(0.8, 1.25))
        shape = _random_shape(rng, radius)
        size = int(math.ceil(2.0 * shape.extent)) + 4
        looks.append(_Look(shape, _object_texture(rng, size, camouflage)))

    # Camera: pan across the canvas, drift a little vertically, zoom slowly in or out.
    u = _frame_times(spec.num_frames)
    zoom_change = rng.uniform(-0.06, 0.1)
    zooms = 1.0 + zoom_change * u
    pan_px = spec.pan * spec.width * (1.0 if rng.random() < 0.5 else -1.0)
    drift = rng.uniform(0.01, 0.04) * spec.height
    drift_phase = rng.uniform(0.0, 2.0 * math.pi)
    view_w = spec.width / zooms.min()
    view_h = spec.height / zooms.min()
    canvas_w = int(math.ceil(view_w + abs(pan_px) + 8))
    canvas_h = int(math.ceil(view_h + 2.0 * drift + 8))
    start_x = canvas_w / 2.0 - pan_px / 2.0
    camera = np.stack(
        [
            start_x + pan_px * u,
            canvas_h / 2.0 + drift * np.sin(2.0 * math.pi * u + drift_phase),
            zooms,
        ],
        axis=1,
    )
    background = _background_texture(rng, canvas_h, canvas_w, background_colours)
    for _ in range(spec.distractors):
        shape = _random_shape(rng, spec.object_size * short_side * float(rng.uniform(0.5, 0.9)))
        size = int(math.ceil(2.0 * shape.extent)) + 4
        texture = _object_texture(rng, size, camouflage)
        centre = (float(rng.uniform(0, canvas_w)), float(rng.uniform(0, canvas_h)))
        _paint(background, shape, texture, centre, 1.0, float(rng.uniform(0, 2 * math.pi)))

    flicker = rng.uniform(0.01, 0.04)
    gains = 1.0 + flicker * np.sin(2.0 * math.pi * (rng.uniform(0.5, 2.0) * u + rng.random()))
    light = rng.uniform(0.0, 2.0 * math.pi)
    shadow = 0.04 * short_side
    shadow_offset = (shadow * math.cos(light), shadow * math.sin(light))

    for attempt in range(_MAX_LAYOUT_ATTEMPTS):
        objects = _layout(spec, looks, _rng(spec.seed, _LAYOUT, attempt))
        if _first_frame_ok(objects, spec):
            break
    else:
        raise RuntimeError(
            f"could not place {spec.num_objects} objects of sequence {spec.name!r} so that each "
            f"shows half of itself in frame 0 of a {spec.height} x {spec.width} frame "
            f"after {_MAX_LAYOUT_ATTEMPTS} tries: use fewer objects or a larger frame"
        )
    return Scene(spec, background, camera, objects, gains, shadow_offset)


def _object_masks(objects: Sequence[SceneObject], t: int, frame_hw: tuple[int, int]) -> np.ndarray:
    masks = np.zeros((len(objects), *frame_hw), dtype=bool)
    for i, obj in enumerate(objects):
        cov = _object_coverage(obj, t, frame_hw)
        if cov is not None:
            y0, y1, x0, x1 = cov.box
            masks[i, y0:y1, x0:x1] = cov.inside
    return masks


def _labels_from_masks(objects: Sequence[SceneObject], masks: np.ndarray) -> np.ndarray:
    """H x W uint8 labels: at each pixel, the label of the nearest object covering it, else 0."""
    labels = np.zeros(masks.shape[1:], dtype=np.uint8)
    for i in sorted(range(len(objects)), key=lambda i: -objects[i].depth):  # far to near
        labels[masks[i]] = objects[i].label
    return labels


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


# ----------------------------------------------------------------------------------------------
# DAVIS layout


def write_davis(
    root: str | Path,
    specs: Sequence[VideoSpec],
    *,
    resolution: str = "480p",
    split: str = "val",
    jpeg_quality: int = 90,
) -> list[str]:
    """Render ``specs`` and write them under ``root`` in the DAVIS 2017 layout.

    Writes ``JPEGImages/<resolution>/<name>/00000.jpg ...`` (RGB JPEG, fixed quality, 4:2:0),
    ``Annotations/<resolution>/<name>/00000.png ...`` (palette PNGs, one per frame) and
    ``ImageSets/2017/<split>.txt`` listing the names, one per line (the list is replaced, so
    write each split with one call). Frame files left in those sequence folders by an earlier,
    longer run are removed. Returns the names written.
    """
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"sequence names must be unique, found duplicates {duplicates}")
    videos = ((spec.name, *generate_video(spec)) for spec in specs)
    return write_davis_arrays(
        root, videos, resolution=resolution, split=split, jpeg_quality=jpeg_quality
    )


def write_davis_arrays(
    root: str | Path,
    videos,
    *,
    resolution: str = "480p",
    split: str = "val",
    jpeg_quality: int = 90,
) -> list[str]:
    """Write ``videos`` (an iterable of ``(name, frames T x H x W x 3 uint8, labels T x H x W
    uint8)``) under ``root`` in the DAVIS 2017 layout, as :func:`write_davis` does. Returns the
    names written."""
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must lie in 1..100, got {jpeg_quality}")
    for label, value in (("resolution", resolution), ("split", split)):
        if not _NAME_PATTERN.match(value):
            raise ValueError(f"{label} must be a plain folder or file name, got {value!r}")
    root = Path(root)
    names: list[str] = []
    for name, frames, labels in videos:
        if name in names:
            raise ValueError(f"sequence names must be unique, found {name!r} twice")
        names.append(name)
        image_dir = root / "JPEGImages" / resolution / name
        mask_dir = root / "Annotations" / resolution / name
        for folder, suffix in ((image_dir, ".jpg"), (mask_dir, ".png")):
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob(f"[0-9][0-9][0-9][0-9][0-9]{suffix}"):
                old.unlink()
        for t in range(len(frames)):
            Image.fromarray(frames[t], mode="RGB").save(
                image_dir / f"{t:05d}.jpg",
                format="JPEG",
                quality=jpeg_quality,
                subsampling=2,  # 4:2:0, as in DAVIS
                optimize=False,
                progressive=False,
            )
            write_label_png(mask_dir / f"{t:05d}.png", labels[t])
    list_path = root / "ImageSets" / "2017" / f"{split}.txt"
    list_path.parent.mkdir(parents=True, exist_ok=True)
    list_path.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    return names


# ----------------------------------------------------------------------------------------------
# Bundled samples and random training sets


def sample_specs() -> tuple[VideoSpec, ...]:
    """The sample sequences bundled in ``data_samples/`` (the ``val`` split there)."""
    return (
        VideoSpec(
            "solo-blob",
            seed=101,
            num_frames=30,
            num_objects=1,
            object_size=0.2,
            scale_change=0.5,
            max_rotation=120.0,
            pan=0.2,
            description="one large object that grows and turns while the camera pans",
        ),
        VideoSpec(
            "trio-crossing",
            seed=202,
            num_frames=30,
            num_objects=3,
            description="three objects; objects 1 and 2 cross, the nearer one hides the other",
        ),
        VideoSpec(
            "twins",
            seed=303,
            num_frames=30,
            num_objects=2,
            twins=True,
            description=(
                "two identical objects (same shape, texture, size and turn) whose paths cross: "
                "only their motion tells them apart"
            ),
        ),
        VideoSpec(
            "peekaboo",
            seed=404,
            num_frames=32,
            num_objects=2,
            exit_reenter=True,
            description=(
                "object 2 leaves the frame, stays out for several frames and comes back; "
                "object 1 wanders"
            ),
        ),
        VideoSpec(
            "camouflage",
            seed=505,
            num_frames=30,
            num_objects=3,
            camouflage=True,
            distractors=3,
            noise_std=4.0,
            description=(
                "three objects coloured like the background, with unlabelled look-alike shapes "
                "painted on it and stronger noise"
            ),
        ),
        VideoSpec(
            "crowd",
            seed=606,
            num_frames=36,
            num_objects=4,
            twins=True,
            exit_reenter=True,
            distractors=1,
            description=(
                "four objects: twins 1 and 2 cross, object 4 leaves and comes back, object 3 "
                "wanders"
            ),
        ),
    )


def random_specs(
    n: int,
    seed: int,
    *,
    num_frames: int = 30,
    height: int = 240,
    width: int = 427,
    prefix: str = "train",
) -> list[VideoSpec]:
    """``n`` random specs for training, named ``<prefix>-00000`` ...; the same seed gives the same.

    Each draws 1..4 objects and, at random, twins, crossings, an object leaving and coming back,
    camouflage, distractors, pan, size change, turning and noise.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = np.random.default_rng([seed, 7919])
    specs = []
    for i in range(n):
        num_objects = int(rng.integers(1, 5))
        twins = num_objects >= 2 and rng.random() < 0.25
        exit_reenter = num_frames >= 12 and (num_objects >= 3 or not twins) and rng.random() < 0.3
        specs.append(
            VideoSpec(
                name=f"{prefix}-{i:05d}",
                seed=int(rng.integers(2**31)),
                num_frames=num_frames,
                height=height,
                width=width,
                num_objects=num_objects,
                twins=bool(twins),
                occlusion=bool(rng.random() < 0.7),
                exit_reenter=bool(exit_reenter),
                camouflage=bool(rng.random() < 0.25),
                distractors=int(rng.integers(0, 3)),
                pan=float(rng.uniform(0.0, 0.3)),
                scale_change=float(rng.uniform(0.0, 0.5)),
                max_rotation=float(rng.uniform(0.0, 180.0)),
                noise_std=float(rng.uniform(0.0, 5.0)),
            )
        )
    return specs


SAMPLES_JPEG_QUALITY = 85  # a little below write_davis's default, to keep the repository small

_README_HEADER = """\
# Synthetic sample videos

Generated by `hmmnlab.data.synthetic` (procedural textures, exact masks): do not edit by hand.
Regenerate with

    hmmnlab samples --out data_samples

(or `python -m hmmnlab samples --out data_samples`; add `--num-train N` to also write N random training
videos, listed in `ImageSets/2017/train.txt`). `tests/test_synthetic.py` checks that the
committed files match a fresh regeneration: masks exactly, JPEG frames (quality {quality}, 4:2:0)
up to small encoder differences between library versions.

Layout is DAVIS 2017: `JPEGImages/480p/<name>/00000.jpg`, `Annotations/480p/<name>/00000.png`
(palette PNGs: 0 background, k object k, only the visible part of each object) and
`ImageSets/2017/val.txt`. The frames are {height} x {width}, half the DAVIS 480p size, to keep
the repository small; the folder is still named `480p` so that DAVIS tools find it by default.
Every object is visible in frame 0.

| sequence | frames | objects | what it shows |
| --- | --- | --- | --- |
"""


def samples_readme(specs: Sequence[VideoSpec]) -> str:
    """The README.md text describing the sample sequences ``specs``."""
    first = specs[0]
    text = _README_HEADER.format(
        height=first.height, width=first.width, quality=SAMPLES_JPEG_QUALITY
    )
    for spec in specs:
        text += f"| `{spec.name}` | {spec.num_frames} | {spec.num_objects} | {spec.description} |\n"
    return text


def write_samples(out: str | Path, *, num_train: int = 0, seed: int = 0) -> list[str]:
    """Write the bundled samples (``val``) to ``out``, plus ``num_train`` random ``train`` videos.

    Returns the names written.
    """
    out = Path(out)
    specs = sample_specs()
    names = write_davis(out, specs, split="val", jpeg_quality=SAMPLES_JPEG_QUALITY)
    (out / "README.md").write_text(samples_readme(specs), encoding="utf-8")
    if num_train:
        names += write_davis(out, random_specs(num_train, seed), split="train")
    return names


# ----------------------------------------------------------------------------------------------
# YouTube-VOS layout: objects that enter later, sparse validation annotations

#: YouTube-VOS keeps every 5th frame of a video (``<split>_all_frames`` has them all).
YOUTUBE_STRIDE = 5

#: An object enters at a frame where at least this many of its pixels are visible.
YOUTUBE_MIN_ENTRY_PIXELS = 40


@dataclass(frozen=True)
class YouTubeSpec:
    """A video for the YouTube-VOS layout: a :class:`VideoSpec` of the full-rate video
    (``video.num_frames`` = ``(n - 1) * YOUTUBE_STRIDE + 1`` for n kept frames) and, per object
    (labels 1..K), the kept frame it enters at (0: there from the start; before it the object is not
    drawn and not labelled) and its category."""

    video: VideoSpec
    entries: tuple[int, ...]
    categories: tuple[str, ...]

    def __post_init__(self) -> None:
        k = self.video.num_objects
        if len(self.entries) != k or len(self.categories) != k:
            raise ValueError(
                f"video {self.video.name!r}: expected an entry frame and a category for each of "
                f"its {k} objects, got {len(self.entries)} and {len(self.categories)}"
            )
        if (self.video.num_frames - 1) % YOUTUBE_STRIDE:
            raise ValueError(
                f"video {self.video.name!r}: num_frames must be (n - 1) * {YOUTUBE_STRIDE} + 1, "
                f"got {self.video.num_frames}"
            )
        if min(self.entries) != 0 or max(self.entries) >= self.num_kept:
            raise ValueError(
                f"video {self.video.name!r}: entries must lie in 0..{self.num_kept - 1} with at "
                f"least one object at frame 0, got {self.entries}"
            )
        if self.video.exit_reenter:
            raise ValueError(f"video {self.video.name!r}: exit_reenter is not supported here")

    @property
    def num_kept(self) -> int:
        """Number of kept frames (every ``YOUTUBE_STRIDE``-th of the full-rate video)."""
        return (self.video.num_frames - 1) // YOUTUBE_STRIDE + 1


def youtube_vos_specs() -> dict[str, tuple[YouTubeSpec, ...]]:
    """The small YouTube-VOS-layout set of ``hmmnlab samples --youtube-vos``: split -> videos.

    Three videos per split, 15 kept frames (71 at the full rate) of 96 x 160 pixels: one object
    entering later, two objects entering at two later frames, and two entering together."""

    def spec(name, seed, entries, categories, **kw):
        video = VideoSpec(
            name, seed=seed, num_frames=(15 - 1) * YOUTUBE_STRIDE + 1, height=96, width=160,
            num_objects=len(entries), object_size=0.15, occlusion=False, **kw,
        )  # fmt: skip
        return YouTubeSpec(video, tuple(entries), tuple(categories))

    return {
        "train": (
            spec("train-0", 1101, (0, 4), ("fish", "bird")),
            spec("train-1", 1202, (0, 3, 8), ("bird", "fish", "cup")),
            spec("train-2", 1303, (0, 5, 5), ("cup", "bird", "fish")),
        ),
        "valid": (
            spec("valid-0", 2101, (0, 4), ("bird", "fish")),
            spec("valid-1", 2202, (0, 3, 8), ("fish", "cup", "bird")),
            spec("valid-2", 2303, (0, 6, 6), ("cup", "fish", "bird")),
        ),
    }


def render_youtube_video(
    spec: YouTubeSpec, *, all_frames: bool = False
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Render ``spec``: (full-rate frame indices, frames T x H x W x 3 uint8, labels T x H x W
    uint8) of the kept frames (every ``YOUTUBE_STRIDE``-th), or of every frame with ``all_frames``.

    An object is drawn and labelled from its entry frame on (full-rate index ``entry *
    YOUTUBE_STRIDE``); it must show at least ``YOUTUBE_MIN_ENTRY_PIXELS`` pixels there."""
    scene = build_scene(spec.video)
    step = 1 if all_frames else YOUTUBE_STRIDE
    indices = list(range(0, spec.video.num_frames, step))
    shape = (len(indices), spec.video.height, spec.video.width)
    frames = np.empty((*shape, 3), dtype=np.uint8)
    labels = np.empty(shape, dtype=np.uint8)
    for i, t in enumerate(indices):
        visible = tuple(
            obj for obj in scene.objects if spec.entries[obj.label - 1] * YOUTUBE_STRIDE <= t
        )
        frames[i], labels[i] = render_frame(dataclasses.replace(scene, objects=visible), t)
        for obj in visible:
            if spec.entries[obj.label - 1] * YOUTUBE_STRIDE == t:
                count = int((labels[i] == obj.label).sum())
                if count < YOUTUBE_MIN_ENTRY_PIXELS:
                    raise RuntimeError(
                        f"video {spec.video.name!r}: object {obj.label} enters at frame {t} but "
                        f"shows only {count} pixel(s) there (expected at least "
                        f"{YOUTUBE_MIN_ENTRY_PIXELS}); choose another entry frame or seed"
                    )
    return indices, frames, labels


def _save_jpeg(path: Path, frame: np.ndarray, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame, mode="RGB").save(
        path, format="JPEG", quality=quality, subsampling=2, optimize=False, progressive=False
    )


def write_youtube_vos(
    root: str | Path,
    specs: dict[str, Sequence[YouTubeSpec]] | None = None,
    *,
    all_frames: bool = True,
    jpeg_quality: int = 90,
) -> dict[str, list[str]]:
    """Write ``specs`` (split -> videos; default :func:`youtube_vos_specs`) under ``root`` in the
    YouTube-VOS layout and return split -> video names.

    Every split has ``<split>/JPEGImages/<video>/00000.jpg, 00005.jpg, ...`` (every
    ``YOUTUBE_STRIDE``-th frame, named by the full-rate index), ``<split>/Annotations/<video>/*.png``
    (palette PNGs) and ``<split>/meta.json`` (``{"videos": {video: {"objects": {"1": {"category":
    ..., "frames": [...]}}}}}``). ``train`` is fully annotated (every kept frame; an object's meta
    frames are those that show it); any other split is annotated as YouTube-VOS validation is: a
    PNG only at the frames where objects first appear, holding only those objects, and an object's
    meta frames run from its first appearance to the last frame. With ``all_frames``, the other
    splits also get ``<split>_all_frames/JPEGImages/<video>/`` with every frame."""
    specs = youtube_vos_specs() if specs is None else specs
    root = Path(root)
    written: dict[str, list[str]] = {}
    for split, videos in specs.items():
        if not _NAME_PATTERN.match(split):
            raise ValueError(f"split must be a plain folder name, got {split!r}")
        dense = split == "train"
        meta: dict[str, dict] = {}
        for spec in videos:
            name = spec.video.name
            full = all_frames and not dense
            indices, frames, labels = render_youtube_video(spec, all_frames=full)
            kept = [i for i, t in enumerate(indices) if t % YOUTUBE_STRIDE == 0]
            for folder in (root / split / "JPEGImages" / name, root / split / "Annotations" / name):
                if folder.is_dir():
                    for old in folder.iterdir():
                        old.unlink()
            for i in kept:
                _save_jpeg(root / split / "JPEGImages" / name / f"{indices[i]:05d}.jpg",
                           frames[i], jpeg_quality)  # fmt: skip
            if full:
                folder = root / f"{split}_all_frames" / "JPEGImages" / name
                if folder.is_dir():
                    for old in folder.iterdir():
                        old.unlink()
                for i, t in enumerate(indices):
                    _save_jpeg(folder / f"{t:05d}.jpg", frames[i], jpeg_quality)
            objects = {}
            for label in range(1, spec.video.num_objects + 1):
                entry = spec.entries[label - 1]
                if dense:
                    shown = [n for n, i in enumerate(kept) if (labels[i] == label).any()]
                else:
                    shown = list(range(entry, len(kept)))
                objects[str(label)] = {
                    "category": spec.categories[label - 1],
                    "frames": [f"{indices[kept[n]]:05d}" for n in shown],
                }
            for n, i in enumerate(kept):
                entering = [k + 1 for k, e in enumerate(spec.entries) if e == n]
                if dense:
                    annotation = labels[i]
                elif entering:
                    annotation = np.where(np.isin(labels[i], entering), labels[i], 0)
                else:
                    continue
                write_label_png(
                    root / split / "Annotations" / name / f"{indices[i]:05d}.png",
                    annotation.astype(np.uint8),
                )
            meta[name] = {"objects": objects}
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / split / "meta.json").write_text(
            json.dumps({"videos": meta}, indent=1), encoding="utf-8"
        )
        written[split] = [spec.video.name for spec in videos]
    return written
