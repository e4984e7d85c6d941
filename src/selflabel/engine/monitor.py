"""Training health: a collapse detector for clustering methods and a non-finite loss stop.

Usage::

    monitor = CollapseMonitor(n_clusters=3000)
    for step in ...:
        monitor.update(loss=out.loss.item(), assignments=codes)   # codes (B, K) or ids (B,)
    report = monitor.report()          # once per epoch (all ranks: counts are summed)
    if report.collapsed:
        print(report.diagnosis)
    monitor.reset()

    check_finite(loss, ctx, lr=lr, last_finite_loss=prev)   # raises NonFiniteLossError
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from selflabel.engine.distributed import is_distributed, reduce_sum
from selflabel.methods.base import StepContext


class NonFiniteLossError(FloatingPointError):
    """Training stopped because the loss became NaN or infinite."""


def check_finite(
    loss: float | Tensor,
    ctx: StepContext,
    *,
    lr: float | None = None,
    last_finite_loss: float | None = None,
    amp: str = "off",
    logs: Mapping[str, float] | None = None,
) -> float:
    """Return ``loss`` as a float, or raise :class:`NonFiniteLossError` with a diagnosis.

    The message names the epoch and iteration, the learning rate, the last finite loss, the
    method's logs at that step, and what usually helps.
    """
    value = float(loss.detach().float().item()) if isinstance(loss, Tensor) else float(loss)
    if math.isfinite(value):
        return value
    hints = [
        "lower the learning rate or lengthen the warm-up",
        "enable gradient clipping (grad_clip, e.g. 3.0)",
        "check the Sinkhorn epsilon and the softmax temperature (too small overflows)",
    ]
    if amp != "off":
        hints.insert(0, f"train in fp32 (amp is {amp!r}); fp16 overflows first")
    if ctx.world_size > 1:
        hints.append("a small per-GPU batch with a queue started too early also destabilises SwAV")
    step = ctx.iteration % max(ctx.iters_per_epoch, 1)
    where = f"epoch {ctx.epoch}, iteration {ctx.iteration} (step {step} of {ctx.iters_per_epoch})"
    parts = [f"non-finite loss ({value}) at {where}"]
    parts.append(f"lr={lr:.6g}" if lr is not None else "lr=?")
    parts.append(
        f"last finite loss={last_finite_loss:.6g}"
        if last_finite_loss is not None
        else "no finite loss yet (fails at the first step: check the inputs and the model)"
    )
    if logs:
        parts.append("logs: " + ", ".join(f"{k}={v:.4g}" for k, v in logs.items()))
    raise NonFiniteLossError("; ".join(parts) + ". Try: " + "; ".join(hints) + ".")


@dataclass
class CollapseReport:
    """What :meth:`CollapseMonitor.report` found; ``diagnosis`` is empty when healthy."""

    collapsed: bool
    diagnosis: str
    stats: dict[str, float] = field(default_factory=dict)


class CollapseMonitor:
    """Detects the usual failure modes of clustering-based self-supervision.

    Fed every step with the loss and (optionally) assignments: hard cluster ids ``(B,)`` or
    soft codes/probabilities ``(B, K)``. :meth:`report` flags

    - the loss stuck near ``ln K`` (the network predicts uniformly over clusters),
    - few clusters used (one, or fewer than ``min_used_fraction`` of ``min(K, samples seen)``),
    - a low normalised entropy of the cluster-size histogram (one cluster takes most samples),
    - soft codes whose rows are almost uniform (entropy near ``ln K``: epsilon too large).

    Counts are summed over ranks in :meth:`report` when a process group is initialised, so call
    it on every rank.
    """

    def __init__(
        self,
        n_clusters: int,
        *,
        loss_tol: float = 0.02,
        min_used_fraction: float = 0.1,
        min_size_entropy: float = 0.5,
        max_code_entropy: float = 0.98,
        min_steps: int = 10,
    ) -> None:
        if n_clusters < 2:
            raise ValueError(f"CollapseMonitor needs n_clusters >= 2, got {n_clusters}")
        self.n_clusters = n_clusters
        self.loss_tol = loss_tol
        self.min_used_fraction = min_used_fraction
        self.min_size_entropy = min_size_entropy
        self.max_code_entropy = max_code_entropy
        self.min_steps = min_steps
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (call at the start of each epoch)."""
        self._counts = torch.zeros(self.n_clusters, dtype=torch.float64)
        self._loss_sum = 0.0
        self._steps = 0
        self._code_entropy_sum = 0.0
        self._code_rows = 0
        self._batch_used_sum = 0.0
        self._batch_used_steps = 0

    @torch.no_grad()
    def update(
        self,
        loss: float | None = None,
        assignments: Tensor | None = None,
        logs: Mapping[str, float] | None = None,
    ) -> None:
        """Record one step's loss and cluster assignments (ids ``(B,)`` or scores ``(B, K)``).

        Without assignments, a method's logs may stand in: ``code_entropy`` (mean entropy of the
        code rows, nats) and ``clusters_used`` (distinct clusters in the batch).
        """
        if loss is not None and math.isfinite(loss):
            self._loss_sum += float(loss)
            self._steps += 1
        if assignments is None:
            if logs and math.isfinite(logs.get("code_entropy", math.nan)):
                self._code_entropy_sum += float(logs["code_entropy"])
                self._code_rows += 1
            if logs and math.isfinite(logs.get("clusters_used", math.nan)):
                self._batch_used_sum += float(logs["clusters_used"])
                self._batch_used_steps += 1
            return
        a = assignments.detach()
        if a.is_floating_point():
            if a.ndim != 2 or a.shape[1] != self.n_clusters:
                raise ValueError(
                    f"soft assignments must be (B, {self.n_clusters}), got {tuple(a.shape)}"
                )
            p = a.float().clamp_min(0)
            p = p / p.sum(1, keepdim=True).clamp_min(1e-12)
            ent = -(p * p.clamp_min(1e-12).log()).sum(1)
            self._code_entropy_sum += float(ent.sum())
            self._code_rows += p.shape[0]
            a = p.argmax(1)
        ids = a.reshape(-1).long().cpu()
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.n_clusters):
            raise ValueError(
                f"cluster ids must be in [0, {self.n_clusters}), "
                f"got {int(ids.min())}..{int(ids.max())}"
            )
        self._counts += torch.bincount(ids, minlength=self.n_clusters).double()

    def report(self, *, first_epoch: bool = False) -> CollapseReport:
        """Statistics since the last :meth:`reset` and a diagnosis if collapse is suspected.

        ``first_epoch=True`` skips the loss-at-ln-K test: every clustering loss starts at ln K
        (frozen prototypes, warm-up), so only cluster usage can reveal a collapse that early.
        """
        totals = torch.tensor(
            [
                self._loss_sum,
                self._steps,
                self._code_entropy_sum,
                self._code_rows,
                self._batch_used_sum,
                self._batch_used_steps,
            ],
            dtype=torch.float64,
        )
        counts = self._counts
        if is_distributed():
            totals, counts = reduce_sum(totals), reduce_sum(counts)
        loss_sum, steps, code_ent_sum, code_rows, used_sum, used_steps = totals.tolist()
        ln_k = math.log(self.n_clusters)
        stats: dict[str, float] = {}
        problems: list[str] = []
        if steps > 0:
            mean_loss = loss_sum / steps
            stats["mean_loss"] = mean_loss
            near_ln_k = abs(mean_loss - ln_k) <= self.loss_tol * ln_k
            if not first_epoch and steps >= self.min_steps and near_ln_k:
                problems.append(
                    f"loss {mean_loss:.4f} stays at ln K = {ln_k:.4f}: predictions are uniform "
                    f"over the {self.n_clusters} clusters"
                )
        n_seen = float(counts.sum())
        if n_seen > 0:
            used = int((counts > 0).sum())
            p = counts[counts > 0] / n_seen
            size_entropy = max(0.0, float(-(p * p.log()).sum()) / ln_k)
            stats.update(
                clusters_used=float(used),
                size_entropy=size_entropy,
                largest_cluster_fraction=float(counts.max()) / n_seen,
            )
            expected = min(self.n_clusters, n_seen)
            if used < max(2.0, self.min_used_fraction * expected):
                problems.append(
                    f"only {used} of {self.n_clusters} clusters used for {int(n_seen)} samples"
                )
            if n_seen >= self.n_clusters and size_entropy < self.min_size_entropy:
                problems.append(
                    f"cluster sizes are very unequal (normalised entropy {size_entropy:.2f}, "
                    f"largest cluster {stats['largest_cluster_fraction']:.0%} of samples)"
                )
        if used_steps > 0:
            stats["batch_clusters_used"] = used_sum / used_steps
            if stats["batch_clusters_used"] < 1.5:
                problems.append("each batch is assigned to a single cluster")
        if code_rows > 0:
            code_entropy = code_ent_sum / code_rows / ln_k
            stats["code_entropy"] = code_entropy
            if code_entropy > self.max_code_entropy:
                problems.append(
                    f"codes are almost uniform (normalised entropy {code_entropy:.3f}): "
                    "epsilon may be too large"
                )
        if not problems:
            return CollapseReport(False, "", stats)
        hints = (
            "lower the learning rate or lengthen the warm-up; freeze the prototypes for the first "
            "iterations; check epsilon (SwAV 0.05) and temperature (0.1); with small batches start "
            "the queue later or shorten it; verify augmentations are not too weak"
        )
        return CollapseReport(
            True, "collapse suspected: " + "; ".join(problems) + ". Try: " + hints + ".", stats
        )
