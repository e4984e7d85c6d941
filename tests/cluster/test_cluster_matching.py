"""Matching and scores: brute force, scikit-learn agreement, relabelling, over-clustering rule."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    normalized_mutual_info_score,
)

from selflabel.cluster import (
    apply_mapping,
    cluster_accuracy,
    clustering_scores,
    contingency,
    mapped_accuracy,
    match_clusters,
)


def brute_force_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Best accuracy over all injective cluster → class maps (clusters ≤ classes)."""
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    best = 0
    for perm in itertools.permutations(classes.tolist(), len(clusters)):
        mapping = dict(zip(clusters.tolist(), perm, strict=True))
        best = max(best, sum(mapping[p] == t for t, p in zip(y_true, y_pred, strict=True)))
    return best / len(y_true)


labels = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=40)


@settings(max_examples=40, deadline=None)
@given(labels)
def test_cluster_accuracy_equals_brute_force(pairs: list[tuple[int, int]]) -> None:
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    if len(np.unique(y_pred)) > len(np.unique(y_true)):
        y_true, y_pred = y_pred, y_true  # brute force covers clusters ≤ classes
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(brute_force_accuracy(y_true, y_pred))


@settings(max_examples=40, deadline=None)
@given(labels, st.integers(0, 2**31 - 1))
def test_scores_invariant_to_relabelling(pairs: list[tuple[int, int]], seed: int) -> None:
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    rng = np.random.default_rng(seed)
    new_true = rng.choice(np.arange(-50, 50), size=5, replace=False)  # arbitrary ints, injective
    new_pred = rng.choice(np.arange(1000, 2000), size=5, replace=False)
    a = clustering_scores(y_true, y_pred)
    b = clustering_scores(new_true[y_true], new_pred[y_pred])
    for name in a:
        assert a[name] == pytest.approx(b[name], abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(labels)
def test_scores_equal_scikit_learn(pairs: list[tuple[int, int]]) -> None:
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    s = clustering_scores(y_true, y_pred)
    assert s["nmi"] == pytest.approx(normalized_mutual_info_score(y_true, y_pred))
    assert s["ami"] == pytest.approx(adjusted_mutual_info_score(y_true, y_pred))
    assert s["ari"] == pytest.approx(adjusted_rand_score(y_true, y_pred))
    assert 0.0 < s["acc"] <= 1.0


@settings(max_examples=40, deadline=None)
@given(labels)
def test_overclustering_accuracy_at_least_one_to_one_and_at_most_majority(
    pairs: list[tuple[int, int]]
) -> None:
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    table = contingency(y_true, y_pred).counts
    majority = table.max(axis=0).sum() / table.sum()
    acc = cluster_accuracy(y_true, y_pred)
    assert acc <= majority + 1e-12
    mapping = match_clusters(y_true, y_pred)
    assert set(mapping) == set(np.unique(y_pred).tolist())
    if len(mapping) >= len(np.unique(y_true)):  # every class gets a cluster
        assert set(mapping.values()) == set(np.unique(y_true).tolist())


def test_contingency_counts() -> None:
    c = contingency([3, 3, 7, 7, 7], [1, 2, 2, 2, 1])
    assert c.classes.tolist() == [3, 7]
    assert c.clusters.tolist() == [1, 2]
    assert c.counts.tolist() == [[1, 1], [1, 2]]


def test_overclustering_rule_hand_made() -> None:
    # class 0: clusters a=10 (4 samples) and b=11 (3); class 1: cluster c=12 (2) and 1 sample in b.
    y_true = np.array([0] * 4 + [0] * 3 + [1] * 2 + [1])
    y_pred = np.array([10] * 4 + [11] * 3 + [12] * 2 + [11])
    # Hungarian: class 0 ↔ 10, class 1 ↔ 12; the extra cluster 11 → its majority class 0.
    assert match_clusters(y_true, y_pred) == {10: 0, 11: 0, 12: 1}
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(9 / 10)


def test_overclustering_is_not_plain_majority_vote() -> None:
    # Every cluster is majority class 0, so a majority vote never predicts class 1 (9/12).
    # The rule gives class 1 its best cluster (6) by Hungarian first: 8/12.
    y_true = np.array([0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0])  # clusters 5 | 6 | 7
    y_pred = np.array([5] * 4 + [6] * 5 + [7] * 3)
    mapping = match_clusters(y_true, y_pred)
    assert mapping == {5: 0, 6: 1, 7: 0}
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(8 / 12)
    table = contingency(y_true, y_pred).counts
    assert table.max(axis=0).sum() / table.sum() == pytest.approx(9 / 12)


def test_fewer_clusters_than_classes() -> None:
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 0, 1, 1])
    assert match_clusters(y_true, y_pred) in ({0: 0, 1: 2}, {0: 1, 1: 2})
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(4 / 6)


def test_unseen_clusters_count_as_errors() -> None:
    mapping = match_clusters([0, 0, 1], [4, 4, 9])
    assert apply_mapping([4, 9, 77], mapping, unseen=-5).tolist() == [0, 1, -5]
    assert mapped_accuracy([0, 1, -1], [4, 9, 77], mapping) == pytest.approx(2 / 3)
    scores = clustering_scores([0, 1, -1], [4, 9, 77], mapping=mapping)
    assert scores["acc"] == pytest.approx(2 / 3)


def test_large_case_is_vectorised_and_exact() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 300, size=200_000)
    perm = rng.permutation(300) + 1000
    y_pred = perm[y_true]
    noisy = y_pred.copy()
    flip = rng.random(y_pred.shape[0]) < 0.25
    noisy[flip] = rng.integers(1000, 1300, size=int(flip.sum()))
    assert cluster_accuracy(y_true, y_pred) == 1.0
    assert cluster_accuracy(y_true, noisy) == pytest.approx(float(np.mean(noisy == y_pred)),
                                                            abs=2e-3)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "error"),
    [
        ([0, 1], [0], ValueError),
        ([], [], ValueError),
        ([[0, 1]], [[0, 1]], ValueError),
        ([0.5, 1.0], [0, 1], ValueError),
        (["a", "b"], [0, 1], TypeError),
    ],
)
def test_bad_labels_raise(y_true: object, y_pred: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        clustering_scores(y_true, y_pred)  # type: ignore[arg-type]


def test_overclustering_accuracy_is_the_covering_optimum_whatever_the_label_order() -> None:
    # 3 clusters, 2 classes; several class-covering matchings tie on the counts alone. The best
    # mapping covering both classes sends clusters 0 and 4 to class 0 and 2 to class 1 (5 of 6).
    # A Hungarian step on the counts scored 4 of 6 under some orders of the ids.
    y_true = np.array([0, 0, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 4, 4, 2, 4])
    for true_ids in itertools.permutations([7, -3]):
        for pred_ids in itertools.permutations([1500, 1200, 1900]):
            t = np.array(true_ids)[y_true]
            p = np.array(pred_ids)[np.searchsorted([0, 2, 4], y_pred)]
            assert cluster_accuracy(t, p) == pytest.approx(5 / 6), (true_ids, pred_ids)
