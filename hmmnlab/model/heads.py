"""Key and value projections (3x3 convolutions) applied to encoder features."""

from __future__ import annotations

from torch import Tensor, nn


class KeyValue(nn.Module):
    """Projects features to a key (for matching) and, optionally, a value (what is read out)."""

    def __init__(self, in_dim: int, key_dim: int, value_dim: int | None) -> None:
        super().__init__()
        self.key = nn.Conv2d(in_dim, key_dim, kernel_size=3, padding=1)
        self.value = (
            None if value_dim is None else nn.Conv2d(in_dim, value_dim, kernel_size=3, padding=1)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """x: N x C x h x w -> (key N x Ck x h x w, value N x Cv x h x w or None)."""
        return self.key(x), None if self.value is None else self.value(x)
