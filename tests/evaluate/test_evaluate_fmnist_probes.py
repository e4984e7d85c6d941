"""Full Fashion-MNIST (random-projection features): both probes at scale (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from selflabel.evaluate import knn_accuracy, linear_probe


@pytest.mark.slow
def test_fashion_mnist_random_features_linear_at_least_knn() -> None:
    from selflabel.data.idx import find_idx_file, read_idx
    from selflabel.data.registry import find_fashion_mnist

    root = find_fashion_mnist()
    if root is None:
        pytest.skip("Fashion-MNIST IDX files not installed")

    def load(stem: str) -> np.ndarray:
        path = find_idx_file(root, stem)
        assert path is not None
        return read_idx(path)

    proj = np.random.default_rng(0).normal(size=(784, 512)).astype(np.float32) / 28
    xtr = np.maximum(load("train-images-idx3-ubyte").reshape(-1, 784) / 255.0 @ proj, 0)
    xte = np.maximum(load("t10k-images-idx3-ubyte").reshape(-1, 784) / 255.0 @ proj, 0)
    ytr = load("train-labels-idx1-ubyte").astype(np.int64)
    yte = load("t10k-labels-idx1-ubyte").astype(np.int64)
    knn = knn_accuracy(xtr.astype(np.float32), ytr, xte.astype(np.float32), yte)
    lin = linear_probe(xtr.astype(np.float32), ytr, xte.astype(np.float32), yte)
    best_knn = max(r["top1"] for r in knn["results"])
    assert best_knn > 80.0
    assert lin["top1"] >= best_knn - 1.0
