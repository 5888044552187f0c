"""The decoder: refines the r4 read-out with the r3 and r2 reads and query features."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from hmmnlab.hooks import HookPoint


def upsample(x: Tensor, factor: int) -> Tensor:
    """Bilinear upsampling by an integer factor (align_corners=False, as the authors)."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class ResBlock(nn.Module):
    """``x + conv2(relu(conv1(relu(x))))`` with 3x3 convolutions."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        r = self.conv2(F.relu(self.conv1(F.relu(x)), inplace=True))
        return r.add_(x)  # in place: at r2 each B x 256 x H/4 x W/4 map is tens of MiB


class Refine(nn.Module):
    """One refinement step: query features + memory read-out at this scale + the coarser map."""

    def __init__(self, feature_dim: int, read_dim: int, dim: int) -> None:
        super().__init__()
        self.conv_fs = nn.Conv2d(feature_dim, dim, kernel_size=3, padding=1)
        self.conv_memory = nn.Conv2d(read_dim, dim, kernel_size=3, padding=1, bias=False)
        self.res_fs = ResBlock(dim)
        self.res_mm = ResBlock(dim)

    def forward(
        self, features: Tensor, read: Tensor, coarse: Tensor, owner: Tensor | None = None
    ) -> Tensor:
        """features: 1 x Cf x H x W query features (the same for every object, so convolved once;
        N x Cf x H x W for a batch of N videos, ``owner`` giving each object row's video);
        read: B x Cr x H x W memory read-out; coarse: B x D x H/2 x W/2. Returns B x D x H x W."""
        fs = self.conv_fs(features)  # 1 (or N) x D x H x W
        if owner is not None:
            fs = fs[owner]  # B x D x H x W
        s = self.res_fs(self.conv_memory(read).add_(fs))  # B x D x H x W (fs broadcast)
        return self.res_mm(upsample(coarse, 2).add_(s))


class Decoder(nn.Module):
    """r4 read-out -> two-channel (background, object) logits at full resolution, per object."""

    def __init__(self, r4_dim: int, r3_dims: tuple[int, int], r2_dims: tuple[int, int], dim: int):
        super().__init__()
        self.conv_fm = nn.Conv2d(r4_dim, dim, kernel_size=3, padding=1)
        self.res_mm = ResBlock(dim)
        self.refine_r3 = Refine(*r3_dims, dim)
        self.refine_r2 = Refine(*r2_dims, dim)
        self.pred2 = nn.Conv2d(dim, 2, kernel_size=3, padding=1)
        self.logits = HookPoint()  # B x 2 x H x W (background, object) logits, padded size

    def forward(
        self,
        r4: Tensor,
        f3: Tensor,
        read3: Tensor,
        f2: Tensor,
        read2: Tensor,
        owner: Tensor | None = None,
    ) -> Tensor:
        """r4: B x (Cv+Cq) x h x w (read-out and query value); f3, f2: 1 x C x ... query features
        (N x C x ... with ``owner``, see :class:`Refine`); read3, read2: B x C x ... memory
        read-outs. Returns B x 2 x 16h x 16w logits."""
        m4 = self.res_mm(self.conv_fm(r4))  # B x D x h x w
        m3 = self.refine_r3(f3, read3, m4, owner)  # B x D x 2h x 2w
        m2 = self.refine_r2(f2, read2, m3, owner)  # B x D x 4h x 4w
        return self.logits(upsample(self.pred2(F.relu(m2)), 4))  # B x 2 x 16h x 16w
