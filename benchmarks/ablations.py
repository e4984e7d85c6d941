"""The seed papers' ablations at CPU scale: each is a set of `selflabel train` runs that differ in
one setting, trained to the end of their schedule and scored by the run's own metrics.

Groups (``--group``, repeatable; default: all training groups):

* ``sinkhorn-iters`` — SwAV: Sinkhorn iterations 1 / 3 / 10 (the paper: 1 fails, 3 suffices);
* ``multicrop`` — SwAV: 2 global crops only vs 2 global + 4 small crops;
* ``prototypes`` — SwAV: 10 / 30 / 100 prototypes;
* ``sela-heads`` — SeLa: T = 1 vs T = 2 heads (``demo-sela`` preset);
* ``eval`` — the clustering benchmark's own knobs on one trained model (``--checkpoint RUN``):
  over-clustering 1x / 1.5x / 3x and PCA dimension none / 16 / 32 / 64 (no training).

Every training run uses ``--preset`` (default: the group's, ``demo`` = SwAV on the bundled 10k
Fashion-MNIST test images, 12 epochs) with the group's override, trained to the end of the
preset's schedule (or ``--epochs``); ``--seeds`` runs each setting with seeds
0..S-1 and reports mean ± std. Runs are deterministic for a seed, so the figures do not depend on
the machine's load; minutes are reported for information only. Prints one JSON line per run and a
markdown table per group.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/ablations.py --group sinkhorn-iters
    python benchmarks/ablations.py --group eval --checkpoint runs/swav-demo-...
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

GROUPS: dict[str, tuple[str, list[tuple[str, list[str]]]]] = {
    "sinkhorn-iters": (
        "demo",
        [(f"{n} iteration{'s' * (n > 1)}", [f"swav.sinkhorn_iters={n}"]) for n in (1, 3, 10)],
    ),
    "multicrop": (
        "demo",
        [("2x24 only", ["augment.n_local=0"]), ("2x24 + 4x12", ["augment.n_local=4"])],
    ),
    "prototypes": (
        "demo",
        [(f"{k} prototypes", [f"model.n_prototypes=[{k}]"]) for k in (10, 30, 100)],
    ),
    "sela-heads": (
        "demo-sela",
        [(f"T = {t}", [f"sela.n_heads={t}"]) for t in (1, 2)],
    ),
}
METRICS = ("acc", "nmi", "head_acc", "knn")


def train_once(
    preset: str, overrides: list[str], epochs: int | None, seed: int, out: Path
) -> dict:
    """One run of ``preset`` with ``overrides`` to the end of its schedule (``epochs``: the
    preset's own when None); returns its figures."""
    from selflabel.config import load_config
    from selflabel.run.job import train_job

    length = [] if epochs is None else [f"train.epochs={epochs}"]
    cfg = load_config(
        preset,
        [
            *overrides,
            *length,
            "train.max_minutes=null",
            f"seed={seed}",
            "eval.gallery_per_cluster=0",
        ],
    )
    m = train_job(cfg, out).metrics
    return {k: m.get(k) for k in (*METRICS, "baseline_kmeans_raw", "train_minutes")}


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def run_group(name: str, args: argparse.Namespace, work: Path) -> str:
    preset, settings = GROUPS[name]
    preset = args.preset or preset
    lines = [
        f"**{name}** (`{preset}` preset, {args.epochs or 'its'} epochs, seeds 0..{args.seeds - 1})",
        "",
        "| setting | ACC (k-means) | NMI | head ACC | kNN | raw-pixel ACC |",
        "|---|---|---|---|---|---|",
    ]
    for label, overrides in settings:
        rows: list[dict] = []
        for seed in range(args.seeds):
            tag = f"{name}-{label}-{seed}".replace(" ", "_").replace("/", "_")
            res = train_once(preset, overrides, args.epochs, seed, work / tag)
            print(json.dumps({"group": name, "setting": label, "seed": seed, **res}), flush=True)
            rows.append(res)
        cols = [fmt([float(r[k]) for r in rows]) for k in METRICS]
        raw = fmt([float(r["baseline_kmeans_raw"]) for r in rows])
        lines.append(f"| {label} | " + " | ".join(cols) + f" | {raw} |")
    return "\n".join(lines)


def eval_group(checkpoint: Path, seeds: int) -> str:
    from selflabel.cluster import cluster_benchmark
    from selflabel.commands.extract import load_eval_model
    from selflabel.data import load_source
    from selflabel.methods import Method
    from selflabel.run.evaluation import predict, raw_pixels

    src = load_source("demo")
    model, _ = load_eval_model(checkpoint, src, None)
    if not isinstance(model, Method):
        raise SystemExit(f"{checkpoint} is not a selflabel run directory or checkpoint")
    pred = predict(model, src, torch.device("cpu"))  # eval mode, no augmentation
    inputs = {"features": pred.features, "raw pixels": raw_pixels(src)}
    y_all = pred.labels
    lines = [
        f"**eval** (`{checkpoint}`, clustering benchmark, seeds 0..{seeds - 1})",
        "",
        "| input | over-clustering | PCA dim | ACC | NMI | ARI |",
        "|---|---|---|---|---|---|",
    ]
    settings: list[tuple[float, int | None]] = [(o, None) for o in (1.0, 1.5, 3.0)]
    settings += [(1.0, d) for d in (16, 32, 64)]
    for name, arr in inputs.items():
        for over, pca in settings:
            if pca is not None and pca > arr.shape[1]:
                continue
            r = cluster_benchmark(
                np.ascontiguousarray(arr, dtype=np.float32), y_all, k=10, seeds=seeds,
                overcluster=over, pca_dim=pca, progress=False,
            )
            mu, sd = r.mean(), r.std()
            row = {k: f"{mu[k]:.3f} ± {sd[k]:.3f}" for k in ("acc", "nmi", "ari")}
            print(json.dumps({"group": "eval", "input": name, "overcluster": over, "pca": pca,
                              **{k: mu[k] for k in ("acc", "nmi", "ari")}}), flush=True)
            lines.append(
                f"| {name} | {over}x | {pca or 'none'} | {row['acc']} | {row['nmi']} | "
                f"{row['ari']} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--group", action="append", choices=[*GROUPS, "eval"])
    ap.add_argument("--preset", default=None, help="preset for every training group")
    ap.add_argument("--epochs", type=int, default=None, help="default: each preset's own")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--checkpoint", type=Path, help="run directory for --group eval")
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here")
    args = ap.parse_args()
    groups = args.group or list(GROUPS)
    tables: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        for g in groups:
            if g == "eval":
                if args.checkpoint is None:
                    ap.error("--group eval needs --checkpoint RUN_DIR")
                tables.append(eval_group(args.checkpoint, max(args.seeds, 3)))
            else:
                tables.append(run_group(g, args, work))
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
