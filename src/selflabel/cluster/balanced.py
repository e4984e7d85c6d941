"""Balanced k-means: k-means whose clusters have equal sizes, by SeLa's equipartition solver.

k-means' assignment step sends every point to its nearest centroid, whatever the cluster sizes
become; on features whose classes are equally frequent it can split one class in two and merge
two others. The balanced refinement starts from a k-means solution and alternates, as Lloyd does:

1. **assignment under the equipartition constraint**: the optimal transport of the points to the
   centroids with cost ``||x - c_k||^2 / (2 sigma^2)`` and every cluster receiving ``N / k``
   points (``floor`` or ``ceil``), solved by :func:`selflabel.ot.sinkhorn_equipartition` (``lam``
   = 1 on these log-likelihoods: the isotropic Gaussian mixture's posterior made balanced) and
   rounded to hard labels; ``sigma^2`` is the clustering's mean squared distance per dimension;
2. **update**: every centroid becomes the mean of its points (renormalised when spherical);

until no label changes or ``n_iter`` rounds are done. This is SeLa's label step with the
centroids as the classifier. It suits data whose classes are about equally frequent (it assumes
uniform cluster sizes, as SeLa and SwAV do in training); on strongly imbalanced data it splits
large classes and is the wrong tool.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 1, (60, 2)), rng.normal(6, 1, (60, 2))]).astype("f4")
    >>> res = balanced_kmeans(x, np.array([[0.0, 0.0], [2.0, 2.0]], dtype="f4"))
    >>> np.bincount(res.labels).tolist()
    [60, 60]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from selflabel.ot import sinkhorn_equipartition

__all__ = ["BalancedKMeansResult", "balanced_kmeans", "nearest_centroid"]


@dataclass
class BalancedKMeansResult:
    """What :func:`balanced_kmeans` returns.

    Attributes:
        labels: (n,) int64, cluster sizes ``floor(n / k)`` or ``ceil(n / k)``.
        centroids: (k, d) float32, the means of the final clusters (unit rows when spherical).
        n_iter: rounds of assignment and update done.
        changed: labels that changed in the last round (0 when it stopped by convergence; the
            first round compares with the nearest-centroid assignment of the given centroids).
        objective: sum of squared distances of the points to their cluster's centroid.
    """

    labels: NDArray[np.int64]
    centroids: NDArray[np.float32]
    n_iter: int
    changed: int
    objective: float


def _sq_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(n, k) squared Euclidean distances, float32, clamped at 0."""
    d2 = (x * x).sum(1, keepdim=True) - 2.0 * (x @ c.T) + (c * c).sum(1)
    return d2.clamp_(min=0.0)


def _means(
    x: torch.Tensor, labels: torch.Tensor, old: torch.Tensor, spherical: bool
) -> torch.Tensor:
    """Each cluster's mean (a cluster left empty keeps its old centroid)."""
    k = old.shape[0]
    sums = torch.zeros_like(old).index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=k).to(x.dtype).unsqueeze(1)
    c = torch.where(counts > 0, sums / counts.clamp(min=1.0), old)
    if spherical:
        c = torch.nn.functional.normalize(c, dim=1)
    return c


def balanced_kmeans(
    x: NDArray[Any],
    centroids: NDArray[Any],
    *,
    n_iter: int = 10,
    spherical: bool = False,
    tol: float = 1e-3,
) -> BalancedKMeansResult:
    """Refine a k-means solution into equal-size clusters (see the module docstring).

    Args:
        x: (n, d) points (float32 is used; the rows the centroids were fitted on).
        centroids: (k, d) starting centroids, e.g. ``KMeans(...).fit(x).centroids_``.
        n_iter: at most this many rounds of balanced assignment and mean update (>= 1).
        spherical: renormalise the centroids after each update (spherical k-means).
        tol: the marginal tolerance of the transport solver before rounding (the rounding makes
            the sizes exact either way).

    Raises:
        ValueError: shapes that do not match, ``k`` larger than ``n``, non-finite values,
            ``n_iter < 1``.
    """
    xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    c = torch.as_tensor(np.array(centroids, dtype=np.float32, copy=True))
    if xt.ndim != 2 or c.ndim != 2 or xt.shape[1] != c.shape[1]:
        raise ValueError(f"x {tuple(xt.shape)} and centroids {tuple(c.shape)} must be (n, d) "
                         "and (k, d) with the same d")
    n, k = xt.shape[0], c.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"{k} centroids for {n} points: need 1 <= k <= n")
    if int(n_iter) != n_iter or n_iter < 1:
        raise ValueError(f"n_iter must be a positive integer, got {n_iter}")
    if not (bool(torch.isfinite(xt).all()) and bool(torch.isfinite(c).all())):
        raise ValueError("x and centroids must be finite")
    d = xt.shape[1]
    labels = _sq_distances(xt, c).argmin(1)  # k-means' own assignment: round 1 compares to it
    init = None
    changed, rounds = n, 0
    while rounds < n_iter:
        rounds += 1
        d2 = _sq_distances(xt, c)
        # sigma^2 of the isotropic mixture: the current clustering's spread per dimension
        sigma2 = float(d2.min(1).values.mean()) / d + 1e-12
        log_p = torch.log_softmax(d2.mul_(-0.5 / sigma2), dim=1)
        res = sinkhorn_equipartition(log_p, lam=1.0, init=init, tol=tol, max_iter=2000)
        init = res.potentials
        changed = int((res.labels != labels).sum())
        labels = res.labels
        c = _means(xt, labels, c, spherical)
        if changed == 0:
            break
    objective = float(_sq_distances(xt, c).gather(1, labels[:, None]).sum())
    return BalancedKMeansResult(labels.numpy().astype(np.int64), c.numpy(), rounds, changed,
                                objective)


def nearest_centroid(x: NDArray[Any], centroids: NDArray[Any], spherical: bool = False
                     ) -> NDArray[np.int64]:
    """Index of the nearest centroid (largest inner product when spherical) of every row."""
    xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    c = torch.as_tensor(np.ascontiguousarray(centroids, dtype=np.float32))
    score = xt @ c.T if spherical else -_sq_distances(xt, c)
    return score.argmax(1).numpy().astype(np.int64)
