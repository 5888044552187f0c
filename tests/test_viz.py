"""Figures from a real trace of a tiny random model (hmmnlab.viz): panels, titles, plotted data,
padding-aware coordinates, and clear errors for bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import AxesImage

from hmmnlab import viz
from hmmnlab.inside.trace import run_with_cache

# frame 1 reads one memory frame of 20 r4 cells: fewer than k = 32 (a warning, on the way to frame 7)
pytestmark = pytest.mark.filterwarnings("ignore:top-k at r3")

FRAME = 7  # memory frames (0, 5, 6)
SIZE = (60, 75)  # padded to 64 x 80: top 2, bottom 2, left 2, right 3; r4 grid 4 x 5


def make_clip(num_frames: int = 8, size=SIZE, seed: int = 0):
    """A textured square moving over noise, and a second object; frames not a multiple of 16."""
    rng = np.random.default_rng(seed)
    height, width = size
    background = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    patch = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    frames = []
    for t in range(num_frames):
        frame = background.copy()
        frame[18:34, 6 + 4 * t : 22 + 4 * t] = patch
        frames.append(frame)
    labels = np.zeros((height, width), np.uint8)
    labels[18:34, 6:22] = 1
    labels[40:56, 48:68] = 2
    return frames, labels


@pytest.fixture(scope="module")
def model(tiny_model):
    """The tiny random HMMN of conftest.py."""
    return tiny_model


@pytest.fixture(scope="module")
def clip():
    return make_clip()


@pytest.fixture(scope="module")
def traced(model, clip):
    result, cache = run_with_cache(model, *clip, frame=FRAME)
    return result, cache


def images_of(ax) -> list[np.ndarray]:
    return [np.asarray(im.get_array()) for im in ax.get_images() if isinstance(im, AxesImage)]


def test_padding_aware_coordinates():
    assert tuple(viz.ops.padding_for(*SIZE)) == (2, 3, 2, 2)
    assert viz.cell_box(0, 0, SIZE) == (-2, -2, 14, 14)
    assert viz.cell_box(1, 2, SIZE) == (14, 30, 30, 46)
    assert viz.cell_box(1, 1, SIZE, scale="r3") == (6, 6, 14, 14)
    assert viz.cell_box(1, 1, SIZE, scale="r2") == (2, 2, 6, 6)
    assert viz.pixel_to_cell(0, 0, SIZE) == (0, 0)
    assert viz.pixel_to_cell(13, 13, SIZE) == (0, 0)
    assert viz.pixel_to_cell(14, 14, SIZE) == (1, 1)
    assert viz.pixel_to_cell(59, 74, SIZE) == (3, 4)
    assert viz.pixel_to_cell(14, 14, SIZE, scale="r3") == (2, 2)
    assert viz.grid_extent(SIZE) == (-2, 78, 62, -2)


def test_affinity_rows_are_the_query_column(traced):
    _, cache = traced
    rows = viz.affinity_rows(cache, (1, 2), stage="affinity", obj=1)
    assert rows.shape == (3, 4, 5)
    column = cache["r4.affinity"][1, :, 1 * 5 + 2]
    np.testing.assert_array_equal(rows.reshape(-1), column.numpy())
    np.testing.assert_allclose(rows.sum(), 1.0, rtol=1e-5)  # a distribution over memory


@pytest.mark.parametrize("stage", ["logits", "kernel", "affinity"])
def test_affinity_maps_panels_titles_and_data(traced, clip, stage):
    result, cache = traced
    frames = clip[0]
    fig = viz.affinity_maps(cache, frames, result.memory_frames, (1, 2), stage=stage, query_frame=7)
    panels = [ax for ax in fig.axes if ax.get_title()]
    titles = [ax.get_title() for ax in panels]
    assert len(panels) == 4  # query + 3 memory frames (and a colorbar)
    assert titles[0] == "query: frame 7"
    assert [t.split(",")[0] for t in titles[1:]] == [f"memory: frame {f}" for f in (0, 5, 6)]
    rows = viz.affinity_rows(cache, (1, 2), stage=stage)
    for t, ax in enumerate(panels[1:]):
        frame_image, heat = images_of(ax)
        assert frame_image.shape == (*SIZE, 3)
        np.testing.assert_array_equal(heat, rows[t])
        assert ax.get_images()[1].get_extent() == list(viz.grid_extent(SIZE))
    if stage == "kernel":
        assert "sigma 6.0" in titles[1] and "sigma 3.0" in titles[3]


def test_another_query_position_changes_the_plotted_data(traced, clip):
    result, cache = traced
    heat = []
    for query in ((1, 2), (3, 0)):
        fig = viz.affinity_maps(cache, clip[0], result.memory_frames, query)
        heat.append(np.stack([images_of(ax)[1] for ax in fig.axes if ax.get_title()]))
    assert heat[0].shape == heat[1].shape == (3, 4, 5)
    assert not np.allclose(heat[0], heat[1])


def test_kernel_sigmas(traced):
    result, cache = traced
    fig = viz.kernel_sigmas(cache, result.memory_frames)
    bars = fig.axes[0].patches
    assert [b.get_height() for b in bars] == pytest.approx([6.0, 4.5, 3.0])
    assert len(fig.axes[1].get_lines()) == 3


@pytest.mark.parametrize("scale, k, s", [("r3", 32, 2), ("r2", 8, 4)])
def test_topk_table_and_figure(traced, clip, scale, k, s):
    result, cache = traced
    table = viz.topk_table(cache, result.memory_frames, (1, 2), scale=scale, obj=1)
    assert list(table["rank"]) == list(range(1, k + 1))
    assert set(table["frame"]) <= {0, 6}  # guidance: frame 0 and frame t-1
    assert table["r4 affinity"].is_monotonic_decreasing
    assert table[f"{scale} attention"].sum() == pytest.approx(1.0, rel=1e-4)
    rows = cache[f"{scale}.topk_indices"][1, 1 * 5 + 2].numpy()
    np.testing.assert_array_equal(table["frame"], np.where(rows >= 20, 6, 0))
    np.testing.assert_array_equal(table["y"] * 5 + table["x"], rows % 20)
    fig = viz.topk_on_memory(
        cache, clip[0], result.memory_frames, (1, 2), obj=1, scale=scale, query_frame=7
    )
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title().split(",")[0] for ax in panels] == [
        "query: frame 7",
        "memory: frame 0",
        "memory: frame 6",
    ]
    for ax, frame in zip(panels[1:], (0, 6), strict=True):
        cells = int((table["frame"] == frame).sum())
        # each selected cell: an outline and s*s children; plus the dashed query position
        assert len(ax.patches) == cells * (1 + s * s) + 1
    other = viz.topk_table(cache, result.memory_frames, (3, 0), scale=scale, obj=1)
    assert not table[["frame", "y", "x"]].equals(other[["frame", "y", "x"]])


def test_topk_outline_of_the_best_cell_is_where_the_table_says(traced, clip):
    result, cache = traced
    table = viz.topk_table(cache, result.memory_frames, (2, 3), scale="r3")
    best = table.iloc[0]
    fig = viz.topk_on_memory(cache, clip[0], result.memory_frames, (2, 3), scale="r3")
    panel = [
        ax for ax in fig.axes if ax.get_title().startswith(f"memory: frame {int(best['frame'])},")
    ]
    top, left, bottom, right = viz.cell_box(int(best["y"]), int(best["x"]), SIZE)
    outlines = [p for p in panel[0].patches if not p.get_fill()]
    assert any(p.get_xy() == (left, top) and p.get_width() == right - left for p in outlines)


def test_decoder_output_is_unpadded(traced, clip):
    result, cache = traced
    fig = viz.decoder_output(cache, clip[0][FRAME], obj=1)
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert images_of(ax)[0].shape[:2] == SIZE
    np.testing.assert_allclose(images_of(fig.axes[1])[0], result.probs[2].numpy(), atol=1e-6)
    assert len(viz.decoder_output(cache, clip[0][FRAME] / 255.0).axes) == 3  # float frames too


def test_pca_figures(traced, clip):
    _, cache = traced
    fig = viz.keys_pca(cache, images=[clip[0][6], clip[0][7]])
    assert [ax.get_title() for ax in fig.axes] == ["memory_features.k4", "query_features.k4"]
    rgb = images_of(fig.axes[0])[1]
    assert rgb.shape == (4, 5, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert len(viz.keys_pca(cache, scale="r2").axes) == 2
    assert len(viz.values_pca(cache).axes) == 2
    fig = viz.readouts_pca(cache)
    assert [images_of(ax)[0].shape for ax in fig.axes] == [(4, 5, 3), (8, 10, 3), (16, 20, 3)]


def test_flow_arrows_and_png(traced, clip):
    _, cache = traced
    fig = viz.flow_arrows(cache, clip[0], FRAME, query_yx=(1, 2))
    assert fig.axes[0].get_title().startswith("arrow")
    png = viz.figure_png(fig)
    assert png.startswith(b"\x89PNG")


def test_bad_inputs_raise_clear_errors(traced, clip):
    result, cache = traced
    frames, memory = clip[0], result.memory_frames
    with pytest.raises(ValueError, match=r"obj must be an object index in 0..1 .* got 2"):
        viz.affinity_maps(cache, frames, memory, (1, 2), obj=2)
    with pytest.raises(
        ValueError, match=r"query cell \(y, x\) = \(4, 0\) is outside the r4 grid of 4 x 5"
    ):
        viz.affinity_maps(cache, frames, memory, (4, 0))
    with pytest.raises(ValueError, match=r"outside the r4 grid"):
        viz.topk_on_memory(cache, frames, memory, (0, -1))
    with pytest.raises(ValueError, match="query_yx must be an r4 cell"):
        viz.affinity_rows(cache, 3)
    with pytest.raises(ValueError, match="stage must be one of"):
        viz.affinity_maps(cache, frames, memory, (1, 2), stage="softmax")
    with pytest.raises(ValueError, match="scale must be 'r3' or 'r2'"):
        viz.topk_on_memory(cache, frames, memory, (1, 2), scale="r4")
    with pytest.raises(ValueError, match=r"memory_frames lists 2 frames"):
        viz.affinity_maps(cache, frames, (0, 6), (1, 2))
    with pytest.raises(ValueError, match="frames has 3 frames but frame 5 is needed"):
        viz.affinity_maps(cache, frames[:3], memory, (1, 2))
    partial = {name: cache[name] for name in ("r4.affinity", "r4.readout")}
    with pytest.raises(
        ValueError, match=r"the trace has no r4.kernel; it has: r4.affinity, r4.readout"
    ):
        viz.affinity_maps(partial, frames, memory, (1, 2), stage="kernel")
    with pytest.raises(ValueError, match="has no r3.topk_indices"):
        viz.topk_table(partial, memory, (1, 2))
    with pytest.raises(ValueError, match="has no r4.sigmas"):
        viz.kernel_sigmas(partial)
    with pytest.raises(ValueError, match="r4.sigmas has 3 frames but memory_frames lists 2"):
        viz.kernel_sigmas(cache, (0, 6))
    with pytest.raises(ValueError, match="is it the traced frame"):
        viz.decoder_output(cache, np.zeros((32, 32, 3), np.uint8))


# --- issue 22: the inspector's figures -----------------------------------------------------------


def outline_alpha(fig, frame: int, cell) -> float:
    """The alpha of the rank-coloured outline of r4 ``cell`` (y, x) on memory frame ``frame``."""
    (panel,) = [ax for ax in fig.axes if ax.get_title().startswith(f"memory: frame {frame},")]
    top, left, bottom, right = viz.cell_box(*cell, SIZE)
    (outline,) = [
        p for p in panel.patches
        if not p.get_fill() and p.get_linestyle() == "-" and p.get_xy() == (left, top)
    ]  # fmt: skip
    return outline.get_alpha()


def test_topk_outlines_are_as_opaque_as_their_affinity(traced, clip):
    result, cache = traced
    table = viz.topk_table(cache, result.memory_frames, (2, 3), scale="r3")
    first, last = table.iloc[0], table.iloc[-1]
    assert first["r4 affinity"] > last["r4 affinity"]
    ends = [(int(row["frame"]), (int(row["y"]), int(row["x"]))) for row in (first, last)]
    fig = viz.topk_on_memory(cache, clip[0], result.memory_frames, (2, 3), scale="r3")
    alphas = [outline_alpha(fig, frame, cell) for frame, cell in ends]
    assert alphas[0] == pytest.approx(1.0) and alphas[0] > alphas[1] >= 0.25
    assert "outline opacity: P" in fig.get_suptitle()
    plain = viz.topk_on_memory(
        cache, clip[0], result.memory_frames, (2, 3), scale="r3", opacity=False
    )
    assert [outline_alpha(plain, frame, cell) for frame, cell in ends] == [1.0, 1.0]


def test_pre_kernel_affinity_is_the_softmax_of_the_logits(traced):
    """ "before kernel": softmax(S) over memory, from the logits or recovered from P and G."""
    _, cache = traced
    rows = viz.affinity_rows(cache, (1, 2), obj=1, stage="pre_kernel")
    column = cache["r4.affinity_logits"][1, :, 1 * 5 + 2].softmax(0)
    np.testing.assert_allclose(rows.reshape(-1), column.numpy(), rtol=1e-5)
    without = {k: v for k, v in cache.items() if k != "r4.affinity_logits"}
    recovered = viz.affinity_rows(without, (1, 2), obj=1, stage="pre_kernel")
    np.testing.assert_allclose(recovered, rows, rtol=1e-3, atol=1e-7)
    assert not np.allclose(rows, viz.affinity_rows(cache, (1, 2), obj=1, stage="affinity"))


def test_a_kept_figure_shows_what_a_new_one_does(traced, clip):
    """The inspector's fast path (a kept figure, shown again) draws the data of a new figure."""
    result, cache = traced
    memory = result.memory_frames
    kept = viz.AffinityFigure("affinity", len(memory), SIZE, (4, 5), log=True)
    kept.show(cache, clip[0], memory, (1, 2))
    first = viz.render(kept)
    kept.show(cache, clip[0], memory, (3, 0), obj=1)
    again = viz.render(kept)
    assert first.shape == again.shape and (first != again).any()
    new = viz.affinity_maps(cache, clip[0], memory, (3, 0), obj=1, log=True)
    panels = [[ax for ax in fig.axes if ax.get_title()] for fig in (kept.fig, new)]
    for old_ax, new_ax in zip(*panels, strict=True):
        assert old_ax.get_title() == new_ax.get_title()
        for a, b in zip(images_of(old_ax), images_of(new_ax), strict=True):
            np.testing.assert_array_equal(a, b)
    assert kept.title.get_text() == new.get_suptitle()
    topk = viz.TopkFigure("r2", 2, SIZE)
    for query in ((1, 2), (3, 0)):
        topk.show(cache, clip[0], memory, query, obj=1)
        fresh = viz.topk_on_memory(cache, clip[0], memory, query, obj=1, scale="r2")
        counts = [[len(ax.patches) for ax in fig.axes] for fig in (topk.fig, fresh)]
        assert counts[0] == counts[1]  # the last show's patches replaced, not added to
    png = viz.png_bytes(viz.render(topk))
    assert png.startswith(b"\x89PNG")
