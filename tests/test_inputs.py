"""Frame and mask files are decoded as their format means, or refused with a message (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hmmnlab.data.frames import FrameFolder, read_rgb
from hmmnlab.data.palette import davis_palette, read_label_png


def test_16_bit_grey_frames_are_scaled_not_white(tmp_path):
    """Item 5: PIL's own conversion clips 16-bit grey to 255 (all white)."""
    values = np.linspace(0, 65535, 40 * 56).reshape(40, 56).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    rgb = read_rgb(tmp_path / "grey16.png")
    assert rgb.shape == (40, 56, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], np.round(values / 257).astype(np.uint8))
    assert rgb.min() == 0 and rgb.max() == 255


def test_rgb_mask_in_the_davis_palette_gives_palette_indices(tmp_path):
    """Item 5: two colours of equal luminance are two objects, not one luminance value."""
    labels = np.zeros((20, 30), np.uint8)
    labels[2:8, 2:8] = 1
    labels[10:18, 10:28] = 3
    Image.fromarray(davis_palette()[labels]).save(tmp_path / "rgb.png")  # saved as RGB
    np.testing.assert_array_equal(read_label_png(tmp_path / "rgb.png"), labels)


def test_rgb_mask_with_other_colours_is_refused(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:5, :5] = (255, 0, 0)  # pure red and pure blue have one luminance each, not a label
    rgb[10:, 10:] = (0, 200, 55)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with pytest.raises(
        ValueError, match=r"colours that are not the DAVIS palette's.*\(255, 0, 0\)"
    ):
        read_label_png(tmp_path / "rgb.png")


def test_black_and_white_rgb_mask_is_one_object(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[5:10, 5:10] = 255
    Image.fromarray(rgb).save(tmp_path / "bw.png")
    assert set(np.unique(read_label_png(tmp_path / "bw.png")).tolist()) == {0, 1}


def test_16_bit_masks(tmp_path):
    """Item 5: 16-bit values >= 255 used to become 255 (void)."""
    labels = np.zeros((20, 30), np.uint16)
    labels[:5, :5] = 1
    labels[10:, 10:] = 300
    Image.fromarray(labels).save(tmp_path / "m16.png")
    with pytest.raises(ValueError, match=r"expected label values 0\.\.255.*found 0\.\.300"):
        read_label_png(tmp_path / "m16.png")
    labels[10:, 10:] = 2
    Image.fromarray(labels).save(tmp_path / "m16.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "m16.png"), labels)
    binary = (labels > 0).astype(np.uint16) * 65535  # a 16-bit 0/65535 mask: one object
    Image.fromarray(binary).save(tmp_path / "b16.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "b16.png"), labels > 0)


def test_frames_are_in_natural_order(tmp_path):
    """Item 7: 1, 2, ..., 10, 11 and not 1, 10, 11, 2."""
    for t in (1, 2, 10, 11, 3):
        Image.fromarray(np.full((8, 8, 3), t, np.uint8)).save(tmp_path / f"{t}.png")
    folder = FrameFolder(tmp_path)
    assert folder.stems == ["1", "2", "3", "10", "11"]
    assert [int(frame[0, 0, 0]) for frame in folder] == [1, 2, 3, 10, 11]
