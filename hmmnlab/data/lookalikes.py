"""Look-alike videos: two or three identical objects, graded by how close they come.

HMMN's kernel-guided read claims to keep a query from matching a look-alike far away: it reads
memory near where each memory position moved. These videos test exactly that. Every object of a
video has the very same shape, texture, size and turn (only its path differs), over a textured,
panning background, so appearance alone cannot tell them apart. Each video has a **grade**, measured
on the objects' whole silhouettes (hidden parts included) over all frames:

==========  ========================================================================================
``apart``   the objects never come within :data:`APART_GAP` pixels of each other (edge to edge)
``pass``    two of them pass each other closely (at most :data:`PASS_GAP` pixels) but never touch
``graze``   two of them overlap a little: 2% to :data:`GRAZE_OVERLAP` of the smaller silhouette
``cross``   two of them cross fully: at least :data:`CROSS_OVERLAP` of one hides behind the other
==========  ========================================================================================

In a video of three objects the third one stays :data:`APART_GAP` pixels away from the other two.
Through a full crossing, no read without a motion model can tell which object is which.

Typical use::

    specs = lookalike_specs(8, seed=0)                  # two of each grade, random looks and paths
    frames, labels = generate_lookalike(specs[0])       # T x H x W x 3 uint8, T x H x W uint8
    write_lookalikes("data/lookalikes", specs)          # DAVIS 2017 layout plus lookalikes.json

``hmmnlab samples --lookalikes DIR`` writes such a suite.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hmmnlab.data.synthetic.render import render_frame
from hmmnlab.data.synthetic.scene import (
    _frame_times,
    _inside_point,
    _object_masks,
    _wander_path,
    build_scene,
)
from hmmnlab.data.synthetic.spec import Scene, SceneObject, VideoSpec
from hmmnlab.data.synthetic.textures import _hermite_path, _rng
from hmmnlab.data.synthetic.writers import write_davis_arrays

GRADES = ("apart", "pass", "graze", "cross")
APART_GAP = 80.0  # apart: smallest edge-to-edge distance between any two objects, in pixels
PASS_GAP = 40.0  # pass: the closest two come within this many pixels, with no overlap
GRAZE_OVERLAP = 0.2  # graze: largest overlap, as a share of the smaller silhouette
GRAZE_MIN_OVERLAP = 0.02  # ... and at least this (less is a touch, between pass and graze)
CROSS_OVERLAP = 0.6  # cross: at least this share of the smaller silhouette overlaps at one frame
_STREAM = 3  # random stream of the look-alike paths (hmmnlab.data.synthetic uses 0..2)
_ATTEMPTS = 400
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class LookalikeSpec:
    """What to generate: the same spec always gives the same video."""

    name: str  # sequence folder name
    seed: int
    grade: str  # one of GRADES
    num_objects: int = 2  # identical objects: 2 or 3
    num_frames: int = 30
    height: int = 240
    width: int = 427
    object_size: float = 0.11  # mean object radius, as a fraction of the frame's short side
    pan: float = 0.15  # camera pan over the whole video, as a fraction of the frame width
    scale_change: float = 0.2
    max_rotation: float = 60.0
    noise_std: float = 2.0
    camouflage: bool = False

    def __post_init__(self) -> None:
        if not _NAME_PATTERN.match(self.name):
            raise ValueError(
                f"sequence name must be letters, digits, '-', '_' or '.', got {self.name!r}"
            )
        if self.grade not in GRADES:
            raise ValueError(f"grade must be one of {GRADES}, got {self.grade!r}")
        if self.num_objects not in (2, 3):
            raise ValueError(f"num_objects must be 2 or 3, got {self.num_objects}")
        if self.num_frames < 8:
            raise ValueError(f"num_frames must be at least 8, got {self.num_frames}")
        # The rest is checked by the VideoSpec of the background and the look.
        self.base_spec()

    def base_spec(self) -> VideoSpec:
        """The one-object synthetic spec whose background, camera and object look are reused."""
        return VideoSpec(
            self.name, self.seed, num_frames=self.num_frames, height=self.height,
            width=self.width, num_objects=1, object_size=self.object_size, occlusion=False,
            camouflage=self.camouflage, pan=self.pan, scale_change=self.scale_change,
            max_rotation=self.max_rotation, noise_std=self.noise_std,
        )  # fmt: skip


@dataclass(frozen=True)
class Closeness:
    """How close the objects of a video come, over all frames (whole silhouettes).

    gap: smallest edge-to-edge distance in pixels between the pair (0 once they touch);
    overlap: largest overlap of the pair, as a share of the smaller silhouette; pair: the labels
    of the closest pair."""

    gap: float
    overlap: float
    pair: tuple[int, int]

    def grade(self) -> str | None:
        """The grade these numbers meet, or None (in between two grades)."""
        if self.overlap >= CROSS_OVERLAP:
            return "cross"
        if GRAZE_MIN_OVERLAP <= self.overlap <= GRAZE_OVERLAP:
            return "graze"
        if self.overlap == 0 and 1.0 <= self.gap <= PASS_GAP:
            return "pass"
        if self.overlap == 0 and self.gap >= APART_GAP:
            return "apart"
        return None


def closeness(masks: np.ndarray) -> Closeness:
    """Closeness of objects from their whole silhouettes ``masks``: T x K x H x W bool."""
    _, K = masks.shape[:2]
    best: Closeness | None = None
    for a in range(K):
        for b in range(a + 1, K):
            gap, overlap = math.inf, 0.0
            for ma, mb in zip(masks[:, a], masks[:, b], strict=True):
                na, nb = int(ma.sum()), int(mb.sum())
                if na == 0 or nb == 0:
                    continue
                both = int((ma & mb).sum())
                overlap = max(overlap, both / min(na, nb))
                if both:
                    gap = 0.0
                elif gap > 0:
                    # distance of every pixel to the nearest pixel of object a
                    far = cv2.distanceTransform((~ma).astype(np.uint8), cv2.DIST_L2, 5)
                    gap = min(gap, float(far[mb].min()) - 1.0)  # pixels strictly between
            pair = Closeness(gap, overlap, (a + 1, b + 1))
            if best is None or (pair.overlap, -pair.gap) > (best.overlap, -best.gap):
                best = pair
    assert best is not None  # K >= 2
    return best


def _passing_paths(
    rng: np.random.Generator, spec: LookalikeSpec, reach: float, offset: float, span: tuple
) -> tuple[np.ndarray, np.ndarray]:
    """Two paths in opposite directions along parallel lines ``offset`` pixels apart, meeting near
    the middle of the columns ``span`` = (x0, x1) at a random time. 2 x (T x 2) float64."""
    u = _frame_times(spec.num_frames)
    x0, x1 = span
    meet_time = rng.uniform(0.35, 0.65)
    meet = np.array([(x0 + x1) / 2.0, spec.height / 2.0])
    meet += rng.uniform(-0.1, 0.1, size=2) * np.array([x1 - x0, spec.height])
    heading = rng.uniform(-0.5, 0.5) + (math.pi if rng.random() < 0.5 else 0.0)
    direction = np.array([math.cos(heading), math.sin(heading)])
    normal = np.array([-direction[1], direction[0]])
    half = rng.uniform(0.6, 1.0) * max(0.9 * (x1 - x0) - 2 * reach, reach) / 2.0
    bend = rng.uniform(-0.15, 0.15) * reach
    paths = []
    for sign in (1.0, -1.0):
        side = meet + sign * 0.5 * offset * normal
        times = np.array([0.0, meet_time, 1.0])
        points = np.stack(
            [
                side - sign * half * 2 * meet_time * direction + bend * normal,
                side,
                side + sign * half * 2 * (1 - meet_time) * direction - bend * normal,
            ]
        )
        paths.append(_hermite_path(times, points, u))
    return paths[0], paths[1]


def _band_path(rng, spec: LookalikeSpec, reach: float, span: tuple) -> np.ndarray:
    """A slow wandering path that starts in the columns ``span`` = (x0, x1)."""
    x0, x1 = span
    base = spec.base_spec()
    start = _inside_point(rng, base, reach + 2.0)
    start[0] = rng.uniform(x0 + reach, x1 - reach) if x1 - x0 > 2 * reach else (x0 + x1) / 2
    return _wander_path(rng, base, start, reach)


def _candidate_paths(rng, spec: LookalikeSpec, radius: float, reach: float) -> list[np.ndarray]:
    """Paths for the objects of ``spec``, aimed at its grade (checked afterwards). With three
    objects, the third keeps to a band of its own at one side of the frame."""
    k, w = spec.num_objects, spec.width
    if spec.grade == "apart":
        band = w / k
        return [_band_path(rng, spec, reach, (i * band, (i + 1) * band)) for i in range(k)]
    distance = {  # centre distance at the closest point, from the silhouettes' radii
        "pass": rng.uniform(2 * radius + 4.0, 2 * reach + PASS_GAP - 6.0),
        "graze": 2 * radius * rng.uniform(0.8, 1.0),
        "cross": 2 * radius * rng.uniform(0.0, 0.3),
    }[spec.grade]
    if k == 2:
        return list(_passing_paths(rng, spec, reach, distance, (0.0, w)))
    pair_left = rng.random() < 0.5
    split = w * 0.62 if pair_left else w * 0.38
    pair_span, third_span = ((0.0, split), (split, w)) if pair_left else ((split, w), (0.0, split))
    a, b = _passing_paths(rng, spec, reach, distance, pair_span)
    return [a, b, _band_path(rng, spec, reach, third_span)]


def _surely_too_close(paths: Sequence[np.ndarray], reach: float, spec: LookalikeSpec) -> bool:
    """A cheap test before measuring masks: two objects that must stay apart whose centres come
    closer than two reaches plus the apart gap."""
    apart = [(i, j) for i in range(len(paths)) for j in range(i + 1, len(paths))]
    if spec.grade != "apart":
        apart = [(i, j) for i, j in apart if j == 2]  # the third against the pair
    for i, j in apart:
        if np.linalg.norm(paths[i] - paths[j], axis=1).min() < 2 * reach + APART_GAP:
            return True
    return False


def build_lookalike_scene(spec: LookalikeSpec) -> tuple[Scene, Closeness]:
    """The scene of ``spec`` (identical objects on paths of its grade) and its measured closeness.

    Paths are drawn again (deterministically) until the measured closeness meets the grade, every
    object shows at least half of itself in frame 0, and the third object (if any) stays apart."""
    base = build_scene(spec.base_spec())
    look = base.objects[0]  # shape, texture, size and turn shared by every object
    radius = look.shape.radius * float(look.scales.mean())
    reach = look.shape.extent * float(look.scales.max())
    hw = (spec.height, spec.width)
    for attempt in range(_ATTEMPTS):
        rng = _rng(spec.seed, _STREAM, attempt)
        paths = _candidate_paths(rng, spec, radius, reach)
        if _surely_too_close(paths, reach, spec):
            continue
        depths = rng.permutation(spec.num_objects)
        objects = tuple(
            dataclasses.replace(look, label=i + 1, centres=path, depth=int(d), twin_of=None)
            for i, (path, d) in enumerate(zip(paths, depths, strict=True))
        )
        if not _visible_at_start(objects, hw):
            continue
        masks = np.stack([_object_masks(objects, t, hw) for t in range(spec.num_frames)])
        measured = closeness(masks)
        if measured.grade() != spec.grade:
            continue
        if spec.num_objects == 3 and spec.grade != "apart":
            third = closeness(masks[:, [0, 2]]), closeness(masks[:, [1, 2]])
            if any(c.grade() != "apart" for c in third):
                continue
        return dataclasses.replace(base, objects=objects), measured
    raise RuntimeError(
        f"could not lay out {spec.num_objects} objects of {spec.name!r} as grade {spec.grade!r} "
        f"in {_ATTEMPTS} tries: use smaller objects or a larger frame"
    )


def _visible_at_start(objects: Sequence[SceneObject], hw: tuple[int, int]) -> bool:
    """Every object wholly inside frame 0 and at least half of it visible (not hidden)."""
    masks = _object_masks(objects, 0, hw)
    order = sorted(range(len(objects)), key=lambda i: objects[i].depth)  # near to far
    covered = np.zeros(hw, dtype=bool)
    for i in order:
        whole = masks[i]
        if whole.sum() < 40:
            return False
        if (whole & ~covered).sum() < 0.5 * whole.sum():
            return False
        covered |= whole
    return True


def generate_lookalike(spec: LookalikeSpec) -> tuple[np.ndarray, np.ndarray]:
    """Render the video: (T x H x W x 3 uint8 RGB frames, T x H x W uint8 label maps)."""
    return _render(build_lookalike_scene(spec)[0])


def _render(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    spec = scene.spec
    frames = np.empty((spec.num_frames, spec.height, spec.width, 3), dtype=np.uint8)
    labels = np.empty((spec.num_frames, spec.height, spec.width), dtype=np.uint8)
    for t in range(spec.num_frames):
        frames[t], labels[t] = render_frame(scene, t)
    return frames, labels


def lookalike_specs(
    n: int,
    seed: int,
    *,
    grades: Sequence[str] = GRADES,
    prefix: str = "lookalike",
    num_frames: int = 30,
    height: int = 240,
    width: int = 427,
) -> list[LookalikeSpec]:
    """``n`` random specs cycling through ``grades``, named ``<prefix>-<grade>-<i>``: random
    shapes, textures, backgrounds, sizes, speeds, pans and noise; 2 or 3 objects."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    unknown = sorted(set(grades) - set(GRADES))
    if unknown or not grades:
        raise ValueError(f"grades must be a non-empty subset of {GRADES}, got {list(grades)}")
    rng = np.random.default_rng([seed, 4241])
    specs = []
    for i in range(n):
        grade = grades[i % len(grades)]
        three = rng.random() < 0.3
        specs.append(
            LookalikeSpec(
                name=f"{prefix}-{grade}-{i:03d}",
                seed=int(rng.integers(2**31)),
                grade=grade,
                num_objects=3 if three else 2,
                num_frames=num_frames,
                height=height,
                width=width,
                object_size=float(rng.uniform(0.08, 0.1) if three else rng.uniform(0.09, 0.13)),
                pan=float(rng.uniform(0.0, 0.3)),
                scale_change=float(rng.uniform(0.0, 0.3)),
                max_rotation=float(rng.uniform(0.0, 120.0)),
                noise_std=float(rng.uniform(0.0, 4.0)),
                camouflage=bool(rng.random() < 0.2),
            )
        )
    return specs


INDEX_FILE = "lookalikes.json"


def write_lookalikes(
    root: str | Path, specs: Sequence[LookalikeSpec], *, split: str = "val", progress: bool = True
) -> list[dict]:
    """Render ``specs`` into ``root`` in the DAVIS 2017 layout (``ImageSets/2017/<split>.txt``)
    and write ``lookalikes.json``: one record per video with its grade and measured closeness.
    Returns the records."""
    from tqdm import tqdm

    records = []

    def videos():
        for spec in tqdm(specs, desc="look-alike videos", disable=not progress):
            scene, measured = build_lookalike_scene(spec)
            frames, labels = _render(scene)
            records.append(
                {
                    "name": spec.name,
                    "grade": spec.grade,
                    "objects": spec.num_objects,
                    "min_gap_px": round(measured.gap, 2),
                    "max_overlap": round(measured.overlap, 4),
                    "closest_pair": list(measured.pair),
                    "spec": dataclasses.asdict(spec),
                }
            )
            yield spec.name, frames, labels

    write_davis_arrays(root, videos(), split=split)
    path = Path(root) / INDEX_FILE
    path.write_text(json.dumps({"grades": list(GRADES), "videos": records}, indent=1) + "\n")
    return records


def read_grades(root: str | Path) -> dict[str, str]:
    """name -> grade, from the ``lookalikes.json`` of a suite written by :func:`write_lookalikes`."""
    path = Path(root) / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: is {root} a look-alike suite (hmmnlab samples --lookalikes DIR)?"
        )
    data = json.loads(path.read_text())
    return {v["name"]: v["grade"] for v in data["videos"]}
