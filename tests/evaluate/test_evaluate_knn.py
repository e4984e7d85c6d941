"""Weighted kNN: hand-computed votes, chunking, temperature/k effects, leave-one-out, validation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from selflabel.evaluate.knn import (
    DEFAULT_KNN_SETTINGS,
    knn_accuracy,
    knn_classify,
    knn_neighbors,
)


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


# train points on the unit circle (scaled, to check the L2 normalisation) and their classes
TRAIN = np.array([[2.0, 0.0], [1.2, 1.6], [0.0, 3.0], [-1.0, 0.0]])  # cos with q: .8, .96, .6, -.8
LABELS = np.array([0, 1, 1, 2])
QUERY = np.array([[0.8, 0.6]])


def test_knn_exact_weighted_vote_on_2d_points() -> None:
    pred = knn_classify(TRAIN, LABELS, QUERY, k=3, temperature=1.0)
    s = pred.scores[0].double()
    # neighbours b (0.96, class 1), a (0.80, class 0), c (0.60, class 1); class 2 gets no vote
    assert pred.predictions.tolist() == [1]
    expected_ratio = math.exp(0.8) / (math.exp(0.96) + math.exp(0.6))
    assert float(s[0] / s[1]) == pytest.approx(expected_ratio, rel=1e-5)
    assert float(s[2]) == 0.0
    # scores are exp(sim/T) up to the per-row factor exp(max_sim/T)
    assert float(s[1]) == pytest.approx((math.exp(0.96) + math.exp(0.6)) / math.exp(0.96), 1e-5)


def test_knn_neighbours_sorted_with_cosine_similarities() -> None:
    nb = knn_neighbors(TRAIN, QUERY, k=4)
    assert nb.indices.tolist() == [[1, 0, 2, 3]]
    assert nb.similarities[0].tolist() == pytest.approx([0.96, 0.8, 0.6, -0.8], abs=1e-6)


def test_knn_temperature_flips_the_vote() -> None:
    # one very similar class-0 point against two moderately similar class-1 points
    train = np.array([_unit(math.degrees(math.acos(0.99))), _unit(45.57), _unit(-45.57)])
    labels = np.array([0, 1, 1])
    q = np.array([[1.0, 0.0]])
    hot = knn_classify(train, labels, q, k=3, temperature=1.0)  # e^.99 < 2 e^.7
    cold = knn_classify(train, labels, q, k=3, temperature=0.07)  # e^(.99/.07) > 2 e^(.7/.07)
    assert hot.predictions.tolist() == [1]
    assert cold.predictions.tolist() == [0]
    assert knn_classify(train, labels, q, k=1, temperature=1.0).predictions.tolist() == [0]


def test_knn_k_changes_the_vote() -> None:
    train = np.array([_unit(0), _unit(10), _unit(20), _unit(25)])
    labels = np.array([0, 1, 1, 1])
    q = np.array([[1.0, 0.0]])
    assert knn_classify(train, labels, q, k=1, temperature=0.5).predictions.tolist() == [0]
    assert knn_classify(train, labels, q, k=4, temperature=0.5).predictions.tolist() == [1]


def _brute(train: np.ndarray, test: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    a = train / np.linalg.norm(train, axis=1, keepdims=True)
    b = test / np.linalg.norm(test, axis=1, keepdims=True)
    sim = b @ a.T
    idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sim, idx, 1), idx


def test_chunked_equals_unchunked_and_brute_force() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 16)).astype(np.float32)
    test = rng.normal(size=(47, 16)).astype(np.float32)
    labels = rng.integers(0, 5, size=300)
    big = knn_neighbors(train, test, k=20, batch_size=1024, chunk_size=10_000)
    small = knn_neighbors(train, test, k=20, batch_size=3, chunk_size=7)
    assert torch.equal(big.indices, small.indices)
    torch.testing.assert_close(big.similarities, small.similarities)
    sim, idx = _brute(train, test, 20)
    assert np.array_equal(big.indices.numpy(), idx)
    np.testing.assert_allclose(big.similarities.numpy(), sim, rtol=1e-5, atol=1e-6)
    p1 = knn_classify(train, labels, test, k=20, chunk_size=7, batch_size=5)
    p2 = knn_classify(train, labels, test, k=20)
    torch.testing.assert_close(p1.scores, p2.scores)


def test_memmapped_float16_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    train16 = rng.normal(size=(200, 8)).astype(np.float16)
    np.save(tmp_path / "train.npy", train16)
    mm = np.load(tmp_path / "train.npy", mmap_mode="r")
    test = rng.normal(size=(20, 8)).astype(np.float32)
    labels = rng.integers(0, 3, size=200)
    a = knn_classify(mm, labels, test, k=10, chunk_size=64)
    b = knn_classify(train16.astype(np.float32), labels, torch.from_numpy(test), k=10)
    torch.testing.assert_close(a.scores, b.scores)


def test_leave_one_out_excludes_self() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    nb = knn_neighbors(x, x, k=5, chunk_size=16, batch_size=7, exclude_self=True)
    assert not (nb.indices == torch.arange(60)[:, None]).any()
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    np.fill_diagonal(sim, -np.inf)
    np.testing.assert_array_equal(nb.indices.numpy(), np.argsort(-sim, axis=1)[:, :5])
    with_self = knn_neighbors(x, x, k=1)
    assert with_self.indices[:, 0].tolist() == list(range(60))


def test_knn_accuracy_default_settings_and_protocol() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 32)) * 3
    y_train = rng.integers(0, 4, size=400)
    y_test = rng.integers(0, 4, size=100)
    train = centres[y_train] + rng.normal(size=(400, 32))
    test = centres[y_test] + rng.normal(size=(100, 32))
    res = knn_accuracy(train, y_train, test, y_test)
    got = [(r["k"], r["temperature"]) for r in res["results"]]
    assert got == list(DEFAULT_KNN_SETTINGS) == [(20, 0.07), (200, 0.07), (50, 0.1)]
    for r in res["results"]:
        assert r["top1"] > 90.0
        assert r["top5"] == 100.0  # 4 classes: the top-5 holds them all
        assert "cosine" in r["protocol"]
        assert "exp(sim/T)" in r["protocol"]
    assert res["top1"] == res["results"][0]["top1"]
    assert "L2-normalised" in res["protocol"]
    assert "train -> test" in res["protocol"]
    assert (res["n_train"], res["n_test"], res["dim"], res["n_classes"]) == (400, 100, 32, 4)
    single = knn_accuracy(train, y_train, test, y_test, k=5, temperature=0.5)
    assert [(r["k"], r["temperature"]) for r in single["results"]] == [(5, 0.5)]


def test_knn_accuracy_random_labels_near_chance() -> None:
    rng = np.random.default_rng(4)
    train, test = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
    res = knn_accuracy(
        train, rng.integers(0, 10, 500), test, rng.integers(0, 10, 500), settings=[(20, 0.07)]
    )
    assert 3.0 < res["top1"] < 20.0
    assert res["top5"] > res["top1"]


def test_knn_input_validation() -> None:
    x, y = np.eye(3), np.array([0, 1, 2])
    with pytest.raises(ValueError, match="larger than the number of train"):
        knn_classify(x, y, x, k=4)
    with pytest.raises(ValueError, match="dimensions"):
        knn_classify(x, y, np.ones((2, 5)), k=1)
    with pytest.raises(ValueError, match=">= 0"):
        knn_classify(x, np.array([0, -1, 2]), x, k=1)
    with pytest.raises(ValueError, match="temperature"):
        knn_classify(x, y, x, k=1, temperature=0.0)
    with pytest.raises(ValueError, match="2-D"):
        knn_classify(np.ones(3), y, x, k=1)
    with pytest.raises(ValueError, match="train labels"):
        knn_classify(x, np.array([0, 1]), x, k=1)
    with pytest.raises(ValueError, match="either settings"):
        knn_accuracy(x, y, x, y, settings=[(1, 0.1)], k=1)
    with pytest.raises(TypeError, match="floats"):
        knn_classify(np.eye(3, dtype=np.int64), y, x, k=1)
