"""Recomputed BatchNorm statistics (``eval.bn_recalibrate``) chosen without the test split: kNN and
k-means of finished runs on their training images, with the trained against the recomputed
statistics.

For each run directory the last checkpoint is loaded and the features of its **training** images
are extracted under the run's own evaluation views twice: with the network's trained BatchNorm
statistics, and with a copy whose statistics were recomputed on ``--images`` training images in
those views (:func:`selflabel.run.evaluation.recalibrated`, what a run does with
``eval.bn_recalibrate``). Both give the figures of ``benchmarks/eval_center.py``: kNN on
``--folds`` folds of the training images (the run's ``eval.knn_k``, ``eval.knn_temperature``) and
ACC/NMI of the clustering benchmark on all training images. No test image is looked at.
``--rule`` prints what session 17's rule (docs/results.md) decides: the recomputed statistics go to
the preset if they raise the fold kNN on every run while the mean ACC and the mean NMI each fall by
less than 0.5 point.

    python benchmarks/eval_bn.py runs/a runs/b runs/c --rule --threads 2
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from eval_center import load_run, parser, print_table, record, score, write_json
from selflabel.run.build import build_eval_views
from selflabel.run.evaluation import n_eval_clusters, predict, recalibrated


def run_figures(run: Path, folds: int, images: int) -> dict[str, float]:
    """Fold kNN and training-image ACC/NMI of one run, trained and recomputed statistics."""
    cfg, source, method = load_run(run)
    cpu = torch.device("cpu")
    views = build_eval_views(cfg, source)
    nets = {
        "trained": method,
        "recomputed": recalibrated(method, source, views, images, device=cpu, seed=cfg.seed),
    }
    out: dict[str, float] = {}
    k = n_eval_clusters(cfg, source)
    for name, net in nets.items():
        pred = predict(net, source, cpu, 1024, views, views_for=cfg.eval.tta_scope)
        record(out, run, name, score(pred, cfg, k, folds))
    return out


def decide(rows: dict[str, dict[str, float]]) -> bool:
    """Session 17's rule: adopt the recomputed statistics or not."""
    if not all(r["knn_recomputed"] > r["knn_trained"] for r in rows.values()):
        return False
    d_acc = float(np.mean([r["acc_recomputed"] - r["acc_trained"] for r in rows.values()]))
    d_nmi = float(np.mean([r["nmi_recomputed"] - r["nmi_trained"] for r in rows.values()]))
    return d_acc > -0.005 and d_nmi > -0.005


def main() -> None:
    ap = parser(__doc__, 17)
    ap.add_argument("--images", type=int, default=10000, help="training images for the statistics")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = {str(run): run_figures(run, args.folds, args.images) for run in args.runs}
    mean = print_table(rows, "trained", "recomputed")
    if args.rule:
        adopt = decide(rows)
        print(f"\nsession 17's rule decides: eval.bn_recalibrate={args.images if adopt else 0}")
    write_json(args.json, rows, mean)


if __name__ == "__main__":
    main()
