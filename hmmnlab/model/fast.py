"""The fast inference path: the encoders' BatchNorms folded into their convolutions, and the
encoders' convolution weights stored channels-last. Both compute the same function as the readable model (up
to float rounding; the parity tests run both); :func:`fast_inference` applies them.

**Folding.**

In eval mode a BatchNorm is a fixed per-channel scale and shift,
``y = (x - mean) / sqrt(var + eps) * gamma + beta = scale * x + shift``, so the convolution before it
can absorb it: ``W' = W * scale`` (per output channel) and ``b' = scale * b + shift``. The folded
network computes the same function (up to float rounding) with one pass less over every feature map.

Only the two encoders are folded (the decoder has no BatchNorm). The pairs are listed per block type,
so nothing depends on the order in which a library registers its modules:

* torchvision ResNet blocks: ``conv1/bn1``, ``conv2/bn2``, ``conv3/bn3`` and ``downsample.0/.1``;
* timm EfficientNet blocks: ``conv_dw/bn1``, ``conv_pw/bn2`` (depthwise-separable) and
  ``conv_pw/bn1``, ``conv_dw/bn2``, ``conv_pwl/bn3`` (inverted residual). timm's ``BatchNormAct2d``
  applies its activation after the normalisation; the activation stays where the BatchNorm was;
* the stem: the memory encoder adds its RGB, mask and other-objects convolutions before ``bn1``,
  so all three are scaled and the shift goes into the RGB convolution's bias.

**Channels-last** (the encoders). With its weights in ``torch.channels_last`` order, a convolution reads and writes
N x C x H x W tensors stored pixel by pixel (C innermost), which oneDNN's CPU kernels prefer; the
tensors keep their shape, so nothing else changes. Measured on this project's 2-core CPU at 480p
with 2 objects (``benchmarks/bench_fast_path.py``), folding and channels-last together shorten a
frame by about 15%.

A folded model is for inference only: its state dict no longer has the BatchNorm keys, so
:func:`hmmnlab.weights.save_checkpoint` refuses it, and training from it would be wrong.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from hmmnlab.model.encoders import MemoryEncoder, _Encoder

PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "Bottleneck": (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
    "BasicBlock": (("conv1", "bn1"), ("conv2", "bn2")),
    "DepthwiseSeparableConv": (("conv_dw", "bn1"), ("conv_pw", "bn2")),
    "InvertedResidual": (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
}


def _after_batchnorm(bn: nn.BatchNorm2d) -> nn.Module:
    """What is left of ``bn`` once folded: nothing, or timm's activation (its dropout is a no-op in
    eval mode)."""
    act = getattr(bn, "act", None)
    return nn.Identity() if act is None else act


def _scale(bn: nn.BatchNorm2d) -> torch.Tensor:
    """The per-channel factor ``gamma / sqrt(var + eps)`` of the BatchNorm (C)."""
    return bn.weight / torch.sqrt(bn.running_var + bn.eps)


def _fold_pair(parent: nn.Module, conv_name: str, bn_name: str) -> None:
    conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
    if not isinstance(bn, nn.BatchNorm2d):  # already folded
        return
    setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
    setattr(parent, bn_name, _after_batchnorm(bn))


def _fold_stem(encoder: _Encoder) -> None:
    if not isinstance(encoder.bn1, nn.BatchNorm2d):
        return
    resnet = encoder.backbone.startswith("resnet")
    stem_name = "conv1" if resnet else "conv_stem"
    extra = [encoder.conv1_m, encoder.conv1_o] if isinstance(encoder, MemoryEncoder) else []
    scale = _scale(encoder.bn1)  # the shift goes into the fused RGB convolution's bias
    setattr(encoder, stem_name, fuse_conv_bn_eval(getattr(encoder, stem_name), encoder.bn1))
    for conv in extra:  # their outputs are added before bn1: scaled, no shift
        conv.weight.data.mul_(scale.view(-1, 1, 1, 1))
    encoder.bn1 = _after_batchnorm(encoder.bn1)


@torch.no_grad()
def fold_batchnorms(model: nn.Module) -> nn.Module:
    """Fold the BatchNorms of ``model``'s encoders into their convolutions, in place (idempotent).

    ``model`` must be in eval mode (BatchNorms use their running statistics). Returns ``model``,
    marked with ``model.batchnorms_folded = True``."""
    if model.training:
        raise ValueError("fold_batchnorms needs a model in eval mode (call model.eval() first)")
    for encoder in (model.memory_encoder, model.query_encoder):
        _fold_stem(encoder)
        for module in encoder.modules():
            for conv_name, bn_name in PAIRS.get(type(module).__name__, ()):
                _fold_pair(module, conv_name, bn_name)
            downsample = getattr(module, "downsample", None)
            if isinstance(downsample, nn.Sequential) and len(downsample) == 2:
                _fold_pair(downsample, "0", "1")
    left = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if left:
        raise RuntimeError(f"fold_batchnorms left BatchNorms it does not know how to fold: {left}")
    model.batchnorms_folded = True
    return model


def fast_inference(model: nn.Module) -> nn.Module:
    """Fold the BatchNorms (:func:`fold_batchnorms`) and store the encoders' weights channels-last,
    in place. Returns ``model``.

    Only the encoders: they hold most of the gain, and with the key/value heads and the decoder
    channels-last too, the changed rounding flipped a near-tie in one of the authors' fixtures (a
    window argmax at frame 9) and its probabilities came out 3.8e-3 off with 1 thread."""
    fold_batchnorms(model)
    for encoder in (model.memory_encoder, model.query_encoder):
        encoder.to(memory_format=torch.channels_last)
    return model
