"""The YouTube-VOS reader (hmmnlab.data.youtube) on the synthetic set of ``hmmnlab samples
--youtube-vos``: frames, meta, sparse validation annotations, full-rate frames, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hmmnlab.data.palette import read_label_png
from hmmnlab.data.synthetic import YOUTUBE_STRIDE, write_youtube_vos, youtube_vos_specs
from hmmnlab.data.youtube import YouTubeVOS

KEPT = 15  # kept frames per generated video


@pytest.fixture(scope="module")
def youtube_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("youtube") / "ytvos"
    write_youtube_vos(root)
    return root


@pytest.fixture
def copy_root(youtube_root, tmp_path) -> Path:
    """A copy of the generated set that a test may break."""
    root = tmp_path / "ytvos"
    shutil.copytree(youtube_root, root)
    return root


def test_the_generated_layout(youtube_root):
    names = [f"{YOUTUBE_STRIDE * i:05d}" for i in range(KEPT)]
    specs = youtube_vos_specs()
    for split in ("train", "valid"):
        meta = json.loads((youtube_root / split / "meta.json").read_text())
        assert list(meta["videos"]) == [s.video.name for s in specs[split]]
        for spec in specs[split]:
            frames = sorted(p.stem for p in (youtube_root / split / "JPEGImages" /
                                             spec.video.name).glob("*.jpg"))  # fmt: skip
            assert frames == names
    valid = specs["valid"][1]  # objects enter at kept frames 0, 3 and 8
    objects = json.loads((youtube_root / "valid" / "meta.json").read_text())["videos"]
    objects = objects[valid.video.name]["objects"]
    assert {k: (o["category"], o["frames"][0], len(o["frames"])) for k, o in objects.items()} == {
        "1": ("fish", "00000", 15), "2": ("cup", "00015", 12), "3": ("bird", "00040", 7),
    }  # fmt: skip
    annotations = youtube_root / "valid" / "Annotations" / valid.video.name
    assert sorted(p.stem for p in annotations.glob("*.png")) == ["00000", "00015", "00040"]
    # an annotation holds only the objects first appearing there
    assert set(np.unique(read_label_png(annotations / "00015.png"))) == {0, 2}
    full = youtube_root / "valid_all_frames" / "JPEGImages" / valid.video.name
    assert len(list(full.glob("*.jpg"))) == (KEPT - 1) * YOUTUBE_STRIDE + 1
    assert not (youtube_root / "train_all_frames").exists()
    # train: every kept frame annotated, an object absent (not drawn) before it enters
    train = youtube_root / "train" / "Annotations" / "train-1"
    assert len(list(train.glob("*.png"))) == KEPT
    assert 3 not in read_label_png(train / "00035.png") and 3 in read_label_png(train / "00040.png")


def test_the_generator_is_deterministic(youtube_root, tmp_path):
    again = tmp_path / "again"
    write_youtube_vos(again, {"valid": youtube_vos_specs()["valid"][:1]}, all_frames=False)
    for path in sorted((again / "valid").rglob("*.*")):
        if path.name != "meta.json":
            assert path.read_bytes() == (youtube_root / path.relative_to(again)).read_bytes()


def test_the_valid_split(youtube_root):
    dataset = YouTubeVOS(youtube_root, split="valid")
    assert dataset.videos == ["valid-0", "valid-1", "valid-2"] and not dataset.dense
    assert dataset.categories() == ["bird", "cup", "fish"]
    video = dataset["valid-1"]
    assert len(video) == KEPT and video.frame_names[:2] == ("00000", "00005")
    assert video.size == (96, 160) and video[3].shape == (96, 160, 3)
    assert video.object_ids == (1, 2, 3) and video.object(2).category == "cup"
    assert video.entering == {0: (1,), 3: (2,), 8: (3,)}
    assert video.annotation_names == ("00000", "00015", "00040")
    assert video.output_frames == video.frame_names  # the union of the objects' frames
    first, new = video.first_labels(), video.new_objects()
    assert set(np.unique(first)) == {0, 1} and list(new) == [3, 8]
    assert set(np.unique(new[3])) == {0, 2} and set(np.unique(new[8])) == {0, 3}
    together = dataset["valid-2"]
    assert together.entering == {0: (1,), 6: (2, 3)}
    assert set(np.unique(together.new_objects()[6])) == {0, 2, 3}


def test_the_train_split_gives_only_the_entering_objects(youtube_root):
    video = YouTubeVOS(youtube_root, split="train", videos=["train-1"])["train-1"]
    assert len(video.annotation_names) == KEPT
    stored = video.mask("00040")
    assert set(np.unique(stored)) == {0, 1, 2, 3}  # the full annotation
    assert set(np.unique(video.new_objects()[8])) == {0, 3}  # only the object entering there
    assert np.array_equal(video.new_objects()[8] == 3, stored == 3)


def test_all_frames_reads_the_full_rate_folder(youtube_root):
    sparse = YouTubeVOS(youtube_root, split="valid")["valid-0"]
    full = YouTubeVOS(youtube_root, split="valid", all_frames=True)["valid-0"]
    assert len(full) == (KEPT - 1) * YOUTUBE_STRIDE + 1 and full.frame_names[1] == "00001"
    assert full.entering == {0: (1,), 4 * YOUTUBE_STRIDE: (2,)}
    assert full.output_frames == sparse.output_frames  # the meta's frames, every 5th
    index = full.frame_names.index("00020")
    assert np.array_equal(full[index], sparse[4])  # the same frame in both folders
    with pytest.raises(FileNotFoundError, match="train_all_frames/JPEGImages"):
        YouTubeVOS(youtube_root, split="train", all_frames=True)


def meta_of(root: Path, split: str = "valid") -> dict:
    return json.loads((root / split / "meta.json").read_text())


def write_meta(root: Path, meta: dict, split: str = "valid") -> None:
    (root / split / "meta.json").write_text(json.dumps(meta))


def test_a_missing_meta_json_is_an_error(copy_root):
    (copy_root / "valid" / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"expected the YouTube-VOS meta data .*meta.json"):
        YouTubeVOS(copy_root, split="valid")


def test_a_missing_split_is_an_error(copy_root):
    with pytest.raises(FileNotFoundError, match=r"split 'test'.*folders found.*train, valid"):
        YouTubeVOS(copy_root, split="test")
    with pytest.raises(FileNotFoundError, match="looks like a split folder itself"):
        YouTubeVOS(copy_root / "valid", split="valid-0")


def test_a_video_of_the_meta_without_frames_is_an_error(copy_root):
    shutil.rmtree(copy_root / "valid" / "JPEGImages" / "valid-1")
    with pytest.raises(FileNotFoundError, match=r"video 'valid-1' of .*meta.json has no frames"):
        YouTubeVOS(copy_root, split="valid")
    assert YouTubeVOS(copy_root, split="valid", videos=["valid-0"]).videos == ["valid-0"]


def test_an_object_without_frames_is_an_error(copy_root):
    meta = meta_of(copy_root)
    meta["videos"]["valid-0"]["objects"]["2"]["frames"] = []
    write_meta(copy_root, meta)
    with pytest.raises(ValueError, match="video 'valid-0': object 2 lists no frames"):
        YouTubeVOS(copy_root, split="valid")


def test_a_video_without_objects_is_an_error(copy_root):
    meta = meta_of(copy_root)
    meta["videos"]["valid-0"]["objects"] = {}
    write_meta(copy_root, meta)
    with pytest.raises(ValueError, match="video 'valid-0' has no objects"):
        YouTubeVOS(copy_root, split="valid")


def test_a_meta_frame_without_its_jpeg_is_an_error(copy_root):
    (copy_root / "valid" / "JPEGImages" / "valid-0" / "00035.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"meta.json lists frame\(s\) 00035 but"):
        YouTubeVOS(copy_root, split="valid")


def test_a_missing_first_annotation_is_an_error(copy_root):
    (copy_root / "valid" / "Annotations" / "valid-1" / "00040.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"object 3 first appears at frame 00040 \(meta"):
        YouTubeVOS(copy_root, split="valid")


def test_an_annotation_without_the_object_is_an_error(copy_root):
    from hmmnlab.data.palette import write_label_png

    path = copy_root / "valid" / "Annotations" / "valid-1" / "00040.png"
    write_label_png(path, np.zeros((96, 160), np.uint8))
    video = YouTubeVOS(copy_root, split="valid")["valid-1"]
    with pytest.raises(
        ValueError, match=r"object\(s\) \[3\] first appear at frame 00040.*no pixel"
    ):
        video.new_objects()


def test_unknown_videos_are_an_error(youtube_root):
    with pytest.raises(ValueError, match=r"video\(s\) not in .*meta.json: nope"):
        YouTubeVOS(youtube_root, split="valid", videos=["nope"])


def test_samples_command_writes_the_set(tmp_path, capsys):
    from hmmnlab.commands.cli import main

    assert main(["samples", "--youtube-vos", str(tmp_path / "yt")]) == 0
    assert "3 train, 3 valid videos in the YouTube-VOS layout" in capsys.readouterr().out
    assert YouTubeVOS(tmp_path / "yt", split="valid", all_frames=True).videos
    assert main(["samples"]) == 2
    assert (
        "expected --out DIR (DAVIS layout), --youtube-vos DIR and/or --lookalikes DIR"
        in capsys.readouterr().err
    )
