"""Centred kNN (``center=True``, CL2N): equal to plain kNN on hand-centred features, centred on
the gallery alone, chunk- and memmap-independent, and able to change the answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selflabel.evaluate.knn import gallery_mean, knn_accuracy, knn_classify, knn_neighbors


def _cl2n(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    c = u - mean
    return c / np.linalg.norm(c, axis=1, keepdims=True)


@settings(max_examples=30, deadline=None)
@given(
    train=arrays(np.float32, (24, 5), elements=st.floats(0.0625, 3.0, width=32)),
    test=arrays(np.float32, (7, 5), elements=st.floats(0.0625, 3.0, width=32)),
)
def test_centred_knn_is_plain_knn_on_hand_centred_features(
    train: np.ndarray, test: np.ndarray
) -> None:
    mean = (train / np.linalg.norm(train, axis=1, keepdims=True)).mean(0)
    for x in (train, test):  # rows on the mean have no direction once centred
        assume(np.linalg.norm(x / np.linalg.norm(x, axis=1, keepdims=True) - mean, axis=1).min()
               > 1e-2)
    np.testing.assert_allclose(gallery_mean(train).numpy(), mean, rtol=1e-5, atol=1e-6)
    got = knn_neighbors(train, test, k=4, center=True, chunk_size=5, batch_size=3)
    c_train, c_test = _cl2n(train, mean), _cl2n(test, mean)
    sim = c_test @ c_train.T
    # the cosines of the centred rows, in descending order (ties may swap indices)
    np.testing.assert_allclose(
        got.similarities.numpy(), -np.sort(-sim, axis=1)[:, :4], rtol=1e-4, atol=1e-4
    )
    picked = np.take_along_axis(sim, got.indices.numpy(), axis=1)
    np.testing.assert_allclose(picked, got.similarities.numpy(), rtol=1e-4, atol=1e-4)


def test_the_mean_comes_from_the_gallery_alone() -> None:
    rng = np.random.default_rng(0)
    train = rng.uniform(0, 1, size=(80, 6)).astype(np.float32)
    test = rng.uniform(0, 1, size=(30, 6)).astype(np.float32)
    both = knn_neighbors(train, test, k=5, center=True)
    for i in (0, 17, 29):  # a query alone has the same neighbours as in its batch
        alone = knn_neighbors(train, test[i : i + 1], k=5, center=True)
        assert torch.equal(alone.indices[0], both.indices[i])


def test_centring_is_chunk_and_memmap_independent(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    train = rng.uniform(0, 1, size=(200, 8)).astype(np.float32)
    labels = rng.integers(0, 3, size=200)
    test = rng.uniform(0, 1, size=(20, 8)).astype(np.float32)
    np.save(tmp_path / "train.npy", train)
    mm = np.load(tmp_path / "train.npy", mmap_mode="r")
    a = knn_classify(mm, labels, test, k=10, chunk_size=64, center=True)
    b = knn_classify(torch.from_numpy(train), labels, test, k=10, center=True)
    torch.testing.assert_close(a.scores, b.scores)


def test_centring_removes_the_shared_direction_of_positive_features() -> None:
    # two classes of all-positive rows: a large shared part plus a class direction
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 50)
    x = np.full((100, 3), 4.0, np.float32)
    x[np.arange(100), y] += 2.0
    x += rng.uniform(0, 0.3, size=x.shape).astype(np.float32)
    q = x[[0, 99]]  # one query of each class
    plain = knn_neighbors(x, q, k=100)
    centred = knn_neighbors(x, q, k=100, center=True)
    assert plain.similarities.min() > 0.8  # every plain cosine is high, across classes too
    assert centred.similarities.min() < -0.5  # centred: the other class points away
    for i, cls in enumerate((0, 1)):
        near = y[centred.indices[i, :50].numpy()]
        assert (near == cls).all()
    res = knn_accuracy(x, y, x, y, k=5, temperature=0.1, exclude_self=True, center=True)
    assert res["top1"] == 100.0
    assert "centred on the train mean" in res["protocol"]
    assert "centred" in res["results"][0]["protocol"]
    plain_res = knn_accuracy(x, y, x, y, k=5, temperature=0.1, exclude_self=True)
    assert "centred" not in plain_res["protocol"]
