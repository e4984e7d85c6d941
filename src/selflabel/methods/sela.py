"""SeLa: self-labelling via simultaneous clustering and representation learning (Asano et al.).

A backbone carries ``T`` linear heads of ``K`` classes (:class:`MultiHeadClassifier`). Every sample
of the dataset has one self-label per head (buffer ``labels`` (N, T), keyed by dataset index,
initialised balanced at random). Training alternates:

* **representation steps**: cross-entropy of every head on every augmented view against the
  sample's current self-labels, averaged over heads and views;
* **label steps** at ``t_i = (i / (M - 1))**2`` of training (``i = 0 .. M-1``, so the first on the
  un-trained network before epoch 0 and the last after the final epoch): the features of the
  whole dataset are computed in eval mode without augmentation (or averaged over ``A`` augmented
  passes), each head's logits are relabelled by the equipartition solver
  (:func:`selflabel.ot.equipartition.sinkhorn_equipartition`), warm-started from that head's
  potentials of the previous label step (buffer ``potentials`` (T, K)).

Label steps happen at epoch boundaries: step ``i`` runs at the start of epoch
``ceil(t_i * epochs)`` (:func:`label_step_epochs`), and a step at ``t = 1`` after the last epoch.

The whole dataset is reached through ``label_data(augment)``: a callable returning an iterable of
``(indices LongTensor, images float (B, C, H, W))`` — normalised, un-augmented images when
``augment`` is False. Under ``torch.distributed`` every process passes its own disjoint shard; the
solver runs over the shards jointly and the labels are gathered so that every process holds the
same full ``labels`` buffer.

Example::

    sela = SeLa(build_backbone("smallcnn", in_channels=1), n_clusters=30, n_heads=2,
                dataset_size=len(ds), label_data=lambda augment: batches_of(ds))
    sela.label_step()                         # or let the trainer call on_epoch_start
    out = sela.training_step(Batch(indices=idx, views=views), ctx)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from selflabel.methods.base import Batch, Method, StepContext, StepOutput, default_group
from selflabel.methods.network import grouped_forward
from selflabel.models import MultiHeadClassifier
from selflabel.ot import Potentials, sinkhorn_equipartition

log = logging.getLogger(__name__)

#: ``label_data(augment)`` -> iterable of ``(indices, normalised float images)``
LabelData = Callable[[bool], Iterable[tuple[Tensor, Tensor]]]


def label_step_times(n_steps: int) -> list[float]:
    """The fractions of training ``t_i = (i / (M - 1))**2``, ``i = 0 .. M-1`` (M = ``n_steps``)."""
    if n_steps < 2:
        raise ValueError(f"SeLa needs at least 2 label steps (t=0 and t=1), got {n_steps}")
    return [(i / (n_steps - 1)) ** 2 for i in range(n_steps)]


def label_step_epochs(n_steps: int, epochs: int) -> list[int]:
    """Epoch at whose start each label step runs: ``ceil(t_i * epochs)`` (``epochs``: at the end).

    Several steps falling on one epoch boundary are done once.

    Example: ``label_step_epochs(5, 8)`` → ``[0, 1, 2, 5, 8]`` (t = 0, 1/16, 1/4, 9/16, 1).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    return [min(epochs, math.ceil(t * epochs - 1e-9)) for t in label_step_times(n_steps)]


class SeLa(Method):
    """SeLa over any backbone with an ``out_dim``; see the module docstring."""

    name = "sela"
    labels: Tensor
    potentials: Tensor
    has_potentials: Tensor
    steps_done: Tensor

    def __init__(
        self,
        backbone: nn.Module,
        *,
        n_clusters: int,
        dataset_size: int,
        label_data: LabelData | None = None,
        n_heads: int = 1,
        label_steps: int = 5,
        lam: float = 25.0,
        tol: float = 1e-2,
        max_iter: int = 500,
        label_augmentations: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(backbone)
        out_dim = int(getattr(backbone, "out_dim", 0))
        if out_dim <= 0:
            raise TypeError("the backbone must expose a positive `out_dim` (feature size)")
        if n_clusters < 2 or dataset_size < n_clusters:
            raise ValueError(
                f"need 2 <= n_clusters <= dataset_size, got n_clusters={n_clusters}, "
                f"dataset_size={dataset_size}"
            )
        if label_augmentations < 0:
            raise ValueError(f"label_augmentations must be >= 0, got {label_augmentations}")
        label_step_times(label_steps)  # validates
        self.heads = MultiHeadClassifier(out_dim, n_clusters, n_heads)
        self.n_clusters = n_clusters
        self.n_heads = n_heads
        self.dataset_size = dataset_size
        self.label_data = label_data
        self.n_label_steps = label_steps
        self.lam, self.tol, self.max_iter = lam, tol, max_iter
        self.label_augmentations = label_augmentations
        g = torch.Generator().manual_seed(seed)
        balanced = torch.arange(dataset_size) % n_clusters
        init = torch.stack(
            [balanced[torch.randperm(dataset_size, generator=g)] for _ in range(n_heads)], 1
        )
        self.register_buffer("labels", init)  # (N, T) int64
        self.register_buffer("potentials", torch.zeros(n_heads, n_clusters))  # g of each head
        self.register_buffer("has_potentials", torch.zeros((), dtype=torch.bool))
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))  # schedule index
        #: statistics of the last label step (not state: logs only)
        self.last_label_step: dict[str, float] = {}
        #: during a label step: the (n, K) logits and kernel matrices shared by its heads
        self._buffers_for_step: tuple[Tensor, ...] | None = None

    # ------------------------------------------------------------------ hooks
    def on_epoch_start(self, ctx: StepContext) -> None:
        self._maybe_label_step(ctx.epoch, ctx)

    def on_epoch_end(self, ctx: StepContext) -> None:
        epochs = max(1, ctx.total_iters // max(ctx.iters_per_epoch, 1))
        if ctx.epoch + 1 >= epochs:  # the step at t = 1: labels of the final network
            self._maybe_label_step(epochs, ctx)

    def _maybe_label_step(self, epoch: int, ctx: StepContext) -> None:
        epochs = max(1, ctx.total_iters // max(ctx.iters_per_epoch, 1))
        schedule = label_step_epochs(self.n_label_steps, epochs)
        due = int(self.steps_done)
        while due < len(schedule) and schedule[due] <= epoch:
            due += 1
        if due > int(self.steps_done):
            self.label_step()
            self.steps_done.fill_(due)

    # ------------------------------------------------------------------ step
    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        if not batch.views:
            raise ValueError("SeLa needs at least one view per batch")
        feats = grouped_forward(self.backbone, batch.views)  # (V*B, D)
        return self.loss_from_features(feats, batch.indices, batch.views[0].shape[0])

    def loss_from_features(self, feats: Tensor, indices: Tensor, bs: int) -> StepOutput:
        """Cross-entropy of every head on backbone ``feats`` (V*B, D) against the self-labels of
        ``indices`` (B,); ``training_step`` runs the backbone and calls this (as does
        :class:`~selflabel.methods.swavsela.SwAVSeLa`, which shares the forward pass)."""
        targets = self.labels[indices.to(self.labels.device)]  # (B, T)
        n_views = feats.shape[0] // bs
        loss = feats.new_zeros(())
        for h, logits in enumerate(self.heads(feats)):
            loss = loss + F.cross_entropy(logits.float(), targets[:, h].repeat(n_views))
        loss = loss / self.n_heads
        logs = {"label_steps_done": float(self.steps_done)}
        logs.update(self.last_label_step)
        return StepOutput(loss=loss, logs=logs)

    # ------------------------------------------------------------------ label step
    @torch.no_grad()
    def label_step(self) -> dict[str, float]:
        """Relabel the whole dataset with every head (eval mode); returns timing/solver stats."""
        if self.label_data is None:
            raise ValueError(
                "SeLa.label_step needs `label_data` (a callable giving the dataset's batches); "
                "build the method with selflabel.run.build.build_method or pass label_data="
            )
        t0 = time.perf_counter()
        was_training = self.training
        self.eval()
        try:
            indices, feats = self._dataset_features()
        finally:
            self.train(was_training)
        t_feat = time.perf_counter() - t0
        group = default_group()
        iters, errors = [], []
        new = torch.full_like(self.labels, -1)
        try:
            for h in range(self.n_heads):
                labels, n_iter, error = self.assign_head(h, feats, group)
                new[indices.to(new.device), h] = labels.to(new.device)
                iters.append(n_iter)
                errors.append(error)
        finally:
            self._buffers_for_step = None  # the N x K matrices live for one label step only
        self.has_potentials.fill_(True)
        self.labels.copy_(_gather_labels(new, group))
        self.last_label_step = {
            "label_step_seconds": time.perf_counter() - t0,
            "label_feature_seconds": t_feat,
            "label_solver_iters": float(sum(iters) / len(iters)),
            "label_solver_error": float(max(errors)),
        }
        log.info("SeLa label step: %s", self.last_label_step)
        return self.last_label_step

    def assign_head(self, h: int, feats: Tensor, group: Any) -> tuple[Tensor, int, float]:
        """Balanced labels of this process's rows for head ``h`` (and solver iterations, error).

        ``feats`` (A, n, D) are the label-step features. Warm-starts from and updates the head's
        potentials. Subclasses may replace the assignment (e.g. k-means for an ablation).
        """
        head = self.heads.heads()[h]
        if self._buffers_for_step is None:
            n, k = feats.shape[-2], self.n_clusters
            self._buffers_for_step = tuple(
                torch.empty(n, k, dtype=torch.float32, device=feats.device) for _ in range(2)
            )
        logits, kernel = self._buffers_for_step
        head_scores(feats, head.weight, head.bias, out=logits)
        init = None
        if bool(self.has_potentials):
            init = Potentials(g=self.potentials[h], lam=self.lam)
        res = sinkhorn_equipartition(
            logits,
            self.lam,
            init=init,
            tol=self.tol,
            max_iter=self.max_iter,
            group=group,
            workspace=kernel,
        )
        self.potentials[h].copy_(res.potentials.g.to(self.potentials.device))
        return res.labels, res.n_iter, res.error

    def _dataset_features(self) -> tuple[Tensor, Tensor]:
        """(indices (n,), features (A, n, D)) of this process's samples, A = passes averaged."""
        if self.label_data is None:
            raise ValueError("SeLa has no label_data")
        passes = max(1, self.label_augmentations)
        dev = self.labels.device
        all_feats: list[Tensor] = []
        first_idx: Tensor | None = None
        for _ in range(passes):
            idx_chunks, chunks = [], []
            for idx, images in self.label_data(self.label_augmentations > 0):
                idx_chunks.append(idx.cpu())
                chunks.append(self.backbone(images.to(dev)).float())
            if not chunks:
                raise ValueError("label_data yielded no batches")
            idx_all = torch.cat(idx_chunks)
            if first_idx is None:
                first_idx = idx_all
            elif not torch.equal(first_idx, idx_all):
                raise ValueError("label_data must yield the same indices in the same order")
            all_feats.append(torch.cat(chunks))
        return torch.as_tensor(first_idx), torch.stack(all_feats)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def cluster_scores(self, images: Tensor) -> Tensor:
        out: Tensor = self.heads(self.backbone(images))[0]
        return out


def head_scores(
    feats: Tensor, weight: Tensor, bias: Tensor | None, out: Tensor | None = None
) -> Tensor:
    """``mean_a (feats[a] @ weight.T + bias)``: a head's logits as one contiguous float32 (n, K).

    ``feats`` is (A, n, D) (A passes: the paper's expectation over augmentations) or (n, D).
    The label step needs no ``log_softmax``: ``mean_a log_softmax(z_a)`` differs from
    ``mean_a z_a`` by a constant per row, and the equipartition problem's solution (plan, labels,
    cluster potentials) does not change when a row is shifted by a constant. Written into
    ``out`` when given (a reusable (n, K) float32 buffer), otherwise allocated.
    """
    if feats.ndim == 2:
        feats = feats[None]
    passes, n, _ = feats.shape
    k = weight.shape[0]
    if out is None:
        out = torch.empty(n, k, dtype=torch.float32, device=feats.device)
    w = weight.detach().float().t()
    b = torch.zeros(k, device=feats.device) if bias is None else bias.detach().float()
    torch.addmm(b, feats[0].float(), w, out=out)
    for a in range(1, passes):
        out.addmm_(feats[a].float(), w)
        out.add_(b)
    if passes > 1:
        out.div_(passes)
    return out


def _gather_labels(local: Tensor, group: Any) -> Tensor:
    """Combine per-process labels (-1 where another process owns the row) into the full table."""
    if group is None:
        if bool((local < 0).any()):
            raise ValueError(
                "label_data did not cover every dataset index: the label step needs all samples"
            )
        return local
    owned = (local >= 0).to(torch.long)
    total = torch.where(local >= 0, local, torch.zeros_like(local))
    dist.all_reduce(owned, group=group)
    dist.all_reduce(total, group=group)
    if not bool((owned == 1).all()):
        raise ValueError(
            "under torch.distributed every dataset index must be labelled by exactly one process: "
            "give label_data disjoint shards that cover the dataset"
        )
    return total
