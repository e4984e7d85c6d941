"""``eval.umap_dim``, ``eval.kmeans_balanced`` and ``eval.kmeans_init``: the run's clustering
benchmark and its k-means labels go through UMAP, are refined into equal-size clusters, or start
at the head's prototypes."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from selflabel.cli import main
from selflabel.cluster import KMeans, UmapEmbedding, cluster_benchmark, clustering_scores
from selflabel.config import ConfigError, load_config
from selflabel.run.evaluation import _kmeans_labels


def label_rows(run: Path) -> list[dict[str, str]]:
    """The rows of a run's ``labels.csv``."""
    with (run / "labels.csv").open() as f:
        return list(csv.DictReader(f))


def test_a_run_with_eval_umap_dim_records_it_and_labels_through_it(
    tmp_path: Path, train_tiny: Any
) -> None:
    out = tmp_path / "run"
    # 3 prototypes for 4 classes: labels.csv comes from k-means, here after UMAP
    metrics = train_tiny(out, "model.n_prototypes=[3]", "eval.seeds=2",
                         "eval.umap_dim=3", "eval.umap_neighbors=8")
    protocol = metrics["clustering_benchmark"]["protocol"]
    assert (protocol["umap_dim"], protocol["umap_neighbors"]) == (3, 8)
    assert metrics["labels_from"] == "kmeans"
    assert 0.0 <= metrics["acc"] <= 1.0
    rows = label_rows(out)
    assert len(rows) == 64
    assert {int(r["cluster"]) for r in rows} <= set(range(4))


def test_kmeans_labels_after_umap_find_separated_groups_with_confidences() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16)) * 5
    y = np.repeat(np.arange(3), 40)
    x = (centres[y] + rng.normal(size=(120, 16))).astype(np.float32)
    pred, conf = _kmeans_labels(x, 3, seed=0, restarts=3, umap=UmapEmbedding(2, 10, seed=0))
    assert clustering_scores(y, pred)["acc"] == 1.0
    assert conf.shape == (120,)
    assert ((conf > 1 / 3) & (conf <= 1.0)).all()


def test_config_refuses_a_zero_umap_dim() -> None:
    with pytest.raises(ConfigError, match="umap_dim"):
        load_config("demo", ["eval.umap_dim=0"])


def test_a_run_with_eval_kmeans_balanced_labels_equal_size_clusters(
    tmp_path: Path, train_tiny: Any
) -> None:
    out = tmp_path / "run"
    metrics = train_tiny(out, "model.n_prototypes=[3]", "eval.seeds=2",
                         "eval.kmeans_balanced=true")
    assert metrics["clustering_benchmark"]["protocol"]["balanced"] is True
    assert metrics["labels_from"] == "kmeans"
    clusters = [int(r["cluster"]) for r in label_rows(out)]
    assert np.bincount(clusters, minlength=4).tolist() == [16, 16, 16, 16]  # 64 images, k = 4


def test_balanced_kmeans_labels_have_equal_sizes_and_their_own_confidence() -> None:
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 30)
    x = (rng.normal(size=(3, 8))[y] * 4 + rng.normal(size=(90, 8))).astype(np.float32)
    pred, conf = _kmeans_labels(x, 3, seed=0, restarts=3, balanced=True)
    assert np.bincount(pred).tolist() == [30, 30, 30]
    assert clustering_scores(y, pred)["acc"] == 1.0
    assert ((conf > 0) & (conf <= 1.0)).all()


def test_a_run_with_eval_kmeans_init_prototypes_starts_k_means_there(
    tmp_path: Path, train_tiny: Any
) -> None:
    out = tmp_path / "run"
    # 4 prototypes on the backbone features for 4 classes: one k-means run from them
    metrics = train_tiny(out, "model.n_prototypes=[4]", "model.embedding_dim=0",
                         "eval.kmeans_init=prototypes")
    protocol = metrics["clustering_benchmark"]["protocol"]
    assert protocol["init"] == "given centroids"
    assert (protocol["seeds"], protocol["n_init"]) == ([0], 1)
    assert metrics["labels_from"] == "kmeans from the prototypes"
    # the raw-pixel baseline has no prototypes: it keeps the random restarts
    assert metrics["baseline_detail"]["detail"]["protocol"]["init"] == "random"
    assert len(label_rows(out)) == 64


def test_eval_kmeans_init_prototypes_without_prototypes_fails_before_training(
    tmp_path: Path, tiny_npz: Path
) -> None:
    base = ["train", "--data", str(tiny_npz), "--epochs", "1", "data.batch_size=16",
            "augment.n_local=0", "model.embedding_dim=0", "eval.kmeans_init=prototypes"]
    for extra, message in ((["model.n_prototypes=[3]"], "has 3 and the benchmark needs 4"),
                           (["model.n_prototypes=[4]", "eval.umap_dim=3"], "eval.umap_dim")):
        out = tmp_path / extra[-1].replace("=", "_")
        result = CliRunner().invoke(main, [*base, "--out", str(out), *extra])
        assert result.exit_code != 0
        assert message in result.output
        assert "eval.kmeans_init" in result.output
        assert not (out / "checkpoint_last.pt").exists()


def test_kmeans_labels_from_a_start_follow_it() -> None:
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 30)
    x = (rng.normal(size=(3, 8))[y] * 4 + rng.normal(size=(90, 8))).astype(np.float32)
    start = np.stack([x[y == c].mean(0) for c in range(3)])
    for center in (False, True):
        pred, conf = _kmeans_labels(x, 3, seed=0, start=start, center=center)
        assert (pred == y).all()  # cluster c is the one started at class c's mean
        assert ((conf > 0) & (conf <= 1.0)).all()
    # the labels are k-means' own assignment, as the clustering benchmark scores it
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    bench = cluster_benchmark(x, y, k=3, seeds=1, n_init=1, init_centroids=start, progress=False)
    pred, _ = _kmeans_labels(x, 3, seed=0, start=start)
    assert clustering_scores(y, pred)["acc"] == bench.mean()["acc"]
    km = KMeans(3, use_gpu=False).fit(unit, init_centroids=start / np.linalg.norm(start, axis=1,
                                                                                 keepdims=True))
    assert (pred == km.labels_).all()
