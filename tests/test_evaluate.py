"""``hmmnlab eval`` on the bundled samples: masks, CSVs with timing, resume, overlays."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hmmnlab.cli import main
from hmmnlab.data.palette import read_label_png
from hmmnlab.viz import overlay

REPO_SAMPLES = "data_samples"


def run_eval(weights, out, *extra):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / REPO_SAMPLES
    return main(["eval", "--davis", str(root), "--year", "2017", "--split", "val",
                 "--weights", str(weights), "--out", str(out), "--sequences", "solo-blob",
                 *extra])  # fmt: skip


def test_eval_writes_masks_tables_and_resumes(tmp_path, tiny_weights, capsys):
    out = tmp_path / "eval"
    assert run_eval(tiny_weights, out, "--overlays") == 0
    masks = sorted((out / "solo-blob").glob("*.png"))
    assert len(masks) == 30
    first = read_label_png(masks[0])
    assert set(np.unique(first)) == {0, 1}  # frame 0 is the given annotation
    per_sequence = pd.read_csv(out / "per-sequence_results.csv")
    assert list(per_sequence["Sequence"]) == ["solo-blob_1"]
    assert per_sequence["Seconds/frame"].iloc[0] > 0
    assert per_sequence["Peak memory (MiB)"].iloc[0] > 0
    global_table = pd.read_csv(out / "global_results.csv")
    assert list(global_table.columns) == [
        "J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay",
    ]  # fmt: skip
    assert 0 <= global_table["J-Mean"].iloc[0] <= 1
    assert (out / "overlays" / "solo-blob.mp4").stat().st_size > 1000
    assert len(list((out / "overlays" / "solo-blob").glob("*.jpg"))) == 30
    # resume: a finished sequence is not segmented again ...
    stamp = masks[5].stat().st_mtime_ns
    assert run_eval(tiny_weights, out) == 0
    assert masks[5].stat().st_mtime_ns == stamp
    # ... unless asked to
    assert run_eval(tiny_weights, out, "--overwrite") == 0
    assert masks[5].stat().st_mtime_ns != stamp


def test_eval_unknown_sequence(tmp_path, tiny_weights, capsys):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / REPO_SAMPLES
    code = main(["eval", "--davis", str(root), "--year", "2017", "--weights", str(tiny_weights),
                 "--out", str(tmp_path), "--sequences", "nope"])  # fmt: skip
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_overlay_colours_objects_and_keeps_background():
    frame = np.full((20, 20, 3), 100, np.uint8)
    labels = np.zeros((20, 20), np.uint8)
    labels[5:15, 5:15] = 1
    image = overlay(frame, labels)
    assert (image[0, 0] == 100).all()
    assert tuple(image[5, 5]) == (128, 0, 0)  # boundary in the object's colour (DAVIS red)
    assert tuple(image[10, 10]) == (114, 50, 50)  # inside: half-blended
