"""Causal hooks: properties that must hold on the trained demo model and a sample video.

Nothing here depends on the demo model's numbers: each property compares two runs of the same
model (any trained HMMN), so the tests hold when the bundled weights change.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmmnlab.hooks import capture, hook_points
from hmmnlab.inference import propagate
from hmmnlab.model.reads import read_variant

FRAMES = 4  # frames 0..3: the r4 memory holds one, then two, then three frames


@pytest.fixture(scope="module")
def demo_model():
    from hmmnlab.inside.lesson import demo_weights
    from hmmnlab.weights import load_model

    try:
        path = demo_weights()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    return load_model(path)


@pytest.fixture(scope="module")
def twins():
    from hmmnlab.inside.interventions import sample_video

    video = sample_video("twins", frames=FRAMES)
    return video.frames, video.first_labels


def probs(model, video, read=None, **kwargs):
    read = read or read_variant("hmmn", mem_every=2)  # frame 2 is kept: older frames get propagated
    return torch.stack([r.probs for r in propagate(model, *video, read=read, **kwargs)])


@pytest.fixture(scope="module")
def plain(demo_model, twins):
    return probs(demo_model, twins)


def test_kernel_forced_to_ones_is_the_stm_read(demo_model, twins, plain):
    ones = probs(
        demo_model, twins, hooks={"r4.kernel": lambda kernel, ctx: torch.ones_like(kernel)}
    )
    stm = probs(demo_model, twins, read_variant("stm", mem_every=2))
    torch.testing.assert_close(ones, stm, atol=1e-5, rtol=0)
    assert (plain - stm).abs().max() > 1e-3  # the kernel matters: the test can fail


def test_fine_readouts_forced_to_zero_are_the_no_hierarchy_read(demo_model, twins, plain):
    def zeros(value, ctx):
        return torch.zeros_like(value)

    zeroed = probs(demo_model, twins, hooks={"r3.readout": zeros, "r2.readout": zeros})
    none = probs(demo_model, twins, read_variant("hmmn", mem_every=2, fine="none"))
    torch.testing.assert_close(zeroed, none, atol=1e-6, rtol=0)
    assert (plain - none).abs().max() > 1e-3


def test_hooks_returning_none_everywhere_are_bit_identical(demo_model, twins, plain):
    seen = set()

    def look(value, ctx):
        seen.add(ctx.name)
        return None

    hooks = dict.fromkeys(hook_points(demo_model), look)
    assert torch.equal(probs(demo_model, twins, hooks=hooks), plain)
    assert {"r4.flow", "r4.kernel", "r3.attention", "output.probs"} <= seen


# a change per hook point that must move frame t's output (and nothing before it)
CHANGES = {
    "memory_features.v4": lambda v: v.flip(-1),
    "query_features.k4": lambda v: v.flip(-1),
    "r4.affinity_logits": lambda v: v.flip(-1),
    "r4.flow": lambda v: v.flip(-1),
    "r4.centres": lambda v: v.flip(-1),
    "r4.sigmas": lambda v: v * 10,
    "r4.kernel": lambda v: v.flip(-1),
    "r4.affinity": lambda v: v.flip(-1),
    "r4.readout": torch.zeros_like,
    "r3.topk_indices": lambda v: v.flip(1),
    "r3.attention": lambda v: v.flip(-1),
    "r3.readout": torch.zeros_like,
    "r2.topk_indices": lambda v: v.flip(1),
    "r2.attention": lambda v: v.flip(-1),
    "r2.readout": torch.zeros_like,
    "decoder.logits": lambda v: v.flip(1),
    "output.object_probs": lambda v: 1 - v,
    "output.logits": lambda v: v.flip(0),
    "output.probs": lambda v: v.flip(0),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_a_hook_at_frame_t_changes_frame_t_and_nothing_before(demo_model, twins, plain, name):
    t = FRAMES - 1  # memory frames (0, 2): kernel propagation, two guiding frames

    def change(value, ctx):
        return CHANGES[name](value) if ctx.frame == t else None

    changed = probs(demo_model, twins, hooks={name: change})
    assert torch.equal(changed[:t], plain[:t])
    assert (changed[t] - plain[t]).abs().max() > 1e-4, f"{name} at frame {t} changed nothing"


def test_the_trace_records_what_was_used(demo_model, twins):
    def ones(value, ctx):
        return torch.ones_like(value)

    results = list(
        propagate(demo_model, *twins, hooks={"r4.kernel": ones}, trace=["r4.kernel", "r4.affinity"])
    )
    for r in results[1:]:
        assert torch.equal(r.trace["r4.kernel"], torch.ones_like(r.trace["r4.kernel"]))


def test_the_context_says_where_the_hook_is(demo_model, twins):
    calls = []

    def record(value, ctx):
        calls.append(ctx)

    results = list(propagate(demo_model, *twins, hooks={"r4.readout": record}, mem_every=2))
    assert [c.frame for c in calls] == list(range(1, FRAMES))
    assert all(c.name == "r4.readout" for c in calls)
    ids = tuple(int(v) for v in np.unique(twins[1]) if v != 0)
    assert all(c.object_ids == ids for c in calls)
    assert [c.memory_frames for c in calls] == [r.memory_frames for r in results[1:]]


def test_unknown_names_and_bad_replacements_are_refused(tiny_model, twins):
    frames, labels = twins
    with pytest.raises(ValueError, match=r"unknown hook names \['r4.kernl'\]; known: .*r4.kernel"):
        list(propagate(tiny_model, frames[:2], labels, hooks={"r4.kernl": lambda v, c: None}))
    with pytest.raises(ValueError, match="unknown hook names"):
        with capture(tiny_model, "r4.kernl"):
            pass
    with pytest.raises(ValueError, match=r"r4.kernel \(frame 1\) must return None or a tensor of"):
        list(propagate(tiny_model, frames[:2], labels, hooks={"r4.kernel": lambda v, c: v[:1]}))
    with pytest.raises(ValueError, match="indices must stay integers"):
        hooks = {"r3.topk_indices": lambda v, c: v.float()}
        list(propagate(tiny_model, frames[:2], labels, hooks=hooks))
