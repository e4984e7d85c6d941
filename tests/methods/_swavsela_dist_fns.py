"""SwAV + SeLa trained by the engine in 1 or 2 gloo processes on the same global batches."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import torch
from _swav_dist_fns import GLOBAL_BATCH, ConvBackbone, ShardLoader, views
from torch import Tensor

from selflabel.engine import Trainer
from selflabel.methods.network import EmbeddingNetwork
from selflabel.methods.sela import SeLa
from selflabel.methods.swav import SwAV
from selflabel.methods.swavsela import SwAVSeLa


class IndexedShardLoader(ShardLoader):
    """ShardLoader's batches with their dataset indices (batch s holds rows s*16 .. s*16+15)."""

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        for s, images in enumerate(self.batches):
            idx = torch.arange(s * GLOBAL_BATCH, (s + 1) * GLOBAL_BATCH)[self.rows]
            yield idx, images[self.rows], torch.zeros(len(idx), dtype=torch.long)


def train_swavsela(rank: int, world: int) -> dict[str, Tensor]:
    loader = IndexedShardLoader(rank, world)
    dataset = torch.cat(loader.batches).float() / 255.0  # (N, 1, 12, 12), all ranks alike
    shard = torch.arange(len(dataset)).tensor_split(world)[rank]

    def label_data(augment: bool) -> Iterator[tuple[Tensor, Tensor]]:
        for idx in shard.split(5):
            yield idx, dataset[idx]

    torch.manual_seed(0)
    backbone = ConvBackbone()
    net = EmbeddingNetwork(backbone, n_prototypes=4, hidden_dim=16, embedding_dim=8)
    swav = SwAV(net, freeze_prototypes_iters=1, world_size=world)
    sela = SeLa(backbone, n_clusters=6, n_heads=2, dataset_size=len(dataset),
                label_data=label_data, label_steps=3, tol=1e-6)
    method = SwAVSeLa(swav, sela, sela_weight=0.5)
    init = backbone.conv.weight.detach().clone()
    lr = 0.1  # at 0.5 the run is chaotic enough to amplify float reduction order to ~1e-4
    opt = torch.optim.SGD(method.parameters(), lr=lr, momentum=0.9)
    with tempfile.TemporaryDirectory() as out:
        Trainer(method, loader, views, opt, lambda it: lr, epochs=1, out_dir=out,
                sync_bn=True, progress=False, tensorboard=False, monitor=False,
                resume=False).fit()
    state = {k: v.detach().clone() for k, v in method.state_dict().items()}
    return {**state, "init.backbone.conv.weight": init}
