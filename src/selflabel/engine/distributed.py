"""Distributed helpers that work the same with ``torchrun`` and with no launcher at all.

``init_distributed`` reads the ``torchrun`` environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); without it the program is one process and no
process group is needed (no ``KeyError: RANK``). Every helper below degrades to the obvious
single-process behaviour when no process group is initialised::

    info = init_distributed()  # DistInfo(rank=0, world_size=1, local_rank=0, device=cpu)
    model = wrap_ddp(model, info.device, sync_bn=True)
    feats = all_gather_tensor(local_feats)  # (sum of all ranks' rows, D), in rank order
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn

from selflabel.engine.sync_bn import convert_sync_batchnorm


class DistInfo(NamedTuple):
    """Where this process stands; unpacks as ``rank, world_size, local_rank, device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be an integer") from None


def init_distributed(
    backend: str | None = None, device: str | torch.device | None = None
) -> DistInfo:
    """Join the ``torchrun`` process group if launched by one; otherwise run as one process.

    ``backend`` defaults to ``nccl`` with CUDA and ``gloo`` without. ``device`` defaults to
    ``cuda:LOCAL_RANK`` when CUDA is available, else CPU. Calling it again (or inside a process
    group someone else initialised) just reports the existing group.
    """
    rank = _env_int("RANK", 0)
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    if device is None:
        dev = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    else:
        dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)
    if world_size > 1:
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise ValueError(
                f"WORLD_SIZE={world_size} but {', '.join(missing)} is not set: launch with "
                "`torchrun --nproc_per_node=N ...`, or unset WORLD_SIZE to run one process"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"RANK={rank} is outside [0, WORLD_SIZE={world_size})")
        chosen = backend or ("nccl" if dev.type == "cuda" else "gloo")
        dist.init_process_group(chosen, rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank, dev)


def cleanup_distributed() -> None:
    """Destroy the process group if one is initialised (safe to call always)."""
    if is_distributed():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True when a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0 (and always without a process group)."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if is_distributed() and get_world_size() > 1:
        dist.barrier()


def reduce_mean(t: Tensor) -> Tensor:
    """The mean of ``t`` over ranks (a new tensor; ``t`` itself is unchanged)."""
    out = t.detach().clone()
    if is_distributed() and get_world_size() > 1:
        dist.all_reduce(out)
        out /= get_world_size()
    return out


def reduce_sum(t: Tensor) -> Tensor:
    """The sum of ``t`` over ranks (a new tensor)."""
    out = t.detach().clone()
    if is_distributed() and get_world_size() > 1:
        dist.all_reduce(out)
    return out


def all_gather_tensor(t: Tensor) -> Tensor:
    """Concatenate every rank's ``t`` along dim 0, in rank order; first dims may differ.

    The other dimensions and the dtype must agree across ranks. No gradient flows back.

    Example::

        labels = all_gather_tensor(local_labels)   # (N_0 + N_1 + ..., )
    """
    if not (is_distributed() and get_world_size() > 1):
        return t.detach().clone()
    if t.ndim == 0:
        t = t.reshape(1)
    t = t.detach().contiguous()
    ws = get_world_size()
    size = torch.tensor([t.shape[0]], device=t.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(ws)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    max_n = max(counts)
    padded = t.new_zeros((max_n, *t.shape[1:]))
    padded[: t.shape[0]] = t
    gathered = [torch.empty_like(padded) for _ in range(ws)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[:n] for g, n in zip(gathered, counts, strict=True)], dim=0)


def wrap_ddp(
    module: nn.Module,
    device: torch.device,
    sync_bn: bool = False,
    *,
    find_unused_parameters: bool = False,
    broadcast_buffers: bool = False,
) -> nn.Module:
    """Wrap ``module`` in ``DistributedDataParallel`` when more than one process runs.

    With one process the module is returned unchanged. ``sync_bn=True`` converts batch-norm layers
    first (in place for submodules): ``nn.SyncBatchNorm`` on CUDA, and on CPU
    :class:`selflabel.engine.sync_bn.CrossRankBatchNorm` (torch's SyncBatchNorm refuses CPU
    tensors). ``broadcast_buffers`` is off by default so rank-local buffers (SwAV queues) are not
    overwritten by rank 0's at every forward.
    """
    if not (is_distributed() and get_world_size() > 1):
        return module
    if sync_bn:
        module = convert_sync_batchnorm(module, device)
    device_ids = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else None
    )
    return nn.parallel.DistributedDataParallel(
        module,
        device_ids=device_ids,
        find_unused_parameters=find_unused_parameters,
        broadcast_buffers=broadcast_buffers,
    )


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (or the module itself)."""
    inner = getattr(module, "module", None)
    return (
        inner
        if isinstance(module, nn.parallel.DistributedDataParallel) and isinstance(inner, nn.Module)
        else module
    )
