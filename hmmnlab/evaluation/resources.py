"""Memory a video needs, estimated before any work, so that a run too big for the machine stops at
once with the estimate instead of failing after minutes in an allocation.

The dominant term is the r4 read: its affinity logits, Gaussian kernel and kernel-weighted affinity
are each B x (T*HW) x HW float32 (B objects, T memory frames, HW positions of the padded stride-16
grid), e.g. 4.2 GB each for one object and one memory frame of a 3840 x 2160 video. The top-k guided
reads add B x HW x s^2 x k s^2 floats at r3 (s = 2) and r2 (s = 4); a dense fine read at most
``ReadConfig.dense_chunk_mib`` (it reads its queries in chunks that fit). Each fine read registers
its own cost beside it (``register_fine_read(name, memory=fn)``, :mod:`hmmnlab.registry`); one
registered without counts as nothing. Every object also has its memory bank (keys and values of
every scale kept) and its own pass through the memory encoder and the decoder at full resolution:
with many objects on a small grid these dominate (80 objects at 480p need several GiB though the r4
read is small).
"""

from __future__ import annotations

from hmmnlab import ops
from hmmnlab.allocator import available_bytes
from hmmnlab.config import ModelConfig, ReadConfig, preset

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


def object_activation_floats(model: ModelConfig) -> float:
    """Floats per padded pixel that each object adds to a frame's peak besides its reads: the
    memory encoder runs once per object at full resolution (stem and stride-4 features) and the
    decoder once per object (``decoder_dim`` channels at stride 4, logits at full resolution).
    Fitted with a margin of 10-40 % to the measured peak resident memory of CPU runs of the three
    presets at 240 x 432 with 2 to 32 objects (tests/test_memory_estimate.py measures one again);
    the constant raised from 64 to 80 after an Intel Xeon measured 212 MiB for the demo preset at
    96 x 160 with 24 objects against an estimate of 209 (the peak differs by a few % between
    machines and runs)."""
    return 80 + 0.6 * (model.feature_dims[2] + model.decoder_dim)


def peak_bytes(
    height: int, width: int, num_objects: int, num_frames: int, read: ReadConfig, *,
    model: ModelConfig | None = None,
) -> int:  # fmt: skip
    """An estimate of the largest working memory of one frame's read, in bytes (weights excluded):
    every per-object tensor (the r4 read, the fine read's registered cost, the memory bank's keys
    and values, the memory encoder's and decoder's activations) for ``model`` (default: the
    ``hmmn`` preset, the largest)."""
    model = model or preset("hmmn")
    h, w = ops.padded_grid(height, width)  # the r4 grid
    hw = h * w
    frames = max_memory_frames(num_frames, read)
    r4 = R4_COPIES * num_objects * frames * hw * hw * FLOAT_BYTES
    fine_frames = frames if read.guidance == "all" else min(frames, 2)
    bank_floats = (model.key_dim_r4 + model.value_dim_r4) * hw * (frames + 1)  # + the new frame
    if read.fine != "none":
        per_frame = (model.key_dim_r3 + model.value_dim_r3) * 4 * hw
        per_frame += (model.key_dim_r2 + model.value_dim_r2) * 16 * hw
        bank_floats += per_frame * (fine_frames + 1)
    activations = object_activation_floats(model) * (16 * h) * (16 * w)  # padded pixels
    # each object's pass, and the query encoder's (as large as one object's, once per frame)
    per_object = int(bank_floats * FLOAT_BYTES) * num_objects
    per_object += int(activations * FLOAT_BYTES) * (num_objects + 1)
    fine_cost = FINE_READ_MEMORY.get(read.fine)  # a fine read registered without a cost: nothing
    fine = 0 if fine_cost is None else fine_cost(num_objects, hw, frames, read)
    return r4 + fine + per_object


def check_memory(
    height: int, width: int, num_objects: int, num_frames: int, read: ReadConfig, *, device,
    what: str = "the video", model: ModelConfig | None = None,
) -> None:  # fmt: skip
    """Raise ValueError with the estimate (:func:`peak_bytes` for ``model``) when it exceeds the
    device's free memory."""
    need = peak_bytes(height, width, num_objects, num_frames, read, model=model)
    free = available_bytes(device)
    if free is not None and need > free:
        frames = max_memory_frames(num_frames, read)
        raise ValueError(
            f"{what} ({height} x {width}, {num_objects} object(s), up to {frames} memory frame(s)) "
            f"needs about {need / 2**30:.1f} GiB for one memory read but {device} has "
            f"{free / 2**30:.1f} GiB free; use a smaller resolution, fewer objects, "
            "--max-memory-frames, or a larger --mem-every"
        )
