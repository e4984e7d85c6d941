from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selflabel.report.plots import plot_cluster_sizes, plot_curves, plot_gallery

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plots_write_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    curves = plot_curves(
        {"loss": ([0, 1, 2], [3.0, 2.0, 1.5]), "lr": ([0, 1, 2], [0.1, 0.2, 0.1])},
        tmp_path / "curves.png",
    )
    labels = rng.integers(0, 5, size=200)
    sizes = plot_cluster_sizes(labels, tmp_path / "sizes.png", n_clusters=7)
    images = rng.integers(0, 255, size=(200, 1, 8, 8), dtype=np.uint8)
    gallery = plot_gallery(images, labels, tmp_path / "g.png", confidence=rng.random(200))
    for path in (curves, sizes, gallery):
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_gallery_validates_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cluster labels"):
        plot_gallery(np.zeros((3, 4, 4), np.uint8), np.zeros(2, np.int64), tmp_path / "x.png")
    with pytest.raises(ValueError, match="order"):
        plot_gallery(
            np.zeros((2, 4, 4), np.uint8), np.zeros(2, np.int64), tmp_path / "x.png", order="best"
        )
