"""UMAP before k-means (``eval.umap_dim``) chosen without the test split: the clustering benchmark
of finished runs on their training images, without and with the UMAP step.

For each run directory the last checkpoint is loaded and the features of its **training** images
are extracted exactly as the run's own evaluation does (its views, and BatchNorm statistics
recomputed on a copy of the network as ``eval.bn_recalibrate`` does: ``--bn-recalibrate N``
images, by default the run's own setting). The clustering benchmark is then run on all of them
twice, with the run's ``eval.seeds`` seeds each the best of ``eval.kmeans_restarts`` k-means
runs: as it is, and with a UMAP embedding into ``--dim`` dimensions before k-means (``n_neighbors``
``--neighbors``, ``min_dist`` 0; one UMAP per seed). kNN does not change (the step only touches
the clustering benchmark), so it is not computed. No test image is looked at. ``--rule`` prints
what session 18's rule (docs/results.md) decides: UMAP goes to the preset if it raises the
training-image ACC on every run and lowers the mean NMI by less than 0.5 point.

    python benchmarks/eval_umap.py runs/a runs/b runs/c --bn-recalibrate 10000 --rule --threads 2
"""

from __future__ import annotations

from pathlib import Path

import torch

from eval_center import (
    acc_rule,
    clustering_figures,
    parser,
    print_table,
    record,
    training_features,
    write_json,
)


def run_figures(run: Path, dim: int, neighbors: int, bn_images: int | None) -> dict[str, float]:
    """Training-image ACC/NMI of one run's clustering benchmark, plain and with UMAP."""
    cfg, features, labels = training_features(run, bn_images=bn_images)
    out: dict[str, float] = {}
    for name, umap_dim in (("plain", None), ("umap", dim)):
        figures = clustering_figures(features, labels, cfg, umap_dim=umap_dim,
                                     umap_neighbors=neighbors)
        record(out, run, name, figures)
    return out


def main() -> None:
    ap = parser(__doc__, 18)
    ap.add_argument("--dim", type=int, default=10, help="UMAP dimensions")
    ap.add_argument("--neighbors", type=int, default=30, help="UMAP n_neighbors")
    ap.add_argument("--bn-recalibrate", type=int, default=None,
                    help="images for recomputed BatchNorm statistics (default: the run's own)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = {str(run): run_figures(run, args.dim, args.neighbors, args.bn_recalibrate)
            for run in args.runs}
    mean = print_table(rows, "plain", "umap", ("acc", "nmi", "ari"))
    if args.rule:
        adopt = acc_rule(rows, "umap")
        print(f"\nsession 18's rule decides: eval.umap_dim={args.dim if adopt else 'null'}")
    write_json(args.json, rows, mean)


if __name__ == "__main__":
    main()
