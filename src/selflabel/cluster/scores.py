"""Clustering scores: accuracy under the benchmark's matching, NMI, AMI and ARI.

NMI (arithmetic-mean normalisation), AMI and ARI come from scikit-learn unchanged; accuracy comes
from :mod:`selflabel.cluster.matching`. All scores are fractions in ``[0, 1]`` (ARI and AMI may
be slightly negative for worse-than-chance clusterings).

Example::

    >>> scores = clustering_scores([0, 0, 1, 1], [1, 1, 0, 0])
    >>> {name: round(value, 3) for name, value in scores.items()}
    {'acc': 1.0, 'nmi': 1.0, 'ami': 1.0, 'ari': 1.0}
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    normalized_mutual_info_score,
)

from selflabel.cluster.matching import _check_pair, cluster_accuracy, mapped_accuracy

__all__ = ["METRICS", "clustering_scores"]

#: The metric names, in the order they are reported.
METRICS: tuple[str, ...] = ("acc", "nmi", "ami", "ari")


def clustering_scores(
    y_true: ArrayLike, y_pred: ArrayLike, mapping: dict[int, int] | None = None
) -> dict[str, float]:
    """ACC, NMI, AMI and ARI of cluster ids ``y_pred`` against the classes ``y_true``.

    Args:
        y_true: one integer class label per sample (any integers, not only ``0..C-1``).
        y_pred: one integer cluster id per sample.
        mapping: a fixed cluster → class mapping for the accuracy, e.g. built on the training set
            with :func:`~selflabel.cluster.match_clusters` and applied to validation predictions;
            clusters absent from it count as errors. ``None`` (default): the best matching on
            these very labels (:func:`~selflabel.cluster.cluster_accuracy`).

    Returns:
        ``{"acc": ..., "nmi": ..., "ami": ..., "ari": ...}`` as Python floats. NMI, AMI and ARI
        are computed on the raw cluster ids, so they never depend on the mapping.

    Example::

        >>> train_map = {0: 7, 1: 8}
        >>> clustering_scores([7, 8, 8], [0, 1, 2], mapping=train_map)["acc"]
        0.6666666666666666
    """
    t, p = _check_pair(y_true, y_pred)
    acc = cluster_accuracy(t, p) if mapping is None else mapped_accuracy(t, p, mapping)
    t64 = np.asarray(t, dtype=np.int64)
    p64 = np.asarray(p, dtype=np.int64)
    return {
        "acc": float(acc),
        "nmi": float(normalized_mutual_info_score(t64, p64, average_method="arithmetic")),
        "ami": float(adjusted_mutual_info_score(t64, p64, average_method="arithmetic")),
        "ari": float(adjusted_rand_score(t64, p64)),
    }
