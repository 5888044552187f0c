"""The tensors that flow between HMMN's stages, as plain dataclasses.

They live in their own module so that the memory bank (:mod:`hmmnlab.memory`) and the network
(:mod:`hmmnlab.model`) can both use them without importing each other. ``hmmnlab.model`` re-exports
them (``from hmmnlab.model import MemoryFeatures`` keeps working).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class MemoryFeatures:
    """One frame encoded into memory, per object (B = objects). h x w is the r4 grid."""

    k4: Tensor  # B x Ck x h x w
    v4: Tensor  # B x Cv x h x w
    k3: Tensor  # B x Ck x 2h x 2w
    v3: Tensor  # B x Cv x 2h x 2w
    k2: Tensor  # B x Ck x 4h x 4w
    v2: Tensor  # B x Cv x 4h x 4w


@dataclass
class QueryFeatures:
    """The frame to segment (batch 1: the same for every object)."""

    k4: Tensor  # 1 x Ck x h x w query key
    v4: Tensor  # 1 x Cv x h x w query value
    k3: Tensor  # 1 x Ck x 2h x 2w
    k2: Tensor  # 1 x Ck x 4h x 4w
    f3: Tensor  # 1 x C x 2h x 2w encoder features for the decoder
    f2: Tensor  # 1 x C x 4h x 4w


@dataclass
class ReadOut:
    """What the memory reads return, per object."""

    r4: Tensor  # B x Cv x h x w
    r3: Tensor  # B x Cv x 2h x 2w
    r2: Tensor  # B x Cv x 4h x 4w
    next_track: Tensor | None  # B x (T*HW) r4 memory positions followed to the query frame
