"""The top-k inspector driven from Python: selecting a query cell, clicking, changing scale, frame,
object and video update the figures and the table; traces are cached per (video, frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hmmnlab import viz
from hmmnlab.data.davis import DavisDataset
from hmmnlab.data.palette import write_label_png
from hmmnlab.widgets import TopkInspector, topk_inspector

SIZE = (60, 75)  # padded 64 x 80: r4 grid 4 x 5, padding top 2, left 2
NUM_FRAMES = 7  # frame 6 reads memory frames (0, 5)

pytestmark = pytest.mark.filterwarnings("ignore:top-k at r3")  # frame 1: 20 r4 cells < k = 32


def write_davis(root: Path) -> None:
    """Two sequences in DAVIS 2017 layout: 'pair' (2 objects, moving) and 'single' (1 object)."""
    rng = np.random.default_rng(0)
    height, width = SIZE
    for name, objects in (("pair", 2), ("single", 1)):
        background = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        patch = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        for t in range(NUM_FRAMES):
            frame = background.copy()
            frame[18:34, 6 + 4 * t : 22 + 4 * t] = patch
            path = root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(path, quality=95)
            labels = np.zeros(SIZE, np.uint8)
            labels[18:34, 6 + 4 * t : 22 + 4 * t] = 1
            if objects == 2:
                labels[40:56, 48:68] = 2
            write_label_png(root / "Annotations" / "480p" / name / f"{t:05d}.png", labels)
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("pair\nsingle\n")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("davis")
    write_davis(path)
    return path


@pytest.fixture(scope="module")
def model(tiny_model):
    """The tiny random HMMN of conftest.py."""
    return tiny_model


@pytest.fixture(scope="module")
def inspector(root, model):
    """One inspector for the module (building it traces a video): the tests run in order and each
    sets the state it checks."""
    return topk_inspector(root, model=model, sequence="pair", num_frames=NUM_FRAMES)


def shown(inspector: TopkInspector) -> dict:
    return {
        "query": inspector.query_image.value,
        "affinity": inspector.affinity_image.value,
        "kernel": inspector.kernel_image.value,
        "topk": inspector.topk_image.value,
        "table": inspector.table.value,
    }


def test_initial_state(inspector):
    assert inspector.video.options == ("pair", "single")
    assert inspector.frame.max == NUM_FRAMES - 1 and inspector.frame.value == NUM_FRAMES - 1
    assert inspector.obj.options == (("object 1", 0), ("object 2", 1))
    assert (inspector.y.max, inspector.x.max) == (3, 4)  # the padded r4 grid
    assert inspector.query_yx == (1, 2)  # on object 1 of frame 6 (issue 13 item 17)
    for value in shown(inspector).values():
        assert value  # every figure and the table are drawn
    assert bytes(inspector.affinity_image.value).startswith(b"\x89PNG")
    assert "<table" in inspector.table.value and "r3 attention" in inspector.table.value
    assert "memory frames (0, 5)" in inspector.status.value
    # the traces of frames 1..6 were kept on the way
    assert sorted(inspector.traces) == [("pair", t) for t in range(1, NUM_FRAMES)]


def test_select_updates_every_figure_and_the_table(inspector):
    before = shown(inspector)
    inspector.select(1, 3)
    after = shown(inspector)
    assert inspector.query_yx == (1, 3) and (inspector.y.value, inspector.x.value) == (1, 3)
    for name in before:
        assert before[name] != after[name], name
    table = viz.topk_table(inspector.current.cache, (0, 5), (1, 3))
    assert after["table"] == table.to_html(index=False, float_format=lambda v: f"{v:.4f}")
    assert "(1, 3)" in inspector.status.value
    with pytest.raises(ValueError, match="outside the r4 grid"):
        inspector.select(4, 0)


def test_sliders_drive_the_figures(inspector):
    inspector.select(2, 2)
    before = shown(inspector)
    inspector.x.value = 0
    assert inspector.query_yx == (2, 0)
    assert shown(inspector)["affinity"] != before["affinity"]


def test_click_selects_the_cell_under_the_pixel(inspector):
    inspector.click(px=30, py=14)  # padded (16, 32): r4 cell (1, 2)
    assert inspector.query_yx == (1, 2)
    inspector._on_click({"dataX": 0, "dataY": 59})  # an ipyevents click on the image
    assert inspector.query_yx == (3, 0)
    inspector._on_click(
        {"relativeX": 150, "relativeY": 0, "boundingRectWidth": 150, "boundingRectHeight": 120}
    )  # the image shown twice as large: its right edge
    assert inspector.query_yx == (0, 4)


def test_scale_object_and_frame(inspector):
    assert inspector.scale.value == "r3" and inspector.obj.value == 0
    before = shown(inspector)
    inspector.scale.value = "r2"
    assert "r2 attention" in inspector.table.value
    assert inspector.table.value.count("<tr") == 1 + 8  # header + k / 4 cells
    assert shown(inspector)["topk"] != before["topk"]
    affinity = inspector.affinity_image.value
    inspector.obj.value = 1
    assert inspector.affinity_image.value != affinity
    traces = dict(inspector.traces)
    inspector.frame.value = 2  # already traced on the way to frame 6: no new propagation
    assert inspector.traces == traces and inspector.current is traces[("pair", 2)]
    assert "frame 2: memory frames (0, 1)" in inspector.status.value


def test_switching_video(inspector, monkeypatch):
    """Issue 13 item 18: the old video's figures go at once and a progress bar counts the frames."""
    seen = []
    real_trace = inspector.trace

    def trace(name, frame):
        seen.append((name, bytes(inspector.topk_image.value), inspector.status.value))
        return real_trace(name, frame)

    monkeypatch.setattr(inspector, "trace", trace)
    inspector.video.value = "single"
    name, image, status = seen[0]
    assert name == "single" and image == b"" and "loading single" in status
    assert inspector.progress.value == inspector.progress.max == NUM_FRAMES - 1
    assert inspector.obj.options == (("object 1", 0),) and inspector.obj.value == 0
    assert ("single", NUM_FRAMES - 1) in inspector.traces
    assert "single" in inspector.status.value


def test_missing_weights_and_unknown_sequence(root, model, tmp_path):
    with pytest.raises(FileNotFoundError, match="demo weights not found"):
        topk_inspector(root, weights=tmp_path / "none.pth")
    with pytest.raises(ValueError, match="unknown sequence 'nope'"):
        topk_inspector(root, model=model, sequence="nope")
    dataset = DavisDataset(root, year=2017, split="val")
    with pytest.raises(ValueError, match="num_frames must be >= 2"):
        TopkInspector(model, dataset, num_frames=1)


# --- issue 13: as a student sees it ----------------------------------------------------------------


def test_default_query_cell_is_on_the_object(inspector):
    """Item 17: the inspector starts on object 1, not on the background between the objects."""
    inspector.video.value = "pair"
    labels = inspector.dataset["pair"].mask(inspector.frame.value)
    top, left, bottom, right = (int(v) for v in viz.cell_box(*inspector.query_yx, labels.shape))
    assert (labels[max(top, 0) : bottom, max(left, 0) : right] == 1).any()


def test_figure_titles_count_objects_as_the_dropdown(inspector):
    """Item 17: the dropdown's "object 1" is "object 1" in the figures' titles too."""
    label, index = inspector.obj.options[0]
    fig = viz.affinity_maps(
        inspector.current.cache, inspector.video_frames("pair")[0], inspector.current.memory_frames,
        inspector.query_yx, obj=index, stage="affinity",
    )  # fmt: skip
    assert label == "object 1" and "object 1," in fig.get_suptitle()


def test_query_and_topk_side_by_side_and_unstretched(inspector):
    """Items 15 and 16: the top-k figure keeps its aspect (not stretched to the table's height) and
    sits next to the query frame, so a click and its effect are in view together."""
    assert inspector.topk_box.layout.align_items == "flex-start"
    rows = [child for child in inspector.app.children if hasattr(child, "children")]
    side_by_side = [
        row
        for row in rows
        if any(inspector.query_image in getattr(c, "children", ()) for c in row.children)
    ]
    assert side_by_side, "no row holds the query frame"
    columns = side_by_side[0].children
    assert any(inspector.topk_box in getattr(c, "children", ()) for c in columns)
    assert inspector.dpi >= 100  # text of at least 12 px (9 pt fonts)
