"""What a synthetic video is: :class:`VideoSpec` (its settings; the same spec always gives the
same video) and the :class:`Scene` drawn from it (background, camera path, objects with their
looks, paths and depths)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hmmnlab.data.synthetic.textures import Shape

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
