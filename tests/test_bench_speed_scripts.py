"""benchmarks/bench_long_video.py and bench_fast_path.py at tiny sizes: they run and print their tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args],
                          capture_output=True, text=True, env=ENV, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_long_video_tradeoff_and_resident_memory_tables():
    out = run("bench_long_video.py", "--frames", "8", "--height", "96", "--width", "128",
              "--rss-frames", "10", "--rss-height", "96", "--rss-width", "128",
              "--rss-uncapped", "6", "--threads", "1")  # fmt: skip
    assert "default J&F" in out and "cap10 s/frame" in out and "every20 J&F" in out
    assert "peak RSS MiB: default" in out
    table = out.split("peak resident memory so far against frames written")[1].splitlines()
    assert table[1].split() == ["frames", "written", "cap", "10:", "peak", "RSS", "MiB", "no",
                                "cap:", "peak", "RSS", "MiB"]  # fmt: skip
    written = [int(line.split()[0]) for line in table[2:] if line.strip()]
    assert written[-1] == 10  # every frame of the capped run was written


def test_fast_path_steps_are_all_timed():
    out = run("bench_fast_path.py", "--frames", "2", "--height", "96", "--width", "128",
              "--repeats", "1", "--threads", "1")  # fmt: skip
    rows = out.split("vs readable")[1].strip().splitlines()
    names = [row[:18].strip() for row in rows]
    assert names == ["readable", "+ gather cells", "+ label argmax", "+ fold BN",
                     "+ channels-last", "+ allocator"]  # fmt: skip
    assert all(float(row[18:28]) > 0 for row in rows)
