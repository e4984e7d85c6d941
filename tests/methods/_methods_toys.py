"""A tiny conv backbone with BatchNorm shared by the method tests (any input resolution)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TinyBackbone(nn.Module):
    out_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, self.out_dim, 3, padding=1)
        self.bn = nn.BatchNorm2d(self.out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
