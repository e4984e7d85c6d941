"""SeLa-v2 and DeepCluster-v2 (Caron et al., SwAV paper, appendix): offline assignments from a
memory bank of the previous epoch's embeddings — no extra pass over the data.

Both use SwAV's :class:`EmbeddingNetwork` (backbone + projection + one or several prototype heads)
and multi-crop views. During an epoch the L2-normalised embeddings of the first ``bank_crops``
global crops are written into a memory bank at the samples' dataset indices. At the start of the
next epoch an **assignment phase** turns the bank into one label per sample and head (head ``h``
reads crop ``h % bank_crops``, as the official DeepCluster-v2 rotates crops over heads):

* :class:`SeLaV2` — the equipartition solver on the prototype scores ``bank @ C_h.T`` with
  regularisation ``epsilon`` (``exp(scores / epsilon)`` kernel), balanced hard labels;
* :class:`DeepClusterV2` — spherical k-means (faiss) on the bank; the centroids are copied into the
  prototypes, which are the classification head (never trained by gradient).

The loss is SwAV-style cross-entropy of every crop's ``scores / temperature`` against the sample's
assignment, averaged over heads. Samples without an assignment (the whole first epoch, or samples
not seen in the previous epoch) carry label ``-1`` and are ignored by the loss (``ignore_index``);
they are never given label 0. A batch with no assigned sample has loss ``0 * scores.sum()``.

Under ``torch.distributed`` every process fills its own rows; the assignment phase sums the banks
over processes, rank 0 computes the assignments and broadcasts them (and the centroids).

Example::

    net = EmbeddingNetwork(build_backbone("smallcnn", in_channels=1), n_prototypes=[30, 30])
    dc = DeepClusterV2(net, dataset_size=len(ds))
    for epoch in ...:
        dc.on_epoch_start(ctx)                        # assignment phase (nothing in epoch 0)
        out = dc.training_step(Batch(indices=idx, views=views), ctx)
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from selflabel.cluster import KMeans
from selflabel.methods.base import Batch, Method, StepContext, StepOutput, default_group
from selflabel.methods.network import EmbeddingNetwork
from selflabel.ot import sinkhorn_equipartition

log = logging.getLogger(__name__)

#: label of a sample without an assignment yet (ignored by the loss)
UNASSIGNED = -1


class MemoryBankMethod(Method):
    """Shared base: memory bank, per-epoch assignment phase, cross-entropy with ignored samples.

    Subclasses implement :meth:`assign` (bank embeddings of one head's crop → labels).

    Buffers (the whole resumable state): ``bank`` (bank_crops, N, D) embeddings, ``bank_filled``
    (N,) bool — written during the current epoch, ``assignments`` (T, N) int64, -1 = unassigned.
    """

    name = "memory-bank"
    bank: Tensor
    bank_filled: Tensor
    assignments: Tensor
    phases_done: Tensor
    network: EmbeddingNetwork

    def __init__(
        self,
        network: EmbeddingNetwork,
        *,
        dataset_size: int,
        temperature: float = 0.1,
        bank_crops: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(network.backbone)
        if dataset_size < 1:
            raise ValueError(f"dataset_size must be >= 1, got {dataset_size}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if bank_crops < 1:
            raise ValueError(f"bank_crops must be >= 1, got {bank_crops}")
        if max(network.n_prototypes) > dataset_size:
            raise ValueError(
                f"{max(network.n_prototypes)} prototypes but only {dataset_size} samples: "
                "lower model.n_prototypes"
            )
        self.network = network
        self.temperature = temperature
        self.bank_crops = bank_crops
        self.seed = seed
        self.n_clusters = network.n_prototypes[0]
        self.n_heads = len(network.n_prototypes)
        n, d = dataset_size, network.embedding_dim
        self.register_buffer("bank", torch.zeros(bank_crops, n, d))
        self.register_buffer("bank_filled", torch.zeros(n, dtype=torch.bool))
        self.register_buffer("assignments", torch.full((self.n_heads, n), UNASSIGNED))
        self.register_buffer("phases_done", torch.zeros((), dtype=torch.long))
        self.last_assignment: dict[str, float] = {}
        network.normalize_prototypes()

    # ------------------------------------------------------------------ subclass API
    def assign(self, embeddings: Tensor, head: int, epoch: int) -> Tensor:
        """Labels (n,) int64 in [0, K_head) for the bank rows ``embeddings`` (n, D) of ``head``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ hooks
    def on_epoch_start(self, ctx: StepContext) -> None:
        self.assignment_phase(ctx.epoch)

    def on_after_optimizer_step(self, ctx: StepContext) -> None:
        self.network.normalize_prototypes()

    @torch.no_grad()
    def assignment_phase(self, epoch: int = 0) -> dict[str, float]:
        """Assign every sample written to the bank since the last phase; others become -1."""
        t0 = time.perf_counter()
        group = default_group()
        bank, filled = self.bank, self.bank_filled
        if group is not None:  # rows are disjoint per process, up to sampler padding: average
            count = filled.to(bank.dtype)
            bank = bank * count[None, :, None]
            dist.all_reduce(bank, group=group)
            dist.all_reduce(count, group=group)
            filled = count > 0
            bank = bank / count.clamp_min(1.0)[None, :, None]
        rows = filled.nonzero().flatten()
        new = torch.full_like(self.assignments, UNASSIGNED)
        if rows.numel() >= max(self.network.n_prototypes):
            if group is None or dist.get_rank() == 0:
                for h in range(self.n_heads):
                    emb = F.normalize(bank[h % self.bank_crops, rows].float(), dim=1)
                    new[h, rows] = self.assign(emb, h, epoch).to(new.device)
            if group is not None:
                dist.broadcast(new, 0, group=group)
                for w in self.network.prototypes.weights():
                    dist.broadcast(w.data, 0, group=group)
        elif rows.numel() > 0:
            log.warning("only %d samples in the memory bank: no assignment", rows.numel())
        self.assignments.copy_(new)
        self.bank_filled.zero_()
        self.phases_done.add_(1)
        assigned = float((new[0] >= 0).float().mean())
        self.last_assignment = {
            "assign_seconds": time.perf_counter() - t0,
            "assigned_fraction": assigned,
        }
        return self.last_assignment

    # ------------------------------------------------------------------ step
    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        views = batch.views
        if not views:
            raise ValueError(f"{type(self).__name__} needs at least one view per batch")
        if len(views) < self.bank_crops:
            raise ValueError(
                f"bank_crops={self.bank_crops} but the batch has only {len(views)} views"
            )
        bs = views[0].shape[0]
        embedding, scores = self.network(views)
        idx = batch.indices.to(self.assignments.device)
        n_views = len(views)
        loss = embedding.new_zeros(())
        used = 0.0
        for h, out in enumerate(scores):
            targets = self.assignments[h, idx].repeat(n_views)
            loss = loss + masked_cross_entropy(out.float() / self.temperature, targets)
            if h == 0:
                used = float((targets >= 0).float().mean())
        loss = loss / len(scores)
        with torch.no_grad():
            emb = embedding.detach().to(self.bank.dtype)
            for c in range(self.bank_crops):
                self.bank[c, idx] = emb[c * bs : (c + 1) * bs]
            self.bank_filled[idx] = True
        logs = {"assigned_in_batch": used, **self.last_assignment}
        return StepOutput(loss=loss, logs=logs)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def feature_centres(self) -> Tensor | None:
        return self.network.feature_prototypes()

    @torch.no_grad()
    def cluster_scores(self, images: Tensor) -> Tensor:
        _, scores = self.network([images])
        return scores[0] / self.temperature


class SeLaV2(MemoryBankMethod):
    """SeLa-v2: balanced labels from the equipartition solver on the bank's prototype scores."""

    name = "selav2"

    def __init__(
        self,
        network: EmbeddingNetwork,
        *,
        dataset_size: int,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        tol: float = 1e-2,
        max_iter: int = 500,
        bank_crops: int = 2,
        freeze_prototypes_iters: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(
            network,
            dataset_size=dataset_size,
            temperature=temperature,
            bank_crops=bank_crops,
            seed=seed,
        )
        if epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        self.epsilon, self.tol, self.max_iter = epsilon, tol, max_iter
        self.freeze_prototypes_iters = freeze_prototypes_iters

    def on_before_optimizer_step(self, ctx: StepContext) -> None:
        if ctx.iteration < self.freeze_prototypes_iters:
            for p in self.network.prototypes.parameters():
                p.grad = None

    def assign(self, embeddings: Tensor, head: int, epoch: int) -> Tensor:
        weight = self.network.prototypes.weights()[head].detach().float()
        scores = F.linear(embeddings, weight) / self.epsilon
        res = sinkhorn_equipartition(scores, 1.0, tol=self.tol, max_iter=self.max_iter)
        return res.labels


class DeepClusterV2(MemoryBankMethod):
    """DeepCluster-v2: spherical k-means on the bank; centroids become the prototypes (the head)."""

    name = "deepclusterv2"

    def __init__(
        self,
        network: EmbeddingNetwork,
        *,
        dataset_size: int,
        temperature: float = 0.1,
        kmeans_iters: int = 10,
        bank_crops: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(
            network,
            dataset_size=dataset_size,
            temperature=temperature,
            bank_crops=bank_crops,
            seed=seed,
        )
        if kmeans_iters < 1:
            raise ValueError(f"kmeans_iters must be >= 1, got {kmeans_iters}")
        self.kmeans_iters = kmeans_iters

    def on_before_optimizer_step(self, ctx: StepContext) -> None:
        for p in self.network.prototypes.parameters():  # the head is the centroids, not learnt
            p.grad = None

    def assign(self, embeddings: Tensor, head: int, epoch: int) -> Tensor:
        weight = self.network.prototypes.weights()[head]
        km = KMeans(
            weight.shape[0],
            n_iter=self.kmeans_iters,
            seed=self.seed * 1000 + epoch * 10 + head,
            spherical=True,
            use_gpu=False,
        ).fit(embeddings.cpu().numpy())
        centroids = torch.from_numpy(np.ascontiguousarray(km.centroids_))
        weight.data.copy_(F.normalize(centroids, dim=1).to(weight.device, weight.dtype))
        return torch.from_numpy(km.labels_)


def masked_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over rows whose target is >= 0; ``0 * logits.sum()`` when there is none.

    Example: ``masked_cross_entropy(torch.zeros(2, 4), torch.tensor([-1, 3]))`` → ``ln 4``.
    """
    if bool((targets >= 0).any()):
        return F.cross_entropy(logits, targets, ignore_index=UNASSIGNED)
    return logits.sum() * 0.0
