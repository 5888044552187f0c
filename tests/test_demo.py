"""``hmmnlab demo`` end to end (two reads, 5 frames, a tiny random model): a self-contained HTML
report with embedded figures and the ablation CSV."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from hmmnlab.cli import main


@pytest.fixture(scope="module")
def weights(tiny_weights):
    return tiny_weights


def test_demo_writes_a_self_contained_report(tmp_path, weights, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--quick", "--quiet", "--weights", str(weights), "--out", str(out)]
    assert main([*args, "--stm-weights", str(weights)]) == 0
    report = out / "report.html"
    assert f"wrote {report}" in capsys.readouterr().out
    text = report.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) >= 8  # filmstrip, 3 affinity stages, sigmas, top-k, 2 plots, twins ...
    assert all(len(image) > 1000 for image in images)
    assert not re.search(r'src="(?!data:)', text)  # nothing loaded from elsewhere
    for heading in ("Segmenting a video", "One memory read", "Read ablation", "twins case"):
        assert heading in text
    # both kinds of comparison, with measured numbers
    assert re.search(r"same weights, read swapped: <b>hmmn read \d\.\d{3}</b>, <b>stm read", text)
    assert re.search(r"trained with each read: <b>demo \(hmmn\) \d\.\d{3}</b>, <b>demo-stm", text)
    table = pd.read_csv(out / "ablation.csv")
    assert list(table["label"]) == ["stm", "hmmn"]
    assert table["J&F"].between(0, 1).all()
    assert (out / "segment" / "overlays" / "trio-crossing.mp4").is_file()


def test_demo_missing_weights_is_a_clear_error(tmp_path, capsys):
    code = main(
        ["demo", "--quick", "--weights", str(tmp_path / "none.pth"), "--out", str(tmp_path)]
    )
    assert code == 2
    assert "weights not found" in capsys.readouterr().err


def test_report_helpers_on_perfect_predictions(tmp_path):
    from hmmnlab import ablation, report, viz

    root = ablation.short_davis("data_samples", tmp_path / "davis", frames=4,
                                sequences=["twins", "solo-blob"])  # fmt: skip
    predictions = root / "Annotations" / "480p"  # the ground truth as a prediction
    scores = pd.concat([report.frame_scores(root, predictions, s) for s in ("twins", "solo-blob")])
    assert len(scores) == 2 * 2 + 1 * 2  # scored frames 1, 2; twins has 2 objects
    assert (scores["J"] == 1).all() and (scores["J&F"] == 1).all()
    worst = report.worst_frames(scores, n=5)
    assert sorted(worst["sequence"]) == ["solo-blob", "twins"]  # one per sequence
    assert len(report.worst_frames(scores, n=5, one_per_sequence=False)) == 4
    fig = report.frames_against_truth(root, predictions, worst)
    assert len([ax for ax in fig.axes if ax.images]) == 4
    per_frame = report.compare_reads(root, {"a": predictions, "b": predictions}, "twins")
    assert list(per_frame.columns) == ["a", "b"] and list(per_frame.index) == [1, 2]
    assert viz.compare_plot(per_frame).axes
    frames = [np.zeros((8, 12, 3), np.uint8), np.full((8, 12, 3), 255, np.uint8)]
    assert "<script" in viz.animate(frames)
    assert viz.query_cell_on_object(np.pad(np.ones((16, 16), int), ((40, 0), (64, 0)))) == (3, 4)


def test_a_section_is_made_from_measured_tables_alone():
    """The report's sections take what the runs measured; no model, no files."""
    from hmmnlab import report

    swapped = pd.DataFrame({"hmmn read": [1.0, 0.5], "stm read": [1.0, 0.25]}, index=[1, 2])
    frame, labels = np.zeros((8, 12, 3), np.uint8), np.ones((8, 12), np.uint8)
    twins = report.TwinsComparison(swapped, None, where=2, panels=[("truth", frame, labels)])
    page = report.Report("t")
    report.twins_section(page, twins)
    text = page.html()
    assert "same weights, read swapped: <b>hmmn read 0.750</b>, <b>stm read 0.625</b>" in text
    assert "trained with each read:" not in text and "differs most: frame 2" in text
    assert text.count("data:image/png;base64,") == 2  # the per-frame plot and the panels
