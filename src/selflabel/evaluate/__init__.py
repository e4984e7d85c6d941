"""Evaluation probes on frozen features: extraction, weighted kNN and the linear probe.

Each probe returns a plain ``dict`` that includes a ``"protocol"`` string saying exactly what was
measured (see ``docs/evaluation.md``)::

    from selflabel.evaluate import extract_features, knn_accuracy, linear_probe

    train = extract_features(model, train_source, transform=EvalTransform(...))
    test = extract_features(model, test_source, transform=EvalTransform(...))
    knn = knn_accuracy(train.features, train.labels, test.features, test.labels)
    lin = linear_probe(train.features, train.labels, test.features, test.labels)
    print(knn["protocol"], knn["results"], lin["protocol"], lin["top1"])

The clustering benchmark itself lives in :mod:`selflabel.cluster`.
"""

from selflabel.evaluate.batchnorm import (
    batchnorm_layers,
    evaluation_forward,
    recalibrate_batchnorm,
    recalibrate_on_source,
    view_batches,
)
from selflabel.evaluate.features import ExtractedFeatures, extract_features
from selflabel.evaluate.io import labels_path_for, load_array, load_labels_for
from selflabel.evaluate.knn import (
    DEFAULT_KNN_SETTINGS,
    KNNNeighbors,
    KNNPrediction,
    knn_accuracy,
    knn_classify,
    knn_neighbors,
    knn_protocol,
    knn_vote,
)
from selflabel.evaluate.linear import DEFAULT_WEIGHT_DECAYS, linear_probe, linear_protocol

__all__ = [
    "DEFAULT_KNN_SETTINGS",
    "DEFAULT_WEIGHT_DECAYS",
    "ExtractedFeatures",
    "KNNNeighbors",
    "KNNPrediction",
    "batchnorm_layers",
    "evaluation_forward",
    "extract_features",
    "knn_accuracy",
    "knn_classify",
    "knn_neighbors",
    "knn_protocol",
    "knn_vote",
    "labels_path_for",
    "linear_probe",
    "linear_protocol",
    "load_array",
    "load_labels_for",
    "recalibrate_batchnorm",
    "recalibrate_on_source",
    "view_batches",
]
