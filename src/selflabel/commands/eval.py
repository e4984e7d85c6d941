"""``selflabel eval knn|linear|cluster``: the standard probes of frozen features.

Every probe takes either precomputed features (``--train-features/--train-labels/--test-features/
--test-labels``: ``.npy`` memory-mapped, ``.npz``, ``.pt``; labels default to ``FEATS.labels.npy``
beside the features, as ``selflabel extract`` writes them) or a model
(``--checkpoint RUN_DIR_OR_FILE --train-data SOURCE [--test-data SOURCE]``), prints the protocol
it used next to its numbers, and with ``--json OUT`` writes everything as JSON. Example::

    selflabel extract runs/fmnist --data fashion-mnist --out f/train.npy
    selflabel extract runs/fmnist --data fashion-mnist --split test --out f/test.npy
    selflabel eval knn --train-features f/train.npy --test-features f/test.npy --json knn.json
    selflabel eval linear --train-features f/train.npy --test-features f/test.npy
    selflabel eval cluster --checkpoint runs/fmnist --train-data fashion-mnist --pca-dim 128

Protocols in detail: ``docs/evaluation.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from selflabel.commands.cluster_eval import (
    balanced_option,
    init_option,
    kmeans_starts,
    umap_options,
)
from selflabel.commands.eval_inputs import finish, input_options, load_inputs

__all__ = ["eval_group"]


def knn_settings(ks: tuple[int, ...], temps: tuple[float, ...]) -> list[tuple[int, float]]:
    """Pair ``--k`` and ``--temperature`` values (one of either is broadcast; none: defaults).

    Example::

        >>> knn_settings((10, 20), (0.1,))
        [(10, 0.1), (20, 0.1)]
    """
    from selflabel.evaluate import DEFAULT_KNN_SETTINGS

    if not ks and not temps:
        return list(DEFAULT_KNN_SETTINGS)
    ks = ks or (20,)
    temps = temps or (0.07,)
    if len(ks) == 1:
        ks = ks * len(temps)
    if len(temps) == 1:
        temps = temps * len(ks)
    if len(ks) != len(temps):
        raise click.UsageError(
            f"got {len(ks)} --k and {len(temps)} --temperature values; give one of either, "
            "or as many of each (they are paired in order)"
        )
    return list(zip(ks, temps, strict=True))


@click.group("eval")
def eval_group() -> None:
    """Probe frozen features: weighted kNN, linear classifier, clustering benchmark."""


@eval_group.command("knn")
@input_options
@click.option("--k", "ks", type=click.IntRange(min=1), multiple=True, help="Neighbours (repeat).")
@click.option(
    "--temperature",
    "temps",
    type=click.FloatRange(0, min_open=True),
    multiple=True,
    help="Vote temperature T / SeLa's sigma (repeat; paired with --k).",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=65536,
    show_default=True,
    help="Train rows per similarity block.",
)
@click.option(
    "--center",
    is_flag=True,
    help="Centre the normalised features on the train mean and normalise again (CL2N).",
)
def knn(
    ks: tuple[int, ...], temps: tuple[float, ...], chunk_size: int, center: bool, **o: Any
) -> None:
    """Weighted kNN (cosine, exp(sim/T) votes); defaults k=20 and 200 at T=0.07, SeLa k=50 σ=0.1.

    Without test features it is leave-one-out on the train features.
    """
    from selflabel.evaluate import knn_accuracy

    settings = knn_settings(ks, temps)
    inputs = load_inputs(o)
    loo = inputs.test_x is None or inputs.test_y is None
    test_x = inputs.train_x if inputs.test_x is None else inputs.test_x
    test_y = inputs.train_y if inputs.test_y is None else inputs.test_y
    try:
        res = knn_accuracy(
            inputs.train_x,
            inputs.train_y,
            test_x,
            test_y,
            settings=settings,
            chunk_size=chunk_size,
            device=o["device"],
            exclude_self=loo,
            center=center,
        )
    except (ValueError, TypeError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"protocol: {res['protocol']}")
    click.echo(f"inputs: {inputs.described}")
    click.echo(f"{'k':>5} {'T':>6} {'top-1 %':>8} {'top-5 %':>8}")
    for r in res["results"]:
        click.echo(f"{r['k']:>5} {r['temperature']:>6g} {r['top1']:>8.2f} {r['top5']:>8.2f}")
    finish(res, inputs, o["json_path"])


@eval_group.command("linear")
@input_options
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=0.1, show_default=True)
@click.option(
    "--weight-decay",
    "wds",
    type=click.FloatRange(0),
    multiple=True,
    help="Candidate weight decays (repeat; default 0 1e-5 1e-4 1e-3 1e-2).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
    help="Held-out part of train for the sweep.",
)
@click.option("--probe-batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--no-standardize", is_flag=True, help="Do not standardise the features.")
@click.option("--seed", type=int, default=0, show_default=True)
def linear(
    epochs: int,
    lr: float,
    wds: tuple[float, ...],
    val_fraction: float,
    probe_batch_size: int,
    no_standardize: bool,
    seed: int,
    **o: Any,
) -> None:
    """Linear classifier on frozen features (SGD, cosine lr, weight-decay sweep); top-1/top-5."""
    from selflabel.evaluate import DEFAULT_WEIGHT_DECAYS, linear_probe

    inputs = load_inputs(o)
    if inputs.test_x is None or inputs.test_y is None:
        raise click.UsageError("the linear probe needs test features: --test-features/--test-data")
    try:
        res = linear_probe(
            inputs.train_x,
            inputs.train_y,
            inputs.test_x,
            inputs.test_y,
            epochs=epochs,
            lr=lr,
            weight_decays=wds or DEFAULT_WEIGHT_DECAYS,
            val_fraction=val_fraction,
            batch_size=probe_batch_size,
            standardize=not no_standardize,
            seed=seed,
            device=o["device"],
        )
    except (ValueError, TypeError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"protocol: {res['protocol']}")
    click.echo(f"inputs: {inputs.described}")
    for s in res["sweep"]:
        click.echo(f"  weight decay {s['weight_decay']:g}: held-out top-1 {s['val_top1']:.2f} %")
    click.echo(
        f"top-1 {res['top1']:.2f} %  top-5 {res['top5']:.2f} %  (weight decay "
        f"{res['weight_decay']:g})"
    )
    finish(res, inputs, o["json_path"])


@eval_group.command("cluster")
@input_options
@click.option(
    "--k",
    "k",
    type=click.IntRange(min=1),
    default=None,
    help="Number of classes (default: number of label values).",
)
@click.option("--pca-dim", type=click.IntRange(min=1), default=None, help="PCA components.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--overcluster",
    type=click.FloatRange(0, min_open=True),
    default=1.0,
    show_default=True,
    help="Clusters per class.",
)
@click.option("--no-l2", is_flag=True, help="Do not L2-normalise (the protocol does).")
@click.option(
    "--center",
    is_flag=True,
    help="Centre the normalised rows on the train mean and normalise again (CL2N).",
)
@umap_options
@balanced_option
@init_option
def cluster(
    k: int | None,
    pca_dim: int | None,
    umap_dim: int | None,
    umap_neighbors: int,
    balanced: bool,
    init_centroids: Path | None,
    seeds: int,
    overcluster: float,
    no_l2: bool,
    center: bool,
    **o: Any,
) -> None:
    """The clustering benchmark (L2 → PCA → UMAP → k-means → Hungarian on train): ACC/NMI/AMI/ARI.

    With test features, clusters are fitted and matched on train and test is scored.
    """
    from selflabel.cluster import cluster_benchmark

    inputs = load_inputs(o)
    n_classes = k if k is not None else int(np.unique(np.asarray(inputs.train_y)).size)
    try:
        result = cluster_benchmark(
            inputs.train_x,
            inputs.train_y,
            inputs.test_x,
            inputs.test_y,
            k=n_classes,
            pca_dim=pca_dim,
            l2_normalize=not no_l2,
            center=center,
            umap_dim=umap_dim,
            umap_neighbors=umap_neighbors,
            balanced=balanced,
            overcluster=overcluster,
            progress=not o["quiet"],
            **kmeans_starts(init_centroids, seeds),
        )
    except (ValueError, TypeError, ImportError) as err:
        raise click.ClickException(str(err)) from err
    res = {"probe": "cluster", **result.to_dict()}
    click.echo(
        "protocol: clustering benchmark: "
        + ("" if no_l2 else "L2-normalise, ")
        + ("centre on the train mean, L2-normalise again, " if center else "")
        + (f"PCA to {pca_dim}, " if pca_dim else "no PCA, ")
        + (f"UMAP to {umap_dim} (n_neighbors {umap_neighbors}, one per seed), " if umap_dim else "")
        + f"k-means with {result.protocol.get('n_clusters')} clusters on all train rows, "
        + ("refined into equal-size clusters, " if balanced else "")
        + (f"one run from the centroids of {init_centroids}, " if init_centroids else "")
        + f"{len(result.per_seed)} seeds, clusters mapped to classes on train (Hungarian), "
        f"scored on {result.protocol.get('scored_on')}; mean ± std over seeds"
    )
    click.echo(f"inputs: {inputs.described}")
    click.echo(result.table())
    finish(res, inputs, o["json_path"])
