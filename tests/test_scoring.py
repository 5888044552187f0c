"""``hmmnlab.evaluation.scoring``: score prediction folders on real DAVIS-2016 sequences and on the
official fixture written as a DAVIS-2017 folder; the CLI's CSV files; missing predictions."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hmmnlab.data.davis import DavisDataset
from hmmnlab.data.palette import write_label_png
from hmmnlab.evaluation.metrics import boundary_f_measure
from hmmnlab.evaluation.scoring import (
    GLOBAL_COLUMNS,
    PER_SEQUENCE_COLUMNS,
    results_tables,
    score,
    write_results,
)

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data"  # the bundled golden data
SEQUENCES = ["dog-agility", "rollerblade"]  # the two shortest sequences: 25 and 35 frames


def main(argv: list[str]) -> int:
    """``hmmnlab`` with these arguments (imported here: cli.py imports every sub-command's module,
    so a broken model module should fail these tests only, not the collection of this file)."""
    from hmmnlab.commands.cli import main as cli_main

    return cli_main(argv)


def _score_2016(root: Path, pred: Path, **kwargs):
    kwargs = {"sequences": SEQUENCES, **kwargs}
    return score(root, pred, year=2016, split="train", resolution="240p", **kwargs)


@pytest.fixture(scope="module")
def eroded(shared_davis, tmp_path_factory):
    """Predictions = ground truth eroded by a 7 x 7 square, except frames 0 and T-1, which are left
    empty (they are not scored, so they must not matter). Returns (pred_dir, expected) with the
    per-sequence J and F means computed by hand over frames 1..T-2."""
    pred_dir = tmp_path_factory.mktemp("eroded")
    dataset = DavisDataset(shared_davis, year=2016, split="train", resolution="240p")
    kernel = np.ones((7, 7), np.uint8)
    expected = {}
    for name in SEQUENCES:
        masks = dataset[name].masks()  # T x H x W, 0/1
        j_values, f_values = [], []
        for t, gt in enumerate(masks):
            pred = cv2.erode(gt, kernel)
            if t in (0, len(masks) - 1):
                pred = np.zeros_like(gt)
            else:
                # The eroded mask lies inside the ground truth, so J = |pred| / |gt|.
                j_values.append(pred.sum() / gt.sum() if gt.any() else 1.0)
                f_values.append(boundary_f_measure(gt, pred, fast=False))
            write_label_png(pred_dir / name / f"{t:05d}.png", pred)
        expected[name] = (float(np.mean(j_values)), float(np.mean(f_values)))
    return pred_dir, expected


# --- real DAVIS-2016 sequences --------------------------------------------------------------------


def test_ground_truth_as_prediction_scores_one(shared_davis):
    # The annotation folder itself is a valid prediction folder (0/255 PNGs, read as one object).
    global_df, per_sequence_df = _score_2016(shared_davis, shared_davis / "Annotations" / "240p")
    assert list(global_df.columns) == list(GLOBAL_COLUMNS) and len(global_df) == 1
    assert list(per_sequence_df.columns) == list(PER_SEQUENCE_COLUMNS)
    assert per_sequence_df["Sequence"].tolist() == ["dog-agility_1", "rollerblade_1"]
    expected = dict.fromkeys(GLOBAL_COLUMNS, 1.0) | {"J-Decay": 0.0, "F-Decay": 0.0}
    assert global_df.iloc[0].to_dict() == expected
    assert (per_sequence_df[["J-Mean", "F-Mean"]] == 1.0).all().all()


def test_eroded_predictions(shared_davis, eroded):
    pred_dir, expected = eroded
    global_df, per_sequence_df = _score_2016(shared_davis, pred_dir)
    for row, name in zip(per_sequence_df.itertuples(index=False), SEQUENCES, strict=True):
        j_mean, f_mean = expected[name]
        assert row[1] == pytest.approx(j_mean, abs=1e-9)
        assert row[2] == pytest.approx(f_mean, abs=1e-9)
        assert 0.3 < row[1] < 0.99 and 0.1 < row[2] < 0.99  # really eroded
    j_means = [expected[name][0] for name in SEQUENCES]
    f_means = [expected[name][1] for name in SEQUENCES]
    assert global_df["J-Mean"][0] == pytest.approx(np.mean(j_means), abs=1e-9)
    assert global_df["J&F-Mean"][0] == pytest.approx(
        (np.mean(j_means) + np.mean(f_means)) / 2, abs=1e-9
    )


def test_cli_writes_the_tables_score_returns(shared_davis, eroded, tmp_path, capsys):
    pred_dir, _ = eroded
    out = tmp_path / "results"
    code = main(
        [
            "score",
            "--davis", str(shared_davis),
            "--year", "2016",
            "--split", "train",
            "--resolution", "240p",
            "--pred", str(pred_dir),
            "--out", str(out),
            "--sequences", ",".join(SEQUENCES),
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "J&F-Mean" in printed and "rollerblade_1" in printed
    global_df, per_sequence_df = _score_2016(shared_davis, pred_dir)
    global_csv = (out / "global_results.csv").read_text().splitlines()
    assert global_csv[0] == ",".join(GLOBAL_COLUMNS)
    assert global_csv[1] == ",".join(f"{v:.3f}" for v in global_df.iloc[0])  # official %.3f
    written = pd.read_csv(out / "per-sequence_results.csv")
    assert list(written.columns) == list(PER_SEQUENCE_COLUMNS)
    assert written["Sequence"].tolist() == per_sequence_df["Sequence"].tolist()
    np.testing.assert_allclose(
        written[["J-Mean", "F-Mean"]], per_sequence_df[["J-Mean", "F-Mean"]], atol=5e-4 + 1e-12
    )


def test_missing_prediction_is_an_error(shared_davis, eroded, tmp_path, capsys):
    pred_dir, _ = eroded
    partial = tmp_path / "partial"
    for name in SEQUENCES:
        (partial / name).mkdir(parents=True)
        for png in (pred_dir / name).glob("*.png"):
            (partial / name / png.name).write_bytes(png.read_bytes())
    (partial / "dog-agility" / "00005.png").unlink()
    (partial / "rollerblade" / "00033.png").unlink()
    (partial / "rollerblade" / "00034.png").unlink()  # the last frame: not scored, not needed
    with pytest.raises(FileNotFoundError, match=r"2 prediction PNG\(s\) missing") as err:
        _score_2016(shared_davis, partial)
    assert "dog-agility/00005.png, rollerblade/00033.png" in str(err.value)
    assert "--allow-missing" in str(err.value)
    argv = ["score", "--davis", str(shared_davis), "--year", "2016", "--split", "train"]
    argv += ["--resolution", "240p", "--pred", str(partial), "--out", str(tmp_path / "o")]
    assert main([*argv, "--sequences", "dog-agility"]) == 2
    assert "dog-agility/00005.png" in capsys.readouterr().err


def test_allow_missing_counts_empty_masks(shared_davis, eroded, tmp_path):
    pred_dir, expected = eroded
    partial = tmp_path / "partial"
    (partial / "dog-agility").mkdir(parents=True)
    for png in (pred_dir / "dog-agility").glob("*.png"):
        if png.name != "00005.png":
            (partial / "dog-agility" / png.name).write_bytes(png.read_bytes())
    # No rollerblade folder at all.
    _, per_sequence_df = _score_2016(shared_davis, partial, allow_missing=True)
    # dog-agility: 23 scored frames, frame 5 (non-empty ground truth) now has J = F = 0.
    masks = DavisDataset(shared_davis, year=2016, split="train", resolution="240p")[
        "dog-agility"
    ].masks()
    frame5 = cv2.erode(masks[5], np.ones((7, 7), np.uint8))
    j5 = frame5.sum() / masks[5].sum()
    j_expected = (expected["dog-agility"][0] * 23 - j5) / 23
    assert per_sequence_df["J-Mean"][0] == pytest.approx(j_expected, abs=1e-9)
    assert per_sequence_df["J-Mean"][1] == 0.0 and per_sequence_df["F-Mean"][1] == 0.0


def test_argument_errors(shared_davis, tmp_path):
    with pytest.raises(ValueError, match=r"not in DAVIS 2016 train: nosuch"):
        _score_2016(shared_davis, tmp_path, sequences=["bear", "nosuch"])
    with pytest.raises(FileNotFoundError, match="prediction folder not found"):
        _score_2016(shared_davis, tmp_path / "nothing")
    with pytest.raises(ValueError, match="workers must be at least 1, found 0"):
        _score_2016(shared_davis, tmp_path, workers=0)


# --- the official fixture, from files --------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_as_davis2017(tmp_path_factory):
    """The five cases of davis_metrics_fixture written as a DAVIS-2017 folder at 480p (palette
    PNGs, black JPEG frames) plus a prediction folder. Returns (root, pred_dir, official)."""
    json_path = REFERENCE / "davis_metrics_fixture.json"
    official = json.loads(json_path.read_text())["official_evaluate_semisupervised"]
    root = tmp_path_factory.mktemp("davis2017")
    pred_dir = tmp_path_factory.mktemp("pred2017")
    with np.load(REFERENCE / "davis_metrics_fixture.npz") as npz:
        for name in official["sequences"]:
            gt, pred = npz[f"gt__{name}"], npz[f"pred__{name}"]
            frame_dir = root / "JPEGImages" / "480p" / name
            frame_dir.mkdir(parents=True)
            black = np.zeros((*gt.shape[1:], 3), np.uint8)
            for t in range(len(gt)):
                Image.fromarray(black).save(frame_dir / f"{t:05d}.jpg")
                write_label_png(root / "Annotations" / "480p" / name / f"{t:05d}.png", gt[t])
                write_label_png(pred_dir / name / f"{t:05d}.png", pred[t])
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(official["sequences"]) + "\n")
    return root, pred_dir, official


def test_official_global_table_from_files(fixture_as_davis2017, tmp_path):
    root, pred_dir, official = fixture_as_davis2017
    global_df, per_sequence_df = score(root, pred_dir, year=2017, split="val", workers=2)
    assert list(global_df.columns) == list(official["global"])
    np.testing.assert_allclose(
        global_df.iloc[0].to_numpy(float), list(official["global"].values()), rtol=0, atol=1e-6
    )
    assert per_sequence_df["Sequence"].tolist() == list(official["J"]["M_per_object"])
    np.testing.assert_allclose(
        per_sequence_df["J-Mean"], list(official["J"]["M_per_object"].values()), atol=1e-6
    )
    np.testing.assert_allclose(
        per_sequence_df["F-Mean"], list(official["F"]["M_per_object"].values()), atol=1e-6
    )
    # One process gives the same tables.
    one_global, one_per_sequence = score(
        root, pred_dir, year=2017, split="val", sequences=["multi3_missing", "dog"]
    )
    expected = per_sequence_df.set_index("Sequence").loc[one_per_sequence["Sequence"]]
    np.testing.assert_array_equal(one_per_sequence[["J-Mean", "F-Mean"]], expected)
    # Full precision when asked; the official three decimals by default.
    write_results(tmp_path, global_df, per_sequence_df, float_format=None)
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "global_results.csv"), global_df)


def test_prediction_label_above_k_names_the_file(fixture_as_davis2017, tmp_path):
    root, pred_dir, _ = fixture_as_davis2017
    bad = tmp_path / "bad"
    for png in (pred_dir / "dog").glob("*.png"):
        (bad / "dog").mkdir(parents=True, exist_ok=True)
        (bad / "dog" / png.name).write_bytes(png.read_bytes())
    write_label_png(bad / "dog" / "00007.png", np.full((480, 854), 2, np.uint8))
    with pytest.raises(ValueError, match=r"dog/00007\.png: expected labels 0\.\.1 .*\[2\]"):
        score(root, bad, year=2017, split="val", sequences=["dog"])


def test_results_tables_layout():
    from hmmnlab.evaluation.metrics import SequenceScores

    scores = [
        SequenceScores("a", ("00001", "00002"), j=np.array([[1.0, 0.5]]), f=np.array([[1.0, 0.0]])),
        SequenceScores("b", ("00001",), j=np.array([[0.2], [0.8]]), f=np.array([[0.4], [0.6]])),
    ]
    global_df, per_sequence_df = results_tables(scores)
    assert per_sequence_df.to_dict("list") == {
        "Sequence": ["a_1", "b_1", "b_2"],
        "J-Mean": [0.75, 0.2, 0.8],
        "F-Mean": [0.5, 0.4, 0.6],
    }
    row = global_df.iloc[0]
    assert row["J-Mean"] == pytest.approx((0.75 + 0.2 + 0.8) / 3)
    assert row["J-Recall"] == pytest.approx((0.5 + 0 + 1) / 3)  # 0.5 is not > 0.5
    assert row["J&F-Mean"] == pytest.approx(((0.75 + 0.2 + 0.8) / 3 + 0.5) / 2)


# --- issue 13 ------------------------------------------------------------------------------------


@pytest.fixture
def annotations_only(tmp_path):
    """The samples' Annotations and ImageSets (no JPEGImages), and the annotations as
    predictions."""
    import shutil

    samples = REPO / "data_samples"
    root = tmp_path / "davis"
    for part in ("Annotations/480p/solo-blob", "Annotations/480p/twins", "ImageSets"):
        shutil.copytree(samples / part, root / part)
    (root / "ImageSets" / "2017" / "val.txt").write_text("solo-blob\nghost\ntwins\n")
    return root, root / "Annotations" / "480p"


def test_score_needs_no_frames_and_no_unasked_sequence(annotations_only, tmp_path, capsys):
    """Item 12: scored from the masks alone, like the official toolkit; the split's absent 'ghost'
    blocks nothing that does not ask for it."""
    root, pred = annotations_only
    code = main(["score", "--davis", str(root), "--year", "2017", "--pred", str(pred),
                 "--out", str(tmp_path / "out"), "--sequences", "solo-blob,twins"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "out" / "global_results.csv")
    assert table["J&F-Mean"].iloc[0] == pytest.approx(1.0)


def test_score_refuses_duplicate_sequences(annotations_only, tmp_path):
    """Item 6: a sequence named twice would count twice."""
    root, pred = annotations_only
    with pytest.raises(ValueError, match="solo-blob listed more than once"):
        score(root, pred, year=2017, split="val", sequences=["solo-blob", "twins", "solo-blob"])


def test_score_error_starts_on_its_own_line(annotations_only, tmp_path, capsys):
    """Item 10: the error is not glued to the progress bar's line."""
    root, pred = annotations_only
    write_label_png(pred / "twins" / "00004.png", np.full((240, 427), 9, np.uint8))
    code = main(["score", "--davis", str(root), "--year", "2017", "--pred", str(pred),
                 "--out", str(tmp_path / "out"), "--sequences", "solo-blob,twins"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "\nhmmnlab score: error: " in err and "twins/00004.png" in err


def test_ctrl_c_prints_one_line_and_exits_130(monkeypatch, capsys, tmp_path):
    """Item 10: no KeyboardInterrupt traceback."""
    import hmmnlab.evaluation.scoring as scoring_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scoring_module, "score", interrupted)
    davis, pred = tmp_path / "davis", tmp_path / "pred"
    davis.mkdir(), pred.mkdir()
    code = main(["score", "--davis", str(davis), "--year", "2017", "--pred", str(pred),
                 "--out", str(tmp_path / "x")])  # fmt: skip
    assert code == 130
    assert capsys.readouterr().err.strip() == "hmmnlab score: interrupted"
