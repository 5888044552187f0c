"""Tests of the synthetic video generator and of the bundled data_samples/."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hmmnlab.data.palette import davis_palette, read_label_png
from hmmnlab.data.synthetic import (
    VideoSpec,
    build_scene,
    generate_video,
    object_masks,
    random_specs,
    render_frame,
    sample_specs,
    write_davis,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data_samples"


def generated_files():
    """The generated files of data_samples/ (the demo weights in weights/ are trained, not
    generated)."""
    return [
        p
        for p in SAMPLES.rglob("*")
        if p.is_file() and p.relative_to(SAMPLES).parts[0] != "weights"
    ]


SMALL = VideoSpec("small", seed=7, num_frames=6, height=96, width=160, num_objects=3)


@pytest.fixture(scope="module")
def sample_videos() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (frames, labels) of every bundled sample, rendered once for the module."""
    return {spec.name: generate_video(spec) for spec in sample_specs()}


def _spec(name: str) -> VideoSpec:
    return next(spec for spec in sample_specs() if spec.name == name)


def _expected_labels(scene, t: int) -> np.ndarray:
    """Labels recomputed from the whole silhouettes: the nearest covering object, else 0."""
    masks = object_masks(scene, t)
    labels = np.zeros(masks.shape[1:], dtype=np.uint8)
    for obj in sorted(scene.objects, key=lambda o: o.depth, reverse=True):  # far to near
        labels[masks[obj.label - 1]] = obj.label
    return labels


# ----------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_gives_identical_bytes(tmp_path):
    frames_a, labels_a = generate_video(SMALL)
    frames_b, labels_b = generate_video(dataclasses.replace(SMALL))
    assert frames_a.tobytes() == frames_b.tobytes()
    assert labels_a.tobytes() == labels_b.tobytes()
    write_davis(tmp_path / "a", [SMALL])
    write_davis(tmp_path / "b", [SMALL])
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.*"))
    assert files_a == files_b and len(files_a) == 2 * SMALL.num_frames + 1
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_different_seed_gives_a_different_video():
    frames_a, labels_a = generate_video(SMALL)
    frames_b, labels_b = generate_video(dataclasses.replace(SMALL, seed=SMALL.seed + 1))
    assert not np.array_equal(frames_a, frames_b)
    assert not np.array_equal(labels_a, labels_b)


def test_shapes_and_dtypes():
    frames, labels = generate_video(SMALL)
    assert frames.shape == (6, 96, 160, 3) and frames.dtype == np.uint8
    assert labels.shape == (6, 96, 160) and labels.dtype == np.uint8


def test_random_specs_are_deterministic_and_valid():
    specs = random_specs(12, seed=3, num_frames=8, height=96, width=160)
    assert specs == random_specs(12, seed=3, num_frames=8, height=96, width=160)
    assert specs != random_specs(12, seed=4, num_frames=8, height=96, width=160)
    assert [s.name for s in specs] == [f"train-{i:05d}" for i in range(12)]
    for spec in specs:
        scene = build_scene(spec)  # raises if frame 0 cannot show every object
        _, labels = render_frame(scene, 0)
        assert set(np.unique(labels).tolist()) == set(range(spec.num_objects + 1)), spec


# ----------------------------------------------------------------------------------------------
# Masks


@pytest.mark.parametrize("spec", sample_specs(), ids=lambda s: s.name)
def test_every_object_visible_in_frame_0_and_labels_in_range(spec, sample_videos):
    frames, labels = sample_videos[spec.name]
    assert frames.shape == (spec.num_frames, spec.height, spec.width, 3)
    assert set(np.unique(labels[0]).tolist()) == set(range(spec.num_objects + 1))
    assert int(labels.max()) <= spec.num_objects


@pytest.mark.parametrize("name", ["trio-crossing", "twins", "crowd"])
def test_labels_show_the_nearest_object(name, sample_videos):
    """Each pixel carries the nearest object whose silhouette covers it, so hidden parts of an
    occluded object are labelled with its occluder; the samples do contain such occlusions."""
    scene = build_scene(_spec(name))
    _, labels = sample_videos[name]
    occluded_pixels = 0
    for t in range(scene.spec.num_frames):
        np.testing.assert_array_equal(labels[t], _expected_labels(scene, t), err_msg=f"t={t}")
        masks = object_masks(scene, t)
        for back in scene.objects:
            for front in scene.objects:
                if front.depth < back.depth:
                    hidden = masks[back.label - 1] & masks[front.label - 1]
                    assert np.all(labels[t][hidden] != back.label)
                    assert np.all(np.isin(labels[t][hidden], [o.label for o in scene.objects]))
                    occluded_pixels += int(hidden.sum())
    assert occluded_pixels > 500, f"{name} should show objects hiding one another"


def test_mask_edges_match_the_image(sample_videos):
    """The label map is the half-coverage line of the drawn object: pixels well inside a mask
    look like the object, not like the background seen in other frames."""
    frames, labels = sample_videos["solo-blob"]
    inside = labels[0] == 1
    assert inside.sum() > 2000
    # A visible edge: the image changes across the mask boundary more than inside the object.
    gy = np.abs(np.diff(frames[0].astype(int), axis=0)).sum(-1)
    edge = inside[1:] != inside[:-1]
    assert gy[edge].mean() > gy[~edge].mean()


# ----------------------------------------------------------------------------------------------
# Scenarios


def test_twins_are_identical_and_cross():
    scene = build_scene(_spec("twins"))
    one, two = scene.objects[0], scene.objects[1]
    assert (one.twin_of, two.twin_of) == (2, 1)
    assert (one.shape.radius, one.shape.aspect, one.shape.harmonics) == (
        two.shape.radius,
        two.shape.aspect,
        two.shape.harmonics,
    )
    np.testing.assert_array_equal(one.texture, two.texture)
    np.testing.assert_array_equal(one.scales, two.scales)
    np.testing.assert_array_equal(one.angles, two.angles)
    assert not np.allclose(one.centres, two.centres)
    overlaps = [
        (object_masks(scene, t)[0] & object_masks(scene, t)[1]).any()
        for t in range(scene.spec.num_frames)
    ]
    assert any(overlaps) and not overlaps[0] and not overlaps[-1]
    # Their paths swap sides: the sign of their separation along it flips.
    before = one.centres[0] - two.centres[0]
    after = one.centres[-1] - two.centres[-1]
    assert float(before @ after) < 0


@pytest.mark.parametrize("name", ["peekaboo", "crowd"])
def test_leaving_object_goes_and_comes_back(name, sample_videos):
    spec = _spec(name)
    _, labels = sample_videos[name]
    scene = build_scene(spec)
    leavers = [obj.label for obj in scene.objects if obj.leaves_frame]
    assert leavers == [spec.num_objects]
    present = [(labels[t] == leavers[0]).any() for t in range(spec.num_frames)]
    assert present[0] and present[-1]
    gone = [t for t, here in enumerate(present) if not here]
    assert len(gone) >= 3, f"object {leavers[0]} of {name} should be out for a few frames"
    # Out of the frame, not hidden behind another object: its whole silhouette is off screen.
    assert not object_masks(scene, gone[len(gone) // 2])[leavers[0] - 1].any()


def test_camera_pans():
    scene = build_scene(_spec("solo-blob"))
    shift = abs(scene.camera[-1, 0] - scene.camera[0, 0])
    assert shift == pytest.approx(0.2 * scene.spec.width)


def test_spec_validation_messages():
    with pytest.raises(ValueError, match="twins need at least 2 objects"):
        VideoSpec("x", seed=0, num_objects=1, twins=True)
    with pytest.raises(ValueError, match="exit_reenter with twins needs at least 3 objects"):
        VideoSpec("x", seed=0, num_objects=2, twins=True, exit_reenter=True)
    with pytest.raises(ValueError, match="sequence name"):
        VideoSpec("a/b", seed=0)
    with pytest.raises(ValueError, match="num_frames"):
        VideoSpec("x", seed=0, num_frames=0)
    with pytest.raises(ValueError, match="frame index"):
        render_frame(build_scene(SMALL), SMALL.num_frames)


# ----------------------------------------------------------------------------------------------
# DAVIS layout


def test_write_davis_layout(tmp_path):
    other = dataclasses.replace(SMALL, name="other", seed=8, num_objects=1, num_frames=4)
    names = write_davis(tmp_path, [SMALL, other], split="train")
    assert names == ["small", "other"]
    assert (tmp_path / "ImageSets" / "2017" / "train.txt").read_text() == "small\nother\n"
    for spec in (SMALL, other):
        frames, labels = generate_video(spec)
        image_dir = tmp_path / "JPEGImages" / "480p" / spec.name
        mask_dir = tmp_path / "Annotations" / "480p" / spec.name
        expected = [f"{t:05d}" for t in range(spec.num_frames)]
        assert sorted(p.stem for p in image_dir.glob("*.jpg")) == expected
        assert sorted(p.stem for p in mask_dir.glob("*.png")) == expected
        for t in range(spec.num_frames):
            np.testing.assert_array_equal(read_label_png(mask_dir / f"{t:05d}.png"), labels[t])
            with Image.open(image_dir / f"{t:05d}.jpg") as img:
                assert img.mode == "RGB" and img.size == (spec.width, spec.height)
                decoded = np.asarray(img, dtype=np.int16)
            assert np.abs(decoded - frames[t]).mean() < 4.0
        with Image.open(mask_dir / "00000.png") as img:
            assert img.mode == "P"
            palette = np.array(img.getpalette()[:768], dtype=np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(palette, davis_palette())


def test_write_davis_removes_stale_frames_and_rejects_duplicates(tmp_path):
    longer = dataclasses.replace(SMALL, num_frames=8)
    write_davis(tmp_path, [longer])
    write_davis(tmp_path, [SMALL])
    assert len(list((tmp_path / "JPEGImages" / "480p" / "small").glob("*.jpg"))) == 6
    assert len(list((tmp_path / "Annotations" / "480p" / "small").glob("*.png"))) == 6
    with pytest.raises(ValueError, match="unique"):
        write_davis(tmp_path, [SMALL, SMALL])


def test_cli_registers_samples():
    from hmmnlab.commands.cli import build_parser

    args = build_parser().parse_args(["samples", "--out", "x", "--num-train", "3", "--seed", "5"])
    from hmmnlab.commands import samples

    assert args.func.load() is samples.run
    assert (args.out, args.num_train, args.seed) == (Path("x"), 3, 5)


# ----------------------------------------------------------------------------------------------
# The bundled samples


def test_committed_samples_match_regeneration(tmp_path):
    """data_samples/ is exactly what `hmmnlab samples --out data_samples` writes.

    Masks, lists and the README must match exactly (masks compared as decoded label maps, since
    PNG compression bytes depend on the zlib build). JPEG frames are compared decoded, with a
    small tolerance: another libjpeg build may round the DCT differently; with the same
    libraries the files are byte-identical (see test_same_seed_gives_identical_bytes).
    """
    from hmmnlab.commands.cli import main

    assert main(["samples", "--out", str(tmp_path)]) == 0
    committed = sorted(p.relative_to(SAMPLES) for p in generated_files())
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert committed == fresh, "data_samples/ has missing or extra files: regenerate it"
    for rel in committed:
        old, new = SAMPLES / rel, tmp_path / rel
        if rel.suffix == ".png":
            np.testing.assert_array_equal(read_label_png(old), read_label_png(new), str(rel))
        elif rel.suffix == ".jpg":
            if old.read_bytes() == new.read_bytes():
                continue
            with Image.open(old) as a, Image.open(new) as b:
                diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
            assert diff.mean() < 1.0 and diff.max() <= 24, f"{rel} differs (regenerate it)"
        else:
            assert old.read_bytes() == new.read_bytes(), f"{rel} differs: regenerate it"


def test_samples_are_small_and_varied():
    specs = sample_specs()
    assert 4 <= len(specs) <= 6
    assert all(20 <= s.num_frames <= 40 and s.height <= 480 and s.width <= 854 for s in specs)
    assert {1, 3} <= {s.num_objects for s in specs}
    assert any(s.twins for s in specs) and any(s.exit_reenter for s in specs)
    total = sum(p.stat().st_size for p in generated_files())
    assert total < 5_000_000, f"data_samples/ holds {total} bytes"
