"""Confusion matrix of clusters vs ground truth: hand-computed cases and agreement with acc."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selflabel.cluster import cluster_accuracy
from selflabel.report.confusion import cluster_confusion, plot_confusion


def test_hand_made_case() -> None:
    y = [0, 0, 0, 1, 1, 2, 2, 2]
    c = [5, 5, 6, 6, 6, 7, 7, 5]
    conf = cluster_confusion(y, c)
    assert conf.mapping == {5: 0, 6: 1, 7: 2}
    assert conf.matrix.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert conf.classes.tolist() == [0, 1, 2]
    assert conf.total == 8
    assert conf.accuracy == pytest.approx(0.75)
    assert conf.recall().tolist() == pytest.approx([2 / 3, 1.0, 2 / 3])


def test_more_clusters_than_classes_go_to_their_majority_class() -> None:
    conf = cluster_confusion([0, 0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 2, 2, 2])
    assert conf.matrix.tolist() == [[2, 0], [0, 5]]
    assert conf.accuracy == 1.0


def test_fewer_clusters_than_classes_leave_a_column_empty() -> None:
    conf = cluster_confusion([3, 3, 8, 9, 9], [1, 1, 1, 0, 0])
    assert conf.classes.tolist() == [3, 8, 9]
    assert conf.matrix.tolist() == [[2, 0, 0], [1, 0, 0], [0, 0, 2]]
    assert conf.matrix[:, 1].sum() == 0


@pytest.mark.parametrize("seed", range(5))
def test_trace_is_the_cluster_accuracy_and_ids_do_not_matter(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, size=300)
    c = np.where(rng.random(300) < 0.6, y, rng.integers(0, 7, size=300))
    conf = cluster_confusion(y, c)
    assert conf.accuracy == pytest.approx(cluster_accuracy(y, c))
    assert conf.matrix.sum(axis=1).tolist() == np.bincount(y, minlength=5).tolist()
    relabelled = cluster_confusion(y, rng.permutation(40)[c] + 100)
    assert np.array_equal(relabelled.matrix, conf.matrix)


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match="y_pred has 2"):
        cluster_confusion([0, 1, 2], [0, 1])
    with pytest.raises(TypeError, match="integers"):
        cluster_confusion(["a", "b"], [0, 1])


def test_plot_confusion_writes_a_png(tmp_path: Path) -> None:
    conf = cluster_confusion([0, 0, 1, 1], [1, 1, 0, 1])
    path = plot_confusion(conf, tmp_path / "c.png", class_names=["cat", "dog"])
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name", ["confusion", "gallery", "html"])
def test_docstring_examples_run(name: str) -> None:
    import doctest
    import importlib

    module = importlib.import_module(f"selflabel.report.{name}")
    failed, attempted = doctest.testmod(module)
    assert attempted > 0
    assert failed == 0
