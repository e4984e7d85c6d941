"""Matching clusters to classes: the contingency table, Hungarian matching and cluster accuracy.

The rule (the clustering benchmark's protocol, see ``docs/clustering.md``):

* **clusters ≤ classes** — the one-to-one matching that maximises the number of correctly
  labelled samples (Hungarian algorithm, :func:`scipy.optimize.linear_sum_assignment`). Every
  cluster gets a distinct class; the classes left over get no cluster.
* **over-clustering (clusters > classes)** — the mapping with the most correctly labelled samples
  among those in which every class is predicted by at least one cluster: each class gets a
  distinct cluster (a Hungarian matching on what moving a cluster off its majority class costs),
  and each remaining cluster goes to its majority class (ties: the smallest class label).

This is *not* a plain majority vote: a majority vote may leave classes unpredicted, the Hungarian
step may not. Labels and cluster ids may be any integers (not only ``0..C-1``); the mapping is
returned in terms of the original ids.

Example::

    >>> import numpy as np
    >>> y_true = np.array([0, 0, 1, 1, 2, 2])
    >>> y_pred = np.array([5, 5, 3, 3, 9, 9])
    >>> match_clusters(y_true, y_pred)
    {3: 1, 5: 0, 9: 2}
    >>> cluster_accuracy(y_true, y_pred)
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment

__all__ = [
    "Contingency",
    "apply_mapping",
    "cluster_accuracy",
    "contingency",
    "mapped_accuracy",
    "match_clusters",
]


@dataclass(frozen=True)
class Contingency:
    """Counts of (class, cluster) pairs.

    ``counts[i, j]`` is the number of samples of class ``classes[i]`` put in cluster
    ``clusters[j]``; ``classes`` and ``clusters`` are the sorted distinct values seen.
    """

    counts: NDArray[np.int64]
    classes: NDArray[np.generic]
    clusters: NDArray[np.generic]


def _as_1d(name: str, values: ArrayLike) -> NDArray[np.generic]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {arr.shape}; "
                         "flatten it or pass one label per sample")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} holds non-integer values; pass integer labels")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}; "
                        "encode string labels with np.unique(..., return_inverse=True) first")
    return arr


def _check_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[NDArray[np.generic], ...]:
    t = _as_1d("y_true", y_true)
    p = _as_1d("y_pred", y_pred)
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"y_true has {t.shape[0]} labels but y_pred has {p.shape[0]}; "
                         "pass one true label and one cluster id per sample")
    if t.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty; pass at least one sample")
    return t, p


def contingency(y_true: ArrayLike, y_pred: ArrayLike) -> Contingency:
    """Class × cluster count table, built with one vectorised :func:`numpy.bincount`.

    Example::

        >>> c = contingency([0, 0, 1], [7, 7, 7])
        >>> c.counts.tolist(), c.classes.tolist(), c.clusters.tolist()
        ([[2], [1]], [0, 1], [7])
    """
    t, p = _check_pair(y_true, y_pred)
    classes, ti = np.unique(t, return_inverse=True)
    clusters, pi = np.unique(p, return_inverse=True)
    n_c, n_k = classes.shape[0], clusters.shape[0]
    flat = np.bincount(ti.astype(np.int64) * n_k + pi, minlength=n_c * n_k)
    return Contingency(flat.reshape(n_c, n_k).astype(np.int64), classes, clusters)


def _match_table(counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """For each cluster (column) the row index of its class, by the protocol's rule."""
    # solve on the columns sorted by their counts, so that ties break by what the clusters hold
    # and never by their ids: relabelling the clusters gives the same mapping
    order = np.lexsort(counts[::-1])
    assign = np.empty(counts.shape[1], dtype=np.int64)
    assign[order] = _match_sorted(counts[:, order])
    return assign


def _match_sorted(counts: NDArray[np.int64]) -> NDArray[np.int64]:
    # every cluster would take its majority class; each class (with over-clustering) or each
    # cluster (otherwise) is matched one-to-one at the least cost in correct samples. With no more
    # clusters than classes every cluster is matched, so this is the Hungarian maximum of the
    # counts; with over-clustering it maximises the correct count over all mappings that cover
    # every class (a Hungarian step on the counts alone ignored what the matched clusters give up).
    assign = np.argmax(counts, axis=0).astype(np.int64)
    loss = counts.max(axis=0, keepdims=True) - counts
    rows, cols = linear_sum_assignment(loss)
    assign[cols] = rows
    return assign


def match_clusters(y_true: ArrayLike, y_pred: ArrayLike) -> dict[int, int]:
    """The cluster → class mapping of the benchmark's rule (see the module docstring).

    Returns a dict from every cluster id in ``y_pred`` to a class label of ``y_true``.

    Example::

        >>> match_clusters([0, 0, 0, 1, 1], [1, 1, 2, 0, 0])   # 3 clusters, 2 classes
        {0: 1, 1: 0, 2: 0}
    """
    table = contingency(y_true, y_pred)
    assign = _match_table(table.counts)
    return {
        table.clusters[j].item(): table.classes[assign[j]].item()
        for j in range(table.clusters.shape[0])
    }


def _lookup(
    p: NDArray[np.int64], mapping: dict[int, int]
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Mapped values and a "cluster is in the mapping" mask, by a sorted lookup."""
    if not mapping:
        return np.zeros(p.shape[0], dtype=np.int64), np.zeros(p.shape[0], dtype=bool)
    keys = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
    vals = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    order = np.argsort(keys)
    keys, vals = keys[order], vals[order]
    pos = np.clip(np.searchsorted(keys, p), 0, keys.shape[0] - 1)
    return vals[pos], keys[pos] == p


def apply_mapping(
    y_pred: ArrayLike, mapping: dict[int, int], unseen: int = -1
) -> NDArray[np.int64]:
    """Translate cluster ids into class labels; clusters missing from ``mapping`` get ``unseen``.

    Vectorised (a sorted lookup, no per-sample loop). Clusters never seen when the mapping was
    built (e.g. validation samples in a cluster that was empty on the training set) map to
    ``unseen``.

    Example::

        >>> apply_mapping([3, 4, 3], {3: 0}).tolist()
        [0, -1, 0]
    """
    p = _as_1d("y_pred", y_pred).astype(np.int64)
    vals, found = _lookup(p, mapping)
    return np.where(found, vals, unseen).astype(np.int64)


def mapped_accuracy(y_true: ArrayLike, y_pred: ArrayLike, mapping: dict[int, int]) -> float:
    """Accuracy of ``y_pred`` once translated with a fixed ``mapping`` (e.g. one from train).

    Samples in clusters absent from ``mapping`` count as errors.

    Example::

        >>> mapped_accuracy([0, 1, 1], [3, 4, 5], {3: 0, 4: 1})
        0.6666666666666666
    """
    t, p = _check_pair(y_true, y_pred)
    vals, found = _lookup(p.astype(np.int64), mapping)
    return float(np.mean(found & (vals == t.astype(np.int64))))


def cluster_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Clustering accuracy under the best cluster → class matching of the benchmark's rule.

    Hungarian (one-to-one) when there are no more clusters than classes; with over-clustering, the
    best mapping in which every class has at least one cluster (the others: majority class).

    Example::

        >>> cluster_accuracy([0, 0, 1, 1], [1, 1, 0, 0])
        1.0
        >>> cluster_accuracy([0, 0, 1, 1], [0, 0, 0, 0])   # one cluster for two classes
        0.5
    """
    table = contingency(y_true, y_pred)
    assign = _match_table(table.counts)
    correct = table.counts[assign, np.arange(table.counts.shape[1])].sum()
    return float(correct / table.counts.sum())
