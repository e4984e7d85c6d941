"""k-means started at the method's prototypes (``eval.kmeans_init: prototypes``) chosen without the
test split: the clustering benchmark of finished runs on their training images, random-start
k-means restarts against one k-means run started at the main head's prototypes.

For each run directory the last checkpoint is loaded and the features of its **training** images
are extracted exactly as the run's own evaluation does (its views, and BatchNorm statistics
recomputed as ``eval.bn_recalibrate`` does; ``--cache DIR`` keeps them in ``DIR/<run name>.npz``,
shared with ``benchmarks/eval_balanced.py``). The clustering benchmark is run on all of them
twice: as the preset runs it (``eval.seeds`` seeds, each the best of ``eval.kmeans_restarts``
k-means runs), and once from the prototypes (``Method.feature_centres``: SwAV's prototypes, unit
vectors in the features' space when the network has no projection head), 25 Lloyd iterations on
all points. kNN does not change, so it is not computed. No test image is looked at. ``--rule``
prints what session 21's rule (docs/results.md) decides: the prototype start goes to the preset
if it raises the training-image ACC on every run and lowers the mean NMI by less than 2 points.

    python benchmarks/eval_protoinit.py runs/a runs/b runs/c --cache runs/feat --rule --threads 2
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from eval_center import (
    acc_rule,
    clustering_figures,
    load_run,
    parser,
    print_table,
    record,
    training_features,
    write_json,
)
from selflabel.cluster import cluster_benchmark
from selflabel.methods import Method


def prototype_figures(
    run: Path, method: Method, features: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """ACC/NMI/ARI of one k-means run started at the run's prototypes, and its seconds."""
    centres = method.feature_centres()
    if centres is None:
        raise SystemExit(f"{run}: the method's main head has no prototypes in the features' space")
    t0 = time.perf_counter()
    bench = cluster_benchmark(
        features, labels, k=int(centres.shape[0]), seeds=1, n_init=1,
        init_centroids=centres.numpy(), progress=False,
    ).mean()
    return {"acc": bench["acc"], "nmi": bench["nmi"], "ari": bench["ari"],
            "seconds": time.perf_counter() - t0}


def run_figures(run: Path, cache: Path | None) -> dict[str, float]:
    """Training-image ACC/NMI/ARI of one run's clustering benchmark: random starts, prototypes."""
    loaded = load_run(run)
    cfg, features, labels = training_features(run, cache, loaded=loaded)
    out: dict[str, float] = {}
    record(out, run, "plain", clustering_figures(features, labels, cfg))
    record(out, run, "prototypes", prototype_figures(run, loaded[2], features, labels))
    return out


def main() -> None:
    ap = parser(__doc__, 21)
    ap.add_argument("--cache", type=Path, default=None,
                    help="folder for the extracted training features (<run name>.npz)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = {str(run): run_figures(run, args.cache) for run in args.runs}
    mean = print_table(rows, "plain", "prototypes", ("acc", "nmi", "ari"))
    if args.rule:
        decision = acc_rule(rows, "prototypes", nmi_drop=0.02)
        print(f"\nsession 21's rule decides: eval.kmeans_init="
              f"{'prototypes' if decision else 'kmeans++'}")
    write_json(args.json, rows, mean)


if __name__ == "__main__":
    main()
