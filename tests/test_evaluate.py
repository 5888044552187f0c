"""``hmmnlab eval`` on the bundled samples: masks, CSVs with timing, resume, overlays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_davis import write_tiny_davis

from hmmnlab.commands.cli import main
from hmmnlab.data.palette import read_label_png
from hmmnlab.viz import overlay

REPO_SAMPLES = "data_samples"
SAMPLES = Path(__file__).resolve().parents[1] / REPO_SAMPLES


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


@pytest.fixture
def tiny_davis(tmp_path):
    """A DAVIS-2017 layout with one 6-frame 48 x 64 sequence 'blob' (fast to segment)."""
    return write_tiny_davis(tmp_path / "davis")


def run_tiny(root, weights, out, *extra):
    return main(["eval", "--davis", str(root), "--year", "2017", "--weights", str(weights),
                 "--out", str(out), *extra])  # fmt: skip


def test_eval_resume_redoes_a_sequence_run_with_other_settings(tmp_path, tiny_davis, tiny_weights):
    """Item 1: a finished sequence is reused only with the same read (and weights, ...)."""
    out = tmp_path / "eval"
    assert run_tiny(tiny_davis, tiny_weights, out) == 0
    mask = out / "blob" / "00003.png"
    stamp = mask.stat().st_mtime_ns
    assert run_tiny(tiny_davis, tiny_weights, out, "--variant", "stm") == 0
    assert mask.stat().st_mtime_ns != stamp  # segmented again with the stm read
    record = json.loads((out / "timing" / "blob.json").read_text())
    assert record["settings"]["read"]["variant"] == "stm"


def test_eval_resume_redoes_a_sequence_run_with_other_weights(
    tmp_path, tiny_davis, tiny_weights, tiny_config
):
    import torch

    from hmmnlab.model import HMMN
    from hmmnlab.weights import save_checkpoint

    out = tmp_path / "eval"
    assert run_tiny(tiny_davis, tiny_weights, out) == 0
    stamp = (out / "blob" / "00003.png").stat().st_mtime_ns
    torch.manual_seed(1)
    other = tmp_path / "other.pth"
    save_checkpoint(HMMN(tiny_config), other)
    assert run_tiny(tiny_davis, other, out) == 0
    assert (out / "blob" / "00003.png").stat().st_mtime_ns != stamp


def test_eval_interrupted_overwrite_is_not_taken_as_finished(
    tmp_path, tiny_davis, tiny_weights, monkeypatch
):
    """Item 1: --overwrite killed mid-sequence must not leave a record that a resume trusts."""
    import hmmnlab.evaluation.runner as evaluate_module  # the runner writes the masks

    out = tmp_path / "eval"
    assert run_tiny(tiny_davis, tiny_weights, out) == 0
    written = []
    real_write = evaluate_module.write_label_png

    def write_then_die(path, labels):
        real_write(path, labels)
        written.append(path)
        if len(written) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_module, "write_label_png", write_then_die)
    code = main(["eval", "--davis", str(tiny_davis), "--year", "2017", "--weights", str(tiny_weights),
                 "--out", str(out), "--sequences", "blob", "--overwrite",
                 "--variant", "stm"])  # fmt: skip
    assert code == 130  # interrupted
    monkeypatch.setattr(evaluate_module, "write_label_png", real_write)
    assert not (out / "timing" / "blob.json").exists()
    stamp = (out / "blob" / "00004.png").stat().st_mtime_ns  # still from the first run
    assert run_tiny(tiny_davis, tiny_weights, out, "--variant", "stm") == 0
    assert (out / "blob" / "00004.png").stat().st_mtime_ns != stamp


def test_eval_resume_with_an_empty_record_redoes_the_sequence(tmp_path, tiny_davis, tiny_weights):
    """Item 10: an empty timing JSON (a run killed while writing it) is not fatal."""
    out = tmp_path / "eval"
    assert run_tiny(tiny_davis, tiny_weights, out) == 0
    (out / "timing" / "blob.json").write_text("")
    assert run_tiny(tiny_davis, tiny_weights, out) == 0
    assert json.loads((out / "timing" / "blob.json").read_text())["frames"] == 6


def test_second_eval_on_the_same_out_is_refused(tmp_path, tiny_davis, tiny_weights, capsys):
    """Item 2: a second writer on the same output folder fails clearly."""
    from hmmnlab.evaluation.davis import output_lock

    out = tmp_path / "eval"
    with output_lock(out):
        assert run_tiny(tiny_davis, tiny_weights, out) == 2
    err = capsys.readouterr().err
    assert "another hmmnlab eval is writing to" in err and str(out) in err
    assert not (out / "blob").exists()
    assert run_tiny(tiny_davis, tiny_weights, out) == 0  # the lock is released


def test_duplicate_sequences_are_refused(tmp_path, tiny_davis, tiny_weights, capsys):
    """Item 6: a sequence named twice would count twice in the global J&F."""
    code = main(["eval", "--davis", str(tiny_davis), "--year", "2017", "--weights", str(tiny_weights),
                 "--out", str(tmp_path), "--sequences", "blob,blob"])  # fmt: skip
    assert code == 2
    assert "blob listed more than once" in capsys.readouterr().err
