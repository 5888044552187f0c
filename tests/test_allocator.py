"""hmmnlab.allocator: glibc keeps freed memory for the inference commands."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# In a fresh process: allocate, touch and free a 64 MiB block 6 times; print the minor page faults
# of the last time (16384 when the block comes as fresh pages from the system, ~0 when reused).
CODE = """
import ctypes, sys
from hmmnlab.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() is True and keep_freed_memory() is True
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
faults = lambda: int(open("/proc/self/stat").read().split()[9])
n = 64 * 2**20
for _ in range(6):
    before = faults()
    p = libc.malloc(n)
    ctypes.memset(p, 1, n)
    last = faults() - before
    libc.free(p)
print(last)
"""


def last_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", CODE, mode], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_with_the_setting_a_freed_large_block_is_reused_without_page_faults():
    assert last_faults("default") > 10_000  # glibc's default: fresh pages every time
    assert last_faults("keep") < 1_000
