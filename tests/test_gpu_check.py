"""benchmarks/gpu_check.py on the CPU: without CUDA its CUDA parts are recorded as skipped and the
CPU parity is computed; with ``--device cpu`` every part runs (tiny sizes), so the script that waits
for a GPU is known to work before it gets one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
CUDA_PARTS = ("cuda_fp32_parity", "amp_jf", "speed_480p", "train_step", "memory_1000_frames")


def run_check(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--quick", *args],
                          capture_output=True, text=True, env=env, cwd=REPO)  # fmt: skip


def test_without_cuda_the_cuda_parts_are_skipped_and_the_cpu_parity_is_written(tmp_path):
    out = tmp_path / "result.json"
    done = run_check(out)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["environment"]["cuda_available"] is False and result["quick"] is True
    parts = result["parts"]
    for name in CUDA_PARTS:
        assert parts[name]["status"] == "skipped: no CUDA", name
    assert parts["recipe_weights"]["status"] == "ok"
    parity = parts["cpu_parity"]
    assert parity["status"] == "ok" and parity["passed"] and parity["labels_equal"]
    assert parity["max_abs_diff_vs_authors"] < 1e-4 and parity["frames"] == 12
    assert result["failed_parts"] == [] and result["checks_not_passed"] == []


def test_every_part_runs_on_the_cpu_device(tmp_path):
    out = tmp_path / "result.json"
    done = run_check(out, "--device", "cpu")
    parts = json.loads(out.read_text())["parts"]
    assert all(part["status"] == "ok" for part in parts.values()), done.stdout + done.stderr
    assert parts["cuda_fp32_parity"]["passed"]  # the CPU against itself and the fixture
    amp = parts["amp_jf"]
    assert 0 <= amp["float32"]["J&F"] <= 1
    assert amp["bfloat16"]["abs_diff_vs_float32"] >= 0
    for precision in ("float32", "bfloat16"):
        assert parts["speed_480p"][precision]["seconds_per_frame"] > 0
    for part in (amp, parts["speed_480p"]):  # float16 autocast is CUDA's: not timed on a CPU
        assert part["float16"]["skipped"].startswith("float16 autocast is for CUDA"), part
    assert parts["train_step"]["float32"]["finite"]
    memory = parts["memory_1000_frames"]
    for run in (memory["uncapped"], memory["max_memory_frames=2"]):
        assert run["complete"] and run["peak_memory_mib"] > 0 and run["estimated_read_mib"] > 0
    assert (
        memory["max_memory_frames=2"]["estimated_read_mib"]
        < memory["uncapped"]["estimated_read_mib"]
    )
