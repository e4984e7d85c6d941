"""The usage examples in the cluster layer's docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["benchmark", "io", "kmeans", "matching", "pca", "result", "scores"]


@pytest.mark.parametrize("name", MODULES)
def test_cluster_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"selflabel.cluster.{name}")
    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0
    assert failed == 0
