"""``hmmnlab demo`` end to end (two reads, 5 frames, a tiny random model): a self-contained HTML
report with embedded figures and the ablation CSV."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pandas as pd
import pytest

from hmmnlab.commands.cli import main


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
    check_claims_against_numbers(text)
    check_diagram_and_animations(text, frames=4)
    assert len(text) < 2_500_000  # the quick report stays light (about 1.7 MB)
    table = pd.read_csv(out / "ablation.csv")
    assert list(table["label"]) == ["stm", "hmmn"]
    assert table["J&F"].between(0, 1).all()
    assert (out / "segment" / "overlays" / "trio-crossing.mp4").is_file()


def test_demo_runs_every_part_in_the_dtype_asked(tmp_path, weights):
    out = tmp_path / "demo"
    args = ["demo", "--quick", "--quiet", "--weights", str(weights), "--out", str(out)]
    assert main([*args, "--stm-weights", "none", "--dtype", "bfloat16"]) == 0
    records = sorted(out.glob("**/timing/*.json"))
    assert {r.parent.parent.name for r in records} == {"segment", "stm", "hmmn"}
    assert all(json.loads(r.read_text())["settings"]["dtype"] == "bfloat16" for r in records)
    assert "precision: bfloat16" in (out / "report.html").read_text()


def test_demo_missing_weights_is_a_clear_error(tmp_path, capsys):
    code = main(
        ["demo", "--quick", "--weights", str(tmp_path / "none.pth"), "--out", str(tmp_path)]
    )
    assert code == 2
    assert "weights not found" in capsys.readouterr().err


def test_report_helpers_on_perfect_predictions(tmp_path):
    from hmmnlab import ablation, viz
    from hmmnlab.inside import run_files

    root = ablation.short_davis("data_samples", tmp_path / "davis", frames=4,
                                sequences=["twins", "solo-blob"])  # fmt: skip
    predictions = root / "Annotations" / "480p"  # the ground truth as a prediction
    scores = pd.concat(
        [run_files.frame_scores(root, predictions, s) for s in ("twins", "solo-blob")]
    )
    assert len(scores) == 2 * 2 + 1 * 2  # scored frames 1, 2; twins has 2 objects
    assert (scores["J"] == 1).all() and (scores["J&F"] == 1).all()
    worst = run_files.worst_frames(scores, n=5)
    assert sorted(worst["sequence"]) == ["solo-blob", "twins"]  # one per sequence
    assert len(run_files.worst_frames(scores, n=5, one_per_sequence=False)) == 4
    fig = run_files.frames_against_truth(root, predictions, worst)
    assert len([ax for ax in fig.axes if ax.images]) == 4
    per_frame = run_files.compare_reads(root, {"a": predictions, "b": predictions}, "twins")
    assert list(per_frame.columns) == ["a", "b"] and list(per_frame.index) == [1, 2]
    assert viz.compare_plot(per_frame).axes
    frames = [np.zeros((8, 12, 3), np.uint8), np.full((8, 12, 3), 255, np.uint8)]
    assert "<script" in viz.animate(frames)
    assert viz.query_cell_on_object(np.pad(np.ones((16, 16), int), ((40, 0), (64, 0)))) == (3, 4)


def test_a_section_is_made_from_measured_tables_alone():
    """The report's sections take what the runs measured; no model, no files."""
    from hmmnlab.inside import demo_runs, report

    swapped = pd.DataFrame({"hmmn read": [1.0, 0.5], "stm read": [1.0, 0.25]}, index=[1, 2])
    frame, labels = np.zeros((8, 12, 3), np.uint8), np.ones((8, 12), np.uint8)
    twins = demo_runs.TwinsComparison(swapped, None, where=2, panels=[("truth", frame, labels)])
    page = report.Report("t")
    report.twins_section(page, twins)
    text = page.html()
    assert "same weights, read swapped: <b>hmmn read 0.750</b>, <b>stm read 0.625</b>" in text
    assert "trained with each read:" not in text and "differs most: frame 2" in text
    assert text.count("data:image/png;base64,") == 2  # the per-frame plot and the panels


# --------------------------------------------------------------------------------------------------
# The report's claims, checked against its own numbers


def measured(text: str, comparison: str) -> dict[str, float]:
    """Label -> J&F of one comparison ("same weights, read swapped" or "trained with each read")
    from the report's "Measured on twins" sentence."""
    part = re.search(rf"{comparison}: (.*?) \(better", text).group(1)
    return {label: float(v) for label, v in re.findall(r"<b>(.+?) (\d\.\d{3})</b>", part)}


def read_in(label: str) -> str:
    """'hmmn' from 'hmmn read' or 'demo (hmmn)'."""
    return (
        label.removesuffix(" read") if label.endswith(" read") else label[label.index("(") + 1 : -1]
    )


def check_claims_against_numbers(text: str, threshold: float = 0.7) -> None:
    swapped, trained = (
        measured(text, "same weights, read swapped"),
        measured(text, "trained with each read"),
    )
    assert len(swapped) == len(trained) == 2
    winners = []
    for name, scores in (("(a)", swapped), ("(b)", trained)):
        best = max(scores, key=scores.get)
        if len(set(scores.values())) == 1:
            assert f"{name} is a tie" in text
            winners.append(None)
        else:
            assert f"{name} favours {read_in(best)} (" in text  # the read with the larger J&F
            winners.append(read_in(best))
    agree = winners[0] == winners[1] and winners[0] is not None
    assert ("The two comparisons agree: both favour the " in text) == agree
    assert ("The two comparisons disagree" in text) == (not agree)
    assert "<b>Where the models fail.</b>" in text
    lost = [label for label, v in trained.items() if v < threshold]
    assert ("Both models lose the twins" in text) == (len(lost) == 2)
    for label in lost:
        assert f"{label} {trained[label]:.3f}" in text.split("Where the models fail")[1]


def embedded(text: str, kind: str, alt: str | None = None) -> list[bytes]:
    alt = re.escape(alt) if alt else '[^"]*'
    found = re.findall(rf'<img alt="{alt}" src="data:image/{kind};base64,([A-Za-z0-9+/=]+)"', text)
    return [base64.b64decode(data) for data in found]


def check_diagram_and_animations(text: str, *, frames: int) -> None:
    from PIL import Image

    from hmmnlab import viz
    from hmmnlab.inside import report

    (diagram,) = embedded(text, "png", report.READ_DIAGRAM_ALT)
    assert Image.open(io.BytesIO(diagram)).size[0] > 600
    assert text.index(report.READ_DIAGRAM_ALT) < text.index("1. Segmenting a video")  # on top
    movies = embedded(text, viz.animation_format())
    assert len(movies) == 2  # the segmented video and the twins
    for movie in movies:
        assert len(movie) < 500_000
        assert Image.open(io.BytesIO(movie)).n_frames == frames


def twins_of(swapped, trained=None, crossing=()):
    from hmmnlab.inside import demo_runs

    frame, labels = np.zeros((8, 12, 3), np.uint8), np.ones((8, 12), np.uint8)
    return demo_runs.TwinsComparison(
        pd.DataFrame(swapped, index=[1, 2]),
        None if trained is None else pd.DataFrame(trained, index=[1, 2]),
        where=1,
        panels=[("truth", frame, labels)],
        crossing=crossing,
    )


@pytest.mark.parametrize(
    ("swapped", "trained", "expected"),
    [
        ({"hmmn read": [0.9, 0.7], "stm read": [0.5, 0.3]},
         {"demo (hmmn)": [0.8, 0.6], "demo-stm (stm)": [0.4, 0.4]},
         ["The two comparisons agree: both favour the hmmn read", "(a) favours hmmn (hmmn read "
          "0.800 against stm read 0.400)", "(b) favours hmmn (demo (hmmn) 0.700 against"]),
        ({"hmmn read": [0.3, 0.3], "stm read": [0.5, 0.3]},
         {"demo (hmmn)": [0.8, 0.6], "demo-stm (stm)": [0.4, 0.4]},
         ["The two comparisons disagree", "(a) favours stm (stm read 0.400 against hmmn read "
          "0.300)", "(b) favours hmmn"]),
        ({"hmmn read": [0.5, 0.5], "stm read": [0.4, 0.6]}, None,
         ["Only comparison (a) was run", "(a) is a tie (hmmn read 0.500 against stm read 0.500)"]),
        ({"hmmn read": [0.2, 0.3], "stm read": [0.5, 0.3]}, None,
         ["Only comparison (a) was run", "(a) favours stm"]),
    ],
)  # fmt: skip
def test_the_comparisons_sentence_follows_the_numbers(swapped, trained, expected):
    from hmmnlab.inside import report

    text = report.comparisons_text(twins_of(swapped, trained))
    for part in expected:
        assert part in text
    assert ("agree" in text) == (trained is not None)  # agreement is only said of two comparisons


def test_the_failure_paragraph_follows_the_numbers():
    from hmmnlab.inside import report

    swapped = {"hmmn read": [0.9, 0.9], "stm read": [0.9, 0.9]}
    both = twins_of(swapped, {"demo (hmmn)": [0.8, 0.4], "demo-stm (stm)": [0.5, 0.3]}, (1, 2))
    text = report.failure_text(both)
    assert text.startswith("<b>Where the models fail.</b> Both models lose the twins")
    assert "demo (hmmn) 0.600, demo-stm (stm) 0.400, both below 0.70" in text
    assert "demo (hmmn) first at frame 2; demo-stm (stm) first at frame 1" in text
    assert "touch at frames 1-2" in text and "motion model" in text
    assert "Both models" not in report.failure_text(both, threshold=0.5)  # 0.600 is not below
    one = twins_of(swapped, {"demo (hmmn)": [0.8, 0.9], "demo-stm (stm)": [0.5, 0.3]})
    text = report.failure_text(one)
    assert "Both" not in text and "motion model" not in text
    assert "demo-stm (stm) 0.400: below 0.70, lost the twins; demo (hmmn) 0.850: kept them" in text
    assert "demo (hmmn) never" in text and "do not touch yet" in text
    text = report.failure_text(twins_of(swapped))  # no trained pair: the reads of one model
    assert "No read falls below J&amp;F 0.70" in text


def test_the_read_diagram_names_the_scales_and_the_reads_k():
    from hmmnlab import viz
    from hmmnlab.config import ReadConfig

    fig = viz.read_diagram(ReadConfig(topk_r3=16, topk_r2=3))
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for part in ("r4 (stride 16)", "kernel-guided", "r3 (stride 8)", "r2 (stride 4)", "decoder"):
        assert part in texts
    assert "k=16" in texts and "k=3" in texts
    assert len(fig.axes[0].patches) >= 6 + 8  # six boxes and the arrows between them


def test_the_twins_touch_where_their_paths_cross():
    from hmmnlab.data.davis import DavisDataset
    from hmmnlab.inside import demo_runs

    twins = DavisDataset("data_samples", year=2017, split="val")["twins"]
    assert demo_runs.touching_frames(twins) == tuple(range(10, 17))
    assert demo_runs.touching_frames(twins, gap=0.5) == ()  # one label a pixel: at best adjacent


@pytest.mark.parametrize("kind", ["webp", "gif"])
def test_animations_keep_every_frame(kind):
    from PIL import Image

    from hmmnlab import viz

    panels = [("a", np.zeros((24, 32, 3), np.uint8), np.eye(24, 32, dtype=np.uint8))] * 2
    row = viz.labelled_row(panels, width=40)
    images = [(row // 2 + 40 * i).astype(np.uint8) for i in range(3)]  # 3 different frames
    assert images[0].shape == (16 + 30, 80, 3)
    movie = Image.open(io.BytesIO(viz.animation_bytes(images, format=kind)))
    assert movie.format == kind.upper() and movie.n_frames == 3
