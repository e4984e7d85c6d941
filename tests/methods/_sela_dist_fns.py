"""Label steps of SeLa and the assignment phase of SeLa-v2/DeepCluster-v2 in 1 or 2 processes."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from selflabel.methods import Batch, StepContext
from selflabel.methods.network import EmbeddingNetwork
from selflabel.methods.offline import DeepClusterV2, SeLaV2
from selflabel.methods.sela import SeLa

N, K = 48, 4


class Backbone(nn.Module):
    out_dim = 6

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def images() -> Tensor:
    return torch.randn(N, 1, 6, 6, generator=torch.Generator().manual_seed(5))


def sela_labels(rank: int, world: int) -> dict[str, Tensor]:
    """Two label steps; each process feeds its contiguous shard of the dataset."""
    data = images()
    shard = torch.arange(N).tensor_split(world)[rank]

    def label_data(augment: bool) -> Iterator[tuple[Tensor, Tensor]]:
        for idx in shard.split(7):
            yield idx, data[idx]

    torch.manual_seed(0)
    sela = SeLa(Backbone(), n_clusters=K, n_heads=2, dataset_size=N, label_data=label_data,
                tol=1e-4)
    sela.label_step()
    sela.label_step()
    return {"labels": sela.labels.clone(), "potentials": sela.potentials.clone()}


def offline_assignments(rank: int, world: int, kind: str) -> dict[str, Tensor]:
    """One epoch over disjoint halves of the data, then an assignment phase."""
    data = images()
    torch.manual_seed(0)
    net = EmbeddingNetwork(Backbone(), n_prototypes=[K, K + 1], hidden_dim=8, embedding_dim=4)
    cls = SeLaV2 if kind == "selav2" else DeepClusterV2
    m = cls(net, dataset_size=N)
    ctx = StepContext(epoch=0, iteration=0, iters_per_epoch=1, total_iters=2)
    m.eval()  # identical embeddings whatever the batch composition (BatchNorm running stats)
    shard = torch.arange(N).tensor_split(world)[rank]
    for idx in shard.split(8):
        with torch.no_grad():
            m.training_step(Batch(indices=idx, views=[data[idx], data[idx]]), ctx)
    m.assignment_phase(1)
    return {"assignments": m.assignments.clone(),
            "prototypes": net.prototypes.weights()[0].detach().clone()}
