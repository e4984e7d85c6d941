"""SwAV with SeLa's self-labelling heads on the same backbone, trained jointly.

SwAV's swapped prediction over a few prototypes (say, as many as there are classes) shapes the
backbone's features into that many clusters; SeLa's cross-entropy against equipartitioned
self-labels of *more* classes (over-clustering, e.g. 2 heads of 30), relabelled over the whole
dataset on SeLa's schedule, keeps the finer structure inside those clusters. The backbone runs
once per batch; both losses read its features::

    loss = swav.loss_from_features(f) + sela_weight * sela.loss_from_features(f)

Over-clustering heads trained beside the main head are IIC's auxiliary heads; here the auxiliary
targets are SeLa's. Every hook goes to both parts: SeLa's label steps at the start of epochs (and
after the last one), SwAV's queue start, prototype freezing and re-normalisation. The main head,
the labels a run writes and ``n_clusters`` are SwAV's; ``sela.labels`` holds the over-clustered
self-labels.

Example::

    backbone = build_backbone("smallcnn", in_channels=1)
    swav = SwAV(EmbeddingNetwork(backbone, n_prototypes=10, embedding_dim=0), n_global=2)
    sela = SeLa(backbone, n_clusters=30, n_heads=2, dataset_size=len(ds), label_data=...)
    method = SwAVSeLa(swav, sela, sela_weight=1.0)
    out = method.training_step(batch, ctx)
"""

from __future__ import annotations

import torch
from torch import Tensor

from selflabel.methods.base import Batch, Method, StepContext, StepOutput
from selflabel.methods.network import grouped_forward
from selflabel.methods.sela import SeLa
from selflabel.methods.swav import SwAV

__all__ = ["SwAVSeLa"]


class SwAVSeLa(Method):
    """SwAV's loss plus ``sela_weight`` times SeLa's, over one shared backbone."""

    name = "swavsela"

    def __init__(self, swav: SwAV, sela: SeLa, *, sela_weight: float = 1.0) -> None:
        if swav.backbone is not sela.backbone:
            raise ValueError(
                "SwAVSeLa needs SwAV and SeLa built on the very same backbone module "
                "(pass one backbone object to both)"
            )
        if not sela_weight >= 0:
            raise ValueError(f"sela_weight must be >= 0 (0: SwAV alone), got {sela_weight}")
        super().__init__(swav.backbone)
        self.swav = swav
        self.sela = sela
        self.sela_weight = float(sela_weight)
        self.n_clusters = swav.n_clusters

    # ------------------------------------------------------------------ hooks
    def on_epoch_start(self, ctx: StepContext) -> None:
        self.sela.on_epoch_start(ctx)
        self.swav.on_epoch_start(ctx)

    def on_before_optimizer_step(self, ctx: StepContext) -> None:
        self.swav.on_before_optimizer_step(ctx)

    def on_after_optimizer_step(self, ctx: StepContext) -> None:
        self.swav.on_after_optimizer_step(ctx)

    def on_epoch_end(self, ctx: StepContext) -> None:
        self.sela.on_epoch_end(ctx)

    # ------------------------------------------------------------------ step
    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        views = batch.views
        if len(views) < max(2, self.swav.n_global):
            raise ValueError(
                f"SwAVSeLa needs at least 2 views and the {self.swav.n_global} global crops "
                f"SwAV's codes come from; got {len(views)} views"
            )
        bs = views[0].shape[0]
        features = grouped_forward(self.backbone, views)
        swav = self.swav.loss_from_features(features, bs)
        sela = self.sela.loss_from_features(features, batch.indices, bs)
        logs = dict(swav.logs)
        logs.update(sela.logs)
        logs["swav_loss"] = float(swav.loss.detach())
        logs["sela_loss"] = float(sela.loss.detach())
        return StepOutput(loss=swav.loss + self.sela_weight * sela.loss, logs=logs)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def feature_centres(self) -> Tensor | None:
        return self.swav.feature_centres()

    @torch.no_grad()
    def cluster_scores(self, images: Tensor) -> Tensor:
        return self.swav.cluster_scores(images)
