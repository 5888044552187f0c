"""Random streams and procedural appearance of the synthetic videos: value noise, colour ramps,
smooth star-shaped :class:`Shape` blobs, object and background textures (pure numpy, seeded
by :func:`_rng`)."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

# Seeds of the independent random streams derived from VideoSpec.seed (see _rng).
_APPEARANCE, _LAYOUT, _NOISE = 0, 1, 2


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
