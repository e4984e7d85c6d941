"""Test-time views chosen without the test split: kNN accuracy of finished runs per view set.

For each run directory the last checkpoint is loaded and the features of its **training** images
are extracted under every view set (``eval.image_size`` alone; with extra sizes; each also
mirrored, :func:`selflabel.evaluate.views.resized_views`). The training images are then split into
``--folds`` folds (fixed permutation, seed 0): each fold in turn is the query set of a weighted kNN
(the run's ``eval.knn_k`` and ``eval.knn_temperature``) whose gallery is the other folds, so every
training image is scored once and no test image is looked at. The table gives the mean over folds
and its difference from the single view, per run.

    python benchmarks/eval_views.py runs/a runs/b     # view sets 24; 24+28; 20+24+28; 24+28+32
    python benchmarks/eval_views.py runs/a --sizes 24,28 24,28,32 --threads 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml

from selflabel.config import build_config
from selflabel.engine import checkpoint as ckpt
from selflabel.evaluate import knn_accuracy
from selflabel.evaluate.views import resized_views
from selflabel.run.build import build_data, build_method
from selflabel.run.evaluation import predict


def folds_knn(
    f: torch.Tensor, y: np.ndarray, folds: int, k: int, t: float, *, center: bool = False
) -> float:
    """Mean kNN accuracy over ``folds`` folds (fixed permutation, seed 0), each fold the queries
    once against the other folds (``center``: centred on the gallery folds' mean)."""
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0)).numpy()
    accs = []
    for q in np.array_split(perm, folds):
        gallery = np.setdiff1d(perm, q)
        res = knn_accuracy(
            f[gallery], y[gallery], f[q], y[q], k=k, temperature=t, center=center
        )
        accs.append(float(res["top1"]) / 100.0)
    return float(np.mean(accs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument(
        "--sizes",
        nargs="+",
        default=["24", "24,28", "20,24,28", "24,28,32"],
        help="view sets, each a comma-separated list of sizes (each also mirrored)",
    )
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| run | views | kNN (train folds) | vs single view |\n|---|---|---:|---:|")
    for run in args.runs:
        cfg = build_config(yaml.safe_load((run / "config.yaml").read_text()))
        source = build_data(cfg).train
        method = build_method(cfg, source)
        method.load_state_dict(ckpt.load_checkpoint(run / "checkpoint_last.pt")["model"])
        method.eval()
        e = cfg.eval
        base = None
        for spec in args.sizes:
            sizes = [int(s) for s in spec.split(",")]
            for flip in (False, True):
                views = resized_views(
                    sizes[0],
                    sizes[1:],
                    mean=source.mean,
                    std=source.std,
                    crop_fraction=e.crop_fraction,
                    flip=flip,
                )
                pred = predict(method, source, torch.device("cpu"), 1024, views)
                f = torch.from_numpy(pred.features)
                acc = folds_knn(f, pred.labels, args.folds, e.knn_k, e.knn_temperature)
                base = acc if base is None else base
                name = "+".join(str(s) for s in sizes) + (" mirrored" if flip else "")
                print(
                    f"| {run.name} | {name} | {acc:.4f} | {100 * (acc - base):+.2f} |", flush=True
                )


if __name__ == "__main__":
    main()
