"""Linear probe: a linear classifier trained on frozen features, reported as top-1/top-5 on test.

Recipe (every number is an argument, the defaults are listed):

1. Standardise each feature dimension with the train mean and standard deviation
   (``standardize=True``; computed in float64 over chunks, so memory-mapped features work).
2. Weight-decay sweep: hold out ``val_fraction=0.1`` of train (a seeded random split), train
   one linear layer per candidate in ``weight_decays=(0, 1e-5, 1e-4, 1e-3, 1e-2)`` on the other
   90 % and keep the candidate with the best held-out top-1 (ties go to the larger decay). All
   candidates are trained in the same pass over the data (stacked weights, exactly as separate
   runs).
3. Retrain on the whole train set with the chosen decay and report top-1/top-5 on test.

Training: cross-entropy, mini-batch SGD with momentum 0.9, ``batch_size=256``, ``lr=0.1`` (peak,
for standardised features) following a cosine schedule to 0 over ``epochs=30`` epochs, weights
initialised to zero, weight decay on the weights (not the bias), seeded shuffling. No augmentation:
the probe sees one feature vector per image.

Example::

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 5)).astype(np.float32); y = (x[:, 0] > 0).astype(np.int64)
    >>> res = linear_probe(x, y, x, y, epochs=5, weight_decays=(0.0,))
    >>> res["top1"] > 95
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from selflabel.evaluate.io import (
    ArrayLike,
    as_label_tensor,
    check_features,
    rows_as_tensor,
    take_rows,
)

#: The weight decays the linear probe chooses from on a held-out split of train.
DEFAULT_WEIGHT_DECAYS: tuple[float, ...] = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)

#: Features with at most this many float32 values are copied into one tensor; larger ones are read
#: from the (memory-mapped) array batch by batch.
IN_MEMORY_LIMIT = 512 * 2**20


def linear_protocol(
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decays: Sequence[float],
    val_fraction: float,
    standardize: bool,
) -> str:
    """The one-line description of the linear-probe protocol printed next to its numbers."""
    wds = ", ".join(f"{w:g}" for w in weight_decays)
    sweep = (
        f"weight decay chosen from [{wds}] on a {val_fraction:.0%} held-out split of train, "
        "then retrained on all of train"
        if len(weight_decays) > 1
        else f"weight decay {wds}"
    )
    return (
        "linear probe on frozen features"
        + (" (standardised with train mean/std)" if standardize else "")
        + ": "
        f"cross-entropy, SGD momentum 0.9, batch {batch_size}, lr {lr:g} cosine to 0, "
        f"{epochs} epochs, {sweep}; top-1/top-5 on test (%)"
    )


class _Features:
    """Standardised rows of a feature matrix, in memory when small enough, else read per batch."""

    def __init__(self, x: ArrayLike, mean: Tensor, std: Tensor, device: torch.device) -> None:
        self.x, self.mean, self.std, self.device = x, mean.to(device), std.to(device), device
        n, d = check_features(x)
        self.n = n
        self.data: Tensor | None = None
        if n * d <= IN_MEMORY_LIMIT:
            self.data = self._norm(rows_as_tensor(x, 0, n).to(device))

    def _norm(self, rows: Tensor) -> Tensor:
        return (rows - self.mean) / self.std

    def take(self, index: Tensor) -> Tensor:
        if self.data is not None:
            return self.data[index.to(self.device)]
        return self._norm(take_rows(self.x, index.cpu().numpy()).to(self.device))


def _moments(x: ArrayLike, standardize: bool, chunk: int = 65536) -> tuple[Tensor, Tensor]:
    n, d = check_features(x)
    if not standardize:
        return torch.zeros(d), torch.ones(d)
    s = torch.zeros(d, dtype=torch.float64)
    s2 = torch.zeros(d, dtype=torch.float64)
    for c in range(0, n, chunk):
        rows = rows_as_tensor(x, c, min(c + chunk, n)).double()
        s += rows.sum(0)
        s2 += (rows * rows).sum(0)
    mean = s / n
    var = (s2 / n - mean * mean).clamp_min(0.0)
    std = var.sqrt()
    std = torch.where(std > 1e-6 * (1.0 + mean.abs()), std, torch.ones_like(std))  # constant dims
    return mean.float(), std.float()


def _train(
    feats: _Features,
    labels: Tensor,
    index: Tensor,
    *,
    n_classes: int,
    weight_decays: Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Train ``len(weight_decays)`` linear layers at once; returns weights (W, D, C), biases."""
    dev = feats.device
    n_w = weight_decays.shape[0]
    d = int(feats.x.shape[1])
    weight = torch.zeros((n_w, d, n_classes), device=dev)
    bias = torch.zeros((n_w, 1, n_classes), device=dev)
    mom_w, mom_b = torch.zeros_like(weight), torch.zeros_like(bias)
    wd = weight_decays.to(dev, torch.float32)[:, None, None]
    steps_per_epoch = math.ceil(index.numel() / batch_size)
    total = max(epochs * steps_per_epoch, 1)
    step = 0
    for _ in range(epochs):
        order = index[torch.randperm(index.numel(), generator=generator)]
        for b in range(0, order.numel(), batch_size):
            rows = order[b : b + batch_size]
            x = feats.take(rows)
            y = labels[rows].to(dev)
            # gradient of the mean softmax cross-entropy of a linear layer, written out:
            # d/dlogits = (softmax - onehot) / B, dW = xᵀ·that, db = its column sums
            grad = torch.softmax(torch.matmul(x, weight) + bias, dim=-1)
            grad[:, torch.arange(y.numel(), device=dev), y] -= 1.0
            grad /= y.numel()
            mom_w.mul_(0.9).add_(torch.matmul(x.T, grad) + wd * weight)
            mom_b.mul_(0.9).add_(grad.sum(dim=1, keepdim=True))
            step_lr = 0.5 * lr * (1.0 + math.cos(math.pi * step / total))
            weight.sub_(step_lr * mom_w)
            bias.sub_(step_lr * mom_b)
            step += 1
    return weight, bias


@torch.no_grad()
def _topk_hits(
    feats: _Features,
    labels: Tensor,
    index: Tensor,
    weight: Tensor,
    bias: Tensor,
    ks: Sequence[int],
    batch_size: int = 4096,
) -> Tensor:
    """Number of rows whose label is in the top-k, per layer and per k: (W, len(ks))."""
    hits = torch.zeros((weight.shape[0], len(ks)), dtype=torch.int64)
    for b in range(0, index.numel(), batch_size):
        rows = index[b : b + batch_size]
        logits = torch.matmul(feats.take(rows), weight) + bias
        y = labels[rows].to(logits.device)
        for j, k in enumerate(ks):
            top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices
            hits[:, j] += (top == y[None, :, None]).any(-1).sum(-1).cpu()
    return hits


def linear_probe(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    *,
    epochs: int = 30,
    lr: float = 0.1,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    val_fraction: float = 0.1,
    batch_size: int = 256,
    standardize: bool = True,
    n_classes: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Train a linear classifier on frozen train features and report test top-1/top-5 (in %).

    See the module docstring for the recipe. Returns ``{"probe": "linear", "protocol", "top1",
    "top5", "weight_decay" (chosen), "sweep": [{"weight_decay", "val_top1"}, ...], "epochs", "lr",
    "batch_size", "n_train", "n_test", "dim", "n_classes", "seed"}``.
    """
    n_train, dim = check_features(train_features, "train_features")
    n_test, test_dim = check_features(test_features, "test_features")
    if test_dim != dim:
        raise ValueError(f"train features have {dim} dims but test features have {test_dim}")
    train_y = as_label_tensor(train_labels, "train_labels")
    test_y = as_label_tensor(test_labels, "test_labels")
    if train_y.numel() != n_train or test_y.numel() != n_test:
        raise ValueError(
            f"features and labels differ in length: train {n_train} vs {train_y.numel()}, "
            f"test {n_test} vs {test_y.numel()}"
        )
    if n_train < 2 or n_test < 1:
        raise ValueError(f"need >= 2 train and >= 1 test samples, got {n_train} and {n_test}")
    if epochs < 1 or lr <= 0 or batch_size < 1:
        raise ValueError(
            f"epochs, lr and batch_size must be positive, got {epochs}, {lr}, {batch_size}"
        )
    wds = [float(w) for w in weight_decays]
    if not wds or min(wds) < 0:
        raise ValueError(
            f"weight_decays must be a non-empty list of values >= 0, got {weight_decays}"
        )
    if len(wds) > 1 and not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"val_fraction must be in (0, 1) for a weight-decay sweep, got {val_fraction}"
        )
    present = int(max(int(train_y.max()), int(test_y.max()))) + 1
    n_cls = present if n_classes is None else n_classes
    if n_cls < present:
        raise ValueError(f"n_classes={n_classes} but labels go up to {present - 1}")

    dev = torch.device(device) if device is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(seed)
    mean, std = _moments(train_features, standardize)
    train = _Features(train_features, mean, std, dev)
    kw: dict[str, Any] = dict(n_classes=n_cls, epochs=epochs, lr=lr, batch_size=batch_size)

    sweep: list[dict[str, float]] = []
    best_wd = wds[0]
    if len(wds) > 1:
        perm = torch.randperm(n_train, generator=gen)
        n_val = max(1, min(n_train - 1, round(val_fraction * n_train)))
        val_idx, fit_idx = perm[:n_val], perm[n_val:]
        w, b = _train(train, train_y, fit_idx, weight_decays=torch.tensor(wds), generator=gen, **kw)
        val_top1 = _topk_hits(train, train_y, val_idx, w, b, (1,))[:, 0].double() / n_val * 100
        sweep = [
            {"weight_decay": wd, "val_top1": float(a)} for wd, a in zip(wds, val_top1, strict=True)
        ]
        best = max(range(len(wds)), key=lambda i: (float(val_top1[i]), wds[i]))
        best_wd = wds[best]
    w, b = _train(
        train,
        train_y,
        torch.arange(n_train),
        weight_decays=torch.tensor([best_wd]),
        generator=gen,
        **kw,
    )
    test = _Features(test_features, mean, std, dev)
    hits = _topk_hits(test, test_y, torch.arange(n_test), w, b, (1, 5))[0].double() / n_test * 100
    return {
        "probe": "linear",
        "protocol": linear_protocol(
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            weight_decays=wds,
            val_fraction=val_fraction,
            standardize=standardize,
        ),
        "top1": float(hits[0]),
        "top5": float(hits[1]),
        "weight_decay": best_wd,
        "sweep": sweep,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "n_train": n_train,
        "n_test": n_test,
        "dim": dim,
        "n_classes": n_cls,
        "seed": seed,
    }


__all__ = ["DEFAULT_WEIGHT_DECAYS", "IN_MEMORY_LIMIT", "linear_probe", "linear_protocol"]
