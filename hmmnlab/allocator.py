"""Large CPU tensors without a page fault per page: keep freed memory in the process (glibc).

By default glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB) with
fresh pages from the operating system and gives them back on ``free``. A 480p HMMN step allocates
dozens of feature maps of 10-50 MiB each (B x 256 x 120 x 216 float32 is 53 MiB for 2 objects), so
every frame touches, and page-faults, hundreds of MiB of new pages. :func:`keep_freed_memory`
raises the threshold and stops the trimming, so that freed blocks are reused by the next frame.
Measured at 480 x 854 with 2 objects on 2 threads: about 11% less time per frame (PyTorch's CPU
performance guide gets the same effect by preloading jemalloc or tcmalloc).

The price: the process keeps its peak memory until it exits, and fragmentation can raise the peak a
little (a capped 1000-frame 480p run: 3.71 GiB at frame 658, 3.82 GiB from frame 746 to 899). The
inference commands (``segment``, ``trace``, ``eval``) call it; the Python API leaves the allocator
alone.

:func:`available_bytes` says how much memory a device has free (the memory estimates of
:mod:`hmmnlab.evaluation.resources` and the dense read's check compare against it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
LARGEST = 2**31 - 1  # mallopt takes an int


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep and reuse freed memory (see the module docstring). Returns False
    where that is not possible (not glibc: macOS, Windows, musl), True once it is set."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, LARGEST), (M_TRIM_THRESHOLD, LARGEST), (M_TOP_PAD, 1 << 30))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)


def available_bytes(device) -> int | None:
    """Free memory of ``device`` in bytes (CUDA: free GPU memory; CPU: MemAvailable), or None where
    it cannot be read."""
    if getattr(device, "type", str(device)).startswith("cuda"):
        import torch  # only for a CUDA device: this module imports no torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
