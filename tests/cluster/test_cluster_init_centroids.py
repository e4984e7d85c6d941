"""k-means started at given centroids: ``KMeans.fit(init_centroids=...)`` and
``cluster_benchmark(init_centroids=...)`` (e.g. a method's own prototypes)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selflabel.cluster import KMeans, cluster_benchmark


def blobs(seed: int = 0, k: int = 3, n: int = 40, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n)
    centres = rng.normal(size=(k, d)) * 6
    return (centres[y] + rng.normal(size=(k * n, d))).astype(np.float32), y


def class_means(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([x[y == c].mean(0) for c in np.unique(y)]).astype(np.float32)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_a_start_at_the_class_means_of_separated_blobs_is_kept_in_order(seed: int) -> None:
    x, y = blobs(seed)
    km = KMeans(3, use_gpu=False).fit(x, init_centroids=class_means(x, y))
    # cluster c stays the cluster started at class c's mean: no relabelling, no other optimum
    assert (km.labels_ == y).all()
    np.testing.assert_allclose(km.centroids_, class_means(x, y), atol=1e-4)


def test_the_start_decides_the_optimum_random_restarts_find() -> None:
    # two tight pairs of blobs and a wide one: with k = 3, starting at one centre per group
    # converges there; a start with two centres inside the wide blob converges elsewhere
    rng = np.random.default_rng(1)
    a = rng.normal((0, 0), 0.1, size=(50, 2))
    b = rng.normal((10, 0), 0.1, size=(50, 2))
    c = rng.normal((0, 30), 4.0, size=(100, 2))
    x = np.concatenate([a, b, c]).astype(np.float32)
    good = np.array([[0, 0], [10, 0], [0, 30]], np.float32)
    bad = np.array([[5, 0], [-3, 30], [3, 30]], np.float32)
    g = KMeans(3, use_gpu=False).fit(x, init_centroids=good)
    h = KMeans(3, use_gpu=False).fit(x, init_centroids=bad)
    assert len(set(g.labels_[:50])) == 1
    assert g.labels_[0] != g.labels_[50]
    assert h.labels_[0] == h.labels_[50]  # the two tight blobs merged
    assert g.objective_ != h.objective_


def test_bad_starting_centroids_are_refused_with_the_fix() -> None:
    x, _ = blobs()
    with pytest.raises(ValueError, match=r"shape \(k, d\) = \(3, 6\)"):
        KMeans(3, use_gpu=False).fit(x, init_centroids=np.zeros((2, 6)))
    with pytest.raises(ValueError, match="NaN"):
        KMeans(3, use_gpu=False).fit(x, init_centroids=np.full((3, 6), np.nan))
    with pytest.raises(ValueError, match="n_init=1"):
        KMeans(3, n_init=5, use_gpu=False).fit(x, init_centroids=np.zeros((3, 6)))


@pytest.mark.parametrize("options", [{}, {"pca_dim": 3}, {"center": True}])
def test_the_benchmark_maps_the_start_like_the_rows_and_runs_once(
    options: dict[str, object],
) -> None:
    x, y = blobs(3, d=8)
    x += 20.0  # all rows share one direction: centring and PCA move them
    res = cluster_benchmark(x, y, k=3, seeds=1, n_init=1, init_centroids=class_means(x, y),
                            progress=False, **options)
    assert res.protocol["init"] == "given centroids"
    assert [r["seed"] for r in res.per_seed] == [0]
    assert res.mean()["acc"] == 1.0


def test_the_benchmark_scores_validation_rows_from_the_started_centroids() -> None:
    x, y = blobs(4)
    xv, yv = blobs(4)
    res = cluster_benchmark(x, y, xv, yv, k=3, seeds=[7], n_init=1,
                            init_centroids=class_means(x, y), progress=False)
    assert res.protocol["scored_on"] == "val"
    assert res.mean()["acc"] == 1.0


def test_the_benchmark_refuses_starts_it_cannot_use() -> None:
    x, y = blobs()
    start = class_means(x, y)
    with pytest.raises(ValueError, match=r"shape \(3, 6\)"):
        cluster_benchmark(x, y, k=3, seeds=1, init_centroids=start[:2], progress=False)
    with pytest.raises(ValueError, match="pass seeds=1 and n_init=1"):
        cluster_benchmark(x, y, k=3, seeds=3, init_centroids=start, progress=False)
    with pytest.raises(ValueError, match="pass seeds=1 and n_init=1"):
        cluster_benchmark(x, y, k=3, seeds=1, n_init=4, init_centroids=start, progress=False)
    with pytest.raises(ValueError, match="umap_dim"):
        cluster_benchmark(x, y, k=3, seeds=1, umap_dim=2, init_centroids=start, progress=False)

