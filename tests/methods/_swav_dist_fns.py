"""SwAV trained by the engine in 1 or 2 gloo processes on the same global batches."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selflabel.engine import Trainer
from selflabel.methods.network import EmbeddingNetwork
from selflabel.methods.swav import SwAV

GLOBAL_BATCH, STEPS = 16, 3


class ConvBackbone(nn.Module):
    out_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))


class ShardLoader:
    """Fixed global batches; rank r of w gets rows r::w... as a contiguous shard."""

    def __init__(self, rank: int, world: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.batches = [
            torch.randint(0, 255, (GLOBAL_BATCH, 1, 12, 12), generator=g, dtype=torch.uint8)
            for _ in range(STEPS)
        ]
        per = GLOBAL_BATCH // world
        self.rows = slice(rank * per, (rank + 1) * per)

    def __len__(self) -> int:
        return STEPS

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        for images in self.batches:
            shard = images[self.rows]
            yield torch.arange(len(shard)), shard, torch.zeros(len(shard), dtype=torch.long)


def views(images: Tensor) -> list[Tensor]:
    """A deterministic 'augmentation': 2 global views and 2 smaller local views."""
    x = images.float() / 255.0
    return [x, x.flip(-1), F.interpolate(x, size=6), F.interpolate(x.flip(-2), size=6)]


def train_swav(rank: int, world: int) -> dict[str, Tensor]:
    torch.manual_seed(0)
    net = EmbeddingNetwork(ConvBackbone(), n_prototypes=[6, 4], hidden_dim=16, embedding_dim=8)
    swav = SwAV(net, freeze_prototypes_iters=1, world_size=world)
    opt = torch.optim.SGD(swav.parameters(), lr=0.5, momentum=0.9)
    with tempfile.TemporaryDirectory() as out:
        Trainer(swav, ShardLoader(rank, world), views, opt, lambda it: 0.5, epochs=1, out_dir=out,
                sync_bn=True, progress=False, tensorboard=False, monitor=False,
                resume=False).fit()
    return {k: v.detach().clone() for k, v in swav.state_dict().items()}
