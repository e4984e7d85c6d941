"""PNG plots of a run: training curves, cluster sizes and per-cluster image galleries.

Pure functions of arrays; they use matplotlib's non-interactive Agg backend and never show windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    xlabel: str = "iteration",
    title: str = "",
) -> Path:
    """One panel per named series ``name -> (x, y)``, stacked vertically; returns the PNG path."""
    names = [n for n, (x, _) in series.items() if len(x) > 0]
    if not names:
        raise ValueError("plot_curves needs at least one non-empty series")
    fig, axes = plt.subplots(
        len(names), 1, figsize=(7, 2.4 * len(names)), sharex=True, squeeze=False
    )
    for ax, name in zip(axes[:, 0], names, strict=True):
        x, y = series[name]
        ax.plot(np.asarray(x), np.asarray(y), lw=1.2)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(xlabel)
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_cluster_sizes(
    labels: np.ndarray, path: str | Path, *, n_clusters: int | None = None
) -> Path:
    """Bar chart of cluster sizes sorted from largest to smallest (empty clusters show as zeros)."""
    labels = np.asarray(labels, dtype=np.int64)
    k = int(n_clusters if n_clusters is not None else (labels.max() + 1 if labels.size else 0))
    sizes = np.sort(np.bincount(labels, minlength=k))[::-1]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(np.arange(len(sizes)), sizes, width=1.0, color="#3b6ea8")
    ax.axhline(labels.size / max(k, 1), color="k", lw=0.8, ls="--", label="equal split")
    ax.set_xlabel(f"cluster (sorted by size), {int((sizes == 0).sum())} empty of {k}")
    ax.set_ylabel("images")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def plot_gallery(
    images: np.ndarray,
    clusters: np.ndarray,
    path: str | Path,
    *,
    confidence: np.ndarray | None = None,
    per_cluster: int = 8,
    max_clusters: int = 20,
    order: str = "confident",
) -> Path:
    """A grid: one row per cluster (largest first), ``per_cluster`` images per row.

    ``images`` is uint8 ``(N, C, H, W)`` or ``(N, H, W)``; ``order`` picks which members are shown:
    ``"confident"`` (highest confidence first), ``"uncertain"`` (lowest first) or ``"random"``.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W) or (N, H, W), got shape {images.shape}")
    clusters = np.asarray(clusters, dtype=np.int64)
    if len(clusters) != len(images):
        raise ValueError(f"{len(images)} images but {len(clusters)} cluster labels")
    if order not in {"confident", "uncertain", "random"}:
        raise ValueError(f"order must be confident, uncertain or random, got {order!r}")
    sizes = np.bincount(clusters)
    shown = [int(c) for c in np.argsort(-sizes) if sizes[c] > 0][:max_clusters]
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(
        len(shown), per_cluster, figsize=(per_cluster * 0.9, len(shown) * 0.95), squeeze=False
    )
    for row, c in enumerate(shown):
        members = np.flatnonzero(clusters == c)
        if order == "random" or confidence is None:
            members = rng.permutation(members)
        else:
            sign = -1.0 if order == "confident" else 1.0
            members = members[np.argsort(sign * np.asarray(confidence)[members], kind="stable")]
        for col in range(per_cluster):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(members):
                img = images[members[col]]
                ax.imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0), cmap="gray")
        axes[row, 0].text(
            -0.15,
            0.5,
            f"{c}\n({sizes[c]})",
            transform=axes[row, 0].transAxes,
            ha="right",
            va="center",
            fontsize=7,
        )
    fig.subplots_adjust(left=0.08, right=0.99, top=0.99, bottom=0.01, wspace=0.05, hspace=0.05)
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
