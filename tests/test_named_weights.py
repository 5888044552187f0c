"""Every command takes the bundled weights by name (``--weights demo`` / ``demo-stm``)."""

from __future__ import annotations

import numpy as np
import pytest

from hmmnlab.commands.cli import main

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


@pytest.mark.parametrize(
    ("extra", "variant"),
    [([], "stm"), (["--variant", "hmmn"], "hmmn")],
)
def test_weights_carry_their_read(extra, variant, short_twins, tmp_path, capsys):
    """--weights demo-stm runs the stm read it was trained with, unless --variant says otherwise;
    the command says which read runs and why."""
    frames = short_twins / "JPEGImages" / "480p" / "twins"
    mask = short_twins / "Annotations" / "480p" / "twins" / "00000.png"
    args = ["--weights", "demo-stm", "--frames", str(frames), "--first-mask", str(mask), *extra]
    assert main(["segment", *args, "--out", str(tmp_path / "seg")]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("read: ")]
    assert said and said[0].split()[1] == variant, said
    assert ("manifest" in said[0]) == (not extra)


def test_load_model_gives_the_manifest_read_and_propagate_uses_it(short_twins):
    from hmmnlab.inference import propagate
    from hmmnlab.model.reads import read_variant
    from hmmnlab.weights import load_model, registered_weights

    demo, stm = load_model("demo"), load_model("demo-stm")
    entry = registered_weights()["demo"]
    assert demo.default_read == read_variant(entry.trained_read, **entry.read)
    assert stm.default_read.variant == "stm"
    frames = [np.array(f) for f in _frames(short_twins)]
    labels0 = _first_mask(short_twins)
    implicit = [r.probs for r in propagate(demo, frames, labels0)]
    explicit = [r.probs for r in propagate(demo, frames, labels0, read=demo.default_read)]
    authors = [r.probs for r in propagate(demo, frames, labels0, read=read_variant("hmmn"))]
    assert all((a == b).all() for a, b in zip(implicit, explicit, strict=True))
    if demo.default_read != read_variant("hmmn"):
        assert any((a != b).any() for a, b in zip(implicit, authors, strict=True))


def test_a_checkpoint_without_a_trained_read_runs_the_authors_read(tiny_weights):
    from hmmnlab.config import ReadConfig
    from hmmnlab.weights import load_model, trained_read

    read, why = trained_read(tiny_weights)
    assert read == ReadConfig() and "authors" in why
    assert load_model(tiny_weights).default_read == ReadConfig()


def _frames(root):
    from PIL import Image

    return [
        Image.open(p).convert("RGB") for p in sorted((root / "JPEGImages/480p/twins").glob("*.jpg"))
    ]


def _first_mask(root):
    from hmmnlab.data.palette import read_label_png

    return read_label_png(root / "Annotations/480p/twins/00000.png")


def test_a_bundled_file_given_by_its_path_carries_its_manifest_read():
    from hmmnlab.weights import registered_weights, trained_read

    entry = registered_weights()["demo"]
    assert trained_read(entry.path)[0] == trained_read("demo")[0] == entry.default_read()
