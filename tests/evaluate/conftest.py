"""Fixtures of the CLI tests: a runner of ``selflabel`` commands and a tiny labelled image file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from selflabel.cli import main


@pytest.fixture
def cli() -> Callable[[list[str]], str]:
    """Run ``selflabel ARGS`` in-process, assert it succeeded and return its output."""

    def run(args: list[str]) -> str:
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    return run


@pytest.fixture
def tiny_images(tmp_path: Path) -> Path:
    """24 grey 12x12 images of 3 classes told apart by brightness, as an ``.npz`` file."""
    rng = np.random.default_rng(0)
    labels = np.arange(24) % 3
    images = (rng.integers(0, 60, size=(24, 12, 12)) + 60 * labels[:, None, None]).astype(np.uint8)
    path = tmp_path / "imgs.npz"
    np.savez(path, images=images, labels=labels)
    return path
