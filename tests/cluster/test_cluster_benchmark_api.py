"""cluster_benchmark: planted clusters, seeds, over-clustering, val scoring, errors, result I/O."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from selflabel.cluster import ClusterBenchmarkResult, cluster_benchmark, n_clusters_for


def _blobs(n_per: int = 40, k: int = 5, d: int = 32, seed: int = 0,
           labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(123).normal(size=(k, d)) * 8
    y = np.repeat(np.arange(k), n_per)
    x = (centres[y] + rng.normal(size=(y.shape[0], d))).astype(np.float32)
    return x, (labels[y] if labels is not None else y)


def test_planted_blobs_give_perfect_scores_on_val() -> None:
    names = np.array([-7, 3, 40, 1000, 12])  # arbitrary integer class labels
    x, y = _blobs(labels=names)
    xv, yv = _blobs(n_per=10, seed=1, labels=names)
    r = cluster_benchmark(x, y, xv, yv, k=5, pca_dim=8, seeds=3, n_init=5, progress=False)
    for metric, value in r.mean().items():
        assert value == pytest.approx(1.0), metric
    assert r.protocol["scored_on"] == "val"
    assert r.protocol["kmeans_points"] == 200
    assert len(r.per_seed) == 3


def test_same_seed_same_numbers_and_seed_list() -> None:
    x, y = _blobs(k=8, n_per=30, d=16)
    x += np.random.default_rng(5).normal(size=x.shape).astype(np.float32) * 6  # overlap
    a = cluster_benchmark(x, y, k=8, pca_dim=6, seeds=[11, 12], progress=False)
    b = cluster_benchmark(x, y, k=8, pca_dim=6, seeds=[11, 12], progress=False)
    for sa, sb in zip(a.per_seed, b.per_seed, strict=True):
        for m in ("acc", "nmi", "ami", "ari", "objective"):
            assert sa[m] == sb[m]
    assert a.protocol["seeds"] == [11, 12]


def test_overclustering_uses_more_clusters_and_maps_all() -> None:
    x, y = _blobs()
    r = cluster_benchmark(x, y, k=5, overcluster=1.5, seeds=1, n_init=5, progress=False)
    assert r.protocol["n_clusters"] == 8 == n_clusters_for(5, 1.5)
    assert r.mean()["acc"] == pytest.approx(1.0)  # extra clusters split blobs, still mapped right
    assert n_clusters_for(3, 1.5) == 5


def test_no_pca_and_training_set_scoring() -> None:
    x, y = _blobs()
    r = cluster_benchmark(x, y, k=5, seeds=1, n_init=5, progress=False)
    assert r.protocol["scored_on"] == "train"
    assert r.protocol["pca_dim"] is None
    assert r.mean()["acc"] == pytest.approx(1.0)


def test_torch_cpu_tensors_are_accepted() -> None:
    import torch

    x, y = _blobs()
    r = cluster_benchmark(torch.from_numpy(x), torch.from_numpy(y), k=5, pca_dim=4, seeds=1,
                          n_init=5, progress=False)
    assert r.mean()["acc"] == pytest.approx(1.0)


def test_memmap_path_input(tmp_path: Path) -> None:
    x, y = _blobs()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    from_path = cluster_benchmark(tmp_path / "x.npy", str(tmp_path / "y.npy"), k=5, pca_dim=4,
                                  seeds=2, chunk_rows=17, progress=False)
    in_memory = cluster_benchmark(x, y, k=5, pca_dim=4, seeds=2, progress=False)
    assert from_path.mean() == pytest.approx(in_memory.mean())


def test_result_table_dict_json_roundtrip(tmp_path: Path) -> None:
    x, y = _blobs()
    r = cluster_benchmark(x, y, k=5, pca_dim=4, seeds=2, progress=False)
    table = r.table()
    for name in ("ACC", "NMI", "AMI", "ARI", "±", "PCA 4", "2 seeds"):
        assert name in table
    d = r.to_dict()
    assert set(d["timings"]) >= {"pca_fit", "pca_project", "kmeans", "match", "scores", "total"}
    assert set(d["cpu_timings"]) == set(d["timings"])
    path = tmp_path / "r.json"
    r.to_json(path)
    loaded = json.loads(path.read_text())
    assert loaded["mean"] == pytest.approx(r.mean())
    assert ClusterBenchmarkResult.from_dict(loaded).std() == pytest.approx(r.std())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train_labels": None}, "missing"),
        ({"train_labels": np.zeros(3, dtype=int)}, "one label per feature row"),
        ({"k": 500}, "only 200 training samples"),
        ({"k": 5, "overcluster": 100.0}, "only 200 training samples"),
        ({"k": 0}, "positive integer"),
        ({"pca_dim": 64}, "pca_dim"),
        ({"val_labels": np.zeros(10, dtype=int)}, "without val_features"),
        ({"seeds": []}, "seeds"),
        ({"overcluster": -1.0}, "overcluster"),
    ],
)
def test_errors(kwargs: dict[str, object], message: str) -> None:
    x, y = _blobs()
    args: dict[str, object] = {"train_features": x, "train_labels": y, "k": 5, "progress": False}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        cluster_benchmark(**args)  # type: ignore[arg-type]


def test_error_on_val_mismatch_and_non_finite() -> None:
    x, y = _blobs()
    with pytest.raises(ValueError, match="dims"):
        cluster_benchmark(x, y, x[:, :5], y, k=5, progress=False)
    with pytest.raises(ValueError, match="val_labels has 3"):
        cluster_benchmark(x, y, x, y[:3], k=5, progress=False)
    bad = x.copy()
    bad[7, 0] = np.inf
    with pytest.raises(ValueError, match="row 7"):
        cluster_benchmark(bad, y, k=5, pca_dim=4, progress=False)
    with pytest.raises(ValueError, match="row 7"):
        cluster_benchmark(bad, y, k=5, progress=False)
