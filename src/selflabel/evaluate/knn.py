"""Weighted k-nearest-neighbour classification of frozen features (InstDisc / DINO / SeLa protocol).

Protocol: train and test features are L2-normalised, the similarity is the cosine (a dot product of
unit vectors), a test sample's ``k`` most similar train samples vote for their labels with weight
``exp(sim / T)``, and the class with the largest summed weight is the prediction (the five largest
give top-5). The SeLa code uses the same formula with ``T = σ`` (``k=50, σ=0.1``); InstDisc and DINO
use ``T = 0.07`` with ``k = 200`` and ``k = 20``.

``center=True`` ("CL2N") subtracts the mean of the L2-normalised **train** rows from every
L2-normalised train and test row and L2-normalises again before the cosine: ReLU features are all
positive and share one dominant direction, which centring removes. Only the train rows (the
gallery) set the mean, so a test row's neighbours never depend on the other test rows.

The search never builds the ``N_test × N_train`` similarity matrix: the outer loop reads the train
features once, chunk by chunk (a memory-mapped ``.npy`` of 1.28M × 2048 float16 is fine), the inner
loop runs over test batches, and a running top-k per test row is merged chunk after chunk. Memory is
``O(N_test · k + chunk · D + batch · chunk)``. The neighbours are computed once for the largest
``k`` and shared by every (k, T) setting.

Example::

    >>> import numpy as np
    >>> train = np.array([[1.0, 0.0], [0.0, 1.0]]); labels = np.array([0, 1])
    >>> knn_classify(train, labels, np.array([[0.9, 0.1]]), k=1).predictions.tolist()
    [0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from selflabel.evaluate.io import (
    ArrayLike,
    as_label_tensor,
    check_features,
    iter_row_chunks,
    rows_as_tensor,
)

#: The default settings (k, temperature): InstDisc/DINO k=20 and k=200 at T=0.07, SeLa k=50, σ=0.1.
DEFAULT_KNN_SETTINGS: tuple[tuple[int, float], ...] = ((20, 0.07), (200, 0.07), (50, 0.1))


@dataclass
class KNNNeighbors:
    """The ``k`` most similar train rows of every test row, most similar first."""

    similarities: Tensor  # (N_test, k) float32 cosine similarities, descending
    indices: Tensor  # (N_test, k) int64 train row indices


@dataclass
class KNNPrediction:
    """Class scores and the predicted class of every test row.

    ``scores[i, c]`` is the summed vote weight of class ``c`` divided by the per-row constant
    ``exp(max_j s_ij / T)`` (for numerical range), i.e. the sum over the k neighbours ``j`` of
    ``i`` with label ``c`` of ``exp((s_ij - max_j s_ij) / T)``.
    """

    scores: Tensor  # (N_test, n_classes) float32
    predictions: Tensor  # (N_test,) int64, argmax of scores

    def topk(self, k: int = 5) -> Tensor:
        """The ``min(k, n_classes)`` best classes of every row, best first, ``(N_test, k)``."""
        return self.scores.topk(min(k, self.scores.shape[1]), dim=1).indices


def _features_protocol(center: bool) -> str:
    return (
        "L2-normalised features centred on the train mean and L2-normalised again"
        if center
        else "L2-normalised features"
    )


def knn_protocol(k: int, temperature: float, *, center: bool = False) -> str:
    """The one-line description of the kNN protocol printed next to every kNN number."""
    return (
        f"weighted kNN (k={k}, T={temperature:g}): {_features_protocol(center)}, cosine "
        "similarity, vote weight exp(sim/T), train -> test"
    )


def _resolve_device(device: str | torch.device | None) -> torch.device:
    return torch.device(device) if device is not None else torch.device("cpu")


def _normalised(x: Tensor, mean: Tensor | None = None) -> Tensor:
    """Rows L2-normalised; with ``mean``, centred on it and L2-normalised again (CL2N)."""
    x = torch.nn.functional.normalize(x.float(), dim=1, eps=1e-12)
    if mean is None:
        return x
    return torch.nn.functional.normalize(x - mean, dim=1, eps=1e-12)


def gallery_mean(features: ArrayLike, chunk_size: int = 65536) -> Tensor:
    """The mean of the L2-normalised rows of ``features`` ``(D,)``, in float64 over chunks, as
    float32: the centre that ``center=True`` subtracts.

    Example::

        >>> import numpy as np
        >>> gallery_mean(np.array([[2.0, 0.0], [0.0, 3.0]])).tolist()
        [0.5, 0.5]
    """
    n, dim = check_features(features, "train_features")
    total = torch.zeros(dim, dtype=torch.float64)
    for _, rows in iter_row_chunks(features, chunk_size):
        total += _normalised(rows).sum(0, dtype=torch.float64)
    return (total / n).float()


def knn_neighbors(
    train_features: ArrayLike,
    test_features: ArrayLike,
    *,
    k: int,
    batch_size: int = 1024,
    chunk_size: int = 65536,
    device: str | torch.device | None = None,
    exclude_self: bool = False,
    center: bool = False,
) -> KNNNeighbors:
    """Top-``k`` cosine neighbours of each test row among the train rows, chunked over both.

    ``train_features`` ``(N_train, D)`` and ``test_features`` ``(N_test, D)`` may be numpy arrays
    (memory-mapped, float16 or float32) or tensors; they are L2-normalised here. Results are on
    the CPU. ``exclude_self=True`` is leave-one-out: test row ``i`` is train row ``i`` (the same
    array passed twice) and never counts as its own neighbour. ``center=True`` centres both on the
    mean of the normalised train rows first (module docstring).

    Example::

        >>> import numpy as np
        >>> nb = knn_neighbors(np.eye(3), np.array([[1.0, 0.2, 0.0]]), k=2)
        >>> nb.indices.tolist()
        [[0, 1]]
    """
    n_train, dim = check_features(train_features, "train_features")
    n_test, test_dim = check_features(test_features, "test_features")
    if test_dim != dim:
        raise ValueError(
            f"train features have {dim} dimensions but test features have {test_dim}; "
            "extract both with the same model"
        )
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if exclude_self and n_test != n_train:
        raise ValueError(
            f"exclude_self needs the same rows as train and test, got {n_train} and {n_test}"
        )
    if k > n_train - int(exclude_self):
        raise ValueError(
            f"k={k} is larger than the number of train samples ({n_train - int(exclude_self)})"
        )
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(f"batch_size and chunk_size must be >= 1, got {batch_size}, {chunk_size}")
    dev = _resolve_device(device)
    mean = gallery_mean(train_features, chunk_size).to(dev) if center else None
    # the running top-k lives on the device: N_test x k, small next to the train chunks
    best_sim = torch.full((n_test, k), -float("inf"), dtype=torch.float32, device=dev)
    best_idx = torch.zeros((n_test, k), dtype=torch.int64, device=dev)
    test_batches = (
        [
            _normalised(
                rows_as_tensor(test_features, s, min(s + batch_size, n_test)).to(dev), mean
            )
            for s in range(0, n_test, batch_size)
        ]
        if n_test * dim <= 64 * 2**20
        else None
    )  # keep test on device when it is at most 256 MiB
    with torch.no_grad():
        for c0, rows in iter_row_chunks(train_features, chunk_size):
            c1 = c0 + rows.shape[0]
            chunk = _normalised(rows.to(dev), mean)
            kk = min(k, c1 - c0)
            for bi, b0 in enumerate(range(0, n_test, batch_size)):
                b1 = min(b0 + batch_size, n_test)
                if test_batches is not None:
                    query = test_batches[bi]
                else:
                    query = _normalised(rows_as_tensor(test_features, b0, b1).to(dev), mean)
                full = query @ chunk.T
                if exclude_self and b0 < c1 and c0 < b1:
                    diag = torch.arange(max(b0, c0), min(b1, c1), device=dev)
                    full[diag - b0, diag - c0] = -float("inf")
                sim, idx = full.topk(kk, dim=1)
                merged_sim = torch.cat([best_sim[b0:b1], sim], dim=1)
                merged_idx = torch.cat([best_idx[b0:b1], idx + c0], dim=1)
                top_sim, pos = merged_sim.topk(k, dim=1)
                best_sim[b0:b1] = top_sim
                best_idx[b0:b1] = merged_idx.gather(1, pos)
    return KNNNeighbors(similarities=best_sim.cpu(), indices=best_idx.cpu())


def knn_vote(
    neighbors: KNNNeighbors,
    train_labels: ArrayLike,
    *,
    k: int,
    temperature: float,
    n_classes: int,
) -> KNNPrediction:
    """Weighted vote of the first ``k`` neighbours: class score = Σ exp(sim / temperature).

    Example::

        >>> import numpy as np
        >>> nb = KNNNeighbors(torch.tensor([[0.9, 0.8, 0.1]]), torch.tensor([[0, 1, 2]]))
        >>> knn_vote(nb, np.array([0, 1, 1]), k=3, temperature=1.0, n_classes=2).predictions
        tensor([1])
    """
    if k < 1 or k > neighbors.indices.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the {neighbors.indices.shape[1]} neighbours")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    labels = as_label_tensor(train_labels, "train_labels")
    if labels.numel() and int(labels.max()) >= n_classes:
        raise ValueError(f"train label {int(labels.max())} is >= n_classes={n_classes}")
    sim = neighbors.similarities[:, :k]
    # exp((sim - max_sim) / T): the documented exp(sim/T) divided by a per-row constant, which keeps
    # the weights finite for any T and changes neither the ranking of classes nor their ratios
    weights = torch.exp((sim - sim[:, :1]) / temperature)
    neighbour_labels = labels[neighbors.indices[:, :k]]
    scores = torch.zeros((sim.shape[0], n_classes), dtype=torch.float32)
    scores.scatter_add_(1, neighbour_labels, weights)
    return KNNPrediction(scores=scores, predictions=scores.argmax(dim=1))


def _n_classes(n_classes: int | None, *labels: Tensor) -> int:
    present = max((int(lab.max()) + 1 for lab in labels if lab.numel()), default=0)
    if n_classes is None:
        return present
    if n_classes < present:
        raise ValueError(f"n_classes={n_classes} but labels go up to {present - 1}")
    return n_classes


def knn_classify(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    *,
    k: int = 20,
    temperature: float = 0.07,
    n_classes: int | None = None,
    batch_size: int = 1024,
    chunk_size: int = 65536,
    device: str | torch.device | None = None,
    center: bool = False,
) -> KNNPrediction:
    """Weighted kNN predictions and class scores for the test rows (see module docstring).

    Example::

        >>> import numpy as np
        >>> train = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]); y = np.array([0, 0, 1])
        >>> knn_classify(train, y, np.array([[0.0, 1.0]]), k=3, temperature=0.1).predictions
        tensor([1])
    """
    labels = as_label_tensor(train_labels, "train_labels")
    n_train, _ = check_features(train_features, "train_features")
    if labels.shape[0] != n_train:
        raise ValueError(f"{n_train} train features but {labels.shape[0]} train labels")
    nb = knn_neighbors(
        train_features,
        test_features,
        k=k,
        batch_size=batch_size,
        chunk_size=chunk_size,
        device=device,
        center=center,
    )
    return knn_vote(
        nb, labels, k=k, temperature=temperature, n_classes=_n_classes(n_classes, labels)
    )


def _topk_accuracy(pred: KNNPrediction, targets: Tensor, k: int) -> float:
    hits = (pred.topk(k) == targets[:, None]).any(dim=1)
    return float(hits.float().mean()) if targets.numel() else float("nan")


def knn_accuracy(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    *,
    settings: Sequence[tuple[int, float]] | None = None,
    k: int | None = None,
    temperature: float | None = None,
    n_classes: int | None = None,
    batch_size: int = 1024,
    chunk_size: int = 65536,
    device: str | torch.device | None = None,
    exclude_self: bool = False,
    center: bool = False,
) -> dict[str, Any]:
    """Top-1/top-5 accuracy (in %) of weighted kNN for each ``(k, temperature)`` setting.

    ``settings`` defaults to :data:`DEFAULT_KNN_SETTINGS`; passing ``k`` and/or ``temperature``
    instead evaluates the single setting ``(k or 20, temperature or 0.07)``. The neighbours are
    searched once for the largest ``k``. ``exclude_self=True`` is leave-one-out (test = train);
    ``center=True`` centres the features on the mean of the normalised train rows (CL2N).
    Returns ``{"probe": "knn", "protocol", "top1", "top5" (of the first setting), "k",
    "temperature" (the first setting), "n_train", "n_test", "dim", "n_classes",
    "results": [{"k", "temperature", "top1", "top5", "protocol"}, ...]}``.

    Example::

        >>> import numpy as np
        >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> y = np.array([0, 0, 1, 1])
        >>> knn_accuracy(x, y, x, y, k=1, temperature=0.1, exclude_self=True)["top1"]
        100.0
    """
    if settings is not None and (k is not None or temperature is not None):
        raise ValueError("pass either settings=[(k, T), ...] or k=/temperature=, not both")
    if settings is None:
        settings = (
            DEFAULT_KNN_SETTINGS
            if k is None and temperature is None
            else ((20 if k is None else k, 0.07 if temperature is None else temperature),)
        )
    if not settings:
        raise ValueError("settings must hold at least one (k, temperature) pair")
    train_y = as_label_tensor(train_labels, "train_labels")
    test_y = as_label_tensor(test_labels, "test_labels")
    n_train, dim = check_features(train_features, "train_features")
    n_test, _ = check_features(test_features, "test_features")
    if train_y.shape[0] != n_train or test_y.shape[0] != n_test:
        raise ValueError(
            f"features and labels differ in length: train {n_train} vs {train_y.shape[0]}, "
            f"test {n_test} vs {test_y.shape[0]}"
        )
    n_cls = _n_classes(n_classes, train_y, test_y)
    k_max = max(int(k) for k, _ in settings)
    nb = knn_neighbors(
        train_features,
        test_features,
        k=k_max,
        batch_size=batch_size,
        chunk_size=chunk_size,
        device=device,
        exclude_self=exclude_self,
        center=center,
    )
    results = []
    for k_i, t_i in settings:
        pred = knn_vote(nb, train_y, k=int(k_i), temperature=float(t_i), n_classes=n_cls)
        results.append(
            {
                "k": int(k_i),
                "temperature": float(t_i),
                "top1": 100.0 * _topk_accuracy(pred, test_y, 1),
                "top5": 100.0 * _topk_accuracy(pred, test_y, 5),
                "protocol": knn_protocol(int(k_i), float(t_i), center=center),
            }
        )
    return {
        "probe": "knn",
        "protocol": (
            f"weighted kNN: {_features_protocol(center)}, cosine similarity, "
            "vote weight exp(sim/T) summed per class over the k nearest train samples; "
            + ("leave-one-out on train" if exclude_self else "train -> test")
            + "; top-1/top-5 accuracy (%); settings "
            + ", ".join(f"(k={k_i}, T={t_i:g})" for k_i, t_i in settings)
        ),
        "top1": results[0]["top1"],
        "top5": results[0]["top5"],
        "k": results[0]["k"],
        "temperature": results[0]["temperature"],
        "n_train": n_train,
        "n_test": n_test,
        "dim": dim,
        "n_classes": n_cls,
        "results": results,
    }


__all__ = [
    "DEFAULT_KNN_SETTINGS",
    "KNNNeighbors",
    "KNNPrediction",
    "gallery_mean",
    "knn_accuracy",
    "knn_classify",
    "knn_neighbors",
    "knn_protocol",
    "knn_vote",
]
