"""Every command takes the bundled weights by name (``--weights demo`` / ``demo-stm``)."""

from __future__ import annotations

import numpy as np
import pytest

from hmmnlab.cli import main

SAMPLES = "data_samples"


@pytest.fixture(scope="module")
def short_twins(tmp_path_factory):
    """The first 3 frames of the twins sample, as a DAVIS root and as a frame folder."""
    from hmmnlab import ablation

    root = ablation.short_davis(SAMPLES, tmp_path_factory.mktemp("davis"), frames=3,
                                sequences=["twins"])  # fmt: skip
    return root


@pytest.mark.parametrize("name", ["demo", "demo-stm"])
def test_segment_and_trace_take_a_registered_name(name, short_twins, tmp_path):
    frames = short_twins / "JPEGImages" / "480p" / "twins"
    mask = short_twins / "Annotations" / "480p" / "twins" / "00000.png"
    args = ["--weights", name, "--frames", str(frames), "--first-mask", str(mask)]
    assert main(["segment", *args, "--out", str(tmp_path / "seg")]) == 0
    assert len(list((tmp_path / "seg").glob("*.png"))) == 3
    assert main(["trace", *args, "--frame", "2", "--out", str(tmp_path / "t.npz")]) == 0
    assert "r4.affinity" in np.load(tmp_path / "t.npz").files


def test_eval_and_ablation_take_a_registered_name(short_twins, tmp_path):
    from hmmnlab import ablation
    from hmmnlab.model.reads import read_variant

    args = ["eval", "--davis", str(short_twins), "--year", "2017", "--split", "val"]
    assert main([*args, "--weights", "demo-stm", "--variant", "stm", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "global_results.csv").is_file()
    table = ablation.run(short_twins, "demo-stm", variants=[("stm", read_variant("stm"))],
                         out=tmp_path / "ab", progress=False)  # fmt: skip
    assert table["J&F"].between(0, 1).all()


def test_unknown_name_lists_the_registered_ones(short_twins, tmp_path, capsys):
    frames = short_twins / "JPEGImages" / "480p" / "twins"
    mask = short_twins / "Annotations" / "480p" / "twins" / "00000.png"
    code = main(["segment", "--weights", "dmeo", "--frames", str(frames), "--first-mask",
                 str(mask), "--out", str(tmp_path / "x")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "registered" in err and "demo-stm" in err
