"""Helpers to test distributed code on one CPU machine.

:func:`run_distributed` runs a function in ``world_size`` fresh processes joined by a ``gloo``
process group and returns what each rank returned. It is what selflabel's own tests use to check
that a 2-process run equals a 1-process run, and it works for users' code too::

    def total(rank: int, world_size: int) -> float:
        x = torch.tensor([float(rank + 1)])
        torch.distributed.all_reduce(x)
        return x.item()

    assert run_distributed(total, 2) == [3.0, 3.0]

``fn`` must be importable by the child processes (a module-level function) and its arguments and
return value picklable (tensors are fine).
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(
    rank: int,
    world_size: int,
    port: int,
    out_dir: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    threads: int,
) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        OMP_WAIT_POLICY="PASSIVE",
    )
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        result = fn(rank, world_size, *args)
        torch.save({"result": result}, Path(out_dir) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_distributed(
    fn: Callable[..., Any], world_size: int = 2, *args: Any, threads_per_process: int = 1
) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` gloo processes; return each result.

    Raises ``RuntimeError`` (with the child's traceback) when any process fails.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    with tempfile.TemporaryDirectory(prefix="selflabel-dist-") as out_dir:
        mp.start_processes(
            _worker,
            args=(world_size, _free_port(), out_dir, fn, args, threads_per_process),
            nprocs=world_size,
            join=True,
            start_method="spawn",
        )
        return [
            torch.load(Path(out_dir) / f"rank{r}.pt", weights_only=False)["result"]
            for r in range(world_size)
        ]
