"""Results over seeds: re-evaluate finished runs (one per seed) on their test split, tabulate
mean ± std, and plot accuracy against training minutes.

For every run directory and every checkpoint it kept (``checkpoint_epoch{N}.pt`` from
``train.keep_checkpoint_every``, and ``checkpoint_last.pt``) the run's method is rebuilt from its
``config.yaml`` and scored by :func:`selflabel.run.evaluation.evaluate_run` — the figures a run
writes to ``metrics.json``, including the held-out ``test_*`` ones (k-means fitted, matched and
scored on the test images alone; the head's arg-max on them) — and, with ``--linear``, the last
checkpoint gets the linear probe (train → test, weight decay chosen on 10 % of train).

Minutes: a checkpoint's training minutes are the summed ``epoch_time_s`` of its epochs in the
run's ``metrics.csv``; ``--minutes-from RUN`` takes them from another run of the same preset
instead (runs trained side by side on a shared machine are slower than one run alone; with a fixed
number of epochs and threads their results are the same, so the solo run's clock is the honest
one).

Usage::

    python benchmarks/seed_table.py RUN_SEED0 RUN_SEED1 RUN_SEED2 --linear \\
        --minutes-from RUN_SEED0 --json seeds.json --plot docs/images/fmnist-acc-minutes.png

``--set eval.KEY=VALUE`` re-scores finished runs under another evaluation setting (e.g.
``eval.image_size=24``); ``--set data.holdout=0`` scores a run trained with a validation split
(``data.holdout``) on its test source instead (kNN and the training-image figures then use all
the training images). Training settings cannot change after training. ``--plot-keys knn linear``
plots the representation figures instead of the clustering ones; ``--last`` scores only each
run's last checkpoint; ``--xlabel`` says how the minutes were measured; ``--from-json FILE
--plot P`` redraws the plot of an earlier ``--json`` without evaluating anything.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from selflabel.config import apply_override, build_config
from selflabel.engine import checkpoint as ckpt
from selflabel.evaluate import linear_probe
from selflabel.run.build import build_data, build_method
from selflabel.run.evaluation import evaluate_run

COLUMNS = (
    "test_acc", "test_nmi", "test_ami", "test_ari",
    "test_head_acc", "test_head_nmi", "test_head_ami", "test_head_ari",
    "knn", "linear", "acc", "head_acc", "test_baseline_kmeans_raw", "minutes",
)


def epoch_minutes(run: Path) -> list[float]:
    """Cumulative training minutes after each epoch (index e: after e+1 epochs)."""
    out, total = [], 0.0
    with open(run / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row["kind"] == "epoch" and row.get("epoch_time_s"):
                total += float(row["epoch_time_s"]) / 60.0
                out.append(total)
    return out


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    found = []
    for p in run.glob("checkpoint_epoch*.pt"):
        found.append((int(p.stem.removeprefix("checkpoint_epoch")), p))
    last = run / "checkpoint_last.pt"
    if last.is_file():
        epoch = int(ckpt.load_checkpoint(last).get("epoch", 0))
        found = [(e, p) for e, p in found if e != epoch] + [(epoch, last)]
    return sorted(found)


def evaluate_run_dir(
    run: Path,
    linear: bool,
    minutes: list[float],
    overrides: list[str] | None = None,
    last_only: bool = False,
) -> list[dict[str, Any]]:
    trained = yaml.safe_load((run / "config.yaml").read_text())
    data_cfg = copy.deepcopy(trained)
    for override in overrides or []:  # evaluation settings only (e.g. eval.image_size=24)
        if not override.startswith(("eval.", "data.holdout=")):
            raise SystemExit(
                f"--set {override}: only eval.* and data.holdout can change after training"
            )
        apply_override(data_cfg, override)
    cfg = build_config(data_cfg)
    data = build_data(cfg)
    # the method as trained (SeLa's label table has one row per training image of the run)
    train_cfg = build_config(trained)
    same_data = train_cfg.data == cfg.data
    method = build_method(train_cfg, data.train if same_data else build_data(train_cfg).train)
    rows: list[dict[str, Any]] = []
    baseline = None
    points = checkpoints(run)[-1:] if last_only else checkpoints(run)
    for epoch, path in points:
        method.load_state_dict(ckpt.load_checkpoint(path)["model"])
        res = evaluate_run(method, data.train, data.test, cfg, torch.device("cpu"),
                           baseline=baseline)
        v = res.values
        baseline = v.get("baseline_detail", baseline)
        row: dict[str, Any] = {
            k: float(v[k]) for k in COLUMNS if k in v and isinstance(v[k], int | float)
        }
        row.update(run=str(run), seed=cfg.seed, epoch=epoch, checkpoint=path.name)
        if 0 < epoch <= len(minutes):
            row["minutes"] = minutes[epoch - 1]
        if linear and (epoch, path) == points[-1] and "_test_predictions" in v:
            test, train = v["_test_predictions"], v["_predictions"]
            lin = linear_probe(train.probes, train.labels, test.probes, test.labels)
            row["linear"] = float(lin["top1"]) / 100.0
            row["linear_weight_decay"] = lin["weight_decay"]
        print(json.dumps({k: row[k] for k in row if k != "run"}), flush=True)
        rows.append(row)
    return rows


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def markdown(final: list[dict[str, Any]]) -> str:
    cols = [c for c in COLUMNS if any(c in r for r in final)]
    lines = ["| seed | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for r in final:
        cells = [f"{r[c]:.3f}" if c in r else "—" for c in cols]
        lines.append(f"| {r['seed']} | " + " | ".join(cells) + " |")
    means = [mean_std([r[c] for r in final if c in r]) for c in cols]
    lines.append(f"| **mean ± std ({len(final)})** | " + " | ".join(means) + " |")
    return "\n".join(lines)


PLOT_LABELS = {
    "test_head_acc": ("head (the method's own clusters)", "-o"),
    "test_acc": ("k-means on the features", "-s"),
    "knn": ("weighted kNN, train → test", "-^"),
    "linear": ("linear probe, train → test", "-v"),
}
CLUSTERING_KEYS = ("test_head_acc", "test_acc")


def plot(
    rows: list[dict[str, Any]],
    path: Path,
    title: str,
    xlabel: str = "training minutes (2 CPU cores)",
    keys: tuple[str, ...] = CLUSTERING_KEYS,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clustering = all(k in CLUSTERING_KEYS for k in keys)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for key in keys:
        label, style = PLOT_LABELS[key]
        by_min: dict[float, list[float]] = {}
        for r in rows:
            if key in r and "minutes" in r:
                by_min.setdefault(round(r["minutes"], 2), []).append(r[key])
        xs = sorted(by_min)
        ys = np.array([statistics.mean(by_min[x]) for x in xs])
        es = np.array([statistics.stdev(by_min[x]) if len(by_min[x]) > 1 else 0.0 for x in xs])
        ax.errorbar(xs, ys, yerr=es, fmt=style, capsize=3, label=label)
    raw = [r["test_baseline_kmeans_raw"] for r in rows if "test_baseline_kmeans_raw" in r]
    if raw and clustering:
        ax.axhline(statistics.mean(raw), color="gray", ls="--", label="k-means on raw pixels")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clustering accuracy, test split" if clustering else "accuracy, test split")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--from-json", type=Path, default=None,
                    help="plot the rows of an earlier --json instead of evaluating runs")
    ap.add_argument("--linear", action="store_true", help="linear probe on the last checkpoint")
    ap.add_argument("--minutes-from", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--title", default="Fashion-MNIST, mean ± std over seeds")
    ap.add_argument("--xlabel", default="training minutes (2 CPU cores)",
                    help="the plot's x label: say how the minutes were measured")
    ap.add_argument("--plot-keys", nargs="+", choices=list(PLOT_LABELS),
                    default=list(CLUSTERING_KEYS), help="the figures to plot")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--last", action="store_true",
                    help="only the last checkpoint of each run (not the kept epochs)")
    ap.add_argument("--set", action="append", default=[], metavar="eval.KEY=VALUE",
                    help="re-evaluate with this evaluation setting (repeatable)")
    args = ap.parse_args()
    if args.from_json is not None:
        if args.runs or args.plot is None:
            ap.error("--from-json only replots: pass --plot and no run directories")
        rows = json.loads(args.from_json.read_text())["rows"]
        plot(rows, args.plot, args.title, xlabel=args.xlabel, keys=tuple(args.plot_keys))
        return
    if not args.runs:
        ap.error("pass run directories (or --from-json)")
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for run in args.runs:
        minutes = epoch_minutes(args.minutes_from or run)
        rows += evaluate_run_dir(run, args.linear, minutes, args.set, args.last)
    final = [max((r for r in rows if r["run"] == str(run)), key=lambda r: r["epoch"])
             for run in args.runs]
    print(markdown(final))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "final": final}, indent=1))
    if args.plot:
        plot(rows, args.plot, args.title, xlabel=args.xlabel, keys=tuple(args.plot_keys))


if __name__ == "__main__":
    main()
