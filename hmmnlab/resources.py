"""Memory a video needs, estimated before any work, so that a run too big for the machine stops at once
with the estimate instead of failing after minutes in an allocation.

The dominant term is the r4 read: its affinity logits, Gaussian kernel and kernel-weighted affinity are
each B x (T*HW) x HW float32 (B objects, T memory frames, HW positions of the padded stride-16 grid),
e.g. 4.2 GB each for one object and one memory frame of a 3840 x 2160 video. The top-k guided reads add
B x HW x s^2 x k s^2 floats at r3 (s = 2) and r2 (s = 4); a dense fine read at most
``ReadConfig.dense_chunk_mib`` (it reads its queries in chunks that fit). Each fine read registers
its own cost beside it (``register_fine_read(name, memory=fn)``, :mod:`hmmnlab.registry`); one
registered without counts as nothing.
"""

from __future__ import annotations

from hmmnlab import ops
from hmmnlab.allocator import available_bytes
from hmmnlab.config import ReadConfig

# the registry, with the built-in reads registered
from hmmnlab.model.reads import FINE_READ_MEMORY

__all__ = ["available_bytes", "check_memory", "max_memory_frames", "peak_bytes"]

FLOAT_BYTES = 4
R4_COPIES = 3  # logits, kernel, kernel-weighted affinity live together in the r4 read


def max_memory_frames(num_frames: int, read: ReadConfig) -> int:
    """The most r4 memory frames any frame of a ``num_frames`` video reads (frame T-1's read: the
    kept frames 0, mem_every, ... <= T-3 and frame T-2), with the cap of ``read``."""
    if num_frames < 2:
        return 0
    kept = len(range(0, num_frames - 2, read.mem_every))
    frames = kept + 1
    return min(frames, read.max_memory_frames) if read.max_memory_frames else frames


def peak_bytes(height: int, width: int, num_objects: int, num_frames: int, read: ReadConfig) -> int:
    """An estimate of the largest working memory of one frame's read, in bytes (weights excluded)."""
    h, w = ops.padded_grid(height, width)
    hw = h * w
    frames = max_memory_frames(num_frames, read)
    r4 = R4_COPIES * num_objects * frames * hw * hw * FLOAT_BYTES
    fine = FINE_READ_MEMORY.get(read.fine)
    return r4 + (0 if fine is None else fine(num_objects, hw, frames, read))


def check_memory(
    height: int, width: int, num_objects: int, num_frames: int, read: ReadConfig, *, device,
    what: str = "the video",
) -> None:  # fmt: skip
    """Raise ValueError with the estimate when it exceeds the device's free memory."""
    need = peak_bytes(height, width, num_objects, num_frames, read)
    free = available_bytes(device)
    if free is not None and need > free:
        frames = max_memory_frames(num_frames, read)
        raise ValueError(
            f"{what} ({height} x {width}, {num_objects} object(s), up to {frames} memory frame(s)) "
            f"needs about {need / 2**30:.1f} GiB for one memory read but {device} has "
            f"{free / 2**30:.1f} GiB free; use a smaller resolution, fewer objects, "
            "--max-memory-frames, or a larger --mem-every"
        )
