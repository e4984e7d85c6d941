"""Per-cluster image galleries that load only the images they show.

The seed paper (SeLa, Asano et al. 2020) shows, for some pseudo-classes, the images the model is
most sure of (lowest entropy) next to random members. :func:`gallery_members` picks those images
from ``labels.csv``-style arrays (cluster and confidence per image), so a report of a 1.28M-image
run reads a few hundred images, not the dataset; :func:`plot_member_grid` draws them, one row per
cluster, labelled with the cluster's id and true size.

Example::

    >>> import numpy as np
    >>> members = gallery_members(np.array([0, 0, 1]), np.array([0.2, 0.9, 0.5]), per_cluster=2)
    >>> {c: m.tolist() for c, m in members.items()}
    {0: [1, 0], 1: [2]}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray

from selflabel.report.curves import save_png

__all__ = ["GALLERY_ORDERS", "gallery_members", "plot_member_grid", "shown_clusters"]

#: member orders: most confident first, least confident first, uniformly random
GALLERY_ORDERS = ("confident", "uncertain", "random")


def shown_clusters(clusters: NDArray[np.int64], max_clusters: int) -> list[int]:
    """The non-empty cluster ids, largest first (ties: smaller id), at most ``max_clusters``."""
    if max_clusters < 1:
        raise ValueError(f"max_clusters must be >= 1, got {max_clusters}")
    ids, sizes = np.unique(np.asarray(clusters, dtype=np.int64), return_counts=True)
    order = np.lexsort((ids, -sizes))
    return [int(ids[i]) for i in order[:max_clusters]]


def gallery_members(
    clusters: NDArray[np.int64],
    confidence: NDArray[np.floating] | None,
    *,
    order: str = "confident",
    per_cluster: int = 8,
    max_clusters: int = 20,
    seed: int = 0,
) -> dict[int, NDArray[np.int64]]:
    """Image indices to show per cluster (ordered dict, largest cluster first).

    ``order`` is one of :data:`GALLERY_ORDERS`; without ``confidence`` only ``"random"`` is valid.
    """
    if order not in GALLERY_ORDERS:
        raise ValueError(f"order must be one of {', '.join(GALLERY_ORDERS)}, got {order!r}")
    if per_cluster < 1:
        raise ValueError(f"per_cluster must be >= 1, got {per_cluster}")
    clusters = np.asarray(clusters, dtype=np.int64)
    if confidence is None and order != "random":
        raise ValueError(f"order={order!r} needs a confidence per image; use order='random'")
    if confidence is not None and len(confidence) != len(clusters):
        raise ValueError(f"{len(clusters)} cluster labels but {len(confidence)} confidences")
    rng = np.random.default_rng(seed)
    out: dict[int, NDArray[np.int64]] = {}
    for c in shown_clusters(clusters, max_clusters):
        members = np.flatnonzero(clusters == c)
        if order == "random":
            picked = rng.choice(members, size=min(per_cluster, len(members)), replace=False)
        else:
            conf = np.asarray(confidence)[members]
            key = -conf if order == "confident" else conf
            picked = members[np.argsort(key, kind="stable")[:per_cluster]]
        out[c] = picked.astype(np.int64)
    return out


def plot_member_grid(
    images: Mapping[int, NDArray[np.uint8]],
    members: Mapping[int, NDArray[np.int64]],
    sizes: Mapping[int, int],
    path: str | Path,
    *,
    per_cluster: int,
    row_notes: Mapping[int, str] | None = None,
) -> Path:
    """Draw ``members`` (cluster → indices) with ``images`` (index → uint8 ``(C, H, W)``).

    One row per cluster in ``members`` order, labelled ``id (size)`` plus ``row_notes[id]``. The
    images are tiled into one mosaic (a single ``imshow``), which stays fast for 20 × 8 images.
    """
    if not members:
        raise ValueError("plot_member_grid needs at least one cluster")
    rows = list(members)
    first = np.asarray(images[int(next(iter(members.values()))[0])])
    if first.ndim != 3 or first.shape[0] not in (1, 3):
        raise ValueError(f"images must be uint8 (C, H, W) with C = 1 or 3, got {first.shape}")
    _, hgt, wid = first.shape
    pad = max(1, hgt // 14)
    cell_h, cell_w = hgt + pad, wid + pad
    mosaic = np.full((len(rows) * cell_h + pad, per_cluster * cell_w + pad, 3), 255, np.uint8)
    for r, c in enumerate(rows):
        for col, idx in enumerate(members[c][:per_cluster]):
            img = np.asarray(images[int(idx)])
            if img.shape[1:] != (hgt, wid):
                raise ValueError(f"image {int(idx)} has shape {img.shape}, expected {first.shape}")
            y, x = pad + r * cell_h, pad + col * cell_w
            tile = np.broadcast_to(img.transpose(1, 2, 0), (hgt, wid, 3))
            mosaic[y : y + hgt, x : x + wid] = tile
    label_in = 1.1
    fig_w = label_in + per_cluster * 0.8
    fig_h = 0.1 + len(rows) * 0.8 * cell_h / cell_w
    fig = plt.figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((label_in / fig_w, 0.0, 1.0 - label_in / fig_w, 1.0))
    ax.imshow(mosaic, interpolation="nearest", aspect="auto")
    ax.axis("off")
    for r, c in enumerate(rows):
        note = (row_notes or {}).get(c, "")
        label = f"{c} ({sizes.get(c, 0)})" + (f"\n{note}" if note else "")
        ax.text(-pad * 2, pad + r * cell_h + hgt / 2, label, ha="right", va="center", fontsize=8)
    return save_png(fig, path)
