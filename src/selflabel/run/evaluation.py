"""What every run reports: the clustering benchmark of its features, its own cluster head, kNN,
and the same clustering benchmark on raw pixels (``baseline_kmeans_raw``): what a run adds.

Protocol (also written into ``metrics.json``):

* features: backbone output of un-augmented, normalised images (resized to ``eval.image_size``
  when set), model in eval mode (with ``eval.bn_recalibrate: N`` a copy of it whose BatchNorm
  statistics were recomputed on N training images in the evaluation's views, "precise BN");
  with test-time views (``eval.tta_sizes``, ``eval.tta_flip``) the mean of the L2-normalised
  features of every view, and the head's mean softmax over them (with ``eval.tta_scope: probes``
  only kNN and the linear probe use the views);
* clustering benchmark: L2-normalise (with ``eval.center: all`` also centre on the clustered
  images' mean and L2-normalise again), optional PCA, optional UMAP into ``eval.umap_dim``
  dimensions (one embedding per seed), k-means with ``k = eval.n_clusters`` (default:
  number of classes) over ``eval.seeds`` seeds, each the best (lowest k-means objective, no labels
  involved) of ``eval.kmeans_restarts`` runs (``eval.kmeans_init: prototypes``: one run started
  at the main head's prototypes), clusters mapped to classes by Hungarian matching,
  scored on the training images themselves (the clustering setting) — the mean over seeds is
  reported as ``acc``/``nmi``/``ami``/``ari``;
* head: the arg-max prototype of each image, scored the same way (greedy mapping when the head
  has more prototypes than classes);
* kNN: weighted kNN (cosine, k, T) from the train source to the test source when there is one,
  otherwise leave-one-out on the train source; with ``eval.center: knn`` or ``all`` the features
  are centred on the training images' mean first (CL2N);
* ``baseline_kmeans_raw``: the clustering benchmark on raw pixels scaled to [0, 1];
* with a labelled test source, the held-out figures ``test_acc``/``test_nmi``/``test_ami``/
  ``test_ari`` (the clustering benchmark run on the test images alone: fitted, matched and scored
  there), ``test_head_*`` (the trained head's arg-max on the test images, matched on them) and
  ``test_baseline_kmeans_raw`` (raw pixels of the test images): what a user reports when the
  training images may not be scored (e.g. the Fashion-MNIST test split).

The run's cluster labels (``labels.csv``, the galleries): the method's own clusters when its main
head has exactly ``k`` clusters (``labels_from: "head"``; e.g. SwAV with ``n_prototypes: [10]`` on a
10-class set), otherwise k-means with ``k`` clusters on the L2-normalised features (after UMAP with
``eval.umap_dim``, refined into equal-size clusters with ``eval.kmeans_balanced``;
``labels_from: "kmeans"``); with ``eval.kmeans_init: prototypes`` always k-means started at the
head's prototypes (``labels_from: "kmeans from the prototypes"``).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from selflabel.cluster import (
    KMeans,
    UmapEmbedding,
    balanced_kmeans,
    center_rows,
    cluster_benchmark,
    clustering_scores,
    l2_normalize_rows,
    unit_mean,
)
from selflabel.config import RunConfig
from selflabel.data import EvalTransform, ImageSource
from selflabel.evaluate import knn_accuracy, recalibrate_on_source
from selflabel.evaluate.views import TestViews, average_features, mean_probabilities
from selflabel.methods import Method
from selflabel.run.build import build_eval_views


@dataclass
class Predictions:
    """Features and head outputs of every image of a source, in index order."""

    features: np.ndarray  # (N, D) float32, what k-means clusters
    labels: np.ndarray  # (N,) int64, -1 when unknown
    prototype: np.ndarray  # (N,) int64 arg-max of the main head
    confidence: np.ndarray  # (N,) float32 softmax probability of that prototype
    #: (N, D) the kNN and linear probes' features when they differ (``eval.tta_scope: probes``)
    probe_features: np.ndarray | None = None

    @property
    def probes(self) -> np.ndarray:
        """The features the kNN and linear probes use."""
        return self.features if self.probe_features is None else self.probe_features


@dataclass
class RunMetrics:
    values: dict[str, Any] = field(default_factory=dict)
    clusters: np.ndarray | None = None  # k-means labels of the first seed on the train source
    cluster_confidence: np.ndarray | None = None


@torch.no_grad()
def predict(
    method: Method,
    source: ImageSource,
    device: torch.device,
    batch_size: int = 512,
    transform: EvalTransform | TestViews | None = None,
    *,
    views_for: Literal["all", "probes"] = "all",
) -> Predictions:
    """Run the method's backbone and head over every image of ``source`` (eval mode, no aug).

    ``transform``: the un-augmented view (default: native size, the source's normalisation), or
    test-time views, whose features and head probabilities are averaged over the views. With
    ``views_for="probes"`` (and several views) the features and the head come from the first view
    alone and the mean over the views goes to ``probe_features``.
    """
    views = transform if isinstance(transform, TestViews) else TestViews(
        [transform or EvalTransform(mean=source.mean, std=source.std)]
    )
    split = views_for == "probes" and len(views) > 1
    was_training = method.training
    method.eval()
    feats, probe_feats, labels, protos, confs = [], [], [], [], []
    try:
        for start in range(0, len(source), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(source)))
            _, images, y = source.get_batch(idx)
            xs = views.views(images.to(device))  # built once for the features and the head
            fs = [method.features(x) for x in xs]
            feats.append((fs[0].float() if split else average_features(fs)).cpu())
            if split:
                probe_feats.append(average_features(fs).cpu())
            conf, proto = mean_probabilities(method.cluster_scores, xs[:1] if split else xs).max(1)
            protos.append(proto.cpu())
            confs.append(conf.cpu())
            labels.append(y)
    finally:
        method.train(was_training)
    return Predictions(
        features=torch.cat(feats).numpy(),
        labels=torch.cat(labels).numpy().astype(np.int64),
        prototype=torch.cat(protos).numpy().astype(np.int64),
        confidence=torch.cat(confs).numpy().astype(np.float32),
        probe_features=torch.cat(probe_feats).numpy() if split else None,
    )


def recalibrated(
    method: Method,
    source: ImageSource,
    views: TestViews,
    n_images: int,
    *,
    device: torch.device,
    batch_size: int = 512,
    seed: int = 0,
) -> Method:
    """A copy of ``method`` whose BatchNorm statistics are recomputed
    (:func:`~selflabel.evaluate.recalibrate_on_source`) over ``n_images`` images of ``source``
    (a random subset drawn with ``seed``; all of them when it has fewer), each view of ``views``
    forwarded as its own batch through the method's head (so that a projection head's BatchNorm
    is reached too) or, without a head, its backbone."""
    net = copy.deepcopy(method)
    recalibrate_on_source(net, source, views, n_images, batch_size=batch_size, seed=seed,
                          device=device)
    return net


def raw_pixels(source: ImageSource, batch_size: int = 4096) -> np.ndarray:
    """All images of ``source`` flattened to float32 in [0, 1] (the raw-pixel baseline)."""
    chunks = []
    for start in range(0, len(source), batch_size):
        _, images, _ = source.get_batch(torch.arange(start, min(start + batch_size, len(source))))
        chunks.append(images.reshape(len(images), -1).float().div_(255.0).numpy())
    return np.concatenate(chunks)


def n_eval_clusters(cfg: RunConfig, source: ImageSource) -> int:
    if cfg.eval.n_clusters:
        return cfg.eval.n_clusters
    if source.num_classes:
        return int(source.num_classes)
    return int(cfg.model.n_prototypes[0])


def kmeans_start(cfg: RunConfig, method: Method, k: int) -> np.ndarray | None:
    """The main head's prototypes where k-means starts (``eval.kmeans_init: prototypes``), as
    ``(k, D)`` float32 unit rows in the features' space; ``None`` for the other starts.

    Raises ValueError, naming the fix, when the method has no such prototypes or the setting
    cannot use them; the trainer calls it before the first epoch."""
    e = cfg.eval
    if e.kmeans_init != "prototypes":
        return None
    if e.umap_dim or e.overcluster != 1:
        raise ValueError("eval.kmeans_init: prototypes starts k clusters at k prototypes in the "
                         "features' space: it cannot be combined with eval.umap_dim or "
                         "eval.overcluster != 1; drop one of them")
    centres = method.feature_centres()
    if centres is None or centres.shape[0] != k:
        have = "none in the features' space" if centres is None else f"{centres.shape[0]}"
        raise ValueError(
            f"eval.kmeans_init: prototypes starts k-means at the main head's prototypes, but "
            f"method {method.name!r} has {have} and the benchmark needs {k}, one per cluster; "
            "use a SwAV-style method with model.embedding_dim: 0 and model.n_prototypes[0] = k, or "
            "eval.kmeans_init: random"
        )
    return np.ascontiguousarray(centres.cpu().numpy(), dtype=np.float32)


def _restart_init(cfg: RunConfig) -> str:
    """Where random-restart k-means starts: ``eval.kmeans_init``, or ``random`` where the
    prototypes cannot be used (the raw-pixel baseline, which has none)."""
    return "random" if cfg.eval.kmeans_init == "prototypes" else cfg.eval.kmeans_init


def _benchmark(
    features: np.ndarray, labels: np.ndarray, cfg: RunConfig, k: int,
    start: np.ndarray | None = None,
) -> dict[str, Any]:
    """The clustering benchmark under ``cfg.eval``; from ``start`` (one run) when given, else
    ``eval.seeds`` seeds × best of ``eval.kmeans_restarts`` (``prototypes`` falls back to
    ``random``: the raw-pixel baseline has no prototypes)."""
    e = cfg.eval
    starts: dict[str, Any] = (
        {"seeds": 1, "n_init": 1, "init_centroids": start} if start is not None else
        {"seeds": e.seeds, "n_init": e.kmeans_restarts, "init": _restart_init(cfg)}
    )
    result = cluster_benchmark(
        features,
        labels,
        k=k,
        pca_dim=e.pca_dim,
        overcluster=e.overcluster,
        center=e.center == "all",
        umap_dim=e.umap_dim,
        umap_neighbors=e.umap_neighbors,
        balanced=e.kmeans_balanced,
        progress=False,
        **starts,
    )
    return dict(result.to_dict())


def evaluate_run(
    method: Method,
    data_train: ImageSource,
    data_test: ImageSource | None,
    cfg: RunConfig,
    device: torch.device,
    *,
    baseline: dict[str, Any] | None = None,
) -> RunMetrics:
    """All figures of a run (module docstring); ``baseline`` reuses an earlier raw result."""
    t0 = time.perf_counter()
    views = build_eval_views(cfg, data_train)
    if cfg.eval.bn_recalibrate:
        method = recalibrated(
            method, data_train, views, cfg.eval.bn_recalibrate, device=device,
            batch_size=cfg.eval.batch_size, seed=cfg.seed,
        )
    scope = cfg.eval.tta_scope
    k = n_eval_clusters(cfg, data_train)
    start = kmeans_start(cfg, method, k)
    pred = predict(method, data_train, device, cfg.eval.batch_size, views, views_for=scope)
    out = RunMetrics()
    values: dict[str, Any] = {
        "n_images": len(data_train), "k": k, "eval_views": len(views), "eval_views_for": scope,
        "eval_bn_recalibrate": min(cfg.eval.bn_recalibrate, len(data_train)),
    }
    labelled = data_train.labelled and bool((pred.labels >= 0).all())
    if labelled:
        bench = _benchmark(pred.features, pred.labels, cfg, k, start)
        values.update(_scores(bench, pred, ""))
        values["clustering_benchmark"] = bench
        test = None
        if data_test is not None and data_test.labelled:
            tf = build_eval_views(cfg, data_test)
            test = predict(method, data_test, device, cfg.eval.batch_size, tf, views_for=scope)
        baseline = _raw_baseline(baseline, data_train, pred, data_test, test, cfg, k)
        if data_test is not None and test is not None:
            test_bench = _benchmark(test.features, test.labels, cfg, k, start)
            values.update(_scores(test_bench, test, "test_"))
            values["test_baseline_kmeans_raw"] = baseline["test_acc"]
            values["test_protocol"] = (
                f"{len(test.labels)} test images ({data_test.name}): k-means fitted, matched and "
                "scored on them; head arg-max matched on them"
            )
            values["_test_predictions"] = test
        values.update(_knn(pred, test, cfg))
        values["baseline_kmeans_raw"] = baseline["acc"]
        values["baseline_kmeans_raw_nmi"] = baseline["nmi"]
        values["baseline_detail"] = baseline
    if method.n_clusters == k and start is None:
        out.clusters, out.cluster_confidence = pred.prototype, pred.confidence
        values["labels_from"] = "head"
    else:
        out.clusters, out.cluster_confidence = _kmeans_labels(
            pred.features, k, cfg.seed, cfg.eval.kmeans_restarts, center=cfg.eval.center == "all",
            umap=_umap_of(cfg), balanced=cfg.eval.kmeans_balanced, start=start,
            init=_restart_init(cfg),
        )
        values["labels_from"] = "kmeans" if start is None else "kmeans from the prototypes"
    values["prototypes_used"] = int(np.unique(pred.prototype).size)
    values["eval_seconds"] = round(time.perf_counter() - t0, 2)
    out.values = values
    out.values["_predictions"] = pred
    return out


def _scores(bench: dict[str, Any], pred: Predictions, prefix: str) -> dict[str, Any]:
    """The benchmark's mean figures, their std over seeds and the head's scores, as
    ``{prefix}acc`` …, ``{prefix}std``, ``{prefix}head_acc`` …"""
    out: dict[str, Any] = {f"{prefix}{m}": bench["mean"][m] for m in ("acc", "nmi", "ami", "ari")}
    out[f"{prefix}std"] = {m: bench["std"][m] for m in ("acc", "nmi", "ami", "ari")}
    head = clustering_scores(pred.labels, pred.prototype)
    out.update({f"{prefix}head_{m}": float(v) for m, v in head.items()})
    return out


def _raw_baseline(
    baseline: dict[str, Any] | None,
    data_train: ImageSource,
    pred: Predictions,
    data_test: ImageSource | None,
    test: Predictions | None,
    cfg: RunConfig,
    k: int,
) -> dict[str, Any]:
    """k-means on raw pixels of the training (and test) images, or ``baseline`` when it already
    holds them (it does not change during a run)."""
    if baseline is None:
        raw = _benchmark(raw_pixels(data_train), pred.labels, cfg, k)
        baseline = {"acc": raw["mean"]["acc"], "nmi": raw["mean"]["nmi"], "detail": raw}
    if data_test is not None and test is not None and "test_acc" not in baseline:
        raw_test = _benchmark(raw_pixels(data_test), test.labels, cfg, k)
        baseline = {**baseline, "test_acc": raw_test["mean"]["acc"]}
    return baseline


def _knn(pred: Predictions, test: Predictions | None, cfg: RunConfig) -> dict[str, Any]:
    k, t = cfg.eval.knn_k, cfg.eval.knn_temperature
    center = cfg.eval.center != "none"
    kind = "cosine of centred features (train mean)" if center else "cosine"
    if test is not None:
        res = knn_accuracy(
            pred.probes, pred.labels, test.probes, test.labels, k=k, temperature=t, center=center
        )
        protocol = f"weighted kNN k={k} T={t}, {kind}, train -> test ({len(test.labels)} images)"
    else:
        res = knn_accuracy(
            pred.probes,
            pred.labels,
            pred.probes,
            pred.labels,
            k=k,
            temperature=t,
            exclude_self=True,
            center=center,
        )
        protocol = f"weighted kNN k={k} T={t}, {kind}, leave-one-out on the training images"
    return {"knn": float(res["top1"]) / 100.0, "knn_protocol": protocol}


def _umap_of(cfg: RunConfig) -> UmapEmbedding | None:
    e = cfg.eval
    return UmapEmbedding(e.umap_dim, e.umap_neighbors, seed=cfg.seed) if e.umap_dim else None


def _kmeans_labels(
    features: np.ndarray,
    k: int,
    seed: int,
    restarts: int = 1,
    *,
    center: bool = False,
    umap: UmapEmbedding | None = None,
    balanced: bool = False,
    start: np.ndarray | None = None,
    init: str = "random",
) -> tuple[np.ndarray, np.ndarray]:
    """Final cluster labels of every image (k-means on L2-normalised features, centred on their
    mean and normalised again when ``center``, embedded by ``umap`` when given; the lowest
    objective of ``restarts`` runs from ``init`` starts, or one run from ``start`` when given,
    e.g. the head's prototypes; refined into equal-size clusters when ``balanced``) and a
    confidence: a softmax at temperature 0.1 over the
    cosine to the centroids, or with ``umap`` over the negative squared distances to them in units
    of the mean squared distance of the points to their own centroid."""
    if center:
        mean = unit_mean(features)
        x = center_rows(features, mean)
        start = None if start is None else center_rows(start, mean)
    else:
        x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        start = None if start is None else l2_normalize_rows(start)
    x = x.astype(np.float32) if umap is None else umap.fit(x.astype(np.float32)).embedding_
    if start is None:
        km = KMeans(k, seed=seed, n_init=restarts, init=init).fit(x)
    else:
        km = KMeans(k, seed=seed).fit(x, init_centroids=start)
    centroids, balanced_labels = km.centroids_, None
    if balanced:
        refined = balanced_kmeans(x, km.centroids_)
        centroids, balanced_labels = refined.centroids, refined.labels
    if umap is None:
        sims = x @ centroids.T
    else:
        d2 = ((x[:, None, :] - centroids[None]) ** 2).sum(-1)
        sims = -d2 / max(float(d2.min(1).mean()), 1e-12)
    logits = (sims - sims.max(1, keepdims=True)) / 0.1
    probs = np.exp(logits)
    probs /= probs.sum(1, keepdims=True)
    # k-means' own assignment (nearest centroid), as the clustering benchmark scores it
    labels = km.labels_ if balanced_labels is None else balanced_labels
    # the confidence of each image's own cluster (not always the largest one: the centroids'
    # norms differ, and under ``balanced`` the assignment is constrained)
    confidence = np.take_along_axis(probs, labels[:, None], 1)[:, 0]
    return labels.astype(np.int64), confidence.astype(np.float32)
