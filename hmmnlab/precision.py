"""The precision a model runs in: float32 (the default, parity with the authors), float16 autocast
on CUDA (``--amp``), or bfloat16 autocast (``--dtype bfloat16``), made for CPUs with native
bfloat16 (AVX-512 BF16, AMX).

Under bfloat16 the convolutions of the encoders and the decoder run in bfloat16 (autocast), while
the memory read stays float32: the memory and query features are cast to float32 before they are
read, and the read runs with autocast off (:func:`float32_read`). The read is a small share of a
frame's work (about 2% of its FLOPs at 480p), and its affinity logits span over a hundred, where
bfloat16's 8-bit mantissa would move them by about a logit and change which memory cells win
the softmax and the top-k selection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from pathlib import Path

import torch

#: The names ``--dtype`` takes, and their torch types.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

_warned_slow = False  # the "no native bfloat16" warning is given once per process


def check_dtype(dtype: str | torch.dtype | None) -> str:
    """The name of ``dtype`` (None: float32); anything but float32 or bfloat16 is a ValueError."""
    if dtype is None:
        return "float32"
    for name, value in DTYPES.items():
        if dtype in (name, value):
            return name
    raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


def native_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether this CPU computes bfloat16 natively (``avx512_bf16`` or ``amx_bf16`` among its
    flags in /proc/cpuinfo); None where that cannot be read (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def autocast(device: torch.device, *, amp: bool = False, dtype: str | torch.dtype | None = None):
    """The autocast context of a run: none for float32; bfloat16 on the device's type; with
    ``amp``, float16 on CUDA (on the CPU ``amp`` warns and runs float32)."""
    global _warned_slow
    name = check_dtype(dtype)
    if amp and name != "float32":
        raise ValueError("--amp (float16 on CUDA) and --dtype bfloat16 exclude each other")
    if name == "bfloat16":
        if device.type == "cpu" and native_bf16() is False and not _warned_slow:
            _warned_slow = True
            warnings.warn(
                "this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag): --dtype "
                "bfloat16 will be slower than float32 here",
                stacklevel=3,
            )
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if not amp:
        return contextlib.nullcontext()
    if device.type != "cuda":
        warnings.warn("--amp only applies on CUDA; running in float32", stacklevel=3)
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.float16)


def bf16_on_cpu() -> bool:
    """Whether the code runs under bfloat16 autocast on the CPU now."""
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def as_float32(features):
    """A copy of a features dataclass (memory or query features) with every tensor in float32."""
    changes = {
        f.name: getattr(features, f.name).float()
        for f in dataclasses.fields(features)
        if isinstance(getattr(features, f.name), torch.Tensor)
    }
    return dataclasses.replace(features, **changes)


def float32_read():
    """Autocast off on the CPU: the memory read runs in the float32 of its inputs."""
    return torch.autocast("cpu", enabled=False)
