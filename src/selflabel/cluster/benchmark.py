"""The clustering benchmark of learned features: L2 → PCA → k-means → match on train → score.

Protocol (details and reasons in ``docs/clustering.md``):

1. every feature row is L2-normalised (``l2_normalize=True``); with ``center=True`` the rows are
   then centred on the mean of the normalised training rows and L2-normalised again (val rows
   use the training mean);
2. exact PCA to ``pca_dim`` components is fitted on **all** training rows and applied to train and
   val, streamed chunk by chunk (memory-mapped features are never copied whole);
3. optionally (``umap_dim``), for each seed a UMAP embedding of the training rows into ``umap_dim``
   dimensions, seeded with it (val rows by UMAP's out-of-sample transform; needs umap-learn);
4. for each seed, k-means with ``round(overcluster · k)`` clusters on **all** training points
   (not faiss's default 256-per-centroid subsample); with ``balanced=True`` the best restart is
   then refined into equal-size clusters (:func:`selflabel.cluster.balanced.balanced_kmeans`);
   with ``init_centroids`` (e.g. a method's own prototypes) one k-means run starts there instead;
5. clusters are mapped to classes on the **training** labels (Hungarian; with over-clustering one
   cluster per class by Hungarian, the rest to their majority class);
6. validation rows go to their nearest centroid and are scored with that fixed mapping (ACC) and
   on raw cluster ids (NMI, AMI, ARI); without a validation set the training set is scored.

PCA is exact and deterministic, so it is fitted once and shared by all seeds.

Example::

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(size=(3, 16)) * 10
    >>> y = np.repeat(np.arange(3), 40)
    >>> x = (centres[y] + rng.normal(size=(120, 16))).astype(np.float32)
    >>> result = cluster_benchmark(x, y, k=3, pca_dim=4, seeds=2, progress=False)
    >>> result.mean()["acc"]
    1.0
    >>> sorted(result.to_dict())
    ['cpu_timings', 'mean', 'per_seed', 'protocol', 'std', 'timings']
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from tqdm.auto import tqdm

from selflabel.cluster.balanced import balanced_kmeans, nearest_centroid
from selflabel.cluster.io import load_array
from selflabel.cluster.kmeans import KMeans, resolve_gpu
from selflabel.cluster.manifold import UmapEmbedding, require_umap
from selflabel.cluster.matching import _as_1d, match_clusters
from selflabel.cluster.pca import StreamingPCA, center_rows, prepare_features, unit_mean
from selflabel.cluster.result import ClusterBenchmarkResult
from selflabel.cluster.scores import clustering_scores

__all__ = ["cluster_benchmark", "n_clusters_for"]

Source = ArrayLike | str | os.PathLike[str]


def n_clusters_for(k: int, overcluster: float) -> int:
    """Clusters used for ``k`` classes and an over-clustering factor: ``round(overcluster·k)``
    rounding halves up (``k=3, overcluster=1.5`` → 5), at least 1."""
    return max(1, int(np.floor(overcluster * k + 0.5)))


def _features(name: str, x: Source) -> NDArray[Any]:
    arr = load_array(x, role="features") if isinstance(x, str | os.PathLike) else x
    if not isinstance(arr, np.ndarray):
        arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (samples × dims), got shape {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    return arr


def _labels(name: str, y: Source | None, n: int, features_name: str) -> NDArray[np.generic]:
    if y is None:
        raise ValueError(f"{name} are missing: the benchmark maps clusters to classes with them")
    arr = load_array(y, role="labels", mmap_mode=None) if isinstance(y, str | os.PathLike) else y
    labels = _as_1d(name, np.asarray(arr).reshape(-1) if np.ndim(arr) == 2 and
                    np.shape(arr)[1] == 1 else arr)
    if labels.shape[0] != n:
        raise ValueError(f"{name} has {labels.shape[0]} labels but {features_name} has {n} rows; "
                         "pass one label per feature row, in the same order")
    return labels


class _Clock:
    """Wall-clock and process CPU seconds (all threads) per stage, summed over calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - c0


def _bar(total: int, desc: str, enabled: bool) -> Any:
    return tqdm(total=total, desc=desc, unit="row", unit_scale=True, disable=not enabled,
                leave=False, dynamic_ncols=True)


def cluster_benchmark(
    train_features: Source,
    train_labels: Source | None,
    val_features: Source | None = None,
    val_labels: Source | None = None,
    *,
    k: int,
    pca_dim: int | None = None,
    l2_normalize: bool = True,
    center: bool = False,
    whiten: bool = False,
    umap_dim: int | None = None,
    umap_neighbors: int = 30,
    umap_min_dist: float = 0.0,
    balanced: bool = False,
    seeds: int | Sequence[int] = 5,
    overcluster: float = 1.0,
    n_init: int = 1,
    n_iter: int = 25,
    max_points_per_centroid: int | None = None,
    spherical: bool = False,
    init: str = "random",
    init_centroids: ArrayLike | None = None,
    use_gpu: bool | str = "auto",
    chunk_rows: int | None = None,
    progress: bool = True,
) -> ClusterBenchmarkResult:
    """Run the clustering benchmark on features and return per-seed and mean ± std scores.

    Args:
        train_features: ``(n, d)`` array, memory-mapped array, or path to ``.npy``/``.npz``/``.pt``.
        train_labels: ``(n,)`` integer class labels (any integers) or a path.
        val_features, val_labels: optional held-out set scored with the train mapping; without it
            the training set is scored.
        k: number of classes (the clusters are ``round(overcluster · k)``).
        pca_dim: PCA components (``None``: no PCA — k-means then needs the normalised features in
            memory as one float32 array).
        l2_normalize: L2-normalise rows before PCA (the protocol; on by default).
        center: centre the normalised rows on their training mean and L2-normalise again (CL2N;
            needs ``l2_normalize``; the centred rows are held in memory as float32).
        whiten: whiten the PCA projections (off by default).
        umap_dim: embed the (normalised, reduced) rows with UMAP into this many dimensions before
            k-means, one embedding per seed (``None``: no UMAP; needs umap-learn).
        umap_neighbors, umap_min_dist: UMAP's ``n_neighbors`` and ``min_dist`` (defaults: UMAP's
            documented setting for clustering, 30 and 0).
        balanced: refine each seed's k-means solution into clusters of equal size (SeLa's
            equipartition as the assignment step; for data whose classes are about equally
            frequent). Validation rows still go to their nearest (refined) centroid.
        seeds: number of seeds (``0..seeds-1``) or the explicit seeds.
        overcluster: clusters per class, e.g. ``1.5``.
        n_init: k-means restarts per seed (the best objective is kept).
        n_iter: Lloyd iterations per restart.
        max_points_per_centroid: ``None`` = k-means on **all** points (default); a number restores
            faiss's subsampling.
        spherical: spherical k-means (unit-norm centroids, inner-product assignment).
        init: k-means initialisation, ``"random"`` or ``"kmeans++"``.
        init_centroids: ``(round(overcluster · k), d)`` starting centroids in the space of the
            input features (e.g. a method's own prototypes), instead of ``init``: they go through
            the same normalisation, centring and PCA as the rows, and k-means runs once from
            there (deterministic: pass one seed and ``n_init=1``; not with ``umap_dim``).
        use_gpu: ``"auto"`` (GPU when faiss has one), ``True`` or ``False``.
        chunk_rows: rows per streamed chunk (default: ~16 MiB per chunk).
        progress: show tqdm progress bars on stderr.

    Raises:
        ValueError / TypeError: missing or mismatched labels, non-finite features, ``k`` larger
            than the training set, ``pca_dim`` larger than the feature size, ...
    """
    t_start, c_start = time.perf_counter(), time.process_time()
    x_tr = _features("train_features", train_features)
    y_tr = _labels("train_labels", train_labels, x_tr.shape[0], "train_features")
    x_va: NDArray[Any] | None = None
    y_va: NDArray[np.generic] | None = None
    if val_features is not None:
        x_va = _features("val_features", val_features)
        y_va = _labels("val_labels", val_labels, x_va.shape[0], "val_features")
        if x_va.shape[1] != x_tr.shape[1]:
            raise ValueError(f"val_features have {x_va.shape[1]} dims but train_features have "
                             f"{x_tr.shape[1]}; extract both with the same model")
    elif val_labels is not None:
        raise ValueError("val_labels given without val_features; pass both or neither")
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k (number of classes) must be a positive integer, got {k!r}")
    if not overcluster > 0:
        raise ValueError(f"overcluster must be positive, got {overcluster}")
    n_clusters = n_clusters_for(int(k), overcluster)
    if n_clusters > x_tr.shape[0]:
        raise ValueError(f"{n_clusters} clusters (k={k} × overcluster {overcluster}) but only "
                         f"{x_tr.shape[0]} training samples; lower k or pass more samples")
    if pca_dim is not None and not 1 <= pca_dim <= x_tr.shape[1]:
        raise ValueError(f"pca_dim={pca_dim} must be between 1 and the feature size "
                         f"{x_tr.shape[1]} (or None for no PCA)")
    seed_list = list(range(seeds)) if isinstance(seeds, int | np.integer) else list(seeds)
    if not seed_list:
        raise ValueError("seeds must be a positive count or a non-empty list of seeds")
    if center and not l2_normalize:
        raise ValueError("center=True centres L2-normalised rows; pass l2_normalize=True with it")
    if umap_dim is not None:
        UmapEmbedding(umap_dim, umap_neighbors, umap_min_dist).validate(x_tr.shape[0])
        require_umap()  # a missing dependency fails here, before any work
    start = _start(init_centroids, n_clusters, x_tr.shape[1], seed_list, n_init, umap_dim)
    gpu = resolve_gpu(use_gpu)

    clock = _Clock()
    sets: list[tuple[str, NDArray[Any]]] = [("train", x_tr)]
    sets += [("val", x_va)] if x_va is not None else []
    normalize = l2_normalize
    if center:
        with clock.stage("center"):
            mean = unit_mean(x_tr, chunk_rows)
            sets = [(name, center_rows(x, mean, chunk_rows)) for name, x in sets]
            start = None if start is None else center_rows(start, mean)
        normalize = False  # centred rows are unit rows already
    reduced: dict[str, NDArray[np.float32]] = {}
    if pca_dim is not None:
        pca = StreamingPCA(pca_dim, l2_normalize=normalize, whiten=whiten, chunk_rows=chunk_rows)
        with clock.stage("pca_fit"), _bar(x_tr.shape[0], "PCA fit", progress) as bar:
            pca.fit(sets[0][1], progress=bar.update)
        for name, x in sets:
            with clock.stage("pca_project"), _bar(x.shape[0], f"PCA {name}", progress) as bar:
                reduced[name] = pca.transform(x, progress=bar.update)
        start = None if start is None else pca.transform(start)
    else:
        for name, x in sets:
            with clock.stage("prepare"), _bar(x.shape[0], f"L2 {name}", progress) as bar:
                reduced[name] = prepare_features(x, normalize, chunk_rows, progress=bar.update)
        start = None if start is None else prepare_features(start, normalize)

    per_seed: list[dict[str, float]] = []
    points_used = 0
    for seed in tqdm(seed_list, desc="k-means seeds", disable=not progress, leave=False):
        t_seed = time.perf_counter()
        points = reduced
        if umap_dim is not None:
            with clock.stage("umap"):
                points = _umap(reduced, umap_dim, umap_neighbors, umap_min_dist, int(seed))
        km = KMeans(n_clusters, n_iter=n_iter, n_init=n_init, seed=int(seed),
                    max_points_per_centroid=max_points_per_centroid, spherical=spherical,
                    init=init, use_gpu=gpu)
        with clock.stage("kmeans"):
            km.fit(points["train"], init_centroids=start)
        points_used = km.points_used_
        train_pred, centroids = km.labels_, km.centroids_
        if balanced:
            with clock.stage("balance"):
                bal = balanced_kmeans(points["train"], km.centroids_, spherical=spherical)
            train_pred, centroids = bal.labels, bal.centroids
        with clock.stage("match"):
            mapping = match_clusters(y_tr, train_pred)
        if x_va is not None and y_va is not None:
            with clock.stage("assign"):
                pred = (nearest_centroid(points["val"], centroids, spherical) if balanced
                        else km.predict(points["val"]))
            truth = y_va
        else:
            pred, truth = train_pred, y_tr
        with clock.stage("scores"):
            scores = clustering_scores(truth, pred, mapping=mapping)
        per_seed.append({"seed": int(seed), **scores, "objective": km.objective_,
                         "seconds": time.perf_counter() - t_seed})

    clock.seconds["total"] = time.perf_counter() - t_start
    clock.cpu_seconds["total"] = time.process_time() - c_start
    protocol: dict[str, Any] = {
        "k": int(k),
        "overcluster": float(overcluster),
        "n_clusters": n_clusters,
        "pca_dim": pca_dim,
        "l2_normalize": l2_normalize,
        "center": center,
        "whiten": whiten,
        "umap_dim": umap_dim,
        "umap_neighbors": umap_neighbors if umap_dim is not None else None,
        "umap_min_dist": umap_min_dist if umap_dim is not None else None,
        "balanced": balanced,
        "seeds": [int(s) for s in seed_list],
        "n_init": n_init,
        "n_iter": n_iter,
        "init": init if init_centroids is None else "given centroids",
        "spherical": spherical,
        "kmeans_points": points_used,
        "max_points_per_centroid": max_points_per_centroid,
        "engine": "faiss-gpu" if gpu else "faiss-cpu",
        "n_train": int(x_tr.shape[0]),
        "n_val": int(x_va.shape[0]) if x_va is not None else 0,
        "dim": int(x_tr.shape[1]),
        "n_classes_train": int(np.unique(y_tr).shape[0]),
        "scored_on": "val" if x_va is not None else "train",
        "mapping": "train labels; Hungarian, extra clusters to their majority class",
    }
    return ClusterBenchmarkResult(protocol, per_seed, dict(clock.seconds), dict(clock.cpu_seconds))


def _start(
    init_centroids: ArrayLike | None,
    n_clusters: int,
    dim: int,
    seeds: Sequence[int],
    n_init: int,
    umap_dim: int | None,
) -> NDArray[np.float32] | None:
    """The checked starting centroids (float32), or ``None`` without them."""
    if init_centroids is None:
        return None
    start = np.ascontiguousarray(np.asarray(init_centroids), dtype=np.float32)
    if start.shape != (n_clusters, dim):
        raise ValueError(f"init_centroids must have shape ({n_clusters}, {dim}) (one row per "
                         f"cluster, in the features' space), got {start.shape}")
    if not np.isfinite(start).all():
        raise ValueError("init_centroids contain NaN or inf")
    if len(seeds) != 1 or n_init != 1:
        raise ValueError(f"init_centroids give one deterministic k-means run: pass seeds=1 and "
                         f"n_init=1 (got {len(seeds)} seeds, n_init={n_init})")
    if umap_dim is not None:
        raise ValueError("init_centroids cannot be combined with umap_dim: the starts live in "
                         "the features' space, not in a per-seed UMAP embedding")
    return start


def _umap(
    reduced: dict[str, NDArray[np.float32]], dim: int, neighbors: int, min_dist: float, seed: int
) -> dict[str, NDArray[np.float32]]:
    """UMAP of the training rows (fitted, seeded) and of the val rows (transformed)."""
    emb = UmapEmbedding(dim, neighbors, min_dist, seed).fit(reduced["train"])
    out = {"train": emb.embedding_}
    if "val" in reduced:
        out["val"] = emb.transform(reduced["val"])
    return out
