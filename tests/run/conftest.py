"""Fixtures shared by the run tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    """64 random 16×16 grey images in 4 classes of 16, as an ``.npz`` a run can train on."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 16)
    images = rng.integers(0, 255, size=(64, 16, 16), dtype=np.uint8)
    path = tmp_path / "tiny.npz"
    np.savez(path, images=images, labels=labels)
    return path
