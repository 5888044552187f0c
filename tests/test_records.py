"""Issue 23: never touch what the user did not ask to change. Ground truth, existing files and runs
are kept; errors are one line naming the file or option; writes are atomic and locked."""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_davis import write_tiny_davis

from hmmnlab.commands.cli import main
from hmmnlab.data.palette import read_label_png, write_label_png
from hmmnlab.evaluation import records


def expect_error(capsys, code: int, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


@pytest.fixture
def davis(tmp_path) -> Path:
    """A DAVIS-2017 layout with one 5-frame 48 x 64 sequence 'blob'."""
    return write_tiny_davis(tmp_path / "davis", frames=5)


@pytest.fixture
def video(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    (tmp_path / "frames").mkdir()
    for t, frame in enumerate(rng.integers(0, 256, size=(3, 40, 56, 3), dtype=np.uint8)):
        Image.fromarray(frame).save(tmp_path / "frames" / f"{t:05d}.png")
    labels = np.zeros((40, 56), np.uint8)
    labels[5:15, 5:20] = 1
    write_label_png(tmp_path / "mask.png", labels)
    return tmp_path


def segment(video: Path, weights, *extra, out="out") -> int:
    return main(["segment", "--weights", str(weights), "--frames", str(video / "frames"),
                 "--first-mask", str(video / "mask.png"), "--out", str(video / out), *extra])  # fmt: skip


def trace(video: Path, weights, out, *extra) -> int:
    return main(["trace", "--weights", str(weights), "--frames", str(video / "frames"),
                 "--first-mask", str(video / "mask.png"), "--out", str(out), "--frame", "1",
                 *extra])  # fmt: skip


def run_eval(root, weights, out, *extra) -> int:
    return main(["eval", "--root", str(root), "--year", "2017", "--weights", str(weights),
                 "--out", str(out), *extra])  # fmt: skip


# --- records.py itself ------------------------------------------------------------------------------


def test_records_imports_nothing_heavy():
    import subprocess

    code = "import sys, hmmnlab.evaluation.records; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], check=True)  # fmt: skip
    assert result.stdout.strip() == "[]"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")

    def full_disk(temporary: Path) -> None:
        temporary.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(records.WriteError, match=f"no space left on the device holding {target}"):
        records.write_atomically(target, full_disk)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]

    def other(temporary: Path) -> None:
        temporary.write_text("half")
        raise KeyError("a bug")

    with pytest.raises(KeyError):  # not an environment problem: propagates as it is
        records.write_atomically(target, other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_torch_save_on_a_full_disk_names_the_file(tmp_path, monkeypatch):
    """Item 10: torch's "[enforce fail at inline_container.cc:672] ... unexpected pos", and no
    state.pth.tmp left."""
    import torch

    from hmmnlab.train import checkpoints

    def short_write(obj, path):
        Path(path).write_bytes(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 32")

    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(records.WriteError, match="no space left on the device holding"):
        checkpoints._atomic_save({"a": 1}, tmp_path / "state.pth")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spelling", ["symlink", "dotdot", "relative"])
def test_is_inside_resolves_every_spelling(tmp_path, monkeypatch, spelling):
    data = tmp_path / "data"
    (data / "Annotations").mkdir(parents=True)
    if spelling == "symlink":
        (tmp_path / "link").symlink_to(data)
        out = tmp_path / "link" / "Annotations"
    elif spelling == "dotdot":
        out = data / "Annotations" / ".." / "Annotations" / "new"
    else:
        monkeypatch.chdir(data)
        out = Path("Annotations")
    with pytest.raises(ValueError, match="lies inside --root"):
        records.check_outside(out, "--out", [("--root", data)])
    records.check_outside(tmp_path / "elsewhere", "--out", [("--root", data)])


# --- item 1: eval, ablate and YouTube-VOS eval never write into the ground truth --------------------


@pytest.mark.parametrize("how", ["plain", "symlink"])
def test_eval_refuses_an_out_inside_the_annotations(davis, tiny_weights, tmp_path, capsys, how):
    before = snapshot(davis)
    out = davis / "Annotations" / "480p"
    if how == "symlink":
        (tmp_path / "link").symlink_to(out)
        out = tmp_path / "link"
    expect_error(capsys, run_eval(davis, tiny_weights, out), "lies inside --root")
    assert snapshot(davis) == before


def test_eval_refuses_a_sequence_folder_reached_through_a_symlink(davis, tiny_weights, tmp_path,
                                                                 capsys):  # fmt: skip
    """The annotations of a sequence may live elsewhere (a symlinked sequence folder)."""
    elsewhere = tmp_path / "elsewhere"
    (davis / "Annotations" / "480p" / "blob").rename(elsewhere)
    (davis / "Annotations" / "480p" / "blob").symlink_to(elsewhere)
    before = snapshot(elsewhere)
    expect_error(capsys, run_eval(davis, tiny_weights, elsewhere), "lies inside --root")
    assert snapshot(elsewhere) == before


def test_ablate_refuses_an_out_inside_the_dataset(davis, tiny_weights, capsys):
    before = snapshot(davis)
    code = main(["ablate", "--root", str(davis), "--year", "2017", "--weights", str(tiny_weights),
                 "--out", str(davis / "Annotations" / "480p" / ".."), "--variants", "stm",
                 "--no-progress"])  # fmt: skip
    expect_error(capsys, code, "lies inside --root")
    assert snapshot(davis) == before


# --- item 2: YouTube-VOS eval into the split folder --------------------------------------------------


@pytest.fixture(scope="module")
def youtube_root(tmp_path_factory) -> Path:
    from hmmnlab.data.synthetic import write_youtube_vos

    root = tmp_path_factory.mktemp("yt") / "ytvos"
    write_youtube_vos(root)
    return root


def test_youtube_eval_into_the_split_keeps_the_annotations(youtube_root, tiny_weights, capsys):
    before = snapshot(youtube_root / "valid")
    code = main(["eval", "--dataset", "youtube-vos", "--root", str(youtube_root), "--split", "valid",
                 "--weights", str(tiny_weights), "--out", str(youtube_root / "valid")])  # fmt: skip
    expect_error(capsys, code, "lies inside --root")
    assert snapshot(youtube_root / "valid") == before


# --- item 3: one segment at a time per --out ----------------------------------------------------------


def test_a_second_segment_on_one_out_is_refused(video, tiny_weights, capsys):
    with records.output_lock(video / "out", command="segment"):
        expect_error(capsys, segment(video, tiny_weights), "another hmmnlab segment is writing to")
    assert not list((video / "out").glob("*.png"))
    assert segment(video, tiny_weights) == 0  # the lock is released
    assert not (video / "out" / records.LOCK_NAME).exists()  # and its file gone from --out


def test_the_output_lock_leaves_nothing_behind_and_still_refuses_a_second_writer(tmp_path):
    out = tmp_path / "out"
    with records.output_lock(out, command="eval"):
        assert (out / records.LOCK_NAME).read_text() == str(os.getpid())
        with pytest.raises(RuntimeError, match="another hmmnlab eval is writing to"):
            with records.output_lock(out, command="eval"):
                pass
    assert list(out.iterdir()) == []
    with records.output_lock(out, command="eval", remove=False):
        pass
    assert (out / records.LOCK_NAME).exists()


# --- item 4: existing files are not replaced without --overwrite ------------------------------------


def test_save_probs_and_trace_keep_existing_files(video, tiny_weights, capsys):
    (video / "p.npz").write_bytes(b"mine")
    code = segment(video, tiny_weights, "--save-probs", str(video / "p.npz"))
    expect_error(capsys, code, "p.npz already exists; give --overwrite")
    assert (video / "p.npz").read_bytes() == b"mine"
    assert segment(video, tiny_weights, "--save-probs", str(video / "p.npz"), "--overwrite") == 0
    assert np.load(video / "p.npz")["probs"].shape[0] == 3

    (video / "t.npz").write_bytes(b"mine")
    expect_error(capsys, trace(video, tiny_weights, video / "t.npz"), "t.npz already exists")
    assert (video / "t.npz").read_bytes() == b"mine"
    assert trace(video, tiny_weights, video / "t.npz", "--overwrite") == 0
    assert "r4.affinity" in np.load(video / "t.npz")
    assert not [p.name for p in video.glob(".*.tmp*")]


@pytest.mark.parametrize("option", ["--out", "--youtube-vos"])
def test_samples_onto_an_existing_dataset_is_refused(tmp_path, capsys, option):
    out = tmp_path / "data"
    assert main(["samples", option, str(out)]) == 0
    (out / "mine.txt").write_text("my notes")
    before = snapshot(out)
    expect_error(capsys, main(["samples", option, str(out)]), "already holds", "--overwrite")
    assert snapshot(out) == before
    assert main(["samples", option, str(out), "--overwrite"]) == 0
    assert (out / "mine.txt").read_text() == "my notes"


# --- items 4, 5 and 6: training runs ------------------------------------------------------------------


def train_args(out, *extra) -> list[str]:
    return ["train", "--out", str(out), "--synthetic", "1", "--synthetic-val", "0", "--preset",
            "demo-resnet18", "--no-progress", "--set", "crop_size=64", "--set", "batch_size=1",
            "--set", "bn_calibration=1", "--set", "log_every=1", "--set", "warmup_steps=1",
            "--set", "model.decoder_dim=8", "--set", "model.key_dim_r4=8",
            "--set", "model.value_dim_r4=8", "--set", "model.key_dim_r3=8",
            "--set", "model.value_dim_r3=8", "--set", "model.key_dim_r2=8",
            "--set", "model.value_dim_r2=8", "--set", "topk_r3=4", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_train_into_an_existing_run_needs_overwrite(tmp_path, capsys, one_thread):
    out = tmp_path / "run"
    assert main(train_args(out, "--set", "steps=2", "--set", "ckpt_every=1")) == 0
    before = snapshot(out)
    code = main(train_args(out, "--set", "steps=2", "--set", "ckpt_every=1"))
    expect_error(capsys, code, "already holds best.pth, log.csv, state.pth", "--overwrite")
    assert snapshot(out) == before
    assert main(train_args(out, "--set", "steps=2", "--set", "ckpt_every=1", "--overwrite")) == 0


def test_a_diverging_run_stops_and_keeps_the_last_finite_checkpoint(tmp_path, capsys, one_thread):
    """Item 5: lr=1e9 gives a non-finite loss or gradient within a few steps."""
    import torch

    out = tmp_path / "run"
    code = main(train_args(out, "--set", "steps=50", "--set", "lr=1e9", "--set", "ckpt_every=1",
                           "--set", "grad_clip=none"))  # fmt: skip
    err = expect_error(capsys, code, "training diverged at step", "Kept:")
    assert "done" not in capsys.readouterr().out
    step = int(err.split("training diverged at step ")[1].split(":")[0])
    assert step < 50
    if (out / "state.pth").exists():
        state = torch.load(out / "state.pth", weights_only=False)
        assert state["step"] == step - 1
        assert all(
            torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point()
        )
    if (out / "best.pth").exists():
        best = torch.load(out / "best.pth", weights_only=False)["state_dict"]
        assert all(torch.isfinite(v).all() for v in best.values() if v.is_floating_point())


def test_resume_after_a_kill_logs_each_step_once(tmp_path, one_thread):
    """Item 6: rows logged after the last checkpoint (then kill -9) are not repeated."""
    import csv

    out = tmp_path / "run"
    assert main(train_args(out, "--set", "steps=4", "--set", "ckpt_every=2")) == 0
    with (out / "log.csv").open("a", newline="") as fh:  # as if steps 5, 6 ran, then kill -9
        csv.writer(fh).writerows([[5, 1, 1, 0, "video", 0.5], [6, 1, 1, 0, "video", 0.5]])
    import torch

    state = torch.load(out / "state.pth", weights_only=False)
    state["step"] = 2  # the last checkpoint was at step 2
    torch.save(state, out / "state.pth")
    assert main(train_args(out, "--set", "steps=4", "--set", "ckpt_every=2", "--resume")) == 0
    steps = [row[0] for row in csv.reader((out / "log.csv").open())][1:]
    assert steps == ["1", "2", "3", "4"]


def test_resume_with_other_settings_is_refused(tmp_path, capsys, one_thread):
    out = tmp_path / "run"
    assert main(train_args(out, "--set", "steps=2", "--set", "ckpt_every=1")) == 0
    before = snapshot(out)
    code = main(train_args(out, "--set", "steps=2", "--set", "ckpt_every=1", "--resume",
                           "--set", "variant=stm", "--set", "lr=5e-3"))  # fmt: skip
    expect_error(capsys, code, "other settings", "lr: 0.0001 in the run, 0.005 asked",
                 "variant: 'hmmn' in the run, 'stm' asked")  # fmt: skip
    assert snapshot(out) == before


@pytest.mark.parametrize("content", ["empty", "garbage", "best"])
def test_resume_from_a_bad_state_names_the_file(tmp_path, capsys, content, tiny_model):
    from hmmnlab.weights import save_checkpoint

    out = tmp_path / "run"
    out.mkdir()
    state = out / "state.pth"
    if content == "empty":
        state.write_bytes(b"")
    elif content == "garbage":
        state.write_bytes(b"12345 not a state")
    else:
        save_checkpoint(tiny_model, state)  # a best.pth copied over the state
    code = main(train_args(out, "--resume"))
    expect_error(capsys, code, f"--resume: {state}")


# --- item 8: YouTube-VOS meta types -------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda o: o.update(category=7), "category must be a string, found 7 (int)"),
        (lambda o: o.update(frames=[0, 5]), "frames must be frame names"),
    ],
)
def test_youtube_meta_fields_are_typed(youtube_root, tmp_path, change, message):
    import json
    import shutil

    from hmmnlab.data.youtube import YouTubeVOS

    root = tmp_path / "yt"
    shutil.copytree(youtube_root / "train", root / "train")
    meta = json.loads((root / "train" / "meta.json").read_text())
    video = next(iter(meta["videos"]))
    change(meta["videos"][video]["objects"]["1"])
    (root / "train" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=re.escape(f"video {video!r}: object 1: {message}")):
        YouTubeVOS(root, split="train")


def test_youtube_meta_two_spellings_of_one_object_id(youtube_root, tmp_path):
    import json
    import shutil

    from hmmnlab.data.youtube import YouTubeVOS

    root = tmp_path / "yt"
    shutil.copytree(youtube_root / "train", root / "train")
    meta = json.loads((root / "train" / "meta.json").read_text())
    video = next(iter(meta["videos"]))
    objects = meta["videos"][video]["objects"]
    objects["01"] = objects["1"]
    (root / "train" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="'1' and '01' are both object 1"):
        YouTubeVOS(root, split="train")


def test_unseen_categories_with_a_number_category_is_a_message(youtube_root, tiny_weights, tmp_path,
                                                               capsys):  # fmt: skip
    import json
    import shutil

    root = tmp_path / "yt"
    shutil.copytree(youtube_root / "train", root / "train")
    meta = json.loads((root / "train" / "meta.json").read_text())
    next(iter(meta["videos"].values()))["objects"]["1"]["category"] = 3
    (root / "train" / "meta.json").write_text(json.dumps(meta))
    code = main(["eval", "--dataset", "youtube-vos", "--root", str(root), "--split", "train",
                 "--weights", str(tiny_weights), "--out", str(tmp_path / "o"),
                 "--unseen-categories", "cat"])  # fmt: skip
    expect_error(capsys, code, "category must be a string")


# --- item 9: read-only or file --out -------------------------------------------------------------------


@pytest.fixture
def read_only(monkeypatch):
    """Folders named 'locked' are not writable (the tests run as root, where chmod is no guard)."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and Path(path).name == "locked":
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(records.os, "access", access)


def test_a_read_only_out_is_a_message_in_every_command(davis, tiny_weights, tmp_path, capsys,
                                                       read_only, one_thread):  # fmt: skip
    locked = tmp_path / "locked"
    locked.mkdir()
    commands = {
        "eval": ["eval", "--root", str(davis), "--year", "2017", "--weights", str(tiny_weights),
                 "--out", str(locked)],
        "score": ["score", "--root", str(davis), "--year", "2017", "--pred", str(davis),
                  "--out", str(locked)],
        "ablate": ["ablate", "--root", str(davis), "--year", "2017", "--weights",
                   str(tiny_weights), "--out", str(locked), "--variants", "stm"],
        "samples": ["samples", "--out", str(locked)],
        "train": train_args(locked),
    }  # fmt: skip
    for name, argv in commands.items():
        expect_error(capsys, main(argv), f"{locked} is not writable")
        assert list(locked.iterdir()) == [], name


@pytest.mark.parametrize("command", ["eval", "demo"])
def test_an_out_that_is_a_file_is_a_message(davis, tiny_weights, tmp_path, capsys, command):
    out = tmp_path / "a-file"
    out.write_text("mine")
    if command == "eval":
        code = run_eval(davis, tiny_weights, out)
    else:
        code = main(["demo", "--out", str(out), "--quick", "--quiet"])
    expect_error(capsys, code, "expected a folder, found a file")
    assert out.read_text() == "mine"


def test_an_os_error_mid_run_is_a_message_naming_the_file(video, tiny_weights, capsys, monkeypatch):
    import hmmnlab.evaluation.segment as segment_module

    def denied(path, labels):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(segment_module, "write_label_png", denied)
    expect_error(capsys, segment(video, tiny_weights), "cannot write", "00000.png")


# --- item 10: a full disk -------------------------------------------------------------------------------


def test_save_probs_on_a_full_disk_leaves_no_truncated_file(video, tiny_weights, capsys,
                                                           monkeypatch):  # fmt: skip
    def full(file, **arrays):
        file.write(b"PK\x03\x04 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full)
    code = segment(video, tiny_weights, "--save-probs", str(video / "p.npz"))
    expect_error(capsys, code, f"no space left on the device holding {video / 'p.npz'}")
    assert not (video / "p.npz").exists()
    assert not list(video.glob(".p.*"))
    code = trace(video, tiny_weights, video / "t.npz")
    expect_error(capsys, code, "no space left on the device holding")
    assert not (video / "t.npz").exists() and not list(video.glob(".t.*"))


def test_eval_on_a_full_disk_leaves_no_timing_temporary(davis, tiny_weights, tmp_path, capsys,
                                                        monkeypatch):  # fmt: skip
    from pathlib import Path as P

    real = P.write_text

    def full(self, *args, **kwargs):
        if self.name.endswith(".tmp.json"):
            real(self, "{", **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(P, "write_text", full)
    out = tmp_path / "eval"
    expect_error(capsys, run_eval(davis, tiny_weights, out), "no space left on the device holding")
    assert not [p.name for p in (out / "timing").iterdir()]


# --- item 11: Ray ---------------------------------------------------------------------------------------


def test_ray_at_a_closed_port_fails_fast_naming_the_address_and_releases_the_lock(
    davis, tiny_weights, tmp_path, capsys
):
    import time

    pytest.importorskip("ray")
    out = tmp_path / "ab"
    start = time.monotonic()
    code = main(["ablate", "--root", str(davis), "--year", "2017", "--weights", str(tiny_weights),
                 "--out", str(out), "--variants", "stm", "--no-progress",
                 "--ray", "127.0.0.1:1"])  # fmt: skip
    expect_error(capsys, code, "cannot reach the Ray cluster at 127.0.0.1:1")
    assert time.monotonic() - start < 60
    with records.output_lock(out, command="test"):  # released
        pass


def test_ray_addresses_are_parsed():
    from hmmnlab.ablation import ray_host_port

    assert ray_host_port("auto") is None
    assert ray_host_port("127.0.0.1:1") == ("127.0.0.1", 1)
    assert ray_host_port("ray://127.0.0.1:10001") == ("127.0.0.1", 10001)
    assert ray_host_port("127.0.0.1") == ("127.0.0.1", 6379)
    with pytest.raises(ValueError, match="expected auto"):
        ray_host_port("127.0.0.1:port")


# --- item 12: the small ones ----------------------------------------------------------------------------


def test_read_fine_none_as_the_readme_documents(video, tiny_weights):
    from hmmnlab.config import ReadConfig, parse_fields

    assert parse_fields(["fine=none"], ReadConfig, option="--read") == {"fine": "none"}
    assert segment(video, tiny_weights, "--read", "fine=none") == 0


def test_trace_of_a_one_frame_video(video, tiny_weights, capsys):
    for path in sorted((video / "frames").iterdir())[1:]:
        path.unlink()
    code = trace(video, tiny_weights, video / "t.npz")
    err = expect_error(capsys, code, "has 1 frame: nothing to trace")
    assert "1..0" not in err


def test_score_says_how_many_predictions_are_missing(davis, tmp_path, capsys):
    pred = tmp_path / "pred"
    (pred / "blob").mkdir(parents=True)
    code = main(["score", "--root", str(davis), "--year", "2017", "--pred", str(pred), "--out",
                 str(tmp_path / "o"), "--allow-missing"])  # fmt: skip
    expect_error(capsys, code, "every one of the 3 prediction PNG(s) is missing")
    write_label_png(pred / "blob" / "00001.png", read_label_png(davis / "Annotations" / "480p"
                                                                / "blob" / "00001.png"))  # fmt: skip
    assert main(["score", "--root", str(davis), "--year", "2017", "--pred", str(pred), "--out",
                 str(tmp_path / "o"), "--allow-missing"]) == 0  # fmt: skip
    assert "2 of 3 prediction PNG(s) missing" in capsys.readouterr().err


def test_a_one_by_one_frame_is_one_by_one(tmp_path, tiny_weights):
    """Before: "first-frame mask is (1, 1) (H x W) but frame 0 is (1, 3)"."""
    from hmmnlab.inference import to_frame_tensor

    assert tuple(to_frame_tensor(np.full((1, 1, 3), 100, np.uint8)).shape) == (3, 1, 1)
    assert tuple(to_frame_tensor(np.full((3, 5, 3), 100, np.uint8)).shape) == (3, 3, 5)
    (tmp_path / "frames").mkdir()
    for t in range(2):
        Image.fromarray(np.full((1, 1, 3), 100, np.uint8)).save(tmp_path / "frames" / f"{t}.png")
    write_label_png(tmp_path / "mask.png", np.ones((1, 1), np.uint8))
    assert segment(tmp_path, tiny_weights) == 0


def test_a_hook_returning_indices_out_of_range_is_named(tiny_model):
    from hmmnlab.inference import propagate

    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    labels = np.zeros((32, 32), np.uint8)
    labels[4:12, 4:12] = 1
    hooks = {"r3.topk_indices": lambda v, c: v + 10**6}
    with pytest.raises(ValueError, match="r3.topk_indices"):
        list(propagate(tiny_model, frames, labels, hooks=hooks))
    hooks = {"r3.topk_indices": lambda v, c: v - 10**6}
    with pytest.raises(ValueError, match=r"hook on r3.topk_indices \(frame 1\) returned negative"):
        list(propagate(tiny_model, frames, labels, hooks=hooks))
