"""``hmmnlab segment``: the CLI reproduces the fixture, and bad input fails clearly, losing
nothing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hmmnlab.commands.cli import main
from hmmnlab.data.palette import read_label_png, write_label_png


def write_video(folder, frames_uint8, suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames_uint8):
        Image.fromarray(frame).save(folder / f"{t:05d}{suffix}")
    return folder


def public_fixture_as_files(tmp_path, reference_dir, recipe_weights_file):
    """The public fixture's video as PNG frames and a palette first mask in ``tmp_path``, and the
    recipe weights seed 1 file. Returns (fixture arrays, weights path)."""
    fixture = np.load(reference_dir / "hmmn_fixture_public.npz")
    frames = np.round(fixture["frames"].transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    write_video(tmp_path / "frames", frames)
    write_label_png(tmp_path / "mask.png", fixture["label0"])
    return fixture, recipe_weights_file


@pytest.fixture
def video(tmp_path):
    """A 4-frame 40 x 56 video with two objects labelled 2 and 5 in its first mask."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(4, 40, 56, 3), dtype=np.uint8)
    write_video(tmp_path / "frames", frames)
    labels = np.zeros((40, 56), np.uint8)
    labels[5:15, 5:20] = 2
    labels[20:35, 30:50] = 5
    write_label_png(tmp_path / "mask.png", labels)
    return tmp_path


def segment(video, weights, *extra, out="out"):
    return main(
        [
            "segment",
            "--weights",
            str(weights),
            "--frames",
            str(video / "frames"),
            "--first-mask",
            str(video / "mask.png"),
            "--out",
            str(video / out),
            *extra,
        ]
    )


def test_cli_reproduces_the_public_fixture(tmp_path, reference_dir, recipe_weights_file):
    fixture, weights = public_fixture_as_files(tmp_path, reference_dir, recipe_weights_file)
    code = segment(tmp_path, weights, "--save-probs", str(tmp_path / "probs.npz"))
    assert code == 0
    probs = np.load(tmp_path / "probs.npz")["probs"]
    assert probs.dtype == np.float32 and probs.shape == fixture["Es"].shape
    np.testing.assert_allclose(probs, fixture["Es"], atol=1e-4, rtol=0)
    for t in range(len(fixture["Es"])):
        np.testing.assert_array_equal(
            read_label_png(tmp_path / "out" / f"{t:05d}.png"), fixture["pred"][t]
        )


def test_labels_keep_their_values_and_stems(video, tiny_weights):
    assert segment(video, tiny_weights, "--save-probs", str(video / "p.npz")) == 0
    names = sorted(p.name for p in (video / "out").iterdir() if p.suffix == ".png")
    assert names == [f"{t:05d}.png" for t in range(4)]
    first = read_label_png(video / "out" / "00000.png")
    np.testing.assert_array_equal(first, read_label_png(video / "mask.png"))
    for name in names:
        assert set(np.unique(read_label_png(video / "out" / name))) <= {0, 2, 5}
    saved = np.load(video / "p.npz")
    assert saved["probs"].shape == (4, 3, 40, 56)
    np.testing.assert_array_equal(saved["object_ids"], [2, 5])
    np.testing.assert_allclose(saved["probs"].sum(axis=1), 1, atol=1e-5)


def test_grey_and_rgba_frames_are_converted(tmp_path, tiny_weights):
    rng = np.random.default_rng(1)
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 56), dtype=np.uint8), "L").save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 56, 4), dtype=np.uint8), "RGBA").save(
        folder / "b.png"
    )
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(folder / "c.jpg")
    mask = np.zeros((40, 56), np.uint8)
    mask[10:30, 10:30] = 255
    Image.fromarray(mask, "L").save(tmp_path / "mask.png")  # DAVIS-2016 style 0/255
    assert segment(tmp_path, tiny_weights) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".png") == [
        "a.png",
        "b.png",
        "c.png",
    ]
    assert set(np.unique(read_label_png(tmp_path / "out" / "a.png"))) == {0, 1}


def expect_error(capsys, code, pattern):
    assert code == 2
    err = capsys.readouterr().err
    assert pattern in err, err


def test_missing_frames_folder(video, tiny_weights, capsys):
    (video / "frames").rename(video / "elsewhere")
    expect_error(capsys, segment(video, tiny_weights), "frames folder not found")
    assert not (video / "out").exists()


def test_empty_frames_folder(video, tiny_weights, capsys):
    for p in (video / "frames").iterdir():
        p.unlink()
    expect_error(capsys, segment(video, tiny_weights), "holds no")


def test_frames_of_different_sizes(video, tiny_weights, capsys):
    Image.fromarray(np.zeros((30, 56, 3), np.uint8)).save(video / "frames" / "00002.png")
    expect_error(capsys, segment(video, tiny_weights), "frames differ in size")
    assert not (video / "out").exists()


def test_mask_of_another_size(video, tiny_weights, capsys):
    write_label_png(video / "mask.png", np.ones((20, 20), np.uint8))
    expect_error(capsys, segment(video, tiny_weights), "first mask")


def test_mask_without_object(video, tiny_weights, capsys):
    write_label_png(video / "mask.png", np.zeros((40, 56), np.uint8))
    expect_error(capsys, segment(video, tiny_weights), "has no object")


def test_unreadable_frame(video, tiny_weights, capsys):
    (video / "frames" / "00001.png").write_bytes(b"not an image")
    expect_error(capsys, segment(video, tiny_weights), "cannot read image")


def test_out_inside_frames(video, tiny_weights, capsys):
    expect_error(capsys, segment(video, tiny_weights, out="frames/out"), "lies inside --frames")
    assert not (video / "frames" / "out").exists()


def test_unknown_device(video, tiny_weights, capsys):
    expect_error(capsys, segment(video, tiny_weights, "--device", "tpu"), "unknown device")


def test_missing_weights(video, capsys):
    expect_error(capsys, segment(video, video / "nope.pth"), "checkpoint not found")


def test_trace_cli_reproduces_the_public_fixture_intermediates(
    tmp_path, reference_dir, recipe_weights_file
):
    fixture, weights = public_fixture_as_files(tmp_path, reference_dir, recipe_weights_file)
    cap_t = int(fixture["cap_t"])
    code = main(
        ["trace", "--weights", str(weights), "--frames", str(tmp_path / "frames"),
         "--first-mask", str(tmp_path / "mask.png"), "--frame", str(cap_t),
         "--out", str(tmp_path / "trace.npz"), "--mem-every", str(int(fixture["mem_every"]))]
    )  # fmt: skip
    assert code == 0
    trace = np.load(tmp_path / "trace.npz")
    for ours, theirs in [
        ("r4.affinity_logits", "p4_logits"),
        ("r4.kernel", "gauss4"),
        ("r4.affinity", "p4"),
    ]:
        np.testing.assert_allclose(trace[ours], fixture[theirs], atol=1e-4, rtol=0, err_msg=ours)
    for ours, theirs in [
        ("r3.topk_indices", "topk3_indices"),
        ("r2.topk_indices", "topk2_indices"),
    ]:
        np.testing.assert_array_equal(
            np.sort(trace[ours], axis=-1), np.sort(fixture[theirs], axis=-1), err_msg=ours
        )
    np.testing.assert_array_equal(trace["memory_frames"], [0, 5, 7])
    assert trace["r3.topk_coords"].shape == (*fixture["topk3_indices"].shape, 3)
    assert set(np.unique(trace["r3.topk_coords"][..., 0])) <= {0, 7}


# --- issue 13: nothing lost, nothing silently wrong ------------------------------------------------


def test_out_holding_pngs_is_refused_without_overwrite(video, tiny_weights, capsys):
    """Item 3: --out set to an annotation folder must not overwrite the ground truth."""
    truth = video / "truth"
    truth.mkdir()
    write_label_png(truth / "00001.png", np.ones((40, 56), np.uint8))
    before = (truth / "00001.png").read_bytes()
    expect_error(capsys, segment(video, tiny_weights, out="truth"), "already holds 1 PNG")
    assert (truth / "00001.png").read_bytes() == before
    assert segment(video, tiny_weights, "--overwrite", out="truth") == 0


def test_out_holding_the_first_mask_is_refused(video, tiny_weights, capsys):
    expect_error(capsys, segment(video, tiny_weights, "--overwrite", out="."), "holds the --first")


@pytest.mark.parametrize(
    "item, message",
    [
        ("sigma=nan", "sigma must be a finite number > 0, got nan"),
        ("sigma_growth=-1", "sigma_growth must be a finite number >= 0"),
        ("sigma=abc", "--read sigma=abc: expected a number for sigma, found 'abc'"),
        ("topk_r3=2.5", "--read topk_r3=2.5: expected an integer for topk_r3, found '2.5'"),
        ("window=7.5", "--read window=7.5: expected an integer for window"),
        ("colour=red", "unknown read parameter 'colour'"),
        ("window=none", "window cannot be none"),
    ],
)
def test_bad_read_parameters_fail_before_any_output(video, tiny_weights, capsys, item, message):
    """Items 4 and 8: bad --read values stop with a message, and nothing is written."""
    expect_error(capsys, segment(video, tiny_weights, "--read", item), message)
    assert not (video / "out").exists()


def test_read_parameters_listed_in_the_readme_work(video, tiny_weights):
    """Item 8: mem_every and max_memory_frames through --read, and --read variant=stm is used."""
    assert segment(video, tiny_weights, "--read", "mem_every=3", "--read", "max_memory_frames=2",
                   "--save-probs", str(video / "a.npz")) == 0  # fmt: skip
    assert segment(video, tiny_weights, "--read", "variant=stm", "--save-probs",
                   str(video / "stm.npz"), out="stm") == 0  # fmt: skip
    assert segment(video, tiny_weights, "--save-probs", str(video / "hmmn.npz"), out="hmmn") == 0
    stm, hmmn = np.load(video / "stm.npz")["probs"], np.load(video / "hmmn.npz")["probs"]
    assert np.abs(stm - hmmn).max() > 1e-6  # the stm read is not the hmmn read


def test_conflicting_read_options_are_refused(video, tiny_weights, capsys):
    code = segment(video, tiny_weights, "--mem-every", "5", "--read", "mem_every=3")
    expect_error(capsys, code, "--mem-every 5 and --read mem_every=3 disagree")
    code = segment(video, tiny_weights, "--variant", "kmn", "--read", "variant=stm")
    expect_error(capsys, code, "--variant kmn and --read variant=stm disagree")


def test_out_that_is_a_file_is_refused_before_the_model_loads(video, capsys):
    """Item 9: output paths are checked before any work (here: no weights exist at all)."""
    (video / "out").write_text("a file")
    expect_error(capsys, segment(video, video / "nope.pth"), "expected a folder, found a file")


@pytest.mark.parametrize(
    "probs, message",
    [
        ("x.txt/p.npz", "to be a folder, found a file"),
        ("probs/", "expected a file name ending in .npz"),
        ("probs.txt", "expected a file name ending in .npz"),
    ],
)
def test_bad_save_probs_path_is_refused_before_any_work(video, capsys, probs, message):
    (video / "x.txt").write_text("a file")
    code = segment(video, video / "nope.pth", "--save-probs", str(video) + "/" + probs)
    expect_error(capsys, code, message)
    assert not (video / "out").exists()


def test_void_only_mask_says_void(video, tiny_weights, capsys):
    """Item 10: a mask with only void pixels does not claim every pixel is 0."""
    write_label_png(video / "mask.png", np.full((40, 56), 255, np.uint8))
    expect_error(capsys, segment(video, tiny_weights), "2240 pixel(s) are void")
