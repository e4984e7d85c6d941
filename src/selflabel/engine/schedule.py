"""Per-iteration schedules (linear warm-up then cosine decay) and setting them on an optimiser.

Usage::

    lrs = cosine_schedule(base_lr=0.6, final_lr=6e-4, total_iters=epochs * len(loader),
                          warmup_iters=10 * len(loader), start_warmup_lr=0.0)
    for it in range(total_iters):
        set_lr(optimizer, float(lrs[it]))
        ...
"""

from __future__ import annotations

import math

import numpy as np
import torch


def cosine_schedule(
    base_lr: float,
    final_lr: float,
    total_iters: int,
    warmup_iters: int = 0,
    start_warmup_lr: float = 0.0,
) -> np.ndarray:
    """Values for iterations ``0 .. total_iters-1``: linear warm-up then half-cosine decay.

    As in SwAV: the warm-up goes linearly from ``start_warmup_lr`` (iteration 0) to ``base_lr``
    (iteration ``warmup_iters - 1``); iteration ``warmup_iters + t`` of the remaining
    ``n = total_iters - warmup_iters`` takes
    ``final_lr + 0.5 * (base_lr - final_lr) * (1 + cos(pi * t / n))``, so it starts at
    ``base_lr``, is at the midpoint ``(base_lr + final_lr) / 2`` for ``t = n / 2`` and tends to
    ``final_lr``.

    Example::

        >>> cosine_schedule(1.0, 0.0, total_iters=4, warmup_iters=0).round(3).tolist()
        [1.0, 0.854, 0.5, 0.146]
    """
    if total_iters < 1:
        raise ValueError(f"total_iters must be >= 1, got {total_iters}")
    if not 0 <= warmup_iters <= total_iters:
        raise ValueError(
            f"warmup_iters must be in [0, total_iters={total_iters}], got {warmup_iters}"
        )
    for label, value in (
        ("base_lr", base_lr),
        ("final_lr", final_lr),
        ("start_warmup_lr", start_warmup_lr),
    ):
        if not math.isfinite(value):
            raise ValueError(f"{label} must be finite, got {value}")
    warmup = np.linspace(start_warmup_lr, base_lr, warmup_iters)
    n = total_iters - warmup_iters
    t = np.arange(n)
    decay = final_lr + 0.5 * (base_lr - final_lr) * (1 + np.cos(np.pi * t / max(n, 1)))
    return np.concatenate([warmup, decay]).astype(np.float64)


def constant_schedule(value: float, total_iters: int) -> np.ndarray:
    """``total_iters`` copies of ``value`` (e.g. a fixed weight decay)."""
    if total_iters < 1:
        raise ValueError(f"total_iters must be >= 1, got {total_iters}")
    return np.full(total_iters, float(value))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's ``lr`` to ``lr * group.get("lr_mult", 1.0)``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * float(group.get("lr_mult", 1.0))


def set_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    """Set every group's ``weight_decay`` to ``weight_decay * group.get("wd_mult", 1.0)``.

    Groups from :func:`selflabel.engine.optim.param_groups` holding biases and norms have
    ``wd_mult=0`` and so never decay.
    """
    for group in optimizer.param_groups:
        group["weight_decay"] = weight_decay * float(group.get("wd_mult", 1.0))
