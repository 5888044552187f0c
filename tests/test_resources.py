"""A video too big for the machine is refused up front, with the estimate (issue 13 item 11)."""

from __future__ import annotations

import pytest

from hmmnlab.config import ReadConfig, preset
from hmmnlab.evaluation.resources import check_memory, max_memory_frames, peak_bytes


def test_memory_frames_follow_the_schedule():
    read = ReadConfig()  # mem_every 5
    assert [max_memory_frames(n, read) for n in (1, 2, 3, 7, 8, 12)] == [0, 1, 2, 2, 3, 3]
    assert max_memory_frames(100, ReadConfig(max_memory_frames=4)) == 4


def test_4k_two_frame_video_estimate():
    """3840 x 2160: 240 x 135 r4 positions; one object, one memory frame: 4.2 GB per r4 tensor."""
    need = peak_bytes(2160, 3840, 1, 2, ReadConfig())
    hw = 240 * 135
    assert need >= 3 * hw * hw * 4 > 12e9


def test_refused_with_the_estimate(monkeypatch):
    import hmmnlab.evaluation.resources as resources

    monkeypatch.setattr(resources, "available_bytes", lambda device: 2 * 2**30)
    with pytest.raises(ValueError, match=r"needs about \d+\.\d GiB .* cpu has 2\.0 GiB free"):
        check_memory(2160, 3840, 1, 2, ReadConfig(), device="cpu", what="the 4K video")
    demo = preset("demo")
    check_memory(480, 854, 2, 60, ReadConfig(), device="cpu", model=demo)  # 480p fits in 2 GiB


def test_segment_refuses_before_loading_the_model(tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    import hmmnlab.evaluation.resources as resources
    from hmmnlab.commands.cli import main
    from hmmnlab.data.palette import write_label_png

    (tmp_path / "frames").mkdir()
    for t in range(2):
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "frames" / f"{t}.png")
    labels = np.zeros((64, 64), np.uint8)
    labels[10:20, 10:20] = 1
    write_label_png(tmp_path / "mask.png", labels)
    monkeypatch.setattr(resources, "available_bytes", lambda device: 1000)
    code = main(["segment", "--weights", str(tmp_path / "absent.pth"), "--frames",
                 str(tmp_path / "frames"), "--first-mask", str(tmp_path / "mask.png"),
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2
    assert "needs about" in capsys.readouterr().err  # not "checkpoint not found": checked first
