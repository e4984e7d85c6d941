"""Balanced k-means: `balanced_kmeans`, `nearest_centroid`, `cluster_benchmark(balanced=True)`."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selflabel.cluster import (
    KMeans,
    balanced_kmeans,
    cluster_benchmark,
    clustering_scores,
    nearest_centroid,
)


def _tight_pair_and_wide_class(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of 100 points: two tight ones close together and one wide one far away.
    k-means (k = 3) splits the wide class in two and merges the tight pair; the classes are
    equally frequent, so the equal-size clusters are the classes."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 100)
    centre = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    spread = np.array([0.1, 0.1, 3.0])
    return (centre[y] + rng.normal(size=(300, 2)) * spread[y, None]).astype(np.float32), y


def test_equal_sizes_recover_the_classes_that_kmeans_merges_and_splits() -> None:
    x, y = _tight_pair_and_wide_class()
    km = KMeans(3, n_init=5, seed=0, use_gpu=False).fit(x)
    res = balanced_kmeans(x, km.centroids_)
    assert clustering_scores(y, km.labels_)["acc"] < 0.6
    assert clustering_scores(y, res.labels)["acc"] > 0.98
    assert np.bincount(res.labels).tolist() == [100, 100, 100]
    assert res.changed == 0
    assert res.n_iter < 10


def test_balanced_separated_data_keep_the_kmeans_partition() -> None:
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 50)
    x = (rng.normal(size=(4, 8))[y] * 10 + rng.normal(size=(200, 8))).astype(np.float32)
    km = KMeans(4, n_init=5, seed=0, use_gpu=False).fit(x)
    res = balanced_kmeans(x, km.centroids_)
    np.testing.assert_array_equal(res.labels, km.labels_)
    np.testing.assert_allclose(res.centroids, km.centroids_, atol=1e-4)
    assert res.n_iter == 1
    assert res.changed == 0


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 80), k=st.integers(1, 7), d=st.integers(1, 5), seed=st.integers(0, 99),
       spherical=st.booleans())
def test_sizes_are_floor_or_ceil_and_centroids_are_the_cluster_means(
    n: int, k: int, d: int, seed: int, spherical: bool
) -> None:
    k = min(k, n)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    res = balanced_kmeans(x, x[rng.choice(n, k, replace=False)], n_iter=3, spherical=spherical)
    sizes = np.bincount(res.labels, minlength=k)
    assert sizes.sum() == n
    assert set(sizes.tolist()) <= {n // k, -(-n // k)}
    assert 1 <= res.n_iter <= 3
    assert res.centroids.shape == (k, d)
    for c in range(k):
        mean = x[res.labels == c].mean(0)
        if spherical:
            mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
        np.testing.assert_allclose(res.centroids[c], mean, atol=1e-4)
    dist = ((x - res.centroids[res.labels]) ** 2).sum()
    assert res.objective == pytest.approx(float(dist), rel=1e-4, abs=1e-4)


def test_nearest_centroid_matches_kmeans_predict() -> None:
    x, _ = _tight_pair_and_wide_class(1)
    km = KMeans(3, n_init=2, seed=0, use_gpu=False).fit(x)
    np.testing.assert_array_equal(nearest_centroid(x, km.centroids_), km.predict(x))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sph = KMeans(3, n_init=2, seed=0, spherical=True, use_gpu=False).fit(unit)
    np.testing.assert_array_equal(nearest_centroid(unit, sph.centroids_, spherical=True),
                                  sph.predict(unit))


@pytest.mark.parametrize(
    ("x", "c", "kwargs", "message"),
    [
        (np.zeros((5, 2)), np.zeros((2, 3)), {}, "same d"),
        (np.zeros((2, 2)), np.zeros((3, 2)), {}, "1 <= k <= n"),
        (np.zeros((5, 2)), np.zeros((2, 2)), {"n_iter": 0}, "n_iter"),
        (np.full((5, 2), np.nan), np.zeros((2, 2)), {}, "finite"),
    ],
)
def test_bad_input_is_refused_with_the_reason(
    x: np.ndarray, c: np.ndarray, kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        balanced_kmeans(x, c, **kwargs)


def test_benchmark_records_the_step_and_scores_val_rows_on_refined_centroids() -> None:
    x, y = _tight_pair_and_wide_class(2)
    xv, yv = _tight_pair_and_wide_class(3)
    kw = dict(k=3, seeds=2, n_init=5, l2_normalize=False, use_gpu=False, progress=False)
    plain = cluster_benchmark(x, y, xv, yv, **kw)  # type: ignore[arg-type]
    bal = cluster_benchmark(x, y, xv, yv, balanced=True, **kw)  # type: ignore[arg-type]
    assert (plain.protocol["balanced"], bal.protocol["balanced"]) == (False, True)
    assert plain.mean()["acc"] < 0.7
    assert bal.mean()["acc"] > 0.95
