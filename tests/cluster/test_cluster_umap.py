"""The clustering benchmark's UMAP step: `UmapEmbedding`, `cluster_benchmark(umap_dim=...)`."""

from __future__ import annotations

import numpy as np
import pytest

from selflabel.cluster import KMeans, UmapEmbedding, cluster_benchmark, clustering_scores


def _rings(n_per: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric rings in 2-D, lifted to 6-D: classes k-means cannot separate in the input
    (it cuts both rings in halves) but that are two connected manifolds."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, size=2 * n_per)
    y = np.repeat([0, 1], n_per)
    r = np.where(y == 0, 1.0, 4.0) + rng.normal(0, 0.05, size=2 * n_per)
    x2 = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    lift = np.random.default_rng(123).normal(size=(2, 6))  # the same space for every seed
    return (x2 @ lift).astype(np.float32), y


def test_umap_then_kmeans_separates_what_kmeans_alone_cannot() -> None:
    x, y = _rings()
    plain = KMeans(2, n_init=5, seed=0, use_gpu=False).fit(x)
    emb = UmapEmbedding(dim=2, n_neighbors=15, seed=0).fit(x)
    assert emb.embedding_.shape == (len(x), 2)
    assert emb.embedding_.dtype == np.float32
    embedded = KMeans(2, n_init=5, seed=0, use_gpu=False).fit(emb.embedding_)
    assert clustering_scores(y, plain.labels_)["acc"] < 0.8
    assert clustering_scores(y, embedded.labels_)["acc"] == 1.0


def test_same_seed_same_embedding_other_seed_other_embedding() -> None:
    x, _ = _rings(60)
    a = UmapEmbedding(dim=3, n_neighbors=10, seed=4).fit(x).embedding_
    b = UmapEmbedding(dim=3, n_neighbors=10, seed=4).fit(x).embedding_
    c = UmapEmbedding(dim=3, n_neighbors=10, seed=5).fit(x).embedding_
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_transform_places_new_rows_near_their_class() -> None:
    x, _ = _rings(seed=0)
    x_new, y_new = _rings(seed=1)  # other points of the same two rings
    emb = UmapEmbedding(dim=2, n_neighbors=15, seed=0).fit(x)
    km = KMeans(2, n_init=5, seed=0, use_gpu=False).fit(emb.embedding_)
    assert clustering_scores(y_new, km.predict(emb.transform(x_new)))["acc"] > 0.95


@pytest.mark.parametrize(
    ("kwargs", "rows", "message"),
    [
        ({"dim": 0}, 50, "umap_dim must be at least 1"),
        ({"dim": 2, "n_neighbors": 1}, 50, "n_neighbors must be at least 2"),
        ({"dim": 2, "min_dist": -0.1}, 50, "min_dist must be non-negative"),
        ({"dim": 8}, 9, "needs at least 10 rows"),
    ],
)
def test_bad_settings_say_what_to_change(kwargs: dict, rows: int, message: str) -> None:
    x = np.random.default_rng(0).normal(size=(rows, 12)).astype(np.float32)
    with pytest.raises(ValueError, match=message):
        UmapEmbedding(**kwargs).fit(x)


def test_non_finite_rows_and_misuse_are_refused() -> None:
    x = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        UmapEmbedding(dim=2).fit(bad)
    with pytest.raises(ValueError, match="call fit"):
        UmapEmbedding(dim=2).transform(x)
    emb = UmapEmbedding(dim=2, n_neighbors=5).fit(x)
    with pytest.raises(ValueError, match="rows of size 5"):
        emb.transform(x[:, :4])


def test_benchmark_with_umap_scores_and_records_the_step() -> None:
    x, y = _rings()
    plain = cluster_benchmark(x, y, k=2, seeds=2, n_init=5, l2_normalize=False, use_gpu=False,
                              progress=False)
    res = cluster_benchmark(x, y, k=2, seeds=2, n_init=5, l2_normalize=False, umap_dim=2,
                            umap_neighbors=15, use_gpu=False, progress=False)
    assert plain.mean()["acc"] < 0.8
    assert res.mean()["acc"] == 1.0
    proto = res.to_dict()["protocol"]
    assert (proto["umap_dim"], proto["umap_neighbors"], proto["umap_min_dist"]) == (2, 15, 0.0)
    assert plain.to_dict()["protocol"]["umap_neighbors"] is None
    assert res.to_dict()["timings"]["umap"] > 0


def test_benchmark_umap_with_a_validation_set_maps_it_through_the_fitted_embedding() -> None:
    (x, y), (x_val, y_val) = _rings(seed=0), _rings(seed=1)
    res = cluster_benchmark(x, y, x_val, y_val, k=2, seeds=1, n_init=5,
                            l2_normalize=False, umap_dim=2, umap_neighbors=15, use_gpu=False,
                            progress=False)
    assert res.to_dict()["protocol"]["scored_on"] == "val"
    assert res.mean()["acc"] > 0.95


def test_benchmark_refuses_a_umap_it_cannot_fit_before_any_work() -> None:
    x = np.random.default_rng(0).normal(size=(6, 12)).astype(np.float32)
    with pytest.raises(ValueError, match="lower umap_dim"):
        cluster_benchmark(x, np.arange(6) % 2, k=2, umap_dim=5, progress=False)
