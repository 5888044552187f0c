"""``hmmnlab eval --dataset youtube-vos`` on the synthetic YouTube-VOS set: the submission layout
and its zip, local J&F on a split held out from train, and the ``--root`` / ``--davis`` aliases."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from tiny_davis import write_tiny_davis

from hmmnlab.commands.cli import command_parser, main
from hmmnlab.data.palette import read_label_png
from hmmnlab.data.synthetic import write_youtube_vos


@pytest.fixture(scope="module")
def youtube_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("youtube-eval") / "ytvos"
    write_youtube_vos(root)
    return root


def run_eval(root, weights, out, *extra) -> int:
    return main(["eval", "--dataset", "youtube-vos", "--root", str(root), "--weights",
                 str(weights), "--out", str(out), *extra])  # fmt: skip


def meta_frames(root: Path, split: str) -> dict[str, set[str]]:
    """video -> the union of its objects' frames in meta.json."""
    videos = json.loads((root / split / "meta.json").read_text())["videos"]
    return {v: {f for o in e["objects"].values() for f in o["frames"]} for v, e in videos.items()}


def test_eval_writes_the_submission_for_exactly_the_meta_frames(youtube_root, tiny_weights,
                                                                tmp_path, capsys):  # fmt: skip
    out = tmp_path / "valid"
    assert run_eval(youtube_root, tiny_weights, out, "--split", "valid") == 0
    assert "no local score" in capsys.readouterr().out
    expected = meta_frames(youtube_root, "valid")
    written = {v.name: {p.stem for p in v.glob("*")} for v in (out / "Annotations").iterdir()}
    assert written == expected
    names = sorted(f"Annotations/{v}/{f}.png" for v, frames in expected.items() for f in frames)
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert sorted(archive.namelist()) == names
        assert archive.read(names[3]) == (out / names[3]).read_bytes()
    meta = json.loads((youtube_root / "valid" / "meta.json").read_text())["videos"]
    for video, entry in meta.items():
        for object_id, obj in entry["objects"].items():
            first = obj["frames"][0]
            pred_path = out / "Annotations" / video / f"{first}.png"
            with Image.open(pred_path) as image:
                assert image.mode == "P" and image.size == (160, 96)
            given = read_label_png(youtube_root / "valid" / "Annotations" / video / f"{first}.png")
            pred = read_label_png(pred_path)
            assert (pred[given == int(object_id)] == int(object_id)).all()  # the given mask wins
    # resume: a finished video is not segmented again
    mask = out / "Annotations" / "valid-1" / "00035.png"
    stamp = mask.stat().st_mtime_ns
    assert run_eval(youtube_root, tiny_weights, out, "--split", "valid") == 0
    assert mask.stat().st_mtime_ns == stamp


def test_all_frames_runs_every_frame_and_writes_the_meta_frames(youtube_root, tiny_weights,
                                                                tmp_path):  # fmt: skip
    out = tmp_path / "all"
    assert run_eval(youtube_root, tiny_weights, out, "--split", "valid", "--all-frames",
                    "--sequences", "valid-0") == 0  # fmt: skip
    written = {p.stem for p in (out / "Annotations" / "valid-0").glob("*.png")}
    assert written == meta_frames(youtube_root, "valid")["valid-0"] and len(written) == 15
    record = json.loads((out / "timing" / "valid-0.json").read_text())
    assert (
        record["frames"] == 71 and record["settings"]["resolution"] == "valid_all_frames/JPEGImages"
    )
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert len(archive.namelist()) == 15


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else (a & b).sum() / union


def test_local_scores_on_a_split_held_out_from_train(youtube_root, tiny_weights, tmp_path):
    out = tmp_path / "train"
    held_out = ["train-1", "train-2"]
    assert run_eval(youtube_root, tiny_weights, out, "--split", "train",
                    "--sequences", ",".join(held_out)) == 0  # fmt: skip
    per_object = pd.read_csv(out / "per-object_results.csv")
    assert list(per_object["Video"]) == ["train-1"] * 3 + ["train-2"] * 3
    assert sorted((out / "Annotations").iterdir()) == [out / "Annotations" / v for v in held_out]
    # object 3 of train-1 first appears at 00040 (given): scored on the 6 annotated frames after it
    meta = json.loads((youtube_root / "train" / "meta.json").read_text())["videos"]
    first = meta["train-1"]["objects"]["3"]["frames"][0]
    frames = sorted(meta_frames(youtube_root, "train")["train-1"])
    scored = frames[frames.index(first) + 1 :]
    row = per_object[(per_object["Video"] == "train-1") & (per_object["Object"] == 3)].iloc[0]
    assert row["Frames"] == len(scored) == 6 and row["Category"] == "cup"
    gt = youtube_root / "train" / "Annotations" / "train-1"
    j = [iou(read_label_png(gt / f"{n}.png") == 3,
             read_label_png(out / "Annotations" / "train-1" / f"{n}.png") == 3) for n in scored]  # fmt: skip
    assert row["J-Mean"] == pytest.approx(np.mean(j), abs=5e-4)  # the CSV has 3 decimals
    table = pd.read_csv(out / "global_results.csv")
    assert list(table.columns) == ["J&F-Mean", "J-Mean", "F-Mean"]
    assert table["J-Mean"].iloc[0] == pytest.approx(per_object["J-Mean"].mean(), abs=1e-3)


def test_seen_and_unseen_categories(youtube_root, tiny_weights, tmp_path, capsys):
    out = tmp_path / "unseen"
    args = ("--split", "train", "--sequences", "train-0,train-1", "--unseen-categories", "cup")
    assert run_eval(youtube_root, tiny_weights, out, *args) == 0
    table = pd.read_csv(out / "global_results.csv")
    assert list(table.columns) == ["Overall", "J-Seen", "F-Seen", "J-Unseen", "F-Unseen"]
    per_object = pd.read_csv(out / "per-object_results.csv")
    assert list(per_object["Unseen"]) == [c == "cup" for c in per_object["Category"]]
    unseen = per_object[per_object["Unseen"]]
    assert table["J-Unseen"].iloc[0] == pytest.approx(unseen["J-Mean"].mean(), abs=1e-3)
    parts = table[["J-Seen", "F-Seen", "J-Unseen", "F-Unseen"]].iloc[0]
    assert table["Overall"].iloc[0] == pytest.approx(parts.mean(), abs=1e-3)
    assert run_eval(youtube_root, tiny_weights, out, *args[:-1], "cupp") == 2
    assert "unseen categories not in" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--split", "valid", "--unseen-categories", "cup"], "needs full annotations"),
        (["--split", "valid", "--year", "2017"], "--year: not an option of --dataset youtube-vos"),
        (["--split", "valid", "--overlays"], "--overlays: not an option"),
        (["--split", "valid", "--sequences", "nope"], "video(s) not in"),
    ],
)
def test_youtube_option_errors(youtube_root, tiny_weights, tmp_path, capsys, extra, message):
    assert run_eval(youtube_root, tiny_weights, tmp_path / "x", *extra) == 2
    assert message in capsys.readouterr().err


def test_davis_option_errors(tmp_path, tiny_weights, capsys):
    base = ["eval", "--root", str(tmp_path), "--weights", str(tiny_weights), "--out", str(tmp_path)]
    assert main(base) == 2
    assert "--dataset davis needs --year 2016 or 2017" in capsys.readouterr().err
    assert main([*base, "--year", "2017", "--all-frames"]) == 2
    assert "--all-frames: YouTube-VOS option(s)" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["eval", "score"])
def test_root_and_davis_are_one_option(command):
    rest = {"eval": ["--year", "2017", "--weights", "w", "--out", "o"],
            "score": ["--year", "2017", "--pred", "p", "--out", "o"]}[command]  # fmt: skip
    parser = command_parser(command)
    by_root = parser.parse_args(["--root", "R", *rest])
    by_davis = parser.parse_args(["--davis", "R", *rest])
    assert by_root.root == by_davis.root == Path("R")
    assert vars(by_root) == vars(by_davis)


def test_davis_eval_and_score_through_root(tmp_path, tiny_weights):
    """The DAVIS path with --root, and with --davis, gives the same masks and scores."""
    root = write_tiny_davis(tmp_path / "davis", frames=5, size=(64, 128))
    tables = []
    for option in ("--root", "--davis"):
        out = tmp_path / f"out-{option.strip('-')}"  # never inside the dataset (root: davis)
        assert main(["eval", option, str(root), "--year", "2017", "--weights", str(tiny_weights),
                     "--out", str(out)]) == 0  # fmt: skip
        assert main(["score", option, str(root), "--year", "2017", "--pred", str(out),
                     "--out", str(out / "score")]) == 0  # fmt: skip
        tables.append(pd.read_csv(out / "score" / "global_results.csv"))
    pd.testing.assert_frame_equal(*tables)
