"""Fixtures shared by the run tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from selflabel.cli import main


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    """64 random 16×16 grey images in 4 classes of 16, as an ``.npz`` a run can train on."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 16)
    images = rng.integers(0, 255, size=(64, 16, 16), dtype=np.uint8)
    path = tmp_path / "tiny.npz"
    np.savez(path, images=images, labels=labels)
    return path


TrainTiny = Callable[..., dict[str, Any]]


@pytest.fixture
def train_tiny(tiny_npz: Path) -> TrainTiny:
    """``train_tiny(out, *overrides)``: one epoch of the demo recipe on ``tiny_npz`` (batch 16, no
    small crops, no galleries) with the given ``key=value`` overrides, written to ``out``;
    returns its ``metrics.json``."""

    def train(out: Path, *overrides: str) -> dict[str, Any]:
        args = ["train", "--data", str(tiny_npz), "--epochs", "1", "--out", str(out),
                "data.batch_size=16", "augment.n_local=0", "eval.gallery_per_cluster=0",
                *overrides]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return dict(json.loads((out / "metrics.json").read_text()))

    return train
