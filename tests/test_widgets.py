"""The top-k inspector driven from Python: selecting a query cell, clicking, changing scale, frame,
object and video update the figures and the table; traces are cached per (video, frame). The
viewer alone takes hand-made traces (no model) and refuses incomplete or misshapen ones."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hmmnlab import viz
from hmmnlab.data.davis import DavisDataset
from hmmnlab.data.palette import write_label_png
from hmmnlab.widgets import FrameTrace, InspectorVideo, TopkInspector, topk_inspector

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
    """Issue 13 item 18: the old video's figures go at once (issue 22: grey placeholders show
    instead) and a progress bar counts the frames."""
    seen = []
    real_trace = inspector.trace
    old = bytes(inspector.topk_image.value)

    def trace(name, frame):
        image = bytes(inspector.topk_image.value)
        seen.append((name, image, inspector.placeholders, inspector.status.value))
        return real_trace(name, frame)

    monkeypatch.setattr(inspector, "trace", trace)
    inspector.video.value = "single"
    name, image, placeholders, status = seen[0]
    assert name == "single" and placeholders and "loading single" in status
    assert image.startswith(b"\x89PNG") and image != old
    grey = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
    assert np.median(grey) == 200  # a grey placeholder, not the old figure
    assert not inspector.placeholders
    assert inspector.progress.value == inspector.progress.max == NUM_FRAMES - 1
    assert inspector.obj.options == (("object 1", 0),) and inspector.obj.value == 0
    assert ("single", NUM_FRAMES - 1) in inspector.traces
    assert "single" in inspector.status.value


def test_missing_weights_and_unknown_sequence(root, model, tmp_path):
    with pytest.raises(FileNotFoundError, match="demo weights not found"):
        topk_inspector(root, weights=tmp_path / "none.pth")
    with pytest.raises(ValueError, match="unknown sequence 'nope'"):
        topk_inspector(root, model=model, sequence="nope")
    with pytest.raises(ValueError, match="num_frames must be >= 2"):
        topk_inspector(root, model=model, num_frames=1)


# --- issue 13: as a student sees it ----------------------------------------------------------------


def test_default_query_cell_is_on_the_object(inspector, root):
    """Item 17: the inspector starts on object 1, not on the background between the objects."""
    inspector.video.value = "pair"
    labels = DavisDataset(root, year=2017, split="val")["pair"].mask(inspector.frame.value)
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


# --- the viewer alone: hand-made traces, no model ---------------------------------------------------

K = 8  # r4 cells selected for r3 (r2: the first K / 4)


def hand_made_trace(frame: int, *, num_objects: int = 2, seed: int = 0) -> FrameTrace:
    """A trace with the shapes of hmmnlab.inside.trace's table for a SIZE frame (r4 grid 4 x 5)
    reading frame 0 and frame t-1, filled with random numbers."""
    g = torch.Generator().manual_seed(seed + frame)
    memory = (0,) if frame == 1 else (0, frame - 1)
    B, T, HW = num_objects, len(memory), 4 * 5  # noqa: N806
    affinity = torch.rand(B, T * HW, HW, generator=g)
    selected = [torch.randperm(T * HW, generator=g)[:K] for _ in range(B * HW)]
    topk = torch.stack(selected).reshape(B, HW, K)
    cache = {
        "r4.affinity": affinity / affinity.sum(1, keepdim=True),
        "r4.kernel": torch.rand(B, T * HW, HW, generator=g),
        "r4.sigmas": torch.tensor([4.0, 2.0][-T:]),
        "r4.readout": torch.zeros(B, 4, 4, 5),
        "r3.topk_indices": topk,
        "r3.attention": torch.rand(B, HW, 4, 4 * K, generator=g).softmax(-1),
        "r2.topk_indices": topk[..., : K // 4].clone(),
        "r2.attention": torch.rand(B, HW, 16, 16 * (K // 4), generator=g).softmax(-1),
    }
    return FrameTrace(cache, memory)


def hand_made_video(num_frames: int = 4, *, traces: bool = True) -> InspectorVideo:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, size=(*SIZE, 3), dtype=np.uint8) for _ in range(num_frames)]
    labels = np.zeros(SIZE, np.uint8)
    labels[18:34, 6:22] = 1
    labels[40:56, 48:68] = 2
    made = {t: hand_made_trace(t) for t in range(1, num_frames)} if traces else {}
    return InspectorVideo(frames, labels, traces=made)


def test_viewer_shows_hand_made_traces():
    """The viewer takes traces, not a model (as bertviz takes tensors), and is driven as before."""
    video = hand_made_video()
    inspector = TopkInspector({"made": video})
    assert not hasattr(inspector, "model")
    assert inspector.frame.max == inspector.frame.value == 3
    assert inspector.obj.options == (("object 1", 0), ("object 2", 1))
    assert (inspector.y.max, inspector.x.max) == (3, 4)
    assert inspector.query_yx == viz.pixel_to_cell(25, 13, SIZE)  # object 1 in frame 0
    assert all(shown(inspector).values())
    assert "made, frame 3: memory frames (0, 2)" in inspector.status.value

    before = shown(inspector)
    inspector.select(2, 3)
    assert inspector.query_yx == (2, 3)
    for name, value in shown(inspector).items():
        assert value != before[name], name
    table = viz.topk_table(video.traces[3].cache, (0, 2), (2, 3))
    assert inspector.table.value == table.to_html(index=False, float_format=lambda v: f"{v:.4f}")
    assert inspector.table.value.count("<tr") == 1 + K

    inspector.click(px=30, py=14)  # padded (16, 32): r4 cell (1, 2)
    assert inspector.query_yx == (1, 2)
    inspector.scale.value = "r2"
    assert "r2 attention" in inspector.table.value
    assert inspector.table.value.count("<tr") == 1 + K // 4
    affinity = inspector.affinity_image.value
    inspector.obj.value = 1
    assert inspector.affinity_image.value != affinity
    inspector.frame.value = 1
    assert "frame 1: memory frames (0,)" in inspector.status.value
    assert inspector.current.memory_frames == (0,)


def test_viewer_asks_trace_of_once_per_frame():
    """A provider computes traces on demand; the viewer keeps them, and every pair a provider
    yields on the way."""
    calls = []

    def one(video, frame):
        calls.append((video, frame))
        return hand_made_trace(frame)

    videos = {"a": hand_made_video(traces=False), "b": hand_made_video(3, traces=False)}
    inspector = TopkInspector(videos, trace_of=one, frame=2)
    inspector.select(0, 0)
    inspector.scale.value = "r2"
    assert calls == [("a", 2)]
    inspector.video.value = "b"
    assert calls == [("a", 2), ("b", 2)] and inspector.frame.max == 2
    assert inspector.progress.value == inspector.progress.max == 2

    def on_the_way(video, frame):
        calls.append((video, frame))
        yield from ((t, hand_made_trace(t)) for t in range(1, frame + 1))

    calls.clear()
    inspector = TopkInspector(videos, trace_of=on_the_way)
    inspector.frame.value = 1
    inspector.frame.value = 2
    assert calls == [("a", 3)] and sorted(inspector.traces) == [("a", t) for t in (1, 2, 3)]


def test_missing_trace_names_raise():
    video = hand_made_video()
    del video.traces[2].cache["r4.kernel"], video.traces[2].cache["r3.attention"]
    with pytest.raises(ValueError, match=r"frame 2 of video 'v' has no r4\.kernel, r3\.attention"):
        TopkInspector({"v": video})

    def partial(name, frame):
        trace = hand_made_trace(frame)
        del trace.cache["r2.topk_indices"]
        return trace

    with pytest.raises(ValueError, match=r"frame 3 of video 'v' has no r2\.topk_indices: the "):
        TopkInspector({"v": hand_made_video(traces=False)}, trace_of=partial)


def test_bad_traces_and_videos_raise():
    video = hand_made_video()
    video.traces[3].cache["r4.affinity"] = video.traces[3].cache["r4.affinity"][:, :20]
    expected = r"r4\.affinity should be B x THW x HW = 2 x 40 x 20 .* got 2 x 20 x 20"
    with pytest.raises(ValueError, match=expected):
        TopkInspector({"v": video})
    video = hand_made_video()
    video.traces[2].memory_frames = (0, 2)
    with pytest.raises(ValueError, match=r"memory_frames must be distinct earlier frames"):
        TopkInspector({"v": video})
    video = hand_made_video()
    del video.traces[2]
    with pytest.raises(ValueError, match=r"no trace of frames \[2\].* pass trace_of"):
        TopkInspector({"v": video})
    video = hand_made_video()
    with pytest.raises(ValueError, match=r"frames are \(60, 75\) but first_labels are \(60, 74\)"):
        TopkInspector({"v": InspectorVideo(video.frames, video.first_labels[:, 1:])})
    with pytest.raises(ValueError, match="has 1 frame: nothing to read"):
        TopkInspector({"v": InspectorVideo(video.frames[:1], video.first_labels)})
    with pytest.raises(ValueError, match="unknown sequence 'w'"):
        TopkInspector({"v": video}, sequence="w")
    # numpy arrays are taken as tensors
    arrays = {t: FrameTrace({k: v.numpy() for k, v in tr.cache.items()}, tr.memory_frames)
              for t, tr in video.traces.items()}  # fmt: skip
    inspector = TopkInspector({"v": InspectorVideo(video.frames, video.first_labels, arrays)})
    assert isinstance(inspector.current.cache["r4.affinity"], torch.Tensor)


def test_first_display_shows_the_widgets_before_the_slow_trace(monkeypatch):
    """Item 18: with ``draw=False`` (the builder's choice in a Jupyter kernel) the widgets, the
    status line and the progress bar are displayed first; the trace and the figures follow."""
    import IPython.display

    asked = []

    def trace_of(name, frame):
        asked.append(frame)
        return hand_made_trace(frame)

    at_display = {}

    def fake_display(app):
        assert app is inspector.app
        at_display.update(shown(inspector), status=inspector.status.value, asked=list(asked),
                          placeholders=inspector.placeholders)  # fmt: skip

    inspector = TopkInspector(
        {"made": hand_made_video(traces=False)}, trace_of=trace_of, draw=False
    )
    assert not inspector.drawn and asked == []
    monkeypatch.setattr(IPython.display, "display", fake_display)
    inspector._ipython_display_()
    assert at_display["asked"] == [] and at_display["placeholders"]  # grey images, no figure yet
    assert "the figures follow once frame 3 is traced" in at_display["status"]
    assert asked == [3] and inspector.drawn and all(shown(inspector).values())
    inspector._ipython_display_()  # a second display draws nothing again
    assert asked == [3]


# --- issue 22: feedback, coalesced clicks, guidance ------------------------------------------------


def png_array(value) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(bytes(value))).convert("RGB"))


def test_status_says_computing_then_done():
    inspector = TopkInspector({"made": hand_made_video()})
    seen = []
    inspector.status.observe(lambda change: seen.append(change["new"]), names="value")
    inspector.select(2, 3)
    computing = [i for i, value in enumerate(seen) if "computing" in value]
    assert computing, seen
    assert computing[0] < len(seen) - 1  # set before the work, replaced after
    assert "computing" not in inspector.status.value and "(y, x) = (2, 3)" in inspector.status.value


def test_progress_bar_shows_only_while_tracing():
    during = []
    inspector = None

    def trace_of(name, frame):
        during.append(inspector.progress.layout.visibility)
        return hand_made_trace(frame)

    inspector = TopkInspector(
        {"made": hand_made_video(traces=False)}, trace_of=trace_of, draw=False
    )
    assert inspector.progress.layout.visibility == "hidden"  # idle before the first trace
    inspector.update()
    assert during == ["visible"] and inspector.progress.layout.visibility == "hidden"
    inspector.frame.value = 2
    assert during == ["visible", "visible"] and inspector.progress.layout.visibility == "hidden"


def test_clicks_during_a_draw_are_coalesced():
    """Clicks arriving while a draw runs are not drawn one by one: the latest is drawn once the
    running draw ends (simulated: the clicks come from inside the first draw)."""
    inspector = TopkInspector({"made": hand_made_video()})
    drawn = []
    real_draw = inspector._draw

    def draw():
        drawn.append(inspector.query_yx)
        if len(drawn) == 1:  # two clicks while the first draw runs
            inspector.select(0, 0)
            assert inspector.pending and inspector.drawing
            inspector.select(3, 4)
        real_draw()

    inspector._draw = draw
    inspector.select(2, 2)
    assert drawn == [(2, 2), (3, 4)]  # (0, 0) replaced by the later click, never drawn
    assert not inspector.pending and not inspector.drawing
    assert "(y, x) = (3, 4)" in inspector.status.value


def moved_video() -> InspectorVideo:
    """hand_made_video with a true mask of frame 3 where object 2 moved to the top left."""
    video = hand_made_video()
    truth = np.zeros(SIZE, np.uint8)
    truth[18:34, 6:22] = 1
    truth[2:12, 2:14] = 2
    return InspectorVideo(video.frames, video.first_labels, video.traces, truth={3: truth})


def test_object_change_snaps_the_query_onto_the_object():
    inspector = TopkInspector({"made": moved_video()})
    assert inspector.frame.value == 3
    inspector.select(3, 4)
    inspector.obj.value = 1  # object 2: in frame 3's true mask at rows 2-11, columns 2-13
    assert inspector.query_yx == viz.pixel_to_cell(6, 7, SIZE) == (0, 0)
    assert "query snapped to object 2 (true mask)" in inspector.status.value
    # frame 2 has no true mask: its trace's predicted labels place the object
    video = moved_video()
    predicted = np.zeros(SIZE, np.uint8)
    predicted[44:56, 56:72] = 2
    video.traces[2].labels = predicted
    inspector = TopkInspector({"made": video})
    inspector.obj.value = 1
    inspector.frame.value = 2
    assert inspector.query_yx == viz.pixel_to_cell(49, 63, SIZE)
    assert "query snapped to object 2 (predicted mask)" in inspector.status.value
    assert "masks: predicted mask" in inspector.status.value
    inspector.frame.value = 1  # neither: frame 0's labels
    assert "frame 0's labels" in inspector.status.value


def test_query_frame_shows_the_masks_and_the_object_ids():
    video = moved_video()
    grey = [np.full((*SIZE, 3), 128, np.uint8) for _ in video.frames]
    inspector = TopkInspector({"g": InspectorVideo(grey, video.first_labels, video.traces,
                                                   video.truth)})  # fmt: skip
    image = png_array(inspector.query_image.value)
    assert "masks: true mask" in inspector.status.value
    truth = video.truth[3]
    for label in (1, 2):
        ys, xs = np.nonzero(truth == label)
        nearest = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
        cy, cx = ys[nearest], xs[nearest]
        around = image[max(cy - 3, 0) : cy + 4, max(cx - 3, 0) : cx + 4].reshape(-1, 3)
        assert (around.max(axis=1) < 40).any(), "no dark disc at the object's centre"
        assert (around.min(axis=1) > 200).any(), "no white id at the object's centre"
    inside = image[33, 21]  # object 1's corner: tinted, not the grey frame
    assert np.abs(inside.astype(int) - 128).max() > 20
    assert (image[58, 40] == 128).all()  # the background stays as it is


def test_affinity_view_changes_the_image():
    inspector = TopkInspector({"made": hand_made_video()})
    shown = {inspector.affinity_view.value: bytes(inspector.affinity_image.value)}
    kernel = bytes(inspector.kernel_image.value)
    for view in ("before kernel", "log scale"):
        inspector.affinity_view.value = view
        shown[view] = bytes(inspector.affinity_image.value)
    assert len(set(shown.values())) == 3
    assert bytes(inspector.kernel_image.value) == kernel  # the kernel is the kernel
    cache, q = inspector.current.cache, inspector.query_yx
    before = viz.affinity_rows(cache, q, stage="pre_kernel")
    np.testing.assert_allclose(before.sum(), 1.0, rtol=1e-5)  # softmax(S): over all memory
