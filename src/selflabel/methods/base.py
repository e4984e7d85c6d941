"""The contract between a self-supervised method and the training engine.

A method is an :class:`torch.nn.Module` that owns its model parts (backbone, heads, prototypes) and
everything it must remember across steps (queues, self-labels, potentials) as *persistent buffers*,
so that ``state_dict()`` is the whole resumable state. The engine never looks inside a method: it
feeds :class:`Batch` objects, calls the hooks below in order, and optimises ``loss``::

    for epoch in range(start_epoch, epochs):
        method.on_epoch_start(ctx)                     # label steps, queue start, ...
        for batch in loader:
            out = method.training_step(batch, ctx)     # loss + logs
            out.loss.backward()
            method.on_before_optimizer_step(ctx)       # e.g. zero prototype grads while frozen
            optimizer.step()
            method.on_after_optimizer_step(ctx)        # e.g. re-normalise prototypes
        method.on_epoch_end(ctx)

A method works without the engine: ``training_step`` is an ordinary function of a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass
class Batch:
    """One training batch after augmentation.

    ``views`` holds the augmented crops, global crops first, each ``(B, C, h, w)`` float32 on the
    training device; ``indices`` are the samples' stable dataset indices (SeLa keys labels by them);
    ``labels`` the ground truth or -1 (never used for training, only for logging).
    """

    indices: Tensor
    views: list[Tensor]
    labels: Tensor | None = None


@dataclass
class StepContext:
    """Where training stands; passed to every hook."""

    epoch: int
    iteration: int  # global iteration counter, 0-based, counting across epochs
    iters_per_epoch: int
    total_iters: int
    world_size: int = 1
    rank: int = 0
    dataset_size: int = 0


@dataclass
class StepOutput:
    """What a training step returns: the scalar loss to minimise and float logs for the run log."""

    loss: Tensor
    logs: dict[str, float] = field(default_factory=dict)


def default_group() -> dist.ProcessGroup | None:
    """The world group when several processes run, else ``None`` (single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.group.WORLD
    return None


class Method(nn.Module):
    """Base class of SwAV, SeLa, SeLa-v2, DeepCluster-v2 and supervised training."""

    #: short name used in configs and logs, e.g. "swav"
    name: str = "method"
    #: number of clusters of the main head (for collapse detection and label export)
    n_clusters: int = 0

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement training_step")

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Backbone features of normalised, un-augmented images (B, C, H, W) -> (B, D)."""
        out: Tensor = self.backbone(images)
        return out

    @torch.no_grad()
    def cluster_scores(self, images: Tensor) -> Tensor:
        """Scores (B, K) of the main clustering head for normalised, un-augmented images."""
        raise NotImplementedError(f"{type(self).__name__} has no clustering head")

    @torch.no_grad()
    def feature_centres(self) -> Tensor | None:
        """The main head's cluster centres ``(n_clusters, D)`` in the space of :meth:`features`
        (SwAV's prototypes when no projection head lies between them), or ``None`` when the
        head has none there (a linear classifier, or prototypes behind a projection)."""
        return None

    def on_epoch_start(self, ctx: StepContext) -> None:
        """Called before the first step of every epoch."""

    def on_before_optimizer_step(self, ctx: StepContext) -> None:
        """Called after ``backward()`` and before ``optimizer.step()``."""

    def on_after_optimizer_step(self, ctx: StepContext) -> None:
        """Called after ``optimizer.step()``."""

    def on_epoch_end(self, ctx: StepContext) -> None:
        """Called after the last step of every epoch."""
