"""Backbone + projection head + prototypes, run once per resolution group of a multi-crop batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from selflabel.models import ProjectionHead, Prototypes


def grouped_forward(module: nn.Module, views: Sequence[Tensor]) -> Tensor:
    """``module`` applied to all views, one forward per run of same-resolution views, concatenated.

    As the official SwAV does, so BatchNorm sees whole resolution groups.
    """
    outputs = []
    start = 0
    while start < len(views):
        end = start + 1
        while end < len(views) and views[end].shape[-2:] == views[start].shape[-2:]:
            end += 1
        x = torch.cat(list(views[start:end])) if end - start > 1 else views[start]
        outputs.append(module(x))
        start = end
    return torch.cat(outputs)


class EmbeddingNetwork(nn.Module):
    """The network of SwAV-style methods.

    ``forward(views)`` concatenates the views that share a resolution, runs the backbone once per
    such group (as the official SwAV does, so BatchNorm sees whole groups), then projects all
    features, L2-normalises them and scores them against every prototype head. It returns the
    embeddings ``(V*B, D)`` in view order and one ``(V*B, K_h)`` score tensor per head.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        n_prototypes: int | Sequence[int] = 3000,
        hidden_dim: int = 2048,
        embedding_dim: int = 128,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        out_dim = int(getattr(backbone, "out_dim", 0))
        if out_dim <= 0:
            raise TypeError("the backbone must expose a positive `out_dim` (feature size)")
        self.backbone = backbone
        self.projection_head = ProjectionHead(
            out_dim, hidden_dim=hidden_dim, out_dim=embedding_dim, batch_norm=batch_norm
        )
        self.embedding_dim = embedding_dim if embedding_dim > 0 else out_dim
        self.prototypes = Prototypes(self.embedding_dim, n_prototypes)
        self.n_prototypes: list[int] = (
            [int(n_prototypes)] if isinstance(n_prototypes, int) else [int(n) for n in n_prototypes]
        )

    def forward(self, views: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        return self.head(grouped_forward(self.backbone, views))

    def head(self, features: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Embeddings and prototype scores of backbone ``features`` (already computed)."""
        embedding = self.projection_head(features)
        return embedding, list(self.prototypes(embedding))

    @torch.no_grad()
    def feature_prototypes(self) -> Tensor | None:
        """The first head's prototypes as unit rows ``(K, D)`` in the space of the backbone's
        features, or ``None`` when a projection head lies between the two (its output space
        is not the features')."""
        if len(self.projection_head) > 0:
            return None
        weight = self.prototypes.weights()[0].detach().float()
        return torch.nn.functional.normalize(weight, dim=1)

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """L2-normalise every prototype vector in place."""
        self.prototypes.normalize_()
