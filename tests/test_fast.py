"""Folding the encoders' BatchNorms into their convolutions (hmmnlab.model.fast)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from hmmnlab.config import preset
from hmmnlab.data.synthetic import VideoSpec, generate_video
from hmmnlab.inference import propagate
from hmmnlab.model import HMMN
from hmmnlab.model.fast import fast_inference, fold_batchnorms
from hmmnlab.weights import load_model, save_checkpoint


def with_random_statistics(model: HMMN, seed: int = 0) -> HMMN:
    """Non-trivial BatchNorm statistics and affine values, so that folding has work to do."""
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=generator) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=generator) - 0.5)
    for conv in (model.memory_encoder.conv1_m, model.memory_encoder.conv1_o):
        conv.weight.data.normal_(0, 0.1, generator=generator)  # the mask pathway must be folded too
    return model.eval()


def probabilities(model: HMMN) -> np.ndarray:
    spec = VideoSpec("fold", seed=5, num_frames=5, height=64, width=96, num_objects=2)
    frames, labels = generate_video(spec)
    return np.stack([r.probs.numpy() for r in propagate(model, frames, labels[0])])


@pytest.mark.parametrize("name", ["tiny", "demo"])
def test_fast_model_computes_the_same_probabilities(name, tiny_config):
    torch.manual_seed(0)
    config = tiny_config if name == "tiny" else preset("demo")
    model = with_random_statistics(HMMN(config))
    folded = fast_inference(copy.deepcopy(model))
    assert folded.batchnorms_folded
    first_conv = (
        folded.query_encoder.blocks[0][0].conv_dw if name == "demo" else folded.query_encoder.conv1
    )
    assert first_conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert folded.decoder.pred2.weight.is_contiguous()  # the decoder keeps its layout
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    readable, fast = probabilities(model), probabilities(folded)
    assert np.abs(readable - fast).max() < 1e-4  # the parity tolerance
    assert np.abs(fast - probabilities(fold_batchnorms(folded))).max() == 0  # idempotent


def test_efficientnet_activation_survives_folding():
    model = with_random_statistics(HMMN(preset("demo")))
    folded = fold_batchnorms(copy.deepcopy(model))
    frame = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model.query_encoder(frame), folded.query_encoder(frame), strict=True):
            assert (a - b).abs().max() <= 1e-5 * a.abs().max()  # float rounding only
    assert isinstance(folded.query_encoder.bn1, nn.ReLU6)  # what was BatchNormAct2d's activation


def test_folded_model_is_not_saved_and_needs_eval_mode(tiny_config, tiny_weights, tmp_path):
    folded = load_model(tiny_weights, fast=True)
    with pytest.raises(ValueError, match="folded"):
        save_checkpoint(folded, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorms(HMMN(tiny_config).train())
