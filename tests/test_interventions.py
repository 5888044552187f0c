"""hmmnlab.inside.interventions on a tiny random model and a 3-frame synthetic video: every
experiment returns its table, and the tables say what the hooks did."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hmmnlab import viz
from hmmnlab.inside import interventions as iv


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 48, 64, 3), dtype=np.uint8)
    truth = np.zeros((3, 48, 64), np.uint8)
    truth[:, 4:20, 4:30] = 1
    truth[:, 25:45, 30:60] = 2
    return iv.Video(frames, truth[0], truth, "noise")


def test_knock_out_and_own_kernel(tiny_model, clip):
    table = iv.knock_out_memory_frame(tiny_model, clip, memory_frame=0)
    assert list(table["frame"]) == [1, 2]
    assert list(table["in memory"]) == [False, True]  # frame 1 reads frame 0 alone: kept
    assert table["change"].iloc[0] == 0
    kernel = iv.replace_kernel(tiny_model, clip, lambda k, ctx: torch.ones_like(k), label="flat")
    assert {"J&F", "J&F flat", "change"} <= set(kernel.columns)
    with pytest.raises(ValueError, match="has no r4 kernel"):
        from hmmnlab.model.reads import read_variant

        iv.replace_kernel(tiny_model, clip, lambda k, ctx: k, read=read_variant("stm"))


def test_zero_readouts_and_transplant(tiny_model, clip):
    table = iv.zero_readouts(tiny_model, clip, scales=("r4", "r2"))
    assert list(table["zeroed"]) == ["nothing", "r4.readout", "r2.readout"]
    donor = iv.Video(clip.frames[:, ::-1].copy(), clip.first_labels[::-1].copy(), None, "flipped")
    moved = iv.transplant_first_memory(tiny_model, clip, donor)
    assert list(moved["frame"]) == [1, 2]
    small = iv.Video(clip.frames[:, :32], clip.first_labels[:32], None, "small")
    with pytest.raises(ValueError, match="same size"):
        iv.transplant_first_memory(tiny_model, clip, small)


def test_patching_the_output_restores_everything(tiny_model, clip):
    corrupted = iv.occlude(clip, 2, box=(0, 0, 32, 48))
    names = ["memory_features.k4", "query_features.k4", "output.probs"]
    table = iv.patch_activations(tiny_model, clip, corrupted, frame=2, names=names).set_index(
        "hook"
    )
    assert table.loc["output.probs", "restored"] == pytest.approx(1)  # the output itself
    assert table.loc["memory_features.k4", "restored"] == pytest.approx(0)  # frame 1: unoccluded
    assert list(table["scale"]) == ["memory", "query", "output"]
    swapped = iv.swap_labels(clip)
    assert set(np.unique(swapped.first_labels[4:20, 4:30])) == {2}


def test_replace_kernel_runs_the_read_the_weights_carry(tiny_model, clip, monkeypatch):
    """Like propagate: with no read given, the weights' read (here a wider kernel), not the
    authors'."""
    from hmmnlab.config import ReadConfig
    from hmmnlab.model.reads import read_variant

    def kernels(**read):
        seen = []
        iv.replace_kernel(tiny_model, clip, lambda k, ctx: seen.append(k.clone()), **read)
        return seen

    carried = read_variant("hmmn", sigma=5.0)
    monkeypatch.setattr(tiny_model, "default_read", carried, raising=False)
    default, given, authors = kernels(), kernels(read=carried), kernels(read=ReadConfig())
    assert all(torch.equal(a, b) for a, b in zip(default, given, strict=True))
    assert not torch.equal(default[-1], authors[-1])


def test_every_experiment_keeps_its_masks_for_a_figure(tiny_model, clip):
    """Each experiment's table carries the labels of its runs, and mask_figure draws one row per
    run: the masks are the runs' own (the clean row equals a plain propagate)."""
    from hmmnlab.inference import propagate

    plain = np.stack(
        [r.labels.numpy() for r in propagate(tiny_model, clip.frames, clip.first_labels)]
    )
    knocked = iv.knock_out_memory_frame(tiny_model, clip, memory_frame=0)
    assert list(knocked.attrs["masks"]) == ["clean", "without memory frame 0"]
    np.testing.assert_array_equal(knocked.attrs["masks"]["clean"], plain)
    zeroed = iv.zero_readouts(tiny_model, clip, scales=("r4",))
    assert list(zeroed.attrs["masks"]) == ["clean", "r4.readout zeroed"]
    corrupted = iv.occlude(clip, 2, box=(0, 0, 32, 48))
    patched = iv.patch_activations(tiny_model, clip, corrupted, frame=2, names=["output.probs"])
    masks = patched.attrs["masks"]
    assert list(masks) == ["clean", "corrupted", "output.probs patched"]
    np.testing.assert_array_equal(masks["output.probs patched"][2], masks["clean"][2])
    for table, rows, columns in ((knocked, 2, 2), (zeroed, 2, 2), (patched, 1, 3)):
        fig = iv.mask_figure(clip, table)
        shown = [ax for ax in fig.axes if ax.images]
        assert len(shown) == rows * columns
        assert fig.legends  # the object colours
        assert fig.get_figwidth() * fig.dpi >= 600
    panels = [ax for ax in iv.mask_figure(clip, patched).axes if ax.images]
    titles = ["clean, frame 2", "corrupted, frame 2", "output.probs patched, frame 2"]
    assert [ax.get_title() for ax in panels] == titles
    shown = [np.asarray(ax.images[0].get_array()) for ax in panels]
    runs = [(clip, "clean"), (corrupted, "corrupted"), (corrupted, "output.probs patched")]
    for image, (video, run) in zip(shown, runs, strict=True):  # each run on its own frames
        np.testing.assert_array_equal(image, viz.overlay(video.frames[2], masks[run][2]))
    with pytest.raises(ValueError, match="holds no masks"):
        iv.mask_figure(clip, pd.DataFrame({"frame": [1]}))  # a table made by hand
    with pytest.raises(ValueError, match="frames \\[5\\]"):
        iv.mask_figure(clip, knocked, frames=[5])
