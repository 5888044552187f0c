"""The two encoders: torchvision ResNet stem and layers 1-3 (strides 4, 8, 16 = r2, r3, r4).

The query encoder sees an RGB frame. The memory encoder also sees the object's soft mask and the union
of the other objects' masks, through two extra 1-channel stem convolutions added to the RGB stem.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

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
    """Normalisation, ResNet stem and layers 1-3, shared by both encoders."""

    def __init__(self, backbone: str, imagenet_init: bool) -> None:
        super().__init__()
        resnet = _resnet(backbone, imagenet_init)
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1  # r2, stride 4 (the authors' res2)
        self.layer2 = resnet.layer2  # r3, stride 8 (res3)
        self.layer3 = resnet.layer3  # r4, stride 16 (res4)
        # Stored in the authors' checkpoint, so kept as (persistent) buffers.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def normalise(self, frame: Tensor) -> Tensor:
        """frame: N x 3 x H x W RGB in [0, 1] -> ImageNet-normalised."""
        return (frame - self.mean) / self.std

    def layers(self, stem: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """stem: N x 64 x H/2 x W/2 stem convolution output -> (r4, r3, r2) features."""
        x = self.maxpool(self.relu(self.bn1(stem)))
        r2 = self.layer1(x)  # N x 256 x H/4 x W/4
        r3 = self.layer2(r2)  # N x 512 x H/8 x W/8
        r4 = self.layer3(r3)  # N x 1024 x H/16 x W/16
        return r4, r3, r2


class QueryEncoder(_Encoder):
    """Encodes the frame to segment."""

    def forward(self, frame: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """frame: N x 3 x H x W in [0, 1] (H, W multiples of 16) -> (r4, r3, r2) features."""
        return self.layers(self.conv1(self.normalise(frame)))


class MemoryEncoder(_Encoder):
    """Encodes a past frame together with one object's mask, once per object."""

    def __init__(self, backbone: str, imagenet_init: bool) -> None:
        super().__init__(backbone, imagenet_init)
        self.conv1_m = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.conv1_o = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)

    def forward(self, frame: Tensor, mask: Tensor, others: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """frame: 1 x 3 x H x W in [0, 1]; mask: B x 1 x H x W, each object's soft mask;
        others: B x 1 x H x W, the union of the other objects' masks. Returns (r4, r3, r2) with
        batch B. The RGB stem convolution is the same for every object, so it runs once."""
        stem = self.conv1(self.normalise(frame)) + self.conv1_m(mask) + self.conv1_o(others)
        return self.layers(stem)
