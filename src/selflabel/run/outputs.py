"""Write what a run leaves behind: metrics.json, labels.csv and the PNG plots."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selflabel.config import RunConfig
from selflabel.data import ImageSource
from selflabel.report.plots import plot_cluster_sizes, plot_curves, plot_gallery
from selflabel.run.evaluation import Predictions, RunMetrics

log = logging.getLogger(__name__)


def write_outputs(
    run_dir: Path,
    cfg: RunConfig,
    source: ImageSource,
    metrics: RunMetrics,
    history: list[dict[str, Any]],
) -> None:
    """metrics.json, labels.csv and plots/ in ``run_dir``."""
    values = {k: v for k, v in metrics.values.items() if not k.startswith("_")}
    (run_dir / "metrics.json").write_text(json.dumps(_jsonable(values), indent=1))
    pred: Predictions = metrics.values["_predictions"]
    clusters = metrics.clusters if metrics.clusters is not None else pred.prototype
    confidence = (
        metrics.cluster_confidence if metrics.cluster_confidence is not None else pred.confidence
    )
    write_labels_csv(run_dir / "labels.csv", source, clusters, confidence, pred)
    plots = run_dir / "plots"
    curves = read_training_log(run_dir / "metrics.csv")
    if curves:
        plot_curves(curves, plots / "training.png", title=f"{cfg.method} on {cfg.data.source}")
    if history:
        series = {
            m: (
                [float(r["epoch"]) for r in history if m in r],
                [float(r[m]) for r in history if m in r],
            )
            for m in ("acc", "nmi", "knn", "head_acc")
        }
        plot_curves(series, plots / "metrics.png", xlabel="epoch")
    plot_cluster_sizes(
        clusters, plots / "cluster_sizes.png", n_clusters=int(values.get("k", 0)) or None
    )
    if cfg.eval.gallery_per_cluster:
        images = _all_images(source)
        plot_gallery(
            images,
            clusters,
            plots / "gallery.png",
            confidence=confidence,
            per_cluster=cfg.eval.gallery_per_cluster,
        )


def write_labels_csv(
    path: Path,
    source: ImageSource,
    clusters: np.ndarray,
    confidence: np.ndarray,
    pred: Predictions,
) -> None:
    """index, cluster, confidence, prototype, [path], [label] — one row per image, index order."""
    paths = getattr(source, "paths", None)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        header = ["index", "cluster", "confidence", "prototype"]
        if paths is not None:
            header.append("path")
        if source.labelled:
            header.append("label")
        w.writerow(header)
        for i in range(len(clusters)):
            row: list[Any] = [
                i,
                int(clusters[i]),
                f"{float(confidence[i]):.4f}",
                int(pred.prototype[i]),
            ]
            if paths is not None:
                row.append(str(paths[i]))
            if source.labelled:
                row.append(int(pred.labels[i]))
            w.writerow(row)


def read_training_log(path: Path) -> dict[str, tuple[list[float], list[float]]]:
    """``name -> (iterations, values)`` of loss, lr, entropy from the engine's metrics.csv."""
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("kind", "train") == "train"]
    out: dict[str, tuple[list[float], list[float]]] = {}
    for name in ("loss", "lr", "code_entropy"):
        xs, ys = [], []
        for r in rows:
            v = r.get(name)
            it = r.get("iteration") or r.get("step")
            if v not in (None, "") and it not in (None, ""):
                xs.append(float(it))
                ys.append(float(v))
        if xs:
            out[name] = (xs, ys)
    return out


def _all_images(source: ImageSource, batch: int = 4096) -> np.ndarray:
    chunks = []
    for s in range(0, len(source), batch):
        _, images, _ = source.get_batch(torch.arange(s, min(s + batch, len(source))))
        chunks.append(images.numpy())
    return np.concatenate(chunks)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
