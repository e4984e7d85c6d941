"""SwAV: swapped assignments between multiple views (Caron et al., NeurIPS 2020).

For every global crop the online codes ``q`` are computed with Sinkhorn-Knopp from the prototype
scores of that crop (optionally preceded by a feature queue); every *other* crop must predict those
codes from its own scores with a softmax at temperature ``tau``::

    loss = mean_{global s} mean_{t != s}  -sum_k q_s[k] * log softmax(z_t · C / tau)[k]

Prototypes are L2-normalised after every optimiser step and frozen (no gradient) for the first
``freeze_prototypes_iters`` iterations. The queue keeps the last ``queue_length`` embeddings of the
global crops *per process*; it is started at ``queue_start_epoch`` and used only once it is full.
Several prototype sets (heads) are averaged.

Example::

    net = SwAVNetwork(build_backbone("smallcnn", in_channels=1), n_prototypes=30)
    swav = SwAV(net, n_global=2, temperature=0.1, epsilon=0.05)
    out = swav.training_step(Batch(indices=idx, views=views), ctx)
    out.loss.backward()
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from selflabel.methods.base import Batch, Method, StepContext, StepOutput, default_group
from selflabel.methods.network import EmbeddingNetwork, grouped_forward
from selflabel.ot import plain_sinkhorn_codes, sinkhorn_codes


class SwAV(Method):
    """The SwAV method over an :class:`EmbeddingNetwork` (backbone + projection + prototypes)."""

    name = "swav"
    queue: Tensor
    queue_fill: Tensor
    queue_active: Tensor

    def __init__(
        self,
        network: EmbeddingNetwork,
        *,
        n_global: int = 2,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iters: int = 3,
        freeze_prototypes_iters: int = 313,
        queue_length: int = 0,
        queue_start_epoch: int = 15,
        world_size: int = 1,
    ) -> None:
        super().__init__(network.backbone)
        if n_global < 1:
            raise ValueError(f"n_global must be >= 1, got {n_global}")
        if temperature <= 0 or epsilon <= 0:
            raise ValueError(
                f"temperature and epsilon must be > 0, got temperature={temperature}, "
                f"epsilon={epsilon}"
            )
        if queue_length < 0:
            raise ValueError(f"queue_length must be >= 0 (0: no queue), got {queue_length}")
        self.network = network
        self.n_global = n_global
        self.temperature = temperature
        self.epsilon = epsilon
        self.sinkhorn_iters = sinkhorn_iters
        self.freeze_prototypes_iters = freeze_prototypes_iters
        self.queue_start_epoch = queue_start_epoch
        self.n_clusters = network.n_prototypes[0]
        per_rank = queue_length // max(world_size, 1)
        if queue_length and per_rank == 0:
            raise ValueError(
                f"queue_length={queue_length} is smaller than the world size {world_size}: "
                "use at least one queued embedding per process"
            )
        # (n_global, per-rank queue length, embedding dim); `queue_fill` counts valid rows.
        self.register_buffer("queue", torch.zeros(n_global, per_rank, network.embedding_dim))
        self.register_buffer("queue_fill", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_active", torch.zeros((), dtype=torch.bool))
        network.normalize_prototypes()

    # ------------------------------------------------------------------ hooks
    def on_epoch_start(self, ctx: StepContext) -> None:
        if self.queue.shape[1] > 0 and ctx.epoch >= self.queue_start_epoch:
            self.queue_active.fill_(True)

    def on_before_optimizer_step(self, ctx: StepContext) -> None:
        if ctx.iteration < self.freeze_prototypes_iters:
            for p in self.network.prototypes.parameters():
                p.grad = None

    def on_after_optimizer_step(self, ctx: StepContext) -> None:
        self.network.normalize_prototypes()

    # ------------------------------------------------------------------ step
    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        views = batch.views
        if len(views) < max(2, self.n_global):
            raise ValueError(
                f"SwAV needs at least 2 views and the {self.n_global} global crops the codes come "
                f"from; got {len(views)} views"
            )
        return self.loss_from_features(grouped_forward(self.backbone, views), views[0].shape[0])

    def loss_from_features(self, features: Tensor, bs: int) -> StepOutput:
        """The SwAV loss of backbone ``features`` (V*B, D) of V views of ``bs`` images each.

        ``training_step`` runs the backbone and calls this; a method that shares the backbone's
        forward pass with another loss (:class:`~selflabel.methods.swavsela.SwAVSeLa`) calls it
        directly. Updates the queue.
        """
        embedding, scores = self.network.head(features)  # (V*B, D), [(V*B, K_h)]
        group = default_group()
        queue_in_use = self._queue_full()
        loss = embedding.new_zeros(())
        entropies: list[float] = []
        used: list[float] = []
        for head, out in enumerate(scores):
            per_view = list(out.float().split(bs))
            with torch.no_grad():
                codes = [self._codes(per_view[s], s, head, group) for s in range(self.n_global)]
            if head == 0:
                entropies = [_mean_entropy(q) for q in codes]
                used = [float(q.argmax(1).unique().numel()) for q in codes]
            loss = loss + swapped_prediction_loss(per_view, codes, self.temperature)
        loss = loss / len(scores)
        self._enqueue(embedding.detach(), bs)
        logs = {
            "code_entropy": sum(entropies) / len(entropies),
            "clusters_used": sum(used) / len(used),
            "queue_in_use": float(queue_in_use),
        }
        return StepOutput(loss=loss, logs=logs)

    def _codes(self, out: Tensor, s: int, head: int, group: object) -> Tensor:
        bs = out.shape[0]
        scores = out.detach()
        if self._queue_full():
            queued = self.network.prototypes(self.queue[s])[head]
            scores = torch.cat((queued.float(), scores))
        codes = sinkhorn_codes(scores, eps=self.epsilon, n_iters=self.sinkhorn_iters, group=group)
        return codes[-bs:]

    def _queue_full(self) -> bool:
        return (
            bool(self.queue_active.item())
            and int(self.queue_fill.item()) >= self.queue.shape[1] > 0
        )

    def _enqueue(self, embedding: Tensor, bs: int) -> None:
        if not bool(self.queue_active) or self.queue.shape[1] == 0:
            return
        length = self.queue.shape[1]
        n = min(bs, length)
        for s in range(self.n_global):
            if n < length:
                self.queue[s, n:] = self.queue[s, :-n].clone()
            self.queue[s, :n] = embedding[s * bs : s * bs + n].to(self.queue.dtype)
        self.queue_fill.fill_(min(int(self.queue_fill.item()) + n, length))

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def feature_centres(self) -> Tensor | None:
        return self.network.feature_prototypes()

    @torch.no_grad()
    def cluster_scores(self, images: Tensor) -> Tensor:
        _, scores = self.network([images])
        return scores[0] / self.temperature


def swapped_prediction_loss(
    scores: list[Tensor], codes: list[Tensor], temperature: float
) -> Tensor:
    """SwAV's swapped prediction: every view predicts the codes of every *other* global view.

    ``scores[v]`` are the prototype scores (B, K) of view ``v`` (global views first) and
    ``codes[s]`` the codes (B, K) of global view ``s``. Returns
    ``mean_s mean_{t != s} mean_b -sum_k codes[s][b, k] * log_softmax(scores[t][b] / T)[k]``
    with ``T = temperature``.
    With uniform scores the loss is exactly ``ln K`` (SwAV's collapse level).
    """
    if len(scores) < 2 or len(scores) < len(codes):
        raise ValueError(
            f"need at least 2 views and one per coded global view, got {len(scores)} views "
            f"for {len(codes)} codes"
        )
    log_probs = [F.log_softmax(x / temperature, dim=1) for x in scores]
    loss = scores[0].new_zeros(())
    for s, q in enumerate(codes):
        sub = scores[0].new_zeros(())
        for t, logp in enumerate(log_probs):
            if t != s:
                sub = sub - (q * logp).sum(1).mean()
        loss = loss + sub / (len(scores) - 1)
    return loss / len(codes)


def _mean_entropy(q: Tensor) -> float:
    """Mean entropy (nats) of code rows: near 0 = confident, ln K = uniform (collapse signal)."""
    return float(-(q * torch.log(q.clamp_min(1e-12))).sum(1).mean())


def swav_loss_plain(
    scores: Sequence[Tensor], n_global: int, temperature: float, eps: float
) -> Tensor:
    """Reference SwAV loss written plainly (one prototype head, no queue, single process).

    ``scores`` is one (B, K) tensor per view. Used by the tests and by ``benchmarks/train_step.py``
    as the "obvious code" baseline.
    """
    loss = scores[0].new_zeros(())
    for s in range(n_global):
        with torch.no_grad():
            q = plain_sinkhorn_codes(scores[s].detach(), eps=eps, n_iters=3)
        sub = scores[0].new_zeros(())
        for t in range(len(scores)):
            if t != s:
                sub = sub - (q * F.log_softmax(scores[t] / temperature, dim=1)).sum(1).mean()
        loss = loss + sub / (len(scores) - 1)
    return loss / n_global


def ln_k(k: int) -> float:
    """The loss of a uniform prediction over ``k`` prototypes: SwAV's collapse level."""
    return math.log(k)
