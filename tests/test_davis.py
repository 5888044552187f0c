"""The DAVIS reader: real DAVIS-2016 files (../shared/data) and tiny layouts built in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hmmnlab.data.davis import DavisDataset, DavisSequence
from hmmnlab.data.palette import write_label_png

# --- builders of tiny DAVIS folders ---------------------------------------------------------------


def _write_jpg(path: Path, height: int, width: int, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = value  # red channel: checks RGB (not BGR) order
    Image.fromarray(rgb).save(path, quality=95)


def _write_grey_png(path: Path, labels01: np.ndarray) -> None:
    """A DAVIS-2016 style mask: greyscale PNG with 0/255."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((labels01 > 0).astype(np.uint8) * 255, mode="L").save(path)


def _make_2017(root: Path, *, resolution: str = "480p", frames: int = 3) -> np.ndarray:
    """A DAVIS-2017 folder with sequences 'two' (2 objects + void) and 'one'. Returns the label
    maps of 'two' (T x H x W)."""
    height, width = 12, 16
    labels = np.zeros((frames, height, width), np.uint8)
    labels[:, 2:6, 2:6] = 1
    labels[:, 7:10, 9:14] = 2
    labels[:, 6, :] = 255  # a void line
    for t in range(frames):
        _write_jpg(root / "JPEGImages" / resolution / "two" / f"{t:05d}.jpg", height, width)
        write_label_png(root / "Annotations" / resolution / "two" / f"{t:05d}.png", labels[t])
        _write_jpg(root / "JPEGImages" / resolution / "one" / f"{t:05d}.jpg", height, width)
        write_label_png(
            root / "Annotations" / resolution / "one" / f"{t:05d}.png", (labels[t] == 1) * 1
        )
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("two\none\n")
    (sets / "train.txt").write_text("one\n")
    return labels


def _make_2016(root: Path, *, list_style: str) -> np.ndarray:
    """A DAVIS-2016 folder (0/255 greyscale masks) with sequences 'cat' and 'dog'; the split file
    is ``ImageSets/480p/val.txt`` (image and mask paths) or ``ImageSets/2016/val.txt`` (names)."""
    height, width = 10, 14
    masks = np.zeros((4, height, width), np.uint8)
    for t in range(4):
        masks[t, 3:7, t : t + 5] = 1
    lines = []
    for name in ("cat", "dog"):
        for t in range(4):
            _write_jpg(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", height, width)
            _write_grey_png(root / "Annotations" / "480p" / name / f"{t:05d}.png", masks[t])
            lines.append(
                f"/JPEGImages/480p/{name}/{t:05d}.jpg /Annotations/480p/{name}/{t:05d}.png"
            )
    if list_style == "480p":
        (root / "ImageSets" / "480p").mkdir(parents=True)
        (root / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")
    else:
        (root / "ImageSets" / "2016").mkdir(parents=True)
        (root / "ImageSets" / "2016" / "val.txt").write_text("cat\ndog\n")
    return masks


# --- real data ------------------------------------------------------------------------------------


def test_real_davis2016(shared_davis):
    dataset = DavisDataset(shared_davis, year=2016, split="train", resolution="240p")
    assert len(dataset) == 30 and dataset.sequences[0] == "bear"
    seq = dataset["bear"]
    assert isinstance(seq, DavisSequence)
    assert len(seq) == 82 and len(seq.mask_paths) == 82
    assert seq.frame_names[:2] == ("00000", "00001") and seq.mask_names == seq.frame_names
    assert seq.size == (240, 427)
    frame = seq.frame(3)
    assert frame.shape == (240, 427, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(seq[3], frame)
    as_float = seq.frame_float(3)
    assert as_float.shape == (3, 240, 427) and as_float.dtype == np.float32
    np.testing.assert_allclose(as_float, frame.transpose(2, 0, 1) / 255.0, atol=1e-6)
    first = seq.first_mask()
    assert first.shape == (240, 427) and set(np.unique(first).tolist()) == {0, 1}
    assert seq.num_objects == 1
    frames = seq.frames()
    assert isinstance(frames, Iterator)  # lazy: nothing read until asked
    np.testing.assert_array_equal(next(frames), seq.frame(0))


def test_real_masks_stack(shared_davis):
    seq = DavisDataset(shared_davis, year=2016, split="train", resolution="240p")["dog-agility"]
    masks = seq.masks()
    assert masks.shape == (25, 240, 427) and masks.dtype == np.uint8
    assert set(np.unique(masks).tolist()) == {0, 1}
    assert masks.sum() > 0


# --- tiny layouts ---------------------------------------------------------------------------------


def test_davis2017_layout_with_void(tmp_path):
    labels = _make_2017(tmp_path)
    dataset = DavisDataset(tmp_path, year=2017, split="val")
    assert dataset.sequences == ["two", "one"]  # split-file order
    seq = dataset["two"]
    assert len(seq) == 3 and seq.num_objects == 2
    masks = seq.masks()
    np.testing.assert_array_equal(masks, labels)  # void 255 kept
    assert set(np.unique(masks).tolist()) == {0, 1, 2, 255}
    rgb = seq.frame(0)
    assert rgb.shape == (12, 16, 3)
    assert abs(int(rgb[..., 0].mean()) - 100) <= 2 and rgb[..., 2].max() <= 2  # RGB order
    assert [f.shape for f in seq] == [(12, 16, 3)] * 3
    assert [f.shape for f in seq.frames(as_float=True)] == [(3, 12, 16)] * 3
    assert DavisDataset(tmp_path, year=2017, split="train").sequences == ["one"]
    assert dataset["one"].num_objects == 1


def test_other_resolution_folder(tmp_path):
    _make_2017(tmp_path, resolution="Full-Resolution")
    dataset = DavisDataset(tmp_path, year="2017", split="val", resolution="Full-Resolution")
    assert dataset.year == 2017 and len(dataset["two"]) == 3


@pytest.mark.parametrize("list_style", ["480p", "2016"])
def test_davis2016_layouts(tmp_path, list_style):
    masks = _make_2016(tmp_path, list_style=list_style)
    dataset = DavisDataset(tmp_path, year=2016, split="val", resolution="480p")
    assert dataset.sequences == ["cat", "dog"]
    assert dataset.split_file.parent.name == list_style
    seq = dataset["dog"]
    np.testing.assert_array_equal(seq.masks(), masks)  # 0/255 read as 0/1
    assert seq.num_objects == 1 and len(seq) == 4


# --- errors ---------------------------------------------------------------------------------------


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="DAVIS root folder not found"):
        DavisDataset(tmp_path / "nowhere")


def test_unknown_split_lists_what_exists(tmp_path):
    _make_2017(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"unknown split 'test'.*found: .*2017/train\.txt"):
        DavisDataset(tmp_path, year=2017, split="test")


def test_unknown_resolution_lists_what_exists(tmp_path):
    _make_2017(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"resolutions found: 480p"):
        DavisDataset(tmp_path, year=2017, split="val", resolution="1080p")


def test_bad_year(tmp_path):
    _make_2017(tmp_path)
    with pytest.raises(ValueError, match=r"year must be one of \(2016, 2017\), found 2019"):
        DavisDataset(tmp_path, year=2019)


def test_listed_sequence_missing(tmp_path):
    _make_2017(tmp_path)
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("two\nghost\none\n")
    with pytest.raises(FileNotFoundError, match=r"1 sequence\(s\) listed .* no frames.*: ghost$"):
        DavisDataset(tmp_path, year=2017, split="val")


def test_unknown_sequence_name(tmp_path):
    _make_2017(tmp_path)
    dataset = DavisDataset(tmp_path, year=2017, split="val")
    with pytest.raises(KeyError, match="no sequence 'three'.*two, one"):
        dataset["three"]


def test_frames_of_different_sizes(tmp_path):
    _make_2017(tmp_path)
    _write_jpg(tmp_path / "JPEGImages" / "480p" / "two" / "00002.jpg", 12, 20)
    seq = DavisDataset(tmp_path, year=2017, split="val")["two"]
    seq.frame(1)
    with pytest.raises(
        ValueError, match=r"different sizes: expected H x W = 12 x 16 .*found 12 x 20"
    ):
        seq.frame(2)


def test_mask_of_another_size(tmp_path):
    _make_2017(tmp_path)
    write_label_png(tmp_path / "Annotations" / "480p" / "one" / "00001.png", np.zeros((5, 5)))
    with pytest.raises(ValueError, match="different sizes"):
        DavisDataset(tmp_path, year=2017, split="val")["one"].masks()


def test_first_frame_without_annotation(tmp_path):
    _make_2017(tmp_path)
    (tmp_path / "Annotations" / "480p" / "one" / "00000.png").unlink()
    seq = DavisDataset(tmp_path, year=2017, split="val")["one"]
    with pytest.raises(FileNotFoundError, match=r"first frame 00000\.png, found 00001\.png"):
        seq.first_mask()


def test_malformed_split_line(tmp_path):
    _make_2017(tmp_path)
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("two\n/a/b.jpg /c/d.png /e/f\n")
    with pytest.raises(ValueError, match=r"line 2: expected a sequence name"):
        DavisDataset(tmp_path, year=2017, split="val")


# --- issue 13 ------------------------------------------------------------------------------------


def test_split_names_with_spaces(tmp_path):
    """Item 10: a name with a space used to be read as an "image mask" pair."""
    _make_2017(tmp_path)
    for kind in ("JPEGImages", "Annotations"):
        (tmp_path / kind / "480p" / "one").rename(tmp_path / kind / "480p" / "my video")
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("two\nmy video\n")
    dataset = DavisDataset(tmp_path, year=2017, split="val")
    assert dataset.sequences == ["two", "my video"]
    assert len(dataset["my video"]) == 3


def test_masks_only_dataset_needs_no_frames(tmp_path):
    """Item 12: scoring reads annotations only; JPEGImages may be absent or of another size."""
    labels = _make_2017(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "JPEGImages")
    dataset = DavisDataset(tmp_path, year=2017, split="val", frames=False)
    np.testing.assert_array_equal(dataset["two"].masks(), labels)
    assert dataset["two"].first_mask().shape == (12, 16)


def test_a_missing_sequence_blocks_only_when_asked_for(tmp_path):
    """Item 12: a split entry naming an absent sequence blocks only a run that asks for it."""
    _make_2017(tmp_path)
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("two\nghost\none\n")
    dataset = DavisDataset(tmp_path, year=2017, split="val", sequences=["two"])
    assert len(dataset["two"]) == 3
    with pytest.raises(FileNotFoundError, match="ghost"):
        DavisDataset(tmp_path, year=2017, split="val", sequences=["ghost"])
