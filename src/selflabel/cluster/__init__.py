"""Clustering and its metrics: PCA, k-means (faiss), Hungarian matching, ACC/NMI/AMI/ARI, and the
clustering benchmark of learned features.

Typical use at the end of a training run::

    from selflabel.cluster import cluster_benchmark, clustering_scores

    # features: (n, d) arrays (or memory-mapped .npy paths), labels: (n,) integers
    result = cluster_benchmark(train_feats, train_y, val_feats, val_y,
                               k=1000, pca_dim=128, seeds=5, overcluster=1.0)
    print(result.table())            # ACC / NMI / AMI / ARI, mean ± std over seeds
    log(result.to_dict())            # protocol, per-seed scores, seconds per stage

    # or just score cluster assignments you already have (e.g. self-labels):
    scores = clustering_scores(y_true, self_labels)   # {"acc", "nmi", "ami", "ari"}

The protocol is described in ``docs/clustering.md``. This layer imports numpy, scipy,
scikit-learn and faiss (torch only to read ``.pt`` files; umap-learn only for the UMAP
step).
"""

from selflabel.cluster.balanced import BalancedKMeansResult, balanced_kmeans, nearest_centroid
from selflabel.cluster.benchmark import cluster_benchmark, n_clusters_for
from selflabel.cluster.io import iter_chunks, load_array
from selflabel.cluster.kmeans import KMeans, gpu_count
from selflabel.cluster.manifold import UmapEmbedding, require_umap
from selflabel.cluster.matching import (
    Contingency,
    apply_mapping,
    cluster_accuracy,
    contingency,
    mapped_accuracy,
    match_clusters,
)
from selflabel.cluster.pca import StreamingPCA, center_rows, l2_normalize_rows, unit_mean
from selflabel.cluster.result import ClusterBenchmarkResult
from selflabel.cluster.scores import METRICS, clustering_scores

__all__ = [
    "METRICS",
    "BalancedKMeansResult",
    "ClusterBenchmarkResult",
    "Contingency",
    "KMeans",
    "StreamingPCA",
    "UmapEmbedding",
    "apply_mapping",
    "balanced_kmeans",
    "center_rows",
    "cluster_accuracy",
    "cluster_benchmark",
    "clustering_scores",
    "contingency",
    "gpu_count",
    "iter_chunks",
    "l2_normalize_rows",
    "load_array",
    "mapped_accuracy",
    "match_clusters",
    "n_clusters_for",
    "nearest_centroid",
    "require_umap",
    "unit_mean",
]
