"""``selflabel cluster-eval``: the clustering benchmark of saved features.

Example::

    selflabel cluster-eval --train-features train.npy --train-labels train_y.npy \\
        --val-features val.npy --val-labels val_y.npy --k 1000 --pca-dim 128 --seeds 5 \\
        --json cluster.json

Features: ``.npy`` (memory-mapped, best for big arrays), ``.npz`` or ``.pt``; name one array of a
container as ``file.npz:KEY``. See ``docs/clustering.md`` for the protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["balanced_option", "cluster_eval", "init_option", "kmeans_starts", "umap_options"]

F = TypeVar("F", bound=Callable[..., Any])

_GPU: dict[str, bool | str] = {"auto": "auto", "yes": True, "no": False}


def umap_options(f: F) -> F:
    """``--umap-dim`` and ``--umap-neighbors``: the clustering benchmark's UMAP step."""
    f = click.option("--umap-neighbors", type=click.IntRange(min=2), default=30,
                     show_default=True, help="UMAP's n_neighbors (min_dist is 0).")(f)
    return click.option("--umap-dim", type=click.IntRange(min=1), default=None,
                        help="Embed the rows with UMAP into this many dimensions before k-means, "
                             "one embedding per seed (default: no UMAP).")(f)


def balanced_option(f: F) -> F:
    """``--balanced``: the clustering benchmark's equal-size refinement of k-means."""
    return click.option("--balanced", is_flag=True,
                        help="Refine every k-means solution into equal-size clusters (SeLa's "
                             "equipartition as the assignment step; for balanced classes).")(f)


def init_option(f: F) -> F:
    """``--init-centroids``: one k-means run from given centroids (e.g. a run's prototypes)."""
    return click.option(
        "--init-centroids", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="Start one k-means run at these (clusters x dim) centroids in the features' space, "
             "e.g. the OUT.prototypes.npy that `selflabel extract` writes for SwAV-style runs "
             "(implies --seeds 1 and one k-means run).")(f)


def kmeans_starts(init_centroids: Path | None, seeds: int, n_init: int = 1) -> dict[str, Any]:
    """The benchmark's ``seeds``/``n_init``/``init_centroids`` for the command's options: with
    ``--init-centroids`` one run, unless ``--seeds`` or ``--n-init`` asked for more (an error)."""
    if init_centroids is None:
        return {"seeds": seeds, "n_init": n_init}
    from selflabel.cluster import load_array

    ctx = click.get_current_context()
    explicit = {name for name in ("seeds", "n_init")
                if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    return {"seeds": seeds if "seeds" in explicit else 1,
            "n_init": n_init if "n_init" in explicit else 1,
            "init_centroids": load_array(init_centroids, role="features", mmap_mode=None)}


def _positive(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise click.BadParameter("must be positive", ctx=ctx, param=param)
    return value


@click.command("cluster-eval")
@click.option("--train-features", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Training features (n, d): .npy, .npz or .pt (file.npz:KEY for one array).")
@click.option("--train-labels", type=click.Path(dir_okay=False, path_type=Path),
              help="Training class labels (n,). Required (clusters are mapped to classes with "
                   "them).")
@click.option("--val-features", type=click.Path(dir_okay=False, path_type=Path),
              help="Validation features, scored with the train mapping (default: score train).")
@click.option("--val-labels", type=click.Path(dir_okay=False, path_type=Path),
              help="Validation class labels.")
@click.option("--k", "k", type=click.IntRange(min=1), required=True, help="Number of classes.")
@click.option("--overcluster", type=float, default=1.0, show_default=True, callback=_positive,
              help="Clusters per class, e.g. 1.5.")
@click.option("--pca-dim", type=click.IntRange(min=1), default=None,
              help="PCA components (default: no PCA).")
@click.option("--no-l2", is_flag=True, help="Do not L2-normalise features (the protocol does).")
@click.option("--whiten", is_flag=True, help="Whiten the PCA projections.")
@umap_options
@balanced_option
@init_option
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Number of k-means seeds (0..seeds-1).")
@click.option("--n-init", type=click.IntRange(min=1), default=1, show_default=True,
              help="k-means restarts per seed.")
@click.option("--n-iter", type=click.IntRange(min=1), default=25, show_default=True,
              help="k-means iterations.")
@click.option("--max-points-per-centroid", type=click.IntRange(min=1), default=None,
              help="Subsample k-means training like faiss does by default (default: all points).")
@click.option("--spherical", is_flag=True, help="Spherical k-means.")
@click.option("--gpu", type=click.Choice(["auto", "yes", "no"]), default="auto",
              show_default=True, help="Use faiss GPUs.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the result (protocol, per-seed, mean ± std, timings) as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def cluster_eval(
    train_features: Path,
    train_labels: Path | None,
    val_features: Path | None,
    val_labels: Path | None,
    k: int,
    overcluster: float,
    pca_dim: int | None,
    no_l2: bool,
    whiten: bool,
    umap_dim: int | None,
    umap_neighbors: int,
    balanced: bool,
    init_centroids: Path | None,
    seeds: int,
    n_init: int,
    n_iter: int,
    max_points_per_centroid: int | None,
    spherical: bool,
    gpu: str,
    json_path: Path | None,
    quiet: bool,
) -> None:
    """Cluster saved features (L2 → PCA → UMAP → k-means) and score them: ACC, NMI, AMI, ARI."""
    from selflabel.cluster import cluster_benchmark, load_array

    if train_labels is None:
        raise click.UsageError("--train-labels is required: clusters are mapped to classes "
                               "with the training labels")
    if (val_features is None) != (val_labels is None):
        raise click.UsageError("pass --val-features and --val-labels together (or neither)")
    try:
        x_tr = load_array(train_features, role="features")
        y_tr = load_array(train_labels, role="labels", mmap_mode=None)
        x_va = load_array(val_features, role="features") if val_features is not None else None
        y_va = (load_array(val_labels, role="labels", mmap_mode=None)
                if val_labels is not None else None)
        result = cluster_benchmark(
            x_tr, y_tr, x_va, y_va, k=k, pca_dim=pca_dim, l2_normalize=not no_l2,
            whiten=whiten, umap_dim=umap_dim, umap_neighbors=umap_neighbors, balanced=balanced,
            overcluster=overcluster, n_iter=n_iter, **kmeans_starts(init_centroids, seeds, n_init),
            max_points_per_centroid=max_points_per_centroid, spherical=spherical,
            use_gpu=_GPU[gpu], progress=not quiet,
        )
    except (ValueError, TypeError, ImportError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(result.table())
    if json_path is not None:
        result.to_json(json_path)
        click.echo(f"wrote {json_path}")
