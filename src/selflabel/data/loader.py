"""Batches of ``(indices, uint8 images, labels)`` from any :class:`ImageSource`.

:func:`make_loader` wraps a :class:`torch.utils.data.DataLoader` whose sampler yields whole
batches of indices (:class:`ShardedBatchSampler`); each batch is fetched with one
``ImageSource.get_batch`` call — decoding happens in the DataLoader workers for file sources,
and in-memory arrays are sliced in one ``index_select`` (no workers needed, microseconds per
batch). Images stay uint8 until the augmentation on the training device (4× less to copy);
with a CUDA device present the batches are pinned so ``.to(device, non_blocking=True)`` overlaps.

Distributed: with ``torch.distributed`` initialised (or ``distributed=True``) every rank gets a
disjoint shard of each epoch's permutation (padded by repeating indices so all ranks run the same
number of steps, as ``DistributedSampler`` does). Call ``loader.set_epoch(epoch)`` every epoch for
a new permutation; the order depends only on ``(seed, epoch)``::

    loader = make_loader(ds, batch_size=256, seed=0)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for indices, images, labels in loader:
            ...
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from selflabel.data.source import ImageSource


class ShardedBatchSampler(Sampler[list[int]]):
    """Yields lists of indices: this rank's batches of a (seed, epoch)-determined permutation.

    Example: ``ShardedBatchSampler(10, 4, shuffle=False, drop_last=False)`` yields
    ``[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]``.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        if n < world_size:
            raise ValueError(f"{n} images cannot be sharded over {world_size} processes")
        self.n, self.batch_size, self.shuffle, self.drop_last = n, batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.per_rank = math.ceil(n / world_size)
        if drop_last and self.per_rank < batch_size:
            raise ValueError(
                f"batch_size {batch_size} is larger than the {self.per_rank} images per process "
                "and drop_last=True would yield no batch; lower batch_size or set drop_last=False"
            )

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation the next iteration uses."""
        self.epoch = int(epoch)

    def rank_indices(self) -> list[int]:
        """This rank's indices for the current epoch, in order."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        total = self.per_rank * self.world_size
        if total > self.n:  # pad by wrapping around so every rank has the same count
            order = torch.cat([order, order[: total - self.n]])
        return order[self.rank:total:self.world_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        idx = self.rank_indices()
        for start in range(0, len(idx), self.batch_size):
            batch = idx[start:start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)


BatchTransform = Callable[..., Any]


class _BatchFetch(Dataset[Any]):
    """Adapter: item = a whole batch fetched by ``source.get_batch(list_of_indices)``.

    With a ``transform``, the sampler yields ``(seed, indices)`` and the transform is applied to
    the uint8 batch with a generator seeded by ``seed`` — so the views depend only on
    ``(loader seed, epoch, batch number)``, not on which worker made them.
    """

    def __init__(self, source: ImageSource, transform: BatchTransform | None = None) -> None:
        self.source = source
        self.transform = transform

    def __getitem__(self, item: Any) -> Any:
        if self.transform is None:
            return self.source.get_batch(item)
        seed, indices = item
        idx, images, labels = self.source.get_batch(indices)
        return idx, self.transform(images, generator=torch.Generator().manual_seed(seed)), labels

    def __len__(self) -> int:
        return len(self.source)


def _identity(batch: Any) -> Any:
    return batch


class _SeededBatches(Sampler[tuple[int, list[int]]]):
    """Pairs each batch of a :class:`ShardedBatchSampler` with a seed from (seed, epoch, k)."""

    def __init__(self, batches: ShardedBatchSampler) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        b = self.batches
        base = (b.seed * 1_000_003 + b.epoch) * 1_000_003 + b.rank * 10_007
        for k, indices in enumerate(b):
            yield (base + k) % (2**63), indices

    def __len__(self) -> int:
        return len(self.batches)


class BatchLoader:
    """Iterable of ``(indices LongTensor (B,), images uint8 (B, C, H, W), labels LongTensor (B,))``
    (``images`` is the list of views when the loader has a ``transform``).

    Built by :func:`make_loader`; ``len()`` is the number of batches per epoch on this rank.
    """

    def __init__(
        self, source: ImageSource, sampler: ShardedBatchSampler, loader: DataLoader[Any]
    ) -> None:
        self.source, self.sampler, self.loader = source, sampler, loader

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch (new permutation); call before iterating each epoch."""
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.sampler)


def default_workers(source: ImageSource) -> int:
    """0 for in-memory sources, else ``min(8, cpus)`` (``SELFLABEL_WORKERS`` overrides)."""
    env = os.environ.get("SELFLABEL_WORKERS")
    if env:
        return int(env)
    if source.in_memory:
        return 0
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def make_loader(
    dataset: ImageSource,
    batch_size: int,
    *,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int | None = None,
    seed: int = 0,
    distributed: bool | None = None,
    pin_memory: bool | str = "auto",
    prefetch_factor: int = 2,
    persistent_workers: bool = True,
    transform: BatchTransform | None = None,
) -> BatchLoader:
    """Make a :class:`BatchLoader` over ``dataset`` (see the module docstring).

    ``num_workers=None`` picks :func:`default_workers`; ``distributed=None`` follows
    ``torch.distributed.is_initialized()``; ``pin_memory="auto"`` pins when CUDA is available.

    ``transform`` (e.g. a :class:`~selflabel.data.augment.MultiCrop`) is applied to each uint8
    batch **inside the workers**; batches then are ``(indices, views, labels)``. Its random
    parameters come from a generator seeded by ``(seed, epoch, rank, batch number)``, so they do
    not depend on the number of workers. Usually leave it ``None`` and augment where the model
    runs (measured faster even on a 2-core CPU, see docs/data.md).
    """
    if not isinstance(dataset, ImageSource):
        raise TypeError(f"make_loader needs an ImageSource (from load_source), got {type(dataset)}")
    if distributed is None:
        distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    sampler = ShardedBatchSampler(len(dataset), batch_size, shuffle=shuffle, drop_last=drop_last,
                                  seed=seed, rank=rank, world_size=world)
    workers = default_workers(dataset) if num_workers is None else num_workers
    if workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    pin = torch.cuda.is_available() if pin_memory == "auto" else bool(pin_memory)
    extra: dict[str, object] = {}
    if workers > 0:
        extra = {"prefetch_factor": prefetch_factor, "persistent_workers": persistent_workers}
    loader = DataLoader(
        _BatchFetch(dataset, transform),
        sampler=sampler if transform is None else _SeededBatches(sampler),
        batch_size=None,
        collate_fn=_identity,
        num_workers=workers,
        pin_memory=pin,
        **extra,  # type: ignore[arg-type]
    )
    return BatchLoader(dataset, sampler, loader)
