"""The look-alike suite (hmmnlab.data.lookalikes), copy-paste look-alikes in training clips, the
r4 temperature and the saturation signal (hmmnlab.inside.teaching.saturation)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hmmnlab.data.lookalikes import (
    GRADES,
    LookalikeSpec,
    build_lookalike_scene,
    closeness,
    generate_lookalike,
    lookalike_specs,
    read_grades,
)
from hmmnlab.data.synthetic import object_masks


@pytest.mark.parametrize("spec", lookalike_specs(8, seed=21, num_frames=12), ids=lambda s: s.name)
def test_every_video_meets_its_grade_and_its_objects_are_identical(spec):
    scene, measured = build_lookalike_scene(spec)
    masks = np.stack([object_masks(scene, t) for t in range(spec.num_frames)])  # T x K x H x W
    assert closeness(masks).grade() == spec.grade == measured.grade()
    first = scene.objects[0]
    for obj in scene.objects[1:]:  # the same look and motion: only the path differs
        assert obj.shape is first.shape and obj.texture is first.texture
        assert (obj.scales == first.scales).all() and (obj.angles == first.angles).all()
        assert not np.allclose(obj.centres, first.centres)
    frames, labels = generate_lookalike(spec)
    assert frames.shape == (spec.num_frames, spec.height, spec.width, 3)
    assert set(np.unique(labels[0])) == set(range(spec.num_objects + 1))


def test_closeness_grades_hand_made_masks():
    masks = np.zeros((1, 2, 40, 200), dtype=bool)
    masks[0, 0, 10:20, 10:20] = True
    masks[0, 1, 10:20, 110:120] = True  # 89 pixels between
    assert closeness(masks).grade() == "apart"
    masks[0, 1] = False
    masks[0, 1, 10:20, 30:40] = True  # 9 pixels between
    assert closeness(masks).grade() == "pass"
    masks[0, 1] = False
    masks[0, 1, 10:20, 19:29] = True  # one column of 10 overlaps: 10%
    assert closeness(masks).grade() == "graze"
    masks[0, 1] = False
    masks[0, 1, 10:20, 12:22] = True  # 80% overlap
    assert closeness(masks).grade() == "cross"


def test_specs_cycle_through_the_grades_and_refuse_bad_input():
    specs = lookalike_specs(8, seed=0)
    assert [s.grade for s in specs] == list(GRADES) * 2
    assert specs == lookalike_specs(8, seed=0)
    with pytest.raises(ValueError, match="grade"):
        LookalikeSpec("x", 1, grade="near")
    with pytest.raises(ValueError, match="num_objects"):
        LookalikeSpec("x", 1, grade="apart", num_objects=4)
    with pytest.raises(ValueError, match="grades"):
        lookalike_specs(2, 0, grades=("apart", "far"))


def test_samples_command_writes_a_graded_suite(tmp_path):
    from hmmnlab.commands.cli import main

    out = tmp_path / "suite"
    assert main(["samples", "--lookalikes", str(out), "--num-lookalikes", "4"]) == 0
    grades = read_grades(out)
    assert sorted(grades.values()) == sorted(GRADES)
    listed = (out / "ImageSets" / "2017" / "val.txt").read_text().split()
    assert listed == list(grades)
    index = json.loads((out / "lookalikes.json").read_text())
    for record in index["videos"]:
        assert len(list((out / "Annotations" / "480p" / record["name"]).glob("*.png"))) == 30


def test_read_grades_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="lookalikes"):
        read_grades(tmp_path)


def test_pasted_lookalike_is_an_identical_copy():
    from hmmnlab.train.clips import ClipConfig, paste_lookalike

    frame = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    labels = np.zeros((64, 64), dtype=np.uint8)
    labels[5:15, 5:15] = 1
    config = ClipConfig(crop_size=64, min_object_pixels=50)
    for seed in range(6):
        out = paste_lookalike([frame, frame], [labels, labels], config, np.random.default_rng(seed))
        assert out is not None
        frames, maps, required = out
        assert required[0] == 1 and len(required) in (1, 2)
        changed = (frames[0] != frame).any(axis=2)  # where the copy was drawn
        assert (maps[0] == 1).sum() == 100  # the object itself is untouched
        if len(required) == 2:  # a second target: exactly the copy's pixels carry its label
            ys, xs = np.nonzero(maps[0] == required[1])
            assert len(ys) == 100 and changed[ys, xs].mean() > 0.9
            dy, dx = ys.min() - 5, xs.min() - 5
            assert (frames[0][ys, xs] == frame[ys - dy, xs - dx]).all()
        else:  # a distractor: drawn, but background in the labels
            assert 90 <= changed.sum() <= 100 and (maps[0][changed] == 0).all()


def test_temperature_one_is_the_authors_read_and_a_larger_one_flattens():
    from hmmnlab import ops

    logits = torch.randn(2, 30, 12) * 20
    kernel = torch.rand(2, 30, 12)
    assert torch.equal(ops.kernel_softmax(logits, kernel), ops.kernel_softmax(logits, kernel, 1.0))
    sharp, soft = ops.kernel_softmax(logits, None), ops.kernel_softmax(logits, None, 10.0)
    assert soft.max() < sharp.max()
    assert torch.allclose(soft, torch.softmax(logits / 10, dim=1))
    from hmmnlab.config import ReadConfig

    with pytest.raises(ValueError, match="temperature"):
        ReadConfig(temperature=0)


def test_saturation_signal_tells_a_kernel_read_from_a_non_local_one():
    """On a look-alike video with the objects apart, a soft kernel-guided read puts less of its
    attention on the copy than the non-local read of the same weights, and its logit gap is 0
    or more; without a kernel the gap is nan."""
    from hmmnlab.inside.teaching import saturation
    from hmmnlab.model.reads import read_variant
    from hmmnlab.weights import load_model

    spec = lookalike_specs(1, seed=3, grades=("apart",), num_frames=8)[0]
    frames, labels = generate_lookalike(spec)
    model = load_model("demo")
    kernel = saturation(model, list(frames), labels, at=(1, 2),
                        read=read_variant("hmmn", sigma=1.5, temperature=10))  # fmt: skip
    plain = saturation(model, list(frames), labels, at=(1, 2), read=read_variant("stm"))
    assert 0 <= kernel.same_share <= 1 and 0 <= kernel.lookalike_share <= 1
    assert kernel.same_share + kernel.lookalike_share <= 1 + 1e-5
    assert kernel.lookalike_share < plain.lookalike_share
    assert kernel.logit_gap >= 0 and np.isnan(plain.logit_gap)
    assert kernel.queries == plain.queries > 0
    with pytest.raises(ValueError, match="frames"):
        saturation(model, list(frames), labels, at=(0,))
