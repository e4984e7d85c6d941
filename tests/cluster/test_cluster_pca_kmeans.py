"""Streaming PCA (exact, chunked, memory-mapped) and faiss k-means (all points, deterministic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA

from selflabel.cluster import KMeans, StreamingPCA, iter_chunks, l2_normalize_rows, load_array
from selflabel.cluster.pca import prepare_features


def _data(n: int = 600, d: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.1, d)
    return (rng.normal(size=(n, d)) * scales + 1.5).astype(np.float32)


@pytest.mark.parametrize("l2", [True, False])
def test_streaming_pca_matches_exact_pca(l2: bool) -> None:
    x = _data()
    ref_x = l2_normalize_rows(x.copy().astype(np.float64)) if l2 else x.astype(np.float64)
    ref = PCA(n_components=6, svd_solver="full").fit(ref_x)
    pca = StreamingPCA(6, l2_normalize=l2, chunk_rows=77).fit(x)
    np.testing.assert_allclose(pca.explained_variance_, ref.explained_variance_, rtol=1e-4)
    signs = np.sign(np.sum(pca.components_ * ref.components_, axis=1))
    np.testing.assert_allclose(pca.components_ * signs[:, None], ref.components_, atol=1e-4)
    np.testing.assert_allclose(pca.transform(x) * signs, ref.transform(ref_x), atol=1e-4)


def test_pca_chunk_size_does_not_change_result() -> None:
    x = _data()
    a = StreamingPCA(5, chunk_rows=600).fit(x).transform(x)
    b = StreamingPCA(5, chunk_rows=13).fit(x).transform(x)
    np.testing.assert_allclose(np.abs(a), np.abs(b), atol=1e-5)


def test_pca_whitening_gives_unit_variance() -> None:
    x = _data()
    z = StreamingPCA(4, whiten=True).fit(x).transform(x)
    np.testing.assert_allclose(z.var(axis=0, ddof=1), 1.0, rtol=1e-3)


def test_pca_on_memmap_equals_in_memory(tmp_path: Path) -> None:
    x = _data(n=1000)
    np.save(tmp_path / "f.npy", x)
    mm = load_array(tmp_path / "f.npy")
    assert isinstance(mm, np.memmap)
    a = StreamingPCA(3, chunk_rows=128).fit(mm).transform(mm)
    b = StreamingPCA(3, chunk_rows=128).fit(x).transform(x)
    np.testing.assert_array_equal(a, b)
    # streaming released the pages but the array is still readable and unchanged
    np.testing.assert_array_equal(np.asarray(mm), x)


def test_iter_chunks_covers_every_row_of_a_memmap_view(tmp_path: Path) -> None:
    x = _data(n=5000, d=8)
    np.save(tmp_path / "f.npy", x)
    view = load_array(tmp_path / "f.npy")[1234:4321]
    rows = np.concatenate([c for _, c in iter_chunks(view, rows=700)])
    np.testing.assert_array_equal(rows, x[1234:4321])
    np.testing.assert_array_equal(np.asarray(view), x[1234:4321])


def test_non_finite_features_are_rejected() -> None:
    x = _data()
    x[17, 3] = np.nan
    with pytest.raises(ValueError, match="row 17"):
        StreamingPCA(3).fit(x)
    with pytest.raises(ValueError, match="NaN or infinite"):
        prepare_features(x)


def test_pca_dim_validated() -> None:
    with pytest.raises(ValueError, match="pca_dim"):
        StreamingPCA(100).fit(_data())
    with pytest.raises(ValueError, match="fit"):
        StreamingPCA(3).transform(_data())


def test_prepare_features_normalises_and_avoids_copies() -> None:
    x = _data()
    np.testing.assert_allclose(np.linalg.norm(prepare_features(x), axis=1), 1.0, rtol=1e-5)
    assert prepare_features(x, l2_normalize=False) is x


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, 10)) * 20
    y = np.repeat(np.arange(6), 50)
    return (centres[y] + rng.normal(size=(300, 10))).astype(np.float32), y


def test_kmeans_uses_all_points_and_is_deterministic() -> None:
    x, _ = _blobs()
    a = KMeans(6, seed=3, use_gpu=False).fit(x)
    b = KMeans(6, seed=3, use_gpu=False).fit(x)
    assert a.points_used_ == 300
    np.testing.assert_array_equal(a.centroids_, b.centroids_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    sub = KMeans(6, seed=3, max_points_per_centroid=10, use_gpu=False).fit(x)
    assert sub.points_used_ == 60


@pytest.mark.parametrize("spherical", [False, True])
@pytest.mark.parametrize("init", ["random", "kmeans++"])
def test_kmeans_recovers_blobs(spherical: bool, init: str) -> None:
    x, y = _blobs()
    if spherical:
        x = l2_normalize_rows(x)
    km = KMeans(6, seed=0, n_init=10, spherical=spherical, init=init, use_gpu=False).fit(x)
    # each true blob lands in exactly one cluster
    assert all(len(np.unique(km.labels_[y == c])) == 1 for c in range(6))
    np.testing.assert_array_equal(km.predict(x), km.labels_)


def test_kmeans_errors() -> None:
    x, _ = _blobs()
    with pytest.raises(ValueError, match="only 300 samples"):
        KMeans(301, use_gpu=False).fit(x)
    with pytest.raises(ValueError, match="init"):
        KMeans(3, init="bogus", use_gpu=False).fit(x)
    with pytest.raises(ValueError, match="fit"):
        KMeans(3).predict(x)
    with pytest.raises(ValueError, match="use_gpu"):
        KMeans(3, use_gpu="maybe").fit(x)
