"""benchmarks/bench_vs_authors.py: hmmnlab's child alone (runs anywhere), the refusal of a missing
checkout, and the whole side-by-side run where the authors' code is at hand (HMMN_AUTHORS_REPO or
../authors-hmmn; skipped elsewhere)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_vs_authors.py"
AUTHORS = Path(os.environ.get("HMMN_AUTHORS_REPO") or REPO.parent / "authors-hmmn")
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_vs_authors", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=ENV, cwd=REPO)  # fmt: skip


@pytest.mark.parametrize("child", ["hmmnlab", "hmmnlab-readable", "hmmnlab-bfloat16"])
def test_the_hmmnlab_child_reports_its_timings_memory_and_probabilities(
    child, recipe_weights_file, tmp_path
):
    video = tmp_path / "video.npz"
    bench_module().make_video(video, frames=3, height=96, width=128, objects=2)
    probs = tmp_path / "probs.npy"
    done = run("--child", child, "--video", str(video), "--weights-file",
               str(recipe_weights_file), "--probs", str(probs), "--threads", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["implementation"] == child and report["threads"] == 1
    assert (report["frames"], report["timed_frames"]) == (3, 2)  # frame 1 warms up
    for phase in ("memorize_s", "segment_s", "total_s"):
        assert report[phase] > 0
    assert report["total_s"] == pytest.approx(report["memorize_s"] + report["segment_s"])
    assert report["peak_rss_mib"] > 100  # ResNet-50 weights alone are ~100 MiB
    saved = np.load(report["probs"])
    assert saved.shape == (3, 3, 96, 128)  # frames 1..3 x (background + 2 objects) x H x W
    np.testing.assert_allclose(saved.sum(axis=1), 1, atol=1e-5)


def test_the_bfloat16_run_gets_its_row_and_ratios():
    def report(total):
        return {"memorize_s": total / 4, "segment_s": 3 * total / 4, "total_s": total,
                "peak_rss_mib": 1000.0}  # fmt: skip

    runs = {"authors": [report(8.0)], "hmmnlab": [report(4.0)],
            "hmmnlab-readable": [report(5.0)]}  # fmt: skip
    module = bench_module()
    table, figures = module.summary_table(runs)
    assert "bfloat16" not in table and "ratios_bfloat16" not in figures
    table, figures = module.summary_table({**runs, "hmmnlab-bfloat16": [report(2.0)]})
    assert figures["ratios_bfloat16"]["total"] == pytest.approx(4.0)  # authors / bfloat16
    assert figures["ratios_hmmnlab_bfloat16"]["segment"] == pytest.approx(2.0)
    assert "authors/bfloat16" in table and "hmmnlab/bfloat16" in table


def test_a_missing_or_wrong_authors_checkout_is_refused_clearly(tmp_path):
    done = run("--authors-repo", str(tmp_path / "nowhere"))
    assert done.returncode != 0 and "is not a folder" in done.stderr
    assert "github.com/Hongje/HMMN" in done.stderr
    done = run("--authors-repo", str(tmp_path))
    assert done.returncode != 0 and "has no model.py or helpers.py" in done.stderr


@pytest.mark.skipif(
    not (AUTHORS / "model.py").is_file(),
    reason=f"the authors' code is not at {AUTHORS} (set HMMN_AUTHORS_REPO to a checkout)",
)
def test_side_by_side_with_the_authors_code_at_a_tiny_size(tmp_path):
    summary = tmp_path / "summary.json"
    done = run("--authors-repo", str(AUTHORS), "--frames", "2", "--height", "96", "--width",
               "128", "--threads", "1", "--repeats", "1", "--json", str(summary))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "authors/hmmnlab" in done.stdout and "max |authors - hmmnlab-readable|" in done.stdout
    figures = json.loads(summary.read_text())
    for pair, difference in figures["max_abs_prob_difference"].items():
        assert difference < 1e-4, pair  # the same model, readable and fast paths: parity
    assert set(figures["ratios"]) == {"memorize", "segment", "total", "peak_rss_mib"}
    assert set(figures["ratios_readable"]) == set(figures["ratios"])
    assert figures["runs"]["authors"][0]["timed_frames"] == 1


@pytest.mark.skipif(
    not (AUTHORS / "model.py").is_file(),
    reason=f"the authors' code is not at {AUTHORS} (set HMMN_AUTHORS_REPO to a checkout)",
)
def test_side_by_side_with_a_bfloat16_column(tmp_path):
    summary = tmp_path / "summary.json"
    done = run("--authors-repo", str(AUTHORS), "--frames", "2", "--height", "96", "--width",
               "128", "--threads", "1", "--repeats", "1", "--dtype", "bfloat16",
               "--json", str(summary))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "hmmnlab-bfloat16" in done.stdout and "authors/bfloat16" in done.stdout
    figures = json.loads(summary.read_text())
    assert set(figures["runs"]) == {"authors", "hmmnlab", "hmmnlab-readable", "hmmnlab-bfloat16"}
    assert figures["max_abs_prob_difference"]["authors - hmmnlab"] < 1e-4  # float32 unmoved
    assert 0 < figures["max_abs_prob_difference"]["hmmnlab - hmmnlab-bfloat16"] < 1
    assert set(figures["ratios_bfloat16"]) == set(figures["ratios"])
