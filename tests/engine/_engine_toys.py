"""Tiny loaders, augmentations and methods for the engine tests (no selflabel.data needed)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selflabel.methods.base import Batch, Method, StepContext, StepOutput


class ToySampler:
    """Records set_epoch; the order depends only on (seed, epoch)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        return torch.randperm(self.n, generator=g)


class ToyLoader:
    """Yields (indices, uint8 images, labels); with ``world_size`` > 1, rank r gets the r-th slice
    of every global batch of ``batch_size * world_size`` samples."""

    def __init__(
        self,
        n: int = 24,
        batch_size: int = 8,
        *,
        shape: tuple[int, ...] = (3, 4, 4),
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        g = torch.Generator().manual_seed(1234)
        self.images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
        self.labels = torch.arange(n) % 3
        self.dataset = self.images  # has len()
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.sampler = ToySampler(n, seed)

    def __len__(self) -> int:
        return len(self.images) // (self.batch_size * self.world_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        order = self.sampler.order()
        gb = self.batch_size * self.world_size
        for b in range(len(self)):
            idx = order[b * gb : (b + 1) * gb][
                self.rank * self.batch_size : (self.rank + 1) * self.batch_size
            ]
            yield idx, self.images[idx], self.labels[idx]


def noisy_augment(images: Tensor) -> list[Tensor]:
    """Two views with noise from torch, numpy and python RNGs (exercises every RNG restore)."""
    x = images.float() / 255.0
    scale = 1.0 + 0.1 * float(np.random.rand()) + 0.1 * random.random()  # noqa: NPY002 - the global RNG is under test
    return [x * scale + 0.05 * torch.randn_like(x), x.flip(-1) + 0.05 * torch.randn_like(x)]


def plain_augment(images: Tensor) -> list[Tensor]:
    """Deterministic views (for 1-process vs 2-process comparisons)."""
    x = images.float() / 255.0
    return [x, x.flip(-1)]


class ToyMethod(Method):
    """Linear backbone (+ optional BN) and a bias-free cluster head; swapped soft-target loss."""

    name = "toy"

    def __init__(
        self, in_dim: int = 48, k: int = 5, *, bn: bool = False, nan_at: int | None = None
    ) -> None:
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(in_dim, 8)]
        if bn:
            layers.append(nn.BatchNorm1d(8))
        super().__init__(nn.Sequential(*layers))
        self.head = nn.Linear(8, k, bias=False)
        self.n_clusters = k
        self.nan_at = nan_at
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("index_sum", torch.zeros((), dtype=torch.long))  # differs per rank
        self.calls: list[str] = []

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        self.calls.append("step")
        z = [self.head(F.normalize(self.backbone(v), dim=1)) for v in batch.views]
        with torch.no_grad():
            q = [torch.softmax(s.detach() / 0.5, dim=1) for s in z]
        loss = -0.5 * (
            (q[1] * F.log_softmax(z[0] / 0.1, 1)).sum(1).mean()
            + (q[0] * F.log_softmax(z[1] / 0.1, 1)).sum(1).mean()
        )
        loss = loss + 0.01 * (self.head.weight**2).sum()
        if self.nan_at is not None and ctx.iteration >= self.nan_at:
            loss = loss * float("nan")
        self.steps_seen += 1
        self.index_sum += batch.indices.sum().cpu()
        return StepOutput(
            loss=loss, logs={"entropy": float(-(q[0] * q[0].clamp_min(1e-9).log()).sum(1).mean())}
        )

    def on_epoch_start(self, ctx: StepContext) -> None:
        self.calls.append("epoch_start")

    def on_before_optimizer_step(self, ctx: StepContext) -> None:
        self.calls.append("before")
        if self.head.weight.grad is None:
            raise AssertionError("on_before_optimizer_step must see gradients")

    def on_after_optimizer_step(self, ctx: StepContext) -> None:
        self.calls.append("after")
        with torch.no_grad():
            self.head.weight.copy_(F.normalize(self.head.weight, dim=1))

    def on_epoch_end(self, ctx: StepContext) -> None:
        self.calls.append("epoch_end")


def make_method(seed: int = 0, **kw: object) -> ToyMethod:
    torch.manual_seed(seed)
    return ToyMethod(**kw)  # type: ignore[arg-type]
