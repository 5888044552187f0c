"""The precision a model runs in: float32 (the default, parity with the authors), float16 autocast
on CUDA (``--amp``), or bfloat16 autocast (``--dtype bfloat16``), made for CPUs with native
bfloat16 (AVX-512 BF16, AMX).

Under bfloat16 the convolutions of the encoders and the decoder run in bfloat16 (autocast), while
the memory read stays float32: the memory and query features are cast to float32 before they are
read, and the read runs with autocast off (:func:`float32_read`). The read is a small share of a
frame's work (about 2% of its FLOPs at 480p), and its affinity logits span over a hundred, where
bfloat16's 8-bit mantissa would move them by about a logit and change which memory cells win
the softmax and the top-k selection.

A run that names no dtype (``propagate(..., dtype=None)``, a command without ``--dtype``, and so
every notebook) uses the process-wide default: float32, unless ``$HMMNLAB_DTYPE`` says otherwise
(read once, on first use) or :func:`set_default_dtype` / the :func:`default_dtype` context set it.
A dtype given explicitly always wins, so ``dtype="float32"`` stays float32 whatever the default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from pathlib import Path

import torch

#: The names ``--dtype`` takes, and their torch types.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

#: The environment variable that sets the process-wide default dtype (read once).
ENV_VAR = "HMMNLAB_DTYPE"

_warned_slow = False  # the "no native bfloat16" warning is given once per process
_default: str | None = None  # the process-wide default dtype; None: $HMMNLAB_DTYPE not read yet


def check_dtype(dtype: str | torch.dtype | None) -> str:
    """The name of ``dtype`` (None: float32); anything but float32 or bfloat16 is a ValueError."""
    if dtype is None:
        return "float32"
    for name, value in DTYPES.items():
        if dtype in (name, value):
            return name
    raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


def get_default_dtype() -> str:
    """The dtype of runs that name none: what :func:`set_default_dtype` set, else
    ``$HMMNLAB_DTYPE`` (read on the first call), else float32."""
    global _default
    if _default is None:
        value = os.environ.get(ENV_VAR, "").strip()
        if value and value not in DTYPES:
            raise ValueError(f"${ENV_VAR} must be one of {', '.join(DTYPES)}, got {value!r}")
        _default = value or "float32"
    return _default


def set_default_dtype(dtype: str | torch.dtype) -> str:
    """Make ``dtype`` (``"float32"`` or ``"bfloat16"``) the default of every run that names none
    in this process, e.g. one line at the top of a notebook; returns the previous default."""
    global _default
    previous = get_default_dtype()
    _default = check_dtype(dtype)
    return previous


@contextlib.contextmanager
def default_dtype(dtype: str | torch.dtype):
    """``with default_dtype("bfloat16"):`` runs that name no dtype run in bfloat16 inside."""
    previous = set_default_dtype(dtype)
    try:
        yield
    finally:
        set_default_dtype(previous)


def resolve_dtype(dtype: str | torch.dtype | None) -> str:
    """The name of the dtype a run uses: ``dtype`` when given, else the process-wide default."""
    return get_default_dtype() if dtype is None else check_dtype(dtype)


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """``with torch_threads(n):`` runs the block on ``n`` torch threads (None: as it is), then
    gives the process back the thread count it had."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_model() -> str:
    """This CPU's model name (from /proc/cpuinfo, as lscpu prints it), or the machine type where
    it cannot be read (not Linux): what a timing names its machine by."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


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
    """The autocast context of a run: none for float32 (on CUDA :class:`ExactFloat32`: no TF32);
    bfloat16 on the device's type; with ``amp``, float16 on CUDA (on the CPU ``amp`` warns and
    runs float32). ``dtype`` None: the
    process-wide default (:func:`get_default_dtype`), except with ``amp``, which asks for float16."""
    global _warned_slow
    name = check_dtype(dtype) if amp else resolve_dtype(dtype)
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
        return ExactFloat32() if device.type == "cuda" else contextlib.nullcontext()
    if device.type != "cuda":
        warnings.warn("--amp only applies on CUDA; running in float32", stacklevel=3)
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.float16)


class ExactFloat32:
    """float32 on CUDA that is float32: cuDNN convolutions and CUDA matrix products without TF32
    while the block runs, the flags restored after it (re-enterable: a run enters it every frame).

    PyTorch runs CUDA convolutions in TF32 by default; on an H200 that put hmmnlab's probabilities
    0.13 away from the authors' fixture, against 2.4e-6 with TF32 off (``benchmarks/gpu_check.py``,
    docs/speed.md). ``--amp`` and ``--dtype bfloat16`` are the fast modes."""

    def __enter__(self) -> None:
        self._saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc) -> bool:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self._saved
        return False


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
