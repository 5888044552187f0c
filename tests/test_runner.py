"""The one runner (hmmnlab.evaluation.runner) over the Video protocol: every reader implements the
protocol, and a new dataset is a reader plus a layout, resumed and re-run like DAVIS and
YouTube-VOS."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from hmmnlab.config import ReadConfig
from hmmnlab.data.palette import read_label_png, write_label_png
from hmmnlab.data.video import ArrayVideo, Video
from hmmnlab.evaluation import runner
from hmmnlab.evaluation.records import read_record, run_settings
from hmmnlab.inference import propagate

SIZE = (32, 48)  # H x W


def moving_square(name: str, frames: int = 5, *, late: bool = False) -> ArrayVideo:
    """A square of object 1 moving right; with ``late``, object 2 enters at frame 2."""
    rng = np.random.default_rng(len(name))
    background = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    images = np.repeat(background[None], frames, axis=0)  # T x H x W x 3
    for t in range(frames):
        images[t, 8:20, 4 + 3 * t : 16 + 3 * t] = (250, 30, 30)
    labels = np.zeros(SIZE, np.uint8)
    labels[8:20, 4:16] = 1
    entering = {}
    if late:
        images[2:, 22:30, 30:40] = (30, 30, 250)
        entering[2] = np.zeros(SIZE, np.uint8)
        entering[2][22:30, 30:40] = 2
    return ArrayVideo(name, images, labels, entering)


@dataclasses.dataclass(frozen=True)
class EveryOtherFrame:
    """A layout of a dataset of our own: ``OUT/masks/<video>/<frame>.png`` for even frames only."""

    def masks_dir(self, out: Path, video: Video) -> Path:
        return out / "masks" / video.name

    def frames(self, video: Video) -> tuple[str, ...]:
        return tuple(video.frame_names[::2])

    def open(self, out: Path, video: Video) -> runner.MaskWriter:
        return runner.PngWriter(self.masks_dir(out, video), video, self.frames(video), clear=True)

    def same_settings(self, found: dict, wanted: dict) -> bool:
        return found == wanted


def run(model, videos, out, layout, read=None, **extra):
    read = read or ReadConfig()
    settings = run_settings(model, read, resolution="own", overlays=False)
    return runner.segment_videos(model, videos, out, layout, read=read, settings=settings,
                                 device=torch.device("cpu"), progress=False, **extra)  # fmt: skip


def test_every_reader_is_a_video(tmp_path):
    from PIL import Image

    from hmmnlab.data.davis import DavisDataset
    from hmmnlab.data.synthetic import write_youtube_vos
    from hmmnlab.data.youtube import YouTubeVOS

    root = tmp_path / "davis"
    video = moving_square("blob", frames=3)
    for t in range(3):
        (root / "JPEGImages" / "480p" / "blob").mkdir(parents=True, exist_ok=True)
        Image.fromarray(video.frame(t)).save(root / "JPEGImages" / "480p" / "blob" / f"{t:05d}.jpg")
        write_label_png(root / "Annotations" / "480p" / "blob" / f"{t:05d}.png", video.labels)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("blob\n")
    davis = DavisDataset(root, year=2017, split="val")
    write_youtube_vos(tmp_path / "ytvos")
    youtube = YouTubeVOS(tmp_path / "ytvos", split="train")
    videos = [davis[davis.sequences[0]], next(iter(youtube)), moving_square("a")]
    for video in videos:
        assert isinstance(video, Video), type(video)
        assert video.first_labels().shape == video.size == video.frame(0).shape[:2]
        assert len(video.frame_names) == len(video) and video.num_objects >= 1
    assert videos[0].new_objects() == {}  # DAVIS: every object in frame 0
    assert not isinstance(object(), Video)


def test_a_new_dataset_is_a_reader_and_a_layout(tmp_path, tiny_model):
    videos = [moving_square("a"), moving_square("bb", late=True)]
    out = tmp_path / "run"
    records = run(tiny_model, videos, out, EveryOtherFrame())
    assert set(records) == {"a", "bb"}
    for video in videos:
        folder = out / "masks" / video.name
        assert sorted(p.stem for p in folder.glob("*.png")) == ["00000", "00002", "00004"]
        expected = list(propagate(tiny_model, video, video.first_labels(),
                                  new_objects=video.new_objects() or None, read=ReadConfig()))  # fmt: skip
        for t in (0, 2, 4):
            found = read_label_png(folder / f"{video.frame_names[t]}.png", binary=False)
            np.testing.assert_array_equal(found, expected[t].labels.numpy())
        assert records[video.name]["masks"] == 3 and records[video.name]["frames"] == 5
    late = read_label_png(out / "masks" / "bb" / "00002.png", binary=False)
    assert (late == 2).any()  # the object entering at frame 2 is segmented from there


def test_a_finished_video_is_kept_and_other_settings_redo_it(tmp_path, tiny_model):
    videos, layout, out = [moving_square("a")], EveryOtherFrame(), tmp_path / "run"
    run(tiny_model, videos, out, layout)
    mask = out / "masks" / "a" / "00002.png"
    stamp = mask.stat().st_mtime_ns
    run(tiny_model, videos, out, layout)
    assert mask.stat().st_mtime_ns == stamp  # finished with the same settings: not redone
    run(tiny_model, videos, out, layout, read=ReadConfig(variant="stm"))
    assert mask.stat().st_mtime_ns != stamp
    assert read_record(out, "a")["read"]["variant"] == "stm"
    stamp = mask.stat().st_mtime_ns
    run(tiny_model, videos, out, layout, read=ReadConfig(variant="stm"), overwrite=True)
    assert mask.stat().st_mtime_ns != stamp


def test_a_missing_mask_or_record_means_not_finished(tmp_path, tiny_model):
    video, layout, out = moving_square("a"), EveryOtherFrame(), tmp_path / "run"
    run(tiny_model, [video], out, layout)
    settings = read_record(out, "a")["settings"]
    assert runner.is_finished(out, video, layout, settings)
    assert not runner.is_finished(out, video, layout, {**settings, "dtype": "bfloat16"})
    (out / "masks" / "a" / "00004.png").unlink()
    assert not runner.is_finished(out, video, layout, settings)
    run(tiny_model, [video], out, layout)
    (out / "timing" / "a.json").write_text("")  # a run killed while writing its record
    assert not runner.is_finished(out, video, layout, settings)


def test_a_layout_that_clears_removes_an_old_runs_extra_masks(tmp_path, tiny_model):
    video, out = moving_square("a"), tmp_path / "run"
    stale = out / "masks" / "a" / "00001.png"
    stale.parent.mkdir(parents=True)
    write_label_png(stale, np.zeros(SIZE, np.uint8))
    run(tiny_model, [video], out, EveryOtherFrame())
    assert not stale.exists()


def test_the_davis_layout_lets_overlays_serve_a_run_without():
    layout, settings = runner.DavisLayout(), {"read": {}, "overlays": False}
    assert layout.same_settings({**settings, "overlays": True}, settings)
    assert not layout.same_settings(settings, {**settings, "overlays": True})
    assert not layout.same_settings({**settings, "read": {"k": 1}}, settings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"frames": np.zeros((3, 8, 8), np.uint8)}, "T x H x W x 3 uint8"),
        ({"frames": np.zeros((0, 8, 8, 3), np.uint8)}, "has no frames"),
        ({"labels": np.zeros((4, 4), np.uint8)}, "the labels of frame 0"),
        ({"entering": {1: np.zeros((4, 4), np.uint8)}}, "the labels of 1"),
        ({"names": ["x"]}, "1 frame names for 2 frames"),
    ],
)
def test_an_array_video_names_what_is_wrong(change, message):
    fields = {"name": "v", "frames": np.zeros((2, 8, 8, 3), np.uint8),
              "labels": np.zeros((8, 8), np.uint8)}  # fmt: skip
    with pytest.raises(ValueError, match=message):
        ArrayVideo(**{**fields, **change})


def test_youtube_eval_runs_the_read_the_weights_carry(tmp_path, tiny_model):
    """As DAVIS's eval: without a read given, the read the model's weights carry (it ran the
    authors' read)."""
    from hmmnlab.data.synthetic import write_youtube_vos
    from hmmnlab.evaluation.youtube import evaluate

    write_youtube_vos(tmp_path / "ytvos")
    carried = ReadConfig(variant="stm")
    tiny_model.default_read = carried
    try:
        evaluate(tiny_model, tmp_path / "ytvos", tmp_path / "out", split="valid",
                 videos=None, progress=False)  # fmt: skip
    finally:
        del tiny_model.default_read
    names = [p.stem for p in (tmp_path / "out" / "timing").glob("*.json")]
    assert names and all(
        read_record(tmp_path / "out", n)["read"] == carried.to_dict() for n in names
    )
