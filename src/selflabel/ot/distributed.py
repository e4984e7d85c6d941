"""Reductions across a ``torch.distributed`` process group, as no-ops without one.

Every solver in :mod:`selflabel.ot` takes ``group``:

* ``group=None`` (the default) means **single process**: nothing is reduced, even when a default
  process group is initialised. Pass ``torch.distributed.group.WORLD`` (or any ``ProcessGroup``)
  to reduce across processes.
* With a group, every process of the group must call the solver with the same arguments apart from
  its own rows (same ``K``, same ``eps``/``lam``, ...); the rows of the whole problem are the
  concatenation of the processes' rows in rank order.

The helpers below are what the solvers use; they are public so that callers building on the same
convention (e.g. a method's own statistics) can share it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_gather_rows", "all_reduce_", "group_rank", "group_size", "is_distributed"]


def is_distributed(group: Any) -> bool:
    """True when ``group`` is a process group of more than one process."""
    return (
        group is not None
        and dist.is_available()
        and dist.is_initialized()
        and (dist.get_world_size(group) > 1)
    )


def group_size(group: Any) -> int:
    """Number of processes in ``group`` (1 for ``None``)."""
    if group is None or not (dist.is_available() and dist.is_initialized()):
        return 1
    return int(dist.get_world_size(group))


def group_rank(group: Any) -> int:
    """This process's rank in ``group`` (0 for ``None``)."""
    if group is None or not (dist.is_available() and dist.is_initialized()):
        return 0
    return int(dist.get_rank(group))


def all_reduce_(tensor: Tensor, group: Any, op: str = "sum") -> Tensor:
    """Reduce ``tensor`` in place across ``group`` (``op``: "sum", "max" or "min"); return it.

    A no-op for ``group=None`` or a group of one process.
    """
    if is_distributed(group):
        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
        dist.all_reduce(tensor, op=ops[op], group=group)
    return tensor


def all_gather_rows(tensor: Tensor, group: Any) -> tuple[Tensor, int]:
    """Every process's ``tensor`` concatenated along dim 0 in rank order, and where this
    process's rows start in it.

    The processes may hold different numbers of rows (even 0); trailing dimensions and dtype must
    agree. Without a group, returns ``(tensor, 0)``.
    """
    if not is_distributed(group):
        return tensor, 0
    world = group_size(group)
    n = torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n, group=group)
    counts = [int(s.item()) for s in sizes]
    padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded, group=group)
    start = sum(counts[: group_rank(group)])
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)], dim=0), start
