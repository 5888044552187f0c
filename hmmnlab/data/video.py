"""What a video to segment offers, whatever reads it: the :class:`Video` protocol.

Every dataset reader (:class:`~hmmnlab.data.davis.DavisSequence`,
:class:`~hmmnlab.data.youtube.YouTubeVideo`) and the in-memory :class:`ArrayVideo` implement it,
so one runner (:mod:`hmmnlab.evaluation.runner`) segments any of them, and ``propagate`` takes any
of them as its frames. A new dataset needs a reader whose videos have these members, and a layout
writer (:class:`hmmnlab.evaluation.runner.Layout`) for the folders its masks go to.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from hmmnlab.data.palette import VOID_LABEL


@runtime_checkable
class Video(Protocol):
    """A video to segment: its frames, the labels it starts from and the objects that enter later.

    name: unique within its dataset (the folder its masks go to). frame_names: one name per frame
    (file stems, e.g. ``"00000"``). size: (H, W). num_objects: how many objects it has in all (an
    upper bound is fine: it sizes the memory estimate). ``frame(t)``: H x W x 3 uint8 RGB.
    ``first_labels()``: H x W integer labels of frame 0 (0 background, 255 void).
    ``new_objects()``: {frame t >= 1: H x W labels of the objects first appearing at t, 0
    elsewhere}, empty when every object is in frame 0. Iterating yields the frames in order.
    """

    name: str

    @property
    def frame_names(self) -> Sequence[str]: ...
    @property
    def size(self) -> tuple[int, int]: ...
    @property
    def num_objects(self) -> int: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[np.ndarray]: ...
    def frame(self, index: int) -> np.ndarray: ...
    def first_labels(self) -> np.ndarray: ...
    def new_objects(self) -> dict[int, np.ndarray]: ...


@dataclass(frozen=True)
class ArrayVideo:
    """A :class:`Video` held in memory.

    frames: T x H x W x 3 uint8 RGB. labels: H x W labels of frame 0. entering: {frame t >= 1: H x W
    labels of the objects first appearing at t}. names: the frames' names (default ``00000``,
    ``00001``, ...)."""

    name: str
    frames: np.ndarray
    labels: np.ndarray
    entering: Mapping[int, np.ndarray] = field(default_factory=dict)
    names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        frames = np.asarray(self.frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"video {self.name!r}: frames must be T x H x W x 3 uint8, got "
                f"{frames.shape} {frames.dtype}"
            )
        if len(frames) == 0:
            raise ValueError(f"video {self.name!r} has no frames")
        for what, labels in [("frame 0", self.labels), *self.entering.items()]:
            if np.shape(labels) != frames.shape[1:3]:
                raise ValueError(
                    f"video {self.name!r}: the labels of {what} are {np.shape(labels)}, the "
                    f"frames H x W = {frames.shape[1:3]}"
                )
        if self.names is not None and len(self.names) != len(frames):
            raise ValueError(
                f"video {self.name!r}: {len(self.names)} frame names for {len(frames)} frames"
            )

    @property
    def frame_names(self) -> tuple[str, ...]:
        if self.names is not None:
            return tuple(self.names)
        return tuple(f"{t:05d}" for t in range(len(self.frames)))

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.frames.shape[1:3])

    @property
    def num_objects(self) -> int:
        ids = set(np.unique(self.labels).tolist())
        for labels in self.entering.values():
            ids |= set(np.unique(labels).tolist())
        return len(ids - {0, VOID_LABEL})

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.frames)

    def frame(self, index: int) -> np.ndarray:
        return self.frames[index]

    def first_labels(self) -> np.ndarray:
        return np.asarray(self.labels)

    def new_objects(self) -> dict[int, np.ndarray]:
        return {int(t): np.asarray(labels) for t, labels in self.entering.items()}
