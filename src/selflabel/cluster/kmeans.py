"""k-means with faiss: all points by default, restarts, spherical option, GPU when available.

``faiss.Kmeans`` silently trains on a random subsample of ``256 × k`` points unless told
otherwise (its ``max_points_per_centroid``). :class:`KMeans` uses **all points** by default
(``max_points_per_centroid=None``) and says so in its attributes; pass a number to get faiss's
subsampling back.

Example::

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(c, 0.1, size=(50, 2)) for c in (0, 5, 10)]).astype("float32")
    >>> km = KMeans(k=3, seed=0, use_gpu=False).fit(x)
    >>> km.centroids_.shape, km.points_used_
    ((3, 2), 150)
    >>> len(set(km.predict(x).tolist()))
    3
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["KMeans", "gpu_count", "resolve_gpu"]


def gpu_count() -> int:
    """Number of GPUs faiss can use (0 with faiss-cpu or no GPU)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def resolve_gpu(use_gpu: bool | str) -> bool:
    """``"auto"`` → whether faiss has a GPU; ``True`` checks one exists; ``False`` stays off."""
    if use_gpu == "auto":
        return gpu_count() > 0
    if not isinstance(use_gpu, bool):
        raise ValueError(f"use_gpu must be True, False or 'auto', got {use_gpu!r}")
    if use_gpu and gpu_count() == 0:
        raise ValueError("use_gpu=True but faiss sees no GPU (faiss-cpu installed, or no GPU); "
                         "pass use_gpu='auto' or False")
    return use_gpu


def _as_float32(x: NDArray[Any]) -> NDArray[np.float32]:
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclass
class KMeans:
    """Lloyd's k-means (faiss), scikit-learn style ``fit``/``predict``.

    Args:
        k: number of clusters.
        n_iter: Lloyd iterations per run.
        n_init: independent runs (faiss ``nredo``); the one with the lowest objective is kept.
        seed: random seed of the initialisation (same seed and data → same clusters).
        max_points_per_centroid: ``None`` (default) trains on all points; a number restores
            faiss's subsampling to at most that many points per centroid.
        spherical: normalise the centroids after every iteration and assign by inner product
            (spherical k-means, for L2-normalised features).
        init: ``"random"`` (faiss's default: k distinct random points) or ``"kmeans++"``.
        use_gpu: ``"auto"`` uses every GPU faiss can see; ``True``/``False`` force it.
        verbose: let faiss print the objective per iteration.

    Attributes (after :meth:`fit`): ``centroids_`` (k, d) float32, ``labels_`` (n,) int64 (the
    nearest final centroid of every training point), ``objective_`` (final sum of squared
    distances, or of similarities when spherical), ``points_used_``, ``used_gpu_``.
    """

    k: int
    n_iter: int = 25
    n_init: int = 1
    seed: int = 0
    max_points_per_centroid: int | None = None
    spherical: bool = False
    init: str = "random"
    use_gpu: bool | str = "auto"
    verbose: bool = False
    centroids_: NDArray[np.float32] = field(init=False, repr=False)
    labels_: NDArray[np.int64] = field(init=False, repr=False)
    objective_: float = field(init=False, default=float("nan"))
    points_used_: int = field(init=False, default=0)
    used_gpu_: bool = field(init=False, default=False)

    def _check(self, n: int) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.k > n:
            raise ValueError(f"k={self.k} clusters but only {n} samples; lower k (or overcluster)")
        if self.n_iter < 1 or self.n_init < 1:
            raise ValueError("n_iter and n_init must be at least 1")
        if self.init not in ("random", "kmeans++"):
            raise ValueError(f"init must be 'random' or 'kmeans++', got {self.init!r}")

    def fit(self, x: NDArray[Any], init_centroids: NDArray[Any] | None = None) -> KMeans:
        """Cluster the rows of ``x`` (float32, C-contiguous is best: no copy is made then).

        ``init_centroids`` (k, d): start Lloyd's iterations there instead of at ``init``'s seeds
        (e.g. a method's own prototypes); the run is then deterministic, so ``n_init`` must be 1.
        """
        import faiss

        x = _as_float32(x)
        n, d = x.shape
        self._check(n)
        start = None if init_centroids is None else self._start(init_centroids, d)
        gpu = resolve_gpu(self.use_gpu)
        cap = n if self.max_points_per_centroid is None else int(self.max_points_per_centroid)
        params: dict[str, Any] = dict(
            niter=self.n_iter,
            nredo=self.n_init,
            seed=int(self.seed) % (2**31),
            max_points_per_centroid=max(1, cap),
            min_points_per_centroid=1,
            spherical=self.spherical,
            verbose=self.verbose,
        )
        if self.init == "kmeans++":
            params["init_method"] = faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS
        if gpu:
            params["gpu"] = True
        km = faiss.Kmeans(d, self.k, **params)
        km.train(x, init_centroids=start)
        self.centroids_ = np.ascontiguousarray(km.centroids, dtype=np.float32)
        self.objective_ = float(km.obj[-1]) if km.obj is not None and len(km.obj) else float("nan")
        self.points_used_ = min(n, self.k * max(1, cap))
        self.used_gpu_ = gpu
        self.labels_ = self.predict(x)
        return self

    def _start(self, init_centroids: NDArray[Any], d: int) -> NDArray[np.float32]:
        start = _as_float32(init_centroids)
        if start.shape != (self.k, d):
            raise ValueError(f"init_centroids must have shape (k, d) = ({self.k}, {d}), got "
                             f"{start.shape}; pass one start per cluster, in the data's space")
        if not np.isfinite(start).all():
            raise ValueError("init_centroids contain NaN or inf")
        if self.n_init != 1:
            raise ValueError(f"init_centroids give one deterministic start; restarts would repeat "
                             f"it: pass n_init=1 (got {self.n_init})")
        return start

    def predict(self, x: NDArray[Any]) -> NDArray[np.int64]:
        """Index of the nearest centroid (largest inner product when spherical) of every row."""
        import faiss

        if not hasattr(self, "centroids_"):
            raise ValueError("call fit() before predict()")
        x = _as_float32(x)
        if x.ndim != 2 or x.shape[1] != self.centroids_.shape[1]:
            raise ValueError(f"expected rows of size {self.centroids_.shape[1]}, got {x.shape}")
        d = self.centroids_.shape[1]
        index: Any = faiss.IndexFlatIP(d) if self.spherical else faiss.IndexFlatL2(d)
        if self.used_gpu_:
            index = faiss.index_cpu_to_all_gpus(index)
        index.add(self.centroids_)
        _, nearest = index.search(x, 1)
        return nearest[:, 0].astype(np.int64)
