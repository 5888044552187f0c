"""The two encoders: a CNN trunk to stride 16 whose features at strides 4, 8, 16 are r2, r3, r4.

Two trunks are available (``ModelConfig.backbone``):

* ``resnet50`` / ``resnet18``: torchvision's ResNet stem and layers 1-3 (the authors' HMMN);
* ``efficientnet_lite0``: timm's ``tf_efficientnet_lite0`` stem and blocks 0-4
  (:mod:`hmmnlab.model.efficientnet`), which can start from ImageNet weights available offline.

The query encoder sees an RGB frame. The memory encoder also sees the object's soft mask and the union
of the other objects' masks, through two extra 1-channel stem convolutions added to the RGB stem.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

from hmmnlab.model import efficientnet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _resnet(backbone: str, imagenet_init: bool) -> torchvision.models.ResNet:
    """A torchvision ResNet; with ``imagenet_init`` its ImageNet weights through torchvision's weights
    API (only works where torchvision can find or download them)."""
    builders = {
        "resnet50": (torchvision.models.resnet50, torchvision.models.ResNet50_Weights),
        "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights),
    }
    builder, weights = builders[backbone]
    return builder(weights=weights.IMAGENET1K_V1 if imagenet_init else None)


class _Encoder(nn.Module):
    """Normalisation, stem and trunk to stride 16, shared by both encoders.

    ResNet trunks keep torchvision's module names (``conv1``, ``layer1`` ...: the authors'
    checkpoint loads by them); EfficientNet trunks keep timm's (``conv_stem``, ``blocks.N.M``)."""

    def __init__(self, backbone: str, imagenet_init: bool) -> None:
        super().__init__()
        self.backbone = backbone
        if backbone.startswith("resnet"):
            resnet = _resnet(backbone, imagenet_init)
            self.conv1 = resnet.conv1
            self.bn1 = resnet.bn1
            self.relu = resnet.relu
            self.maxpool = resnet.maxpool
            self.layer1 = resnet.layer1  # r2, stride 4 (the authors' res2)
            self.layer2 = resnet.layer2  # r3, stride 8 (res3)
            self.layer3 = resnet.layer3  # r4, stride 16 (res4)
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        else:
            net = efficientnet.build_classifier()
            if imagenet_init:
                net.load_state_dict(efficientnet.imagenet_state_dict(), strict=True)
            self.conv_stem = net.conv_stem  # stride 2, TF "same" padding
            self.bn1 = net.bn1  # BatchNorm + ReLU6
            self.blocks = net.blocks[: efficientnet.R4_BLOCK + 1]  # r2 .. r4
            mean, std = efficientnet.MEAN, efficientnet.STD
        # Stored in the authors' checkpoint, so kept as (persistent) buffers.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def normalise(self, frame: Tensor) -> Tensor:
        """frame: N x 3 x H x W RGB in [0, 1] -> normalised as the trunk was trained."""
        return (frame - self.mean) / self.std

    def stem(self, frame: Tensor) -> Tensor:
        """frame: N x 3 x H x W in [0, 1] -> N x C x H/2 x W/2 stem convolution output."""
        conv = self.conv1 if self.backbone.startswith("resnet") else self.conv_stem
        return conv(self.normalise(frame))

    def new_stem_conv(self, in_channels: int) -> nn.Module:
        """A stem convolution like this trunk's, for ``in_channels`` extra input channels."""
        if self.backbone.startswith("resnet"):
            return nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        from timm.layers import create_conv2d

        return create_conv2d(
            in_channels, efficientnet.STEM_DIM, kernel_size=3, stride=2, padding="same", bias=False
        )

    def layers(self, stem: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """stem: N x C x H/2 x W/2 stem convolution output -> (r4, r3, r2) features."""
        if self.backbone.startswith("resnet"):
            x = self.maxpool(self.relu(self.bn1(stem)))
            r2 = self.layer1(x)  # N x 256 x H/4 x W/4 (ResNet-50; 64 for ResNet-18)
            r3 = self.layer2(r2)  # N x 512 x H/8 x W/8
            r4 = self.layer3(r3)  # N x 1024 x H/16 x W/16
            return r4, r3, r2
        x = self.bn1(stem)
        r2 = self.blocks[: efficientnet.R2_BLOCK + 1](x)  # N x 24 x H/4 x W/4
        r3 = self.blocks[efficientnet.R3_BLOCK](r2)  # N x 40 x H/8 x W/8
        r4 = self.blocks[efficientnet.R3_BLOCK + 1 :](r3)  # N x 112 x H/16 x W/16
        return r4, r3, r2


class QueryEncoder(_Encoder):
    """Encodes the frame to segment."""

    def forward(self, frame: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """frame: N x 3 x H x W in [0, 1] (H, W multiples of 16) -> (r4, r3, r2) features."""
        return self.layers(self.stem(frame))


class MemoryEncoder(_Encoder):
    """Encodes a past frame together with one object's mask, once per object.

    The mask and other-objects stem convolutions start at zero when the trunk starts from ImageNet
    (as in STM), so that the memory encoder begins as the ImageNet network."""

    def __init__(self, backbone: str, imagenet_init: bool) -> None:
        super().__init__(backbone, imagenet_init)
        self.conv1_m = self.new_stem_conv(1)
        self.conv1_o = self.new_stem_conv(1)
        if imagenet_init:
            nn.init.zeros_(self.conv1_m.weight)
            nn.init.zeros_(self.conv1_o.weight)

    def forward(
        self, frame: Tensor, mask: Tensor, others: Tensor, owner: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """frame: N x 3 x H x W in [0, 1] (N = 1, or one frame per video of a batch); mask:
        B x 1 x H x W, each object's soft mask; others: B x 1 x H x W, the union of the other
        objects' masks; owner: B indices of each object's frame (None: N = 1). Returns (r4, r3, r2)
        with batch B. The RGB stem convolution is the same for every object, so it runs once per
        frame."""
        rgb = self.stem(frame)  # N x C x H/2 x W/2
        if owner is not None:
            rgb = rgb[owner]  # B x C x H/2 x W/2
        return self.layers(rgb + self.conv1_m(mask) + self.conv1_o(others))
