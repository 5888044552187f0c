"""The memory bank: everything HMMN remembers about one video while it segments it.

The network modules keep no per-video state; the inference loop owns a :class:`MemoryBank` and passes
it to every read. The schedule is the authors' (``HMMN_SPEC.md`` section 4): at frame t the r4 memory
holds the kept frames (0, mem_every, 2 mem_every, ... <= t-2) then frame t-1; r3 and r2 hold frame 0
and frame t-1.

A bank may start at a later frame s (``start``): objects that enter a video at frame s (YouTube-VOS)
get a bank of their own whose schedule is the same counted from s (kept frames s, s + mem_every,
...; r3 and r2 hold frame s and frame t-1), as if their video began at frame s.

:class:`VideoMemory` is the memory of a whole video: its *object groups* (the objects that entered
at one frame), each with its own bank. A video whose objects all come at frame 0 has one group, one
bank: the authors' case.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import Tensor

from hmmnlab.config import ReadConfig
from hmmnlab.features import MemoryFeatures


@dataclass
class MemoryBank:
    """Keys, values and kernel track of one video.

    ``frame_ids`` are the frames kept in the r4 memory (oldest first), ``keys_r4`` / ``values_r4``
    their keys B x Ck x T x h x w and values B x Cv x T x h x w. ``first`` is the bank's first frame
    (``start``, frame 0 unless its objects entered later) at every scale (the r3/r2 memory always
    holds it; with ``keep_fine`` it holds every kept frame, listed in ``kept_fine``). ``last`` is the
    newest frame (t-1), read at every step and kept afterwards only if ``last_id - start`` is a
    multiple of ``mem_every``. ``track`` (B x (T*HW) int64)
    maps every position of the kept r4 frames to its tracked position in frame t-1, for the temporal
    propagation of the Gaussian kernels.
    """

    mem_every: int = 5
    max_frames: int | None = None
    keep_fine: bool = False  # keep r3/r2 of every kept frame (for top-k guided by all frames)
    start: int = 0  # the bank's first frame: its schedule counts from here
    frame_ids: list[int] = field(default_factory=list)
    keys_r4: Tensor | None = None
    values_r4: Tensor | None = None
    first: MemoryFeatures | None = None
    last: MemoryFeatures | None = None
    last_id: int | None = None
    track: Tensor | None = None
    kept_fine: list[MemoryFeatures] = field(default_factory=list)

    def snapshot(self) -> MemoryBank:
        """A copy of the bank as it is now, which later steps do not change (cheap: the tensors are
        shared, and the bank never changes a tensor in place, it replaces it)."""
        return dataclasses.replace(
            self, frame_ids=list(self.frame_ids), kept_fine=list(self.kept_fine)
        )

    def add(self, frame_id: int, features: MemoryFeatures) -> None:
        """Make ``features`` (frame ``frame_id``) the newest memory frame (frame t-1)."""
        if self.last is not None:
            raise RuntimeError(f"frame {self.last_id} is still pending; call finish_step() first")
        if self.first is None:
            if frame_id != self.start:
                raise RuntimeError(
                    f"a memory bank starting at frame {self.start} must be given frame "
                    f"{self.start} first, got frame {frame_id}"
                )
            self.first = features
        self.last, self.last_id = features, frame_id

    @property
    def r4_frame_ids(self) -> list[int]:
        """Frames of the r4 memory read at this step, oldest first (the newest is frame t-1)."""
        return self.frame_ids + ([self.last_id] if self.last is not None else [])

    def r4(self) -> tuple[Tensor, Tensor]:
        """r4 memory keys B x Ck x T x h x w and values B x Cv x T x h x w (kept frames, then t-1)."""
        last_k, last_v = self.last.k4.unsqueeze(2), self.last.v4.unsqueeze(2)
        if self.keys_r4 is None:
            return last_k, last_v
        return torch.cat([self.keys_r4, last_k], dim=2), torch.cat([self.values_r4, last_v], dim=2)

    def fine(self, scale: str) -> tuple[Tensor, Tensor]:
        """r3 or r2 memory: keys and values B x C x T' x H x W of the first frame (frame 0, or
        ``start``) and frame t-1 (T' = 2), or of the first frame alone at the first step; with
        ``keep_fine``, of every kept frame and frame t-1."""
        key, value = {"r3": ("k3", "v3"), "r2": ("k2", "v2")}[scale]
        if self.last_id == self.start:
            frames = [self.last]
        elif self.keep_fine:
            frames = [*self.kept_fine, self.last]
        else:
            frames = [self.first, self.last]
        keys = torch.stack([getattr(f, key) for f in frames], dim=2)
        values = torch.stack([getattr(f, value) for f in frames], dim=2)
        return keys, values

    def finish_step(self, next_track: Tensor | None) -> None:
        """After the read of frame t: keep frame t-1 if it is on the schedule, drop it otherwise, and
        keep the track of the frames that stay. next_track: B x (T*HW), every position of the r4
        memory just read followed to frame t (which becomes the next step's frame t-1), or None
        when the read's kernel carries nothing over time."""
        hw = self.last.k4.shape[-2] * self.last.k4.shape[-1]
        if (self.last_id - self.start) % self.mem_every == 0:
            self.frame_ids.append(self.last_id)
            self.keys_r4, self.values_r4 = self.r4()
            if self.keep_fine:
                self.kept_fine.append(self.last)
            self.track = next_track
            if self.max_frames is not None and len(self.frame_ids) >= self.max_frames:
                self._drop(1, hw)  # the oldest frame but the first; t-1 still needs a place
        else:
            self.track = None if next_track is None else next_track[:, :-hw]
        self.last, self.last_id = None, None

    def _drop(self, index: int, hw: int) -> None:
        """Forget kept frame number ``index`` (its keys, values and track entries)."""
        keep = [i for i in range(len(self.frame_ids)) if i != index]
        self.frame_ids = [self.frame_ids[i] for i in keep]
        self.keys_r4 = self.keys_r4[:, :, keep]
        self.values_r4 = self.values_r4[:, :, keep]
        if self.keep_fine:
            del self.kept_fine[index]
        if self.track is not None:
            self.track = torch.cat(
                [self.track[:, : index * hw], self.track[:, (index + 1) * hw :]], 1
            )


@dataclass
class VideoMemory:
    """The memory of a video as object groups: one :class:`MemoryBank` per group of objects that
    entered at one frame, starting at that frame. The groups' object rows follow one another in
    group order (group 0's rows first): ``sizes[g]`` rows for group g, read from ``banks[g]``.

    :func:`hmmnlab.step.segment_step` encodes frame t-1 once for every row and gives each group's
    rows to its bank; each group reads its own bank."""

    mem_every: int = 5
    max_frames: int | None = None
    keep_fine: bool = False
    banks: list[MemoryBank] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    @classmethod
    def for_read(cls, read: ReadConfig) -> VideoMemory:
        """An empty memory with the schedule of ``read`` (add groups with :meth:`add_group`)."""
        return cls(
            mem_every=read.mem_every,
            max_frames=read.max_memory_frames,
            keep_fine=read.guidance == "all",
        )

    def add_group(self, start: int, size: int) -> MemoryBank:
        """A new group of ``size`` objects entering at frame ``start``; its rows come after every
        earlier group's. Returns its (empty) bank, which gets frame ``start`` first."""
        if size < 1:
            raise ValueError(f"an object group has at least one object, got {size}")
        bank = MemoryBank(
            mem_every=self.mem_every, max_frames=self.max_frames, keep_fine=self.keep_fine,
            start=start,
        )  # fmt: skip
        self.banks.append(bank)
        self.sizes.append(size)
        return bank

    @property
    def starts(self) -> list[int]:
        """The first frame of each group."""
        return [bank.start for bank in self.banks]

    @property
    def num_objects(self) -> int:
        return sum(self.sizes)

    def rows(self, group: int) -> slice:
        """The object rows of group ``group``."""
        first = sum(self.sizes[:group])
        return slice(first, first + self.sizes[group])
