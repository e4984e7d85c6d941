"""Label transfer: train any backbone by cross-entropy from given labels (e.g. self-labels).

``labels`` is an (N, T) int64 table keyed by dataset index — one column per head, as written by
``selflabel label`` (``labels.npy``) — or (N,) for one head. Head ``t`` is a linear layer with
``labels[:, t].max() + 1`` classes; rows labelled -1 are ignored. The loss is the mean over heads
of the cross-entropy of every augmented view against its sample's label.

Example::

    labels = np.load("runs/sela/labels.npy")                  # (N, T)
    method = Supervised(build_backbone("resnet18"), torch.from_numpy(labels))
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from selflabel.methods.base import Batch, Method, StepContext, StepOutput
from selflabel.methods.network import grouped_forward
from selflabel.methods.offline import UNASSIGNED, masked_cross_entropy


class Supervised(Method):
    """Cross-entropy training of ``backbone`` + one linear head per label column."""

    name = "supervised"
    labels: Tensor

    def __init__(self, backbone: nn.Module, labels: Tensor) -> None:
        super().__init__(backbone)
        out_dim = int(getattr(backbone, "out_dim", 0))
        if out_dim <= 0:
            raise TypeError("the backbone must expose a positive `out_dim` (feature size)")
        if labels.ndim == 1:
            labels = labels[:, None]
        if labels.ndim != 2 or labels.numel() == 0 or labels.is_floating_point():
            raise ValueError(f"labels must be an integer (N,) or (N, T) table, got {labels.shape}")
        labels = labels.to(torch.long)
        if bool((labels < UNASSIGNED).any()):
            raise ValueError("labels must be >= 0 (or -1 for 'no label')")
        sizes = [int(labels[:, t].max()) + 1 for t in range(labels.shape[1])]
        if min(sizes) < 2:
            raise ValueError(f"every label column needs at least 2 classes, got sizes {sizes}")
        self.heads = nn.ModuleList(nn.Linear(out_dim, k) for k in sizes)
        self.n_clusters = sizes[0]
        self.register_buffer("labels", labels)

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        if not batch.views:
            raise ValueError("supervised training needs at least one view per batch")
        idx = batch.indices.to(self.labels.device)
        if int(idx.max()) >= self.labels.shape[0]:
            raise ValueError(
                f"dataset index {int(idx.max())} but the labels file has {self.labels.shape[0]} "
                "rows: use the labels of this very source"
            )
        feats = grouped_forward(self.backbone, batch.views)
        n_views = feats.shape[0] // batch.views[0].shape[0]
        targets = self.labels[idx]
        loss = feats.new_zeros(())
        for t, head in enumerate(self.heads):
            loss = loss + masked_cross_entropy(head(feats).float(), targets[:, t].repeat(n_views))
        return StepOutput(loss=loss / len(self.heads))

    @torch.no_grad()
    def cluster_scores(self, images: Tensor) -> Tensor:
        out: Tensor = self.heads[0](self.backbone(images))
        return out


def read_labels(path: str | Path) -> Tensor:
    """An (N, T) int64 label table from ``labels.npy`` or a CSV with ``index`` and ``cluster``
    (or ``cluster_head0``, ``cluster_head1``, ...) columns.

    Example: ``read_labels("runs/sela/labels.npy").shape`` → ``(N, T)``.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"labels file {p} does not exist (write one with `selflabel label RUN`)")
    if p.suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{p}: expected an integer (N,) or (N, T) array, got {arr.dtype}")
        return torch.from_numpy(arr.astype(np.int64))
    if p.suffix == ".csv":
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "index" not in rows[0]:
            raise ValueError(f"{p}: a labels CSV needs an 'index' column and cluster columns")
        heads = [c for c in rows[0] if c.startswith("cluster_head")]
        cols = sorted(heads, key=lambda c: int(c[len("cluster_head") :] or 0)) or ["cluster"]
        if cols[0] not in rows[0]:
            raise ValueError(f"{p}: no 'cluster' or 'cluster_head<t>' column")
        table = np.full((len(rows), len(cols)), UNASSIGNED, dtype=np.int64)
        for r in rows:
            i = int(r["index"])
            if not 0 <= i < len(rows):
                raise ValueError(f"{p}: index {i} out of range [0, {len(rows)})")
            table[i] = [int(r[c]) for c in cols]
        return torch.from_numpy(table)
    raise ValueError(f"{p}: labels must be a .npy or .csv file")
