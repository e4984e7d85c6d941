"""``eval.umap_dim``: the run's clustering benchmark and its k-means labels go through UMAP."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from selflabel.cli import main
from selflabel.cluster import UmapEmbedding, clustering_scores
from selflabel.config import ConfigError, load_config
from selflabel.run.evaluation import _kmeans_labels


def test_a_run_with_eval_umap_dim_records_it_and_labels_through_it(
    tmp_path: Path, tiny_npz: Path
) -> None:
    out = tmp_path / "run"
    # 3 prototypes for 4 classes: labels.csv comes from k-means, here after UMAP
    args = ["train", "--data", str(tiny_npz), "--epochs", "1", "--out", str(out),
            "data.batch_size=16", "model.n_prototypes=[3]", "augment.n_local=0", "eval.seeds=2",
            "eval.gallery_per_cluster=0", "eval.umap_dim=3", "eval.umap_neighbors=8"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    protocol = metrics["clustering_benchmark"]["protocol"]
    assert (protocol["umap_dim"], protocol["umap_neighbors"]) == (3, 8)
    assert metrics["labels_from"] == "kmeans"
    assert 0.0 <= metrics["acc"] <= 1.0
    with (out / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))
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
