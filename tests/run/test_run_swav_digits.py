"""A short real SwAV training on real images (scikit-learn's 8x8 digits, 1797 images) beats
k-means on the raw pixels of the same images, through the same job `selflabel train` runs."""

from __future__ import annotations

from pathlib import Path

from selflabel.config import load_config
from selflabel.run.job import train_job

DIGITS_SWAV = [
    "data.source=digits",
    "data.batch_size=128",
    "augment.global_size=8",
    "augment.global_scale=[0.5,1.0]",
    "augment.local_size=4",
    "augment.local_scale=[0.2,0.5]",
    "augment.n_local=2",
    "augment.flip=false",
    "augment.blur=false",
    "model.n_prototypes=[10]",
    "model.hidden_dim=128",
    "model.embedding_dim=32",
    "train.device=cpu",
    "train.epochs=12",
    "train.max_minutes=null",
    "eval.seeds=2",
    "eval.gallery_per_cluster=0",
    "optim.warmup_epochs=0",
]


def test_digits_swav_run_beats_kmeans_on_raw_pixels(tmp_path: Path) -> None:
    cfg = load_config("demo", DIGITS_SWAV)
    metrics = train_job(cfg, tmp_path / "run").metrics
    assert metrics["labels_from"] == "head"
    assert metrics["acc"] > metrics["baseline_kmeans_raw"], metrics
    assert metrics["head_acc"] > metrics["baseline_kmeans_raw"], metrics
