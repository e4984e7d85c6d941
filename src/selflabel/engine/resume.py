"""The trainer's resumable state: what goes into ``checkpoint_last.pt`` and how it comes back.

Rank 0 writes the full checkpoint (method, optimiser, scaler, counters, config, RNG, history).
With several processes every other rank writes a small side file ``checkpoint_last.rank{r}.pt``
holding its persistent buffers (e.g. its SwAV queue) and its RNG states, which differ per rank.

Usage (what :class:`~selflabel.engine.trainer.Trainer` does)::

    progress = Progress(epoch=3, step=0, iteration=300)
    save_training_state(run_dir, method, optimizer, scaler, progress, config=cfg)
    progress = load_training_state(find_resume(run_dir), method, optimizer, scaler, config=cfg)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selflabel.engine import checkpoint as ckpt
from selflabel.engine.distributed import barrier, get_rank, get_world_size


@dataclass
class Progress:
    """Where training stands: ``epoch`` to run next and ``step`` steps already done in it.

    ``rng`` is the RNG state to restore before the next step; ``loader_rng`` (mid-epoch only) the
    state to restore before re-creating the loader iterator, so that its random draws repeat.
    """

    epoch: int = 0
    step: int = 0
    iteration: int = 0
    lr: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    rng: dict[str, Any] | None = None
    loader_rng: dict[str, Any] | None = None


def save_training_state(
    out_dir: Path,
    method: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    progress: Progress,
    *,
    config: dict[str, Any],
    keep_every: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save ``checkpoint_last.pt`` (rank 0) or the rank's side file; every rank must call it.

    ``progress.step == 0`` marks a finished epoch; with ``keep_every=k`` a copy
    ``checkpoint_epoch{N}.pt`` is kept after every k-th finished epoch.
    """
    rank, world_size = get_rank(), get_world_size()
    finished = progress.step == 0
    path = out_dir / ckpt.LAST
    common = {
        "iteration": progress.iteration,
        "rng": ckpt.capture_rng(),
        "loader_rng": None if finished else progress.loader_rng,
    }
    if rank == 0:
        state = {
            "format": "selflabel-checkpoint",
            "version": 1,
            "model": method.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": progress.epoch,
            "step": progress.step,
            "epoch_finished": finished,
            "lr": progress.lr,
            "history": progress.history,
            "config": config,
            "world_size": world_size,
            "extra": extra or {},
            **common,
        }
        ckpt.save_checkpoint(path, state)
        if finished and keep_every and progress.epoch % keep_every == 0:
            ckpt.save_checkpoint(out_dir / ckpt.epoch_checkpoint_name(progress.epoch), state)
    elif world_size > 1:
        keys = set(method.state_dict())
        buffers = {n: b for n, b in method.named_buffers() if n in keys}
        side = out_dir / ckpt.rank_checkpoint_name(ckpt.LAST, rank)
        ckpt.save_checkpoint(side, {"buffers": buffers, **common})
    barrier()
    return path


def load_training_state(
    path: Path,
    method: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    *,
    config: dict[str, Any],
    ignore: tuple[str, ...] = (),
) -> Progress:
    """Load a checkpoint into ``method``/``optimizer``/``scaler``; refuse a different config.

    Raises ``ValueError`` listing the differing keys when the saved config differs from
    ``config`` (keys in ``ignore`` excepted). The RNG is *not* restored here: it is returned in
    the :class:`Progress` for the trainer to restore at the right moment.
    """
    state = ckpt.load_checkpoint(path)
    diffs = ckpt.config_diff(state.get("config", {}), config, ignore)
    if diffs:
        raise ValueError(
            f"refusing to resume from {path}: the config differs from the checkpoint's:\n  "
            + "\n  ".join(diffs)
            + f"\nUse a new output directory, or resume with the saved config (ignored keys: "
            f"{', '.join(ignore) or 'none'})."
        )
    method.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    progress = Progress(
        epoch=int(state["epoch"]),
        step=int(state["step"]),
        iteration=int(state["iteration"]),
        lr=float(state.get("lr", 0.0)),
        history=list(state.get("history", [])),
        rng=state["rng"],
        loader_rng=state.get("loader_rng"),
    )
    rank = get_rank()
    side = path.parent / ckpt.rank_checkpoint_name(path.name, rank)
    if rank > 0 and side.is_file():
        own = ckpt.load_checkpoint(side)
        if int(own["iteration"]) == progress.iteration:
            method.load_state_dict({**method.state_dict(), **own["buffers"]})
            progress.rng, progress.loader_rng = own["rng"], own.get("loader_rng")
        else:
            print(f"[selflabel] rank {rank}: {side.name} is from another iteration; ignored")
    if int(state.get("world_size", 1)) != get_world_size() and rank == 0:
        print(
            f"[selflabel] resuming a {state.get('world_size')}-process run with "
            f"{get_world_size()} processes: the result will not match an uninterrupted run exactly"
        )
    return progress
