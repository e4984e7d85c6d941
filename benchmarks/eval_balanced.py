"""Balanced k-means (``eval.kmeans_balanced``) chosen without the test split: the clustering
benchmark of finished runs on their training images, plain k-means against balanced k-means.

For each run directory the last checkpoint is loaded and the features of its **training** images
are extracted exactly as the run's own evaluation does (its views, and BatchNorm statistics
recomputed on a copy of the network as ``eval.bn_recalibrate`` does). ``--cache DIR`` keeps them
in ``DIR/<run name>.npz`` (features and labels) so a second call skips the extraction;
``--extract-only`` stops there. The clustering benchmark is then run on all of them twice, with
the run's ``eval.seeds`` seeds each the best of ``eval.kmeans_restarts`` k-means runs: as it is,
and with the balanced refinement (equal-size clusters by SeLa's equipartition solver, see
``selflabel.cluster.balanced``). kNN does not change, so it is not computed. No test image is
looked at. ``--rule`` prints what session 20's rule (docs/results.md) decides: the refinement
goes to the preset if it raises the training-image ACC on every run and lowers the mean NMI by
less than 0.5 point.

    python benchmarks/eval_balanced.py runs/a runs/b runs/c --cache runs/feat --rule --threads 2
"""

from __future__ import annotations

import time
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


def run_figures(run: Path, cache: Path | None) -> dict[str, float]:
    """Training-image ACC/NMI/ARI of one run's clustering benchmark, plain and balanced."""
    cfg, features, labels = training_features(run, cache)
    out: dict[str, float] = {}
    for name, balanced in (("plain", False), ("balanced", True)):
        record(out, run, name, clustering_figures(features, labels, cfg, balanced=balanced))
    return out


def main() -> None:
    ap = parser(__doc__, 20)
    ap.add_argument("--cache", type=Path, default=None,
                    help="folder for the extracted training features (<run name>.npz)")
    ap.add_argument("--extract-only", action="store_true", help="extract (and cache) only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.extract_only:
        for run in args.runs:
            t0 = time.perf_counter()
            _, features, _ = training_features(run, args.cache)
            print(f"  {run.name}: features {features.shape} in {time.perf_counter() - t0:.0f} s")
        return
    rows = {str(run): run_figures(run, args.cache) for run in args.runs}
    mean = print_table(rows, "plain", "balanced", ("acc", "nmi", "ari"))
    if args.rule:
        print(f"\nsession 20's rule decides: eval.kmeans_balanced={acc_rule(rows, 'balanced')}")
    write_json(args.json, rows, mean)


if __name__ == "__main__":
    main()
