"""Building a :class:`~hmmnlab.data.synthetic.spec.Scene` from a spec (:func:`build_scene`):
each object's coverage of the frame, the layout (paths, sizes, turns, re-drawn until every
object shows in the first frame), looks and background."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hmmnlab.data.synthetic.spec import Scene, SceneObject, VideoSpec
from hmmnlab.data.synthetic.textures import (
    _APPEARANCE,
    _LAYOUT,
    Shape,
    _background_colours,
    _background_texture,
    _hermite_path,
    _object_texture,
    _random_shape,
    _rng,
    _sample_bilinear,
)

_MAX_LAYOUT_ATTEMPTS = 200


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
