"""Functions run in 2 gloo processes by the engine's distributed tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from _engine_toys import ToyLoader, make_method, plain_augment
from torch import Tensor, nn

from selflabel.engine.distributed import (
    all_gather_tensor,
    barrier,
    init_distributed,
    is_main_process,
    reduce_mean,
    wrap_ddp,
)
from selflabel.engine.optim import build_optimizer
from selflabel.engine.schedule import cosine_schedule
from selflabel.engine.sync_bn import convert_sync_batchnorm
from selflabel.engine.trainer import Trainer


def helpers(rank: int, world_size: int) -> dict[str, Any]:
    info = init_distributed()
    local = torch.full((rank + 1, 2), float(rank))  # rank 0: 1 row, rank 1: 2 rows
    barrier()
    return {
        "info": tuple(info[:3]),
        "device": str(info.device),
        "main": is_main_process(),
        "gathered": all_gather_tensor(local),
        "mean": reduce_mean(torch.tensor([float(rank), 10.0])),
        "local_after": local,
    }


def sync_bn(rank: int, world_size: int, x_full: Tensor) -> dict[str, Any]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    model = convert_sync_batchnorm(model, torch.device("cpu"))
    x = x_full.chunk(world_size)[rank].clone().requires_grad_(True)
    y = model(x)
    weights = torch.arange(x_full.shape[0] * 16).reshape(x_full.shape[0], 4, 2, 2).float()
    (y * weights.chunk(world_size)[rank]).sum().div(x_full.shape[0]).backward()
    grads = {n: reduce_mean(p.grad) * world_size for n, p in model.named_parameters()}
    return {
        "y": all_gather_tensor(y.detach()),
        "x_grad": all_gather_tensor(x.grad),
        "grads": grads,
        "running_var": model[1].running_var.clone(),
        "bn_type": type(model[1]).__name__,
    }


def bn_recalibrate(rank: int, world_size: int, x_full: Tensor) -> dict[str, Tensor]:
    """A run's evaluation under torchrun: every rank recomputes the statistics of its synchronised
    BatchNorm on the same batches (``eval.bn_recalibrate``)."""
    from selflabel.evaluate import recalibrate_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    model = convert_sync_batchnorm(model, torch.device("cpu"))
    recalibrate_batchnorm(model, [x_full, 2.0 * x_full + 1.0])
    bn = model[1]
    return {"mean": bn.running_mean.clone(), "var": bn.running_var.clone()}


def collectives(rank: int, world_size: int, x_full: Tensor) -> dict[str, Any]:
    """All three checks in one spawn (starting processes is the slow part on a busy machine)."""
    return {
        "helpers": helpers(rank, world_size),
        "sync_bn": sync_bn(rank, world_size, x_full),
        "bn_recalibrate": bn_recalibrate(rank, world_size, x_full),
    }


def ddp_identity(rank: int, world_size: int) -> str:
    wrapped = wrap_ddp(nn.Linear(2, 2), torch.device("cpu"))
    return type(wrapped).__name__


def train(
    rank: int,
    world_size: int,
    out_dir: str,
    epochs: int,
    batch: int,
    max_minutes: float | None,
    restart: int,
) -> dict[str, Tensor]:
    """The toy method with BN and SyncBN, LARS, rank-sliced global batches of batch * world_size."""
    method = make_method(restart, bn=True)
    loader = ToyLoader(n=24, batch_size=batch, seed=3, rank=rank, world_size=world_size)
    opt = build_optimizer("lars", method, lr=0.5, weight_decay=1e-4)
    sched = cosine_schedule(0.5, 0.01, epochs * len(loader), warmup_iters=1)
    torch.manual_seed(1000 * restart + rank)
    trainer = Trainer(
        method,
        loader,
        plain_augment,
        opt,
        sched,
        epochs=epochs,
        out_dir=Path(out_dir),
        sync_bn=True,
        progress=False,
        tensorboard=False,
        max_minutes=max_minutes,
        config={"batch": batch * world_size},
    )
    trainer.fit()
    return {k: v.clone() for k, v in method.state_dict().items()}
