"""The training's optional r4 attention loss: the attention that query cells on an object put off
that object's memory cells, as the saturation signal measures it, with gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmmnlab.data.lookalikes import generate_lookalike, lookalike_specs
from hmmnlab.inside.teaching import saturation
from hmmnlab.model.reads import read_variant
from hmmnlab.train.clips import Clip
from hmmnlab.train.config import TrainConfig, parse_overrides
from hmmnlab.train.loop import (
    attention_shares,
    attention_term,
    forward_clips,
    set_train_mode,
    train_step,
)
from hmmnlab.train.losses import attention_off_label, object_cells
from hmmnlab.weights import load_model

READ = read_variant("hmmn", sigma=1.5, temperature=10)


def test_object_cells_count_a_cell_from_half_of_it_on_the_object():
    labels = torch.zeros(1, 32, 48, dtype=torch.int64)
    labels[0, :16, :16] = 1  # the whole top-left cell
    labels[0, 16:, 16:24] = 2  # half of a cell: counted
    labels[0, :7, 32:48] = 2  # less than half: not counted
    cells = object_cells(labels, 2)
    assert cells.shape == (1, 2, 2, 3) and cells.dtype == torch.bool
    assert cells[0, 0].tolist() == [[True, False, False], [False, False, False]]
    assert cells[0, 1].tolist() == [[False, False, False], [False, True, False]]


def test_attention_off_label_by_hand():
    affinity = torch.tensor([[[0.5, 0.1], [0.3, 0.1], [0.2, 0.4], [0.0, 0.4]]])  # 1 x 4 x 2
    memory_on = torch.tensor([[True, True, False, False]])
    off, stray, a, b = attention_off_label(affinity, memory_on, torch.tensor([[True, True]]))
    assert (a, b) == (2, 0) and float(off) == pytest.approx(0.2 + 0.8) and float(stray) == 0
    off, stray, a, b = attention_off_label(affinity, memory_on, torch.tensor([[False, True]]))
    assert (a, b) == (1, 1) and float(off) == pytest.approx(0.8)
    assert float(stray) == pytest.approx(0.8)  # query 0, off the object, puts 0.8 on it


@pytest.fixture(scope="module")
def lookalike_clip():
    """Frames 0-1 of an *apart* look-alike video (240 x 432, multiples of 16: no padding)."""
    spec = lookalike_specs(1, seed=3, grades=("apart",), num_frames=8)[0]
    frames, labels = generate_lookalike(spec)
    frames, labels = frames[:2], labels[:2]
    clip = Clip(
        torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255,
        torch.from_numpy(labels.astype(np.int64)),
        int(labels[0].max()),
        "apart:0,1",
    )
    return frames, labels, clip


def test_the_term_is_one_minus_the_saturation_signal(lookalike_clip):
    """On frame 1 (memory: frame 0 with its true mask) the training's object share is 1 - the
    same-object share that teaching.saturation reports for the same weights and read; the term
    is the mean of it and the background queries' share on the object."""
    frames, labels, clip = lookalike_clip
    model = load_model("demo").eval()
    found = []
    with torch.no_grad():
        forward_clips(model, [clip], READ, torch.device("cpu"),
                      hooks={"r4.affinity": lambda v, ctx: found.append((ctx, v))})  # fmt: skip
        off, stray = attention_shares([clip], found, torch.device("cpu"))
        term = attention_term([clip], found, torch.device("cpu"))
    signal = saturation(model, list(frames), labels, at=(1,), read=READ)
    assert len(found) == 1 and 0 < float(off) < 1 and 0 < float(stray) < 1
    assert float(off) == pytest.approx(1 - signal.same_share, abs=1e-4)
    assert float(term) == pytest.approx((float(off) + float(stray)) / 2)


def test_the_weight_adds_the_term_to_the_loss_and_its_gradient(lookalike_clip):
    """attention_loss=w adds w times the term to the step's loss; the gradient changes with it."""
    _, _, clip = lookalike_clip
    results, grads = [], []
    for weight in (0.0, 0.5):
        model = set_train_mode(load_model("demo"))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        results.append(train_step(model, optimizer, [clip], READ, device=torch.device("cpu"),
                                  attention_loss=weight))  # fmt: skip
        grads.append(model.memory_encoder.conv1_m.weight.grad.clone())
    model = set_train_mode(load_model("demo"))
    found = []
    with torch.no_grad():
        forward_clips(model, [clip], READ, torch.device("cpu"),
                      hooks={"r4.affinity": lambda v, ctx: found.append((ctx, v))})  # fmt: skip
        term = float(attention_term([clip], found, torch.device("cpu")))
    assert results[1].loss == pytest.approx(results[0].loss + 0.5 * term, rel=1e-4)
    assert not torch.allclose(grads[0], grads[1])


def test_the_setting_is_checked():
    assert parse_overrides(["attention_loss=0.3"])[0].attention_loss == 0.3
    with pytest.raises(ValueError, match="attention_loss"):
        TrainConfig(attention_loss=-1)
