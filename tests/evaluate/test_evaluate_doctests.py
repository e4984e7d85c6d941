"""The usage examples in the docstrings of selflabel.evaluate and its commands run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "selflabel.evaluate.batchnorm",
    "selflabel.evaluate.io",
    "selflabel.evaluate.knn",
    "selflabel.evaluate.linear",
    "selflabel.evaluate.features",
    "selflabel.evaluate.views",
    "selflabel.commands.eval",
]


@pytest.mark.parametrize("name", MODULES)
def test_evaluate_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
