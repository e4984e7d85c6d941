"""Figures over epochs on one shared [0, 1] axis (accuracy, NMI, kNN, ... from eval_history.json).

Example::

    plot_metric_history({"acc": ([1, 2], [0.4, 0.6]), "knn": ([1, 2], [0.5, 0.7])}, "m.png")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_metric_history", "save_png"]


def save_png(fig: plt.Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Save ``fig`` as a PNG at ``path`` (parents created), close it and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_metric_history(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    xlabel: str = "epoch",
) -> Path:
    """One line per named series ``name -> (epochs, values in [0, 1])``; returns the PNG path."""
    names = [n for n, (x, _) in series.items() if len(x) > 0]
    if not names:
        raise ValueError("plot_metric_history needs at least one non-empty series")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name in names:
        x, y = series[name]
        if len(x) != len(y):
            raise ValueError(f"series {name!r} has {len(x)} x values but {len(y)} y values")
        ax.plot(np.asarray(x), np.asarray(y), marker="o", ms=3, lw=1.3, label=name)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, ncol=2)
    fig.tight_layout()
    return save_png(fig, path)
