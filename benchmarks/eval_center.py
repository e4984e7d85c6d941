"""Centred features (``eval.center``) chosen without the test split: kNN and k-means of finished
runs on their training images, plain against centred.

For each run directory the last checkpoint is loaded and the features of its **training** images
are extracted under the run's own evaluation views (``eval.image_size``, ``eval.tta_*``). Two
figures are computed both ways, plain (L2-normalised) and centred (L2-normalised, minus the mean,
L2-normalised again; "CL2N"):

* kNN on ``--folds`` folds of the training images (the folds of ``benchmarks/eval_views.py``; each
  fold is the query set once, the other folds are the gallery and, when centred, give the mean),
  with the run's ``eval.knn_k`` and ``eval.knn_temperature``;
* the clustering benchmark on all training images (the run's ``eval.seeds`` seeds, each the best
  of ``eval.kmeans_restarts`` k-means runs), ACC and NMI; centred on the images' own mean.

No test image is looked at. ``--rule`` prints what session 16's rule (docs/results.md) decides:
centring goes to kNN if it raises the fold kNN on every run, and to k-means as well if, in
addition, it raises the mean ACC and lowers the mean NMI by less than 0.5 point.

    python benchmarks/eval_center.py runs/a runs/b runs/c --rule --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from eval_views import folds_knn
from selflabel.cluster import cluster_benchmark
from selflabel.config import RunConfig, build_config
from selflabel.data import ImageSource
from selflabel.engine import checkpoint as ckpt
from selflabel.methods import Method
from selflabel.run.build import build_data, build_eval_views, build_method
from selflabel.run.evaluation import Predictions, n_eval_clusters, predict, recalibrated


def load_run(run: Path) -> tuple[RunConfig, ImageSource, Method]:
    """A finished run's config, training images and method with its last checkpoint."""
    cfg = build_config(yaml.safe_load((run / "config.yaml").read_text()))
    source = build_data(cfg).train
    method = build_method(cfg, source)
    method.load_state_dict(ckpt.load_checkpoint(run / "checkpoint_last.pt")["model"])
    return cfg, source, method


def score(
    pred: Predictions, cfg: RunConfig, k: int, folds: int, *, center: bool = False
) -> dict[str, float]:
    """Fold kNN of the probe features, and ACC/NMI of the clustering benchmark on all of them."""
    e = cfg.eval
    knn = folds_knn(
        torch.from_numpy(pred.probes), pred.labels, folds, e.knn_k, e.knn_temperature,
        center=center,
    )
    bench = cluster_benchmark(
        pred.features, pred.labels, k=k, seeds=e.seeds, n_init=e.kmeans_restarts,
        center=center, progress=False,
    ).mean()
    return {"knn": knn, "acc": bench["acc"], "nmi": bench["nmi"]}


def record(out: dict[str, float], run: Path, name: str, figures: dict[str, float]) -> None:
    """Store ``figures`` under ``{metric}_{name}`` and print them."""
    out.update({f"{m}_{name}": v for m, v in figures.items()})
    print(f"  {run.name} {name}: " + ", ".join(f"{m} {v:.4f}" for m, v in figures.items()),
          flush=True)


def run_figures(run: Path, folds: int) -> dict[str, float]:
    """Fold kNN and training-image ACC/NMI of one run, plain and centred."""
    cfg, source, method = load_run(run)
    views = build_eval_views(cfg, source)
    pred = predict(method, source, torch.device("cpu"), 1024, views, views_for=cfg.eval.tta_scope)
    out: dict[str, float] = {}
    k = n_eval_clusters(cfg, source)
    for name, center in (("plain", False), ("centred", True)):
        record(out, run, name, score(pred, cfg, k, folds, center=center))
    return out


def decide(rows: dict[str, dict[str, float]]) -> str:
    """Session 16's rule: ``none``, ``knn`` or ``all``."""
    if not all(r["knn_centred"] > r["knn_plain"] for r in rows.values()):
        return "none"
    d_acc = float(np.mean([r["acc_centred"] - r["acc_plain"] for r in rows.values()]))
    d_nmi = float(np.mean([r["nmi_centred"] - r["nmi_plain"] for r in rows.values()]))
    return "all" if d_acc > 0 and d_nmi > -0.005 else "knn"


def training_features(
    run: Path, cache: Path | None = None, bn_images: int | None = None,
    loaded: tuple[RunConfig, ImageSource, Method] | None = None,
) -> tuple[RunConfig, np.ndarray, np.ndarray]:
    """A run's config and the features and labels of its training images as its evaluation
    extracts them: its views, and BatchNorm statistics recomputed on ``bn_images`` images (default:
    the run's ``eval.bn_recalibrate``). With ``cache`` they are kept in ``cache/<run name>.npz``
    and read from there on the next call. ``loaded``: what :func:`load_run` gave for ``run``
    already (not loaded again)."""
    path = cache / f"{run.name}.npz" if cache is not None else None
    cfg, source, method = loaded if loaded is not None else load_run(run)
    if path is not None and path.exists():
        with np.load(path) as f:
            return cfg, f["features"], f["labels"]
    cpu = torch.device("cpu")
    views = build_eval_views(cfg, source)
    bn_images = cfg.eval.bn_recalibrate if bn_images is None else bn_images
    if bn_images:
        method = recalibrated(method, source, views, bn_images, device=cpu,
                              batch_size=cfg.eval.batch_size, seed=cfg.seed)
    pred = predict(method, source, cpu, cfg.eval.batch_size, views, views_for=cfg.eval.tta_scope)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, features=pred.features, labels=pred.labels)
    return cfg, pred.features, pred.labels


def clustering_figures(
    features: np.ndarray, labels: np.ndarray, cfg: RunConfig, **options: Any
) -> dict[str, float]:
    """ACC/NMI/ARI (means over the run's ``eval.seeds``, each the best of
    ``eval.kmeans_restarts``) of the clustering benchmark on all rows, and its seconds;
    ``options`` go to :func:`cluster_benchmark` (``umap_dim``, ``balanced``, ...)."""
    t0 = time.perf_counter()
    k = cfg.eval.n_clusters or int(np.unique(labels).shape[0])
    bench = cluster_benchmark(
        features, labels, k=k, seeds=cfg.eval.seeds, n_init=cfg.eval.kmeans_restarts,
        progress=False, **options,
    ).mean()
    return {"acc": bench["acc"], "nmi": bench["nmi"], "ari": bench["ari"],
            "seconds": time.perf_counter() - t0}


def acc_rule(
    rows: dict[str, dict[str, float]], candidate: str, plain: str = "plain",
    nmi_drop: float = 0.005,
) -> bool:
    """Sessions 18 and 20's rule for a clustering step: training-image ACC rises on every run
    and the mean NMI falls by less than ``nmi_drop`` (0.5 point; session 21's rule: 2 points)."""
    if not all(r[f"acc_{candidate}"] > r[f"acc_{plain}"] for r in rows.values()):
        return False
    d_nmi = float(np.mean([r[f"nmi_{candidate}"] - r[f"nmi_{plain}"] for r in rows.values()]))
    return d_nmi > -nmi_drop


_LABELS = {"knn": "kNN (train folds)", "acc": "ACC (train)", "nmi": "NMI", "ari": "ARI"}


def print_table(
    rows: dict[str, dict[str, float]], a: str, b: str,
    metrics: tuple[str, ...] = ("knn", "acc", "nmi"),
) -> dict[str, Any]:
    """Print the per-run and mean ``metrics`` under settings ``a`` and ``b`` (the
    ``{metric}_{setting}`` keys of ``rows``) as a markdown table; return the means."""
    print("\n| run | " + " | ".join(f"{_LABELS[m]} | {b} | Δ" for m in metrics) + " |\n|---|"
          + "---:|---:|---:|" * len(metrics))
    mean: dict[str, Any] = {
        m: float(np.mean([r[m] for r in rows.values()])) for m in next(iter(rows.values()))
    }
    for name, r in [*((Path(run).name, r) for run, r in rows.items()), ("**mean**", mean)]:
        cells = []
        for m in metrics:
            x, y = r[f"{m}_{a}"], r[f"{m}_{b}"]
            cells += [f"{x:.4f}", f"{y:.4f}", f"{100 * (y - x):+.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return mean


def parser(doc: str, session: int) -> argparse.ArgumentParser:
    """The options every decision script of this kind takes (runs, folds, threads, rule, json)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rule", action="store_true", help=f"print session {session}'s decision")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    return ap


def write_json(path: Path | None, rows: dict[str, dict[str, float]], mean: dict[str, Any]) -> None:
    """The per-run figures and their means, to ``path`` when given."""
    if path is not None:
        path.write_text(json.dumps({"runs": rows, "mean": mean}, indent=1))


def main() -> None:
    args = parser(__doc__, 16).parse_args()
    torch.set_num_threads(args.threads)
    rows = {str(run): run_figures(run, args.folds) for run in args.runs}
    mean = print_table(rows, "plain", "centred")
    if args.rule:
        print(f"\nsession 16's rule decides: eval.center={decide(rows)}")
    write_json(args.json, rows, mean)


if __name__ == "__main__":
    main()
