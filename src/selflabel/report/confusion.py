"""Confusion matrix of clusters against ground truth, after cluster → class matching.

Clusters are first mapped to classes with :func:`selflabel.cluster.match_clusters` (Hungarian
one-to-one matching; with more clusters than classes the extra clusters go to their majority
class), then each image counts once in ``matrix[true class, class of its cluster]``. The trace
divided by the number of images is therefore exactly the clustering accuracy (``acc``).

Example::

    >>> conf = cluster_confusion([0, 0, 1, 1, 1], [4, 4, 4, 7, 7])
    >>> conf.matrix.tolist(), conf.mapping, conf.accuracy
    ([[2, 0], [1, 2]], {4: 0, 7: 1}, 0.8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import ArrayLike, NDArray

from selflabel.cluster import apply_mapping, contingency, match_clusters
from selflabel.report.curves import save_png

__all__ = ["ClusterConfusion", "cluster_confusion", "plot_confusion"]


@dataclass(frozen=True)
class ClusterConfusion:
    """``matrix[i, j]``: images of class ``classes[i]`` whose cluster was matched to ``classes[j]``.

    ``mapping`` maps every cluster id to its class; ``accuracy`` is ``trace / total``.
    """

    matrix: NDArray[np.int64]
    classes: NDArray[np.int64]
    mapping: dict[int, int]

    @property
    def total(self) -> int:
        """Number of images counted."""
        return int(self.matrix.sum())

    @property
    def accuracy(self) -> float:
        """Fraction of images whose cluster was matched to their own class."""
        return float(np.trace(self.matrix)) / max(self.total, 1)

    def recall(self) -> NDArray[np.float64]:
        """Per true class, the fraction of its images on the diagonal (0 for an empty class)."""
        rows = self.matrix.sum(axis=1)
        return np.diag(self.matrix) / np.maximum(rows, 1)


def cluster_confusion(y_true: ArrayLike, clusters: ArrayLike) -> ClusterConfusion:
    """The confusion matrix of ``clusters`` against ``y_true`` after cluster → class matching.

    Both are 1-D integer arrays with one entry per image. Classes are the distinct values of
    ``y_true`` (sorted); cluster ids may be any integers.

    Example::

        >>> cluster_confusion([0, 1, 2], [2, 0, 1]).accuracy
        1.0
    """
    table = contingency(y_true, clusters)  # validates the pair (1-D, integers, same length)
    mapping = match_clusters(y_true, clusters)
    classes = np.asarray(table.classes, dtype=np.int64)
    predicted = apply_mapping(clusters, mapping)
    t = np.searchsorted(classes, np.asarray(y_true, dtype=np.int64))
    p = np.searchsorted(classes, np.asarray(predicted, dtype=np.int64))
    n = classes.shape[0]
    matrix = np.bincount(t * n + p, minlength=n * n).reshape(n, n).astype(np.int64)
    return ClusterConfusion(matrix=matrix, classes=classes, mapping=mapping)


def plot_confusion(
    conf: ClusterConfusion,
    path: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    normalize: bool = True,
) -> Path:
    """A heat map of ``conf`` (rows normalised to recall when ``normalize``); returns the PNG path.

    Cells carry their value when there are at most 20 classes. ``class_names`` (indexed by class
    label) replaces the numeric labels on the axes.
    """
    n = conf.classes.shape[0]
    values = conf.matrix / np.maximum(conf.matrix.sum(1, keepdims=True), 1) if normalize else (
        conf.matrix.astype(np.float64)
    )
    names = [_name(int(c), class_names) for c in conf.classes]
    size = min(3.0 + 0.45 * n, 14.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if n <= 40:
        ax.set_xticks(np.arange(n), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(np.arange(n), names, fontsize=8)
    if n <= 20:
        top = float(values.max()) if values.size else 0.0
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                text = f"{v:.2f}" if normalize else str(int(v))
                colour = "white" if v > 0.6 * top else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    ax.set_xlabel("class of the matched cluster")
    ax.set_ylabel("true class")
    ax.set_title(f"clusters vs ground truth (acc {conf.accuracy:.3f})")
    fig.tight_layout()
    return save_png(fig, path)


def _name(label: int, class_names: Sequence[str] | None) -> str:
    if class_names is not None and 0 <= label < len(class_names):
        return str(class_names[label])
    return str(label)
