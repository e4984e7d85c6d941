"""A hand-written run directory (the files `selflabel train` leaves) on a tiny .npz source."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from selflabel.config import dump_config, load_config

N_CLASSES = 4
PER_CLASS = 12


def write_run(root: Path, *, labelled: bool = True, history: bool = True) -> Path:
    """``root/run`` with config.yaml, metrics.json, labels.csv, metrics.csv[, eval_history.json].

    Images of class c carry a bright bar at a class-specific row; cluster ``(c + 1) % 4`` holds
    class c except the last image of each class, which goes to the next cluster over.
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = N_CLASSES * PER_CLASS
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    images = rng.integers(0, 60, size=(n, 12, 12), dtype=np.uint8)
    for c in range(N_CLASSES):
        images[labels == c, 1 + 3 * c : 3 + 3 * c, 1:11] = 230
    npz = root / ("data.npz" if labelled else "data_unlabelled.npz")
    if labelled:
        np.savez(npz, images=images, labels=labels)
    else:
        np.savez(npz, images=images)
    run = root / ("run" if labelled else "run_unlabelled")
    run.mkdir(parents=True)
    cfg = load_config(None, [f"data.source={npz}", "data.batch_size=16", "train.epochs=3"])
    (run / "config.yaml").write_text(dump_config(cfg))
    clusters = (labels + 1) % N_CLASSES
    last = np.arange(PER_CLASS - 1, n, PER_CLASS)
    clusters[last] = (clusters[last] + 1) % N_CLASSES
    confidence = rng.uniform(0.3, 1.0, size=n)
    metrics: dict[str, object] = {"n_images": n, "k": N_CLASSES, "epochs_done": 3,
                                  "train_minutes": 0.5, "total_minutes": 0.7, "device": "cpu",
                                  "stopped_early": None, "prototypes_used": 7}
    if labelled:
        metrics.update({"acc": 0.9167, "nmi": 0.85, "ami": 0.84, "ari": 0.8,
                        "std": {"acc": 0.01, "nmi": 0.02, "ami": 0.02, "ari": 0.03},
                        "clustering_benchmark": {"protocol": {"k": 4, "seeds": [0, 1]}},
                        "head_acc": 0.5, "head_nmi": 0.4, "head_ami": 0.3, "head_ari": 0.2,
                        "knn": 0.95, "knn_protocol": "weighted kNN k=20 T=0.07 <cosine>",
                        "baseline_kmeans_raw": 0.6, "baseline_kmeans_raw_nmi": 0.5,
                        "test_acc": 0.7123, "test_std": {"acc": 0.0456}, "test_head_acc": 0.6789,
                        "test_protocol": "40 test images <held out>"})
    (run / "metrics.json").write_text(json.dumps(metrics))
    with open(run / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        header = ["index", "cluster", "confidence", "prototype"]
        w.writerow(header + (["label"] if labelled else []))
        for i in range(n):
            extra = [int(labels[i])] if labelled else []
            w.writerow([i, int(clusters[i]), f"{confidence[i]:.4f}", int(clusters[i]) * 2, *extra])
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "epoch", "iteration", "loss", "lr", "images_per_s", "code_entropy",
                    "clusters_used", "acc"])
        for it in range(1, 10):
            w.writerow(["train", (it - 1) // 3, it, 5.0 / it, 0.1 * (1 - it / 10), 100.0,
                        1.0 + it / 10, 8, ""])
            if it % 3 == 0:
                w.writerow(["epoch", (it - 1) // 3, it, 2.0, "", "", "", "", ""])
    if history and labelled:
        rows = [{"epoch": e, "acc": 0.5 + 0.1 * e, "nmi": 0.4 + 0.1 * e, "knn": 0.6 + 0.1 * e}
                for e in (1, 2, 3)]
        (run / "eval_history.json").write_text(json.dumps(rows))
    return run
