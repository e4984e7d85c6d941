"""``selflabel train``: train, evaluate, write labels, metrics, plots, checkpoints."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from selflabel.config import ConfigError, load_config


@click.command("train", context_settings={"ignore_unknown_options": False})
@click.option(
    "--config",
    "config",
    default=None,
    metavar="PRESET|FILE",
    help="preset name from configs/ (default: demo) or a YAML file",
)
@click.option(
    "--data",
    default=None,
    metavar="SOURCE",
    help="image source: a folder, .npz/.npy, CSV list, or a name (see `selflabel datasets`)",
)
@click.option(
    "--method",
    type=click.Choice(["swav", "sela", "swavsela", "selav2", "deepclusterv2", "supervised"]),
    default=None,
    help="training method (overrides the preset's)",
)
@click.option("--epochs", type=int, default=None, help="number of epochs")
@click.option(
    "--max-minutes",
    type=float,
    default=None,
    help="stop training gracefully after this many minutes, then evaluate and save",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="run directory (default: runs/<method>-<source>-<time>); an existing run resumes",
)
@click.option(
    "--labels",
    default=None,
    metavar="FILE",
    help="labels.npy/.csv of self-labels (with --method supervised: label transfer)",
)
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
def train(
    config: str | None,
    data: str | None,
    method: str | None,
    epochs: int | None,
    max_minutes: float | None,
    out: Path | None,
    labels: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Train a representation and cluster labels on unlabelled images.

    With no arguments: SwAV on the bundled demo data (10k Fashion-MNIST test images), on the CPU in
    under 5 minutes. KEY=VALUE pairs override any config entry, e.g. `optim.lr=0.1`.
    """
    flags = list(overrides)
    if data is not None:
        flags.append(f"data.source={data}")
    if method is not None:
        flags.append(f"method={method}")
    if epochs is not None:
        flags.append(f"train.epochs={epochs}")
    if max_minutes is not None:
        flags.append(f"train.max_minutes={max_minutes}")
    if labels is not None:
        flags.append(f"labels={labels}")
    try:
        cfg = load_config(config, flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)

    from selflabel.run.job import train_job

    try:
        result = train_job(cfg, out)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    shown = {
        k: v
        for k, v in result.metrics.items()
        if k
        in {
            "acc",
            "nmi",
            "ami",
            "ari",
            "knn",
            "head_acc",
            "head_nmi",
            "labels_from",
            "baseline_kmeans_raw",
            "baseline_kmeans_raw_nmi",
            "test_acc",
            "test_nmi",
            "test_head_acc",
            "test_head_nmi",
            "test_baseline_kmeans_raw",
            "train_minutes",
            "total_minutes",
            "epochs_done",
            "stopped_early",
        }
    }
    click.echo(json.dumps(shown, indent=1))
    click.echo(f"run directory: {result.run_dir}")
