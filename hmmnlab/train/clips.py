"""Training clips: 3 frames of a video (or 3 deformations of one frame) with 1-3 objects.

The recipe is STM's (Oh et al., ICCV 2019), which HMMN follows:

* **main training** samples 3 frames of a video in temporal order, each at most ``max_skip`` frames
  after the previous one; ``max_skip`` grows during training (a curriculum, see
  :func:`skip_schedule`);
* **static-image pre-training** makes a clip of 3 random affine + elastic deformations of one annotated
  frame (:func:`deformed_clip`), so that the network learns to match before it sees real motion.

Both share the augmentation (random scale, crop, flip, colour jitter) and the choice of objects:
1..``max_objects`` objects visible in the clip's first frame, renumbered 1..K; the others become
background. Everything random draws from one ``numpy.random.Generator`` passed in, so a training run
is reproducible and resumable from the generator's state.

Sources are anything with ``len(video)``, ``video.frame(i)`` (H x W x 3 uint8 RGB) and
``video.labels(i)`` (H x W uint8): :class:`ArrayVideo` (in memory, e.g. a synthetic video) and
:class:`DavisVideo` (a lazily read :class:`~hmmnlab.data.davis.DavisSequence`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
from torch import Tensor

from hmmnlab.data.davis import VOID_LABEL, DavisDataset, DavisSequence


class Video(Protocol):
    name: str

    def __len__(self) -> int: ...
    def frame(self, index: int) -> np.ndarray: ...  # H x W x 3 uint8 RGB
    def labels(self, index: int) -> np.ndarray: ...  # H x W uint8, 0 background, k object k


@dataclass
class ArrayVideo:
    """A video held in memory: frames T x H x W x 3 uint8, labels T x H x W uint8."""

    name: str
    frames: np.ndarray
    label_maps: np.ndarray

    def __post_init__(self) -> None:
        if self.frames.shape[:3] != self.label_maps.shape:
            raise ValueError(
                f"video {self.name!r}: frames {self.frames.shape} and labels "
                f"{self.label_maps.shape} differ in T x H x W"
            )

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, index: int) -> np.ndarray:
        return self.frames[index]

    def labels(self, index: int) -> np.ndarray:
        return self.label_maps[index]


@dataclass
class DavisVideo:
    """A DAVIS sequence read lazily (every frame must have an annotation)."""

    sequence: DavisSequence

    def __post_init__(self) -> None:
        if len(self.sequence.mask_paths) != len(self.sequence):
            raise ValueError(
                f"sequence {self.sequence.name!r}: training needs an annotation for every frame, "
                f"found {len(self.sequence.mask_paths)} for {len(self.sequence)} frames"
            )

    @property
    def name(self) -> str:
        return self.sequence.name

    def __len__(self) -> int:
        return len(self.sequence)

    def frame(self, index: int) -> np.ndarray:
        return self.sequence.frame(index)

    def labels(self, index: int) -> np.ndarray:
        labels = self.sequence.mask(index)
        return np.where(labels == VOID_LABEL, 0, labels).astype(np.uint8)


def open_davis(root: str | Path, *, split: str = "train") -> list[DavisVideo]:
    """The sequences of a DAVIS-layout folder, guessing the year (2017 if ``ImageSets/2017`` holds
    the split, else 2016) and the resolution (the only folder under ``JPEGImages``, or ``480p``)."""
    root = Path(root)
    year = 2017 if (root / "ImageSets" / "2017" / f"{split}.txt").is_file() else 2016
    resolutions = sorted(p.name for p in (root / "JPEGImages").glob("*") if p.is_dir())
    if len(resolutions) == 1:
        resolution = resolutions[0]
    elif "480p" in resolutions:
        resolution = "480p"
    else:
        raise ValueError(
            f"{root}: cannot tell which resolution to read; JPEGImages holds {resolutions}"
        )
    dataset = DavisDataset(root, year=year, split=split, resolution=resolution)
    return [DavisVideo(dataset[name]) for name in dataset.sequences]


@dataclass(frozen=True)
class ClipConfig:
    """How clips are sampled and augmented."""

    crop_size: int = 192  # square crop side in pixels (a multiple of 16)
    num_frames: int = 3  # frames per clip (frame 0 is given, the others are predicted)
    max_objects: int = 3  # objects per clip: 1..max_objects of those visible in frame 0
    min_object_pixels: int = 100  # an object must cover this many pixels of frame 0's crop
    scale_range: tuple[float, float] = (0.8, 1.25)  # random resize of the video before cropping
    flip: bool = True  # random horizontal flip (the same for the whole clip)
    jitter: float = 0.2  # colour jitter strength (brightness, contrast, saturation; hue / 4)
    affine_degrees: float = 20.0  # static clips: rotation range (+-)
    affine_shear: float = 10.0  # static clips: shear range in degrees (+-)
    affine_scale: tuple[float, float] = (0.9, 1.1)  # static clips: scale range
    elastic_alpha: float = 8.0  # static clips: elastic displacement amplitude in pixels (0: off)
    shift: float = 0.0  # largest shift of the clip's content, as a fraction of crop_size
    shift_prob: float = 0.0  # share of clips whose content is shifted (zero fill, as padding)
    lookalike_prob: float = 0.0  # share of clips given an identical copy of one object (paste)

    def __post_init__(self) -> None:
        if self.crop_size < 32 or self.crop_size % 16:
            raise ValueError(f"crop_size must be a multiple of 16 >= 32, got {self.crop_size}")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.num_frames}")
        if self.max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {self.max_objects}")
        if not 0 <= self.lookalike_prob <= 1:
            raise ValueError(f"lookalike_prob must lie in [0, 1], got {self.lookalike_prob}")
        if not (0 <= self.shift < 1 and 0 <= self.shift_prob <= 1):
            raise ValueError(
                f"shift must lie in [0, 1) and shift_prob in [0, 1], got {self.shift}, "
                f"{self.shift_prob}"
            )


@dataclass
class Clip:
    """A training clip. frames: N x 3 x S x S float32 in [0, 1]; labels: N x S x S int64 in 0..K."""

    frames: Tensor
    labels: Tensor
    num_objects: int
    source: str  # "<video>:<frame indices>" or "<video>:<frame>:static"


def skip_schedule(step: int, *, start: int, end: int, ramp_steps: int) -> int:
    """STM's curriculum: the maximum frame skip grows linearly from ``start`` to ``end`` over
    ``ramp_steps`` steps, then stays at ``end``."""
    if ramp_steps <= 0:
        return end
    return int(round(start + (end - start) * min(step / ramp_steps, 1.0)))


def sample_indices(
    length: int, max_skip: int, num_frames: int, rng: np.random.Generator
) -> list[int]:
    """Increasing frame indices, each 1..max_skip+1 frames after the previous one (shrunk to fit
    a short video)."""
    if length < num_frames:
        raise ValueError(f"a clip of {num_frames} frames needs a video of at least that many")
    gaps = rng.integers(1, max_skip + 2, size=num_frames - 1)
    while gaps.sum() > length - 1:  # too long for this video: shrink the largest gap
        gaps[int(np.argmax(gaps))] -= 1
    start = int(rng.integers(0, length - int(gaps.sum())))
    return [start, *(start + int(g) for g in np.cumsum(gaps))]


# --------------------------------------------------------------------------------------------------
# Geometry


def _resize(image: np.ndarray, labels: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    if abs(scale - 1.0) < 1e-3:
        return image, labels
    h, w = labels.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # (W, H) for OpenCV
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    return image, labels


def _pad_to(image: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad (bottom/right) so that both sides are at least ``size``."""
    h, w = labels.shape
    dh, dw = max(0, size - h), max(0, size - w)
    if dh or dw:
        image = np.pad(image, ((0, dh), (0, dw), (0, 0)))
        labels = np.pad(labels, ((0, dh), (0, dw)))
    return image, labels


def _choose_crop(
    first_labels: np.ndarray, size: int, min_pixels: int, rng: np.random.Generator, tries: int = 20
) -> tuple[int, int]:
    """Top-left corner of a crop of frame 0 that shows at least one object well (falls back to a
    crop centred on an object pixel, then to any crop)."""
    h, w = first_labels.shape
    for _ in range(tries):
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        crop = first_labels[y : y + size, x : x + size]
        counts = np.bincount(crop.ravel(), minlength=2)[1:]
        if (counts >= min_pixels).any():
            return y, x
    ys, xs = np.nonzero(first_labels)
    if len(ys):
        i = int(rng.integers(len(ys)))
        y = int(np.clip(ys[i] - size // 2, 0, h - size))
        x = int(np.clip(xs[i] - size // 2, 0, w - size))
        return y, x
    return int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))


def shift_content(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move ``image`` (H x W [x C]) by (dy, dx) pixels inside its canvas, filling with zeros:
    the black band that inference's padding adds, here on random sides and of random width, so
    that the canvas edge tells the network nothing about where things are."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = image[ys, xs]
    return out


def random_affine(
    height: int, width: int, config: ClipConfig, rng: np.random.Generator
) -> np.ndarray:
    """A 2 x 3 affine matrix: rotation, shear, scale about the centre and a small translation."""
    angle = math.radians(rng.uniform(-config.affine_degrees, config.affine_degrees))
    shear = math.radians(rng.uniform(-config.affine_shear, config.affine_shear))
    scale = rng.uniform(*config.affine_scale)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    linear = scale * rotation @ np.array([[1.0, math.tan(shear)], [0.0, 1.0]])
    centre = np.array([width / 2, height / 2])
    shift = rng.uniform(-0.1, 0.1, size=2) * np.array([width, height])
    offset = centre + shift - linear @ centre
    return np.concatenate([linear, offset[:, None]], axis=1).astype(np.float32)


def elastic_maps(
    height: int, width: int, alpha: float, rng: np.random.Generator, cell: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps for a smooth random displacement of about ``alpha`` pixels (a coarse random
    grid every ``cell`` pixels, upsampled bicubically)."""
    gh, gw = height // cell + 2, width // cell + 2
    dx = cv2.resize(
        rng.uniform(-1, 1, (gh, gw)).astype(np.float32),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    dy = cv2.resize(
        rng.uniform(-1, 1, (gh, gw)).astype(np.float32),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs + alpha * dx, ys + alpha * dy


def deform(
    image: np.ndarray, labels: np.ndarray, config: ClipConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random affine + elastic deformation of a frame and its labels (nearest for labels)."""
    h, w = labels.shape
    matrix = random_affine(h, w, config, rng)
    image = cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    labels = cv2.warpAffine(
        labels,
        matrix,
        (w, h),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    if config.elastic_alpha > 0:
        map_x, map_y = elastic_maps(h, w, config.elastic_alpha, rng)
        image = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        labels = cv2.remap(labels, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    return image, labels


# --------------------------------------------------------------------------------------------------
# Colour


def colour_jitter(frame: Tensor, strength: float, rng: np.random.Generator) -> Tensor:
    """Random brightness, contrast, saturation and hue shift of a 3 x H x W frame in [0, 1]."""
    if strength <= 0:
        return frame
    b, c, s = (1 + rng.uniform(-strength, strength, size=3)).tolist()
    hue = float(rng.uniform(-strength / 4, strength / 4))
    frame = frame * b
    mean = frame.mean()
    frame = (frame - mean) * c + mean
    grey = (0.299 * frame[0] + 0.587 * frame[1] + 0.114 * frame[2]).unsqueeze(0)
    frame = (frame - grey) * s + grey
    if hue:  # rotate the chroma around the grey axis (YIQ)
        yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        angle = 2 * math.pi * hue
        rot = torch.tensor(
            [
                [1, 0, 0],
                [0, math.cos(angle), -math.sin(angle)],
                [0, math.sin(angle), math.cos(angle)],
            ]
        )
        matrix = torch.linalg.inv(yiq) @ rot @ yiq
        frame = torch.einsum("ij,jhw->ihw", matrix.to(frame.dtype), frame)
    return frame.clamp(0, 1)


# --------------------------------------------------------------------------------------------------
# Objects


def pick_objects(
    first_labels: np.ndarray,
    config: ClipConfig,
    rng: np.random.Generator,
    required: Sequence[int] = (),
) -> list[int]:
    """1..max_objects labels visible in frame 0 (at least ``min_object_pixels``), in random order,
    the ``required`` ones first; empty if none is visible."""
    counts = np.bincount(first_labels.ravel(), minlength=2)
    visible = [k for k in range(1, len(counts)) if counts[k] >= config.min_object_pixels]
    if required:
        others = [k for k in visible if k not in required]
        n = int(rng.integers(0, max(config.max_objects - len(required), 0) + 1))
        n = min(n, len(others))
        return [*required, *(int(k) for k in rng.choice(others, size=n, replace=False))]
    if not visible:
        return []
    n = int(rng.integers(1, min(config.max_objects, len(visible)) + 1))
    return [int(k) for k in rng.choice(visible, size=n, replace=False)]


def paste_lookalike(
    frames: list[np.ndarray],
    labels: list[np.ndarray],
    config: ClipConfig,
    rng: np.random.Generator,
    tries: int = 20,
) -> tuple[list[np.ndarray], list[np.ndarray], list[int]] | None:
    """Paste an identical copy of one object into every frame of a cropped clip: copy-paste
    look-alikes, so that appearance alone cannot tell the object from its copy.

    The copy is the object's own pixels of each frame, moved by an offset that starts clear of the
    object and drifts by a random velocity, drawn in front. Half of the time it is a second target
    (a new label), else an unlabelled distractor (background). Returns (frames, labels, the labels
    that must be picked: the object, and the copy when it is a target), or None when no object
    fits twice into the crop."""
    first = labels[0]
    counts = np.bincount(first.ravel(), minlength=2)
    visible = [k for k in range(1, len(counts)) if counts[k] >= config.min_object_pixels]
    if not visible or len(counts) >= 255:
        return None
    k = int(rng.choice(visible))
    ys, xs = np.nonzero(first == k)
    size = first.shape[0]
    box_h, box_w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
    for _ in range(tries):
        dy, dx = (int(v) for v in rng.integers(-size + 1, size, size=2))
        y0, x0 = int(ys.min()) + dy, int(xs.min()) + dx
        inside = 0 <= y0 and y0 + box_h <= size and 0 <= x0 and x0 + box_w <= size
        clear = abs(dy) >= box_h or abs(dx) >= box_w  # the boxes do not overlap in frame 0
        if inside and clear:
            break
    else:
        return None
    velocity = rng.uniform(-1, 1, size=2) * 0.02 * size  # pixels per frame
    target = rng.random() < 0.5
    copy_label = int(len(counts)) if target else 0  # a label no object has
    out_frames, out_labels = [], []
    for t, (frame, label) in enumerate(zip(frames, labels, strict=True)):
        sy, sx = int(round(dy + velocity[0] * t)), int(round(dx + velocity[1] * t))
        moved = shift_content(label == k, sy, sx)  # where the copy lies in frame t
        frame, label = frame.copy(), label.copy()
        frame[moved] = shift_content(frame, sy, sx)[moved]
        label[moved] = copy_label
        out_frames.append(frame)
        out_labels.append(label)
    return out_frames, out_labels, [k, copy_label] if target else [k]


def renumber(labels: np.ndarray, objects: list[int]) -> np.ndarray:
    """Label maps with ``objects[i]`` -> i + 1 and every other label -> 0 (int64)."""
    lut = np.zeros(256, dtype=np.int64)
    for new, old in enumerate(objects, start=1):
        lut[old] = new
    return lut[labels]


def _finish(
    images: list[np.ndarray],
    labels: list[np.ndarray],
    config: ClipConfig,
    rng: np.random.Generator,
    source: str,
) -> Clip | None:
    """Scale, crop, flip (the same for every frame), pick objects, colour-jitter, to tensors."""
    scale = float(rng.uniform(*config.scale_range))
    size = config.crop_size
    pairs = [_pad_to(*_resize(im, lb, scale), size) for im, lb in zip(images, labels, strict=True)]
    y, x = _choose_crop(pairs[0][1], size, config.min_object_pixels, rng)
    flip = config.flip and rng.random() < 0.5
    frames_np, labels_np = [], []
    for image, label in pairs:
        image, label = image[y : y + size, x : x + size], label[y : y + size, x : x + size]
        if flip:
            image, label = image[:, ::-1], label[:, ::-1]
        frames_np.append(np.ascontiguousarray(image))
        labels_np.append(np.ascontiguousarray(label))
    if config.shift > 0 and rng.random() < config.shift_prob:
        dy, dx = (rng.integers(-1, 2, size=2) * rng.uniform(0, config.shift, size=2) * size).astype(
            int
        )
        frames_np = [shift_content(f, int(dy), int(dx)) for f in frames_np]
        labels_np = [shift_content(lb, int(dy), int(dx)) for lb in labels_np]
    required: list[int] = []
    if config.lookalike_prob > 0 and rng.random() < config.lookalike_prob:
        pasted = paste_lookalike(frames_np, labels_np, config, rng)
        if pasted is not None:
            frames_np, labels_np, required = pasted
            source += ":lookalike"
    objects = pick_objects(labels_np[0], config, rng, required)
    if not objects:
        return None
    frames = (
        torch.from_numpy(np.stack(frames_np)).permute(0, 3, 1, 2).float() / 255
    )  # N x 3 x S x S
    frames = torch.stack([colour_jitter(f, config.jitter, rng) for f in frames])
    target = torch.from_numpy(renumber(np.stack(labels_np), objects))  # N x S x S
    return Clip(frames, target, len(objects), source)


def video_clip(
    video: Video, max_skip: int, config: ClipConfig, rng: np.random.Generator
) -> Clip | None:
    """A clip of ``config.num_frames`` frames of ``video`` in temporal order (None if no object
    is visible enough in the first frame's crop: draw again)."""
    indices = sample_indices(len(video), max_skip, config.num_frames, rng)
    images = [video.frame(i) for i in indices]
    labels = [video.labels(i) for i in indices]
    source = f"{video.name}:{','.join(map(str, indices))}"
    return _finish(images, labels, config, rng, source)


def deformed_clip(video: Video, config: ClipConfig, rng: np.random.Generator) -> Clip | None:
    """Static-image pre-training: ``config.num_frames`` random deformations of one annotated frame
    (the first is left undeformed) (None if no object is visible enough: draw again)."""
    index = int(rng.integers(len(video)))
    image, labels = video.frame(index), video.labels(index)
    images, label_maps = [image], [labels]
    for _ in range(config.num_frames - 1):
        im, lb = deform(image, labels, config, rng)
        images.append(im)
        label_maps.append(lb)
    return _finish(images, label_maps, config, rng, f"{video.name}:{index}:static")


def sample_clip(
    videos: list[Video],
    *,
    static: bool,
    max_skip: int,
    config: ClipConfig,
    rng: np.random.Generator,
    max_tries: int = 50,
) -> Clip:
    """Draw a video uniformly and make a video clip (or a static one), retrying when the crop
    shows no object."""
    for _ in range(max_tries):
        video = videos[int(rng.integers(len(videos)))]
        clip = (
            deformed_clip(video, config, rng)
            if static
            else video_clip(video, max_skip, config, rng)
        )
        if clip is not None:
            return clip
    raise RuntimeError(
        f"no clip with a visible object in {max_tries} draws: are the masks empty, or "
        f"min_object_pixels={config.min_object_pixels} too large for crop_size={config.crop_size}?"
    )
