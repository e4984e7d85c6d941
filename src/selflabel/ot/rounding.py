"""Rounding a transport plan to hard labels with equal cluster sizes.

Given the log of a row-normalised plan (``log Q[n, k]``, rows summing to 1, computed lazily by
the caller for any set of rows), :func:`balanced_labels` returns labels such that cluster ``k``
receives exactly ``cap[k]`` samples, where the capacities are ``floor(N * r_k)`` plus one for
the ``N - sum(floor)`` clusters with the largest remainders (ties: most demanded first, then
lowest index). With a uniform prior every cluster gets ``floor(N/K)`` or ``ceil(N/K)``.

It stays close to the plan: every sample first asks for its most likely cluster; a cluster that
is asked by more samples than it can hold keeps those with the highest plan probability; the
others ask for their most likely cluster that still has room, and so on. Samples whose most
likely cluster has room keep it, so when the plan is already balanced (large ``lam``, converged)
the labels are its argmax. The cost is one pass over the rows (argmax) plus passes over the few
rejected rows; memory is O(N + K) plus one chunk of rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from selflabel.ot.distributed import all_gather_rows, all_reduce_

__all__ = ["balanced_capacities", "balanced_labels"]

RowScores = Callable[[slice | Tensor], Tensor]


def balanced_capacities(n_total: int, prior: Tensor, demand: Tensor | None = None) -> Tensor:
    """Cluster sizes summing to ``n_total``: ``floor(n_total * prior)`` plus largest remainders.

    ``prior`` (K,) is normalised to sum 1. Ties in the remainder go to clusters with higher
    ``demand`` (e.g. how many samples prefer them), then to the lowest index. Returns a
    LongTensor (K,) on ``prior.device``.
    """
    r = prior.detach().to("cpu", torch.float64)
    r = r / r.sum()
    exact = n_total * r
    cap = torch.floor(exact + 1e-9).to(torch.long)
    missing = n_total - int(cap.sum())
    if missing > 0:
        # remainders rounded so that floating noise does not break ties between equal priors
        rem = torch.round((exact - cap.to(torch.float64)) * 1e6).to(torch.long)
        d = demand.detach().to("cpu", torch.long) if demand is not None else torch.zeros_like(cap)
        K = cap.numel()
        idx = torch.arange(K)
        # lexicographic: remainder desc, demand desc, index asc (stable sorts, least key first)
        order = idx
        order = order[torch.sort(-d[order], stable=True).indices]
        order = order[torch.sort(-rem[order], stable=True).indices]
        cap[order[:missing]] += 1
    elif missing < 0:  # only possible through rounding noise; take from the largest
        order = torch.argsort(cap, descending=True, stable=True)
        cap[order[:-missing]] -= 1
    return cap.to(prior.device)


def _accept(cluster: Tensor, score: Tensor, room: Tensor, group: Any) -> Tensor:
    """Which proposals (sample -> cluster, with plan log-probability) the clusters accept.

    Each cluster accepts its ``room`` best proposals across all processes (ties: lower global
    sample index first). Returns a bool mask over this process's proposals.
    """
    n_local = cluster.shape[0]
    all_cluster, start = all_gather_rows(cluster, group)
    all_score, _ = all_gather_rows(score, group)
    if all_cluster.numel() == 0:
        return torch.zeros(n_local, dtype=torch.bool, device=cluster.device)
    order = torch.sort(all_score, descending=True, stable=True).indices
    order = order[torch.sort(all_cluster[order], stable=True).indices]
    sorted_cluster = all_cluster[order]
    K = room.numel()
    counts = torch.bincount(sorted_cluster, minlength=K)
    first = torch.cumsum(counts, 0) - counts
    rank_in_cluster = torch.arange(order.numel(), device=order.device) - first[sorted_cluster]
    accepted_sorted = rank_in_cluster < room[sorted_cluster]
    accepted = torch.empty_like(accepted_sorted)
    accepted[order] = accepted_sorted
    return accepted[start : start + n_local]


@torch.no_grad()
def balanced_labels(
    row_scores: RowScores,
    n_rows: int,
    n_clusters: int,
    *,
    row_offset: Tensor | None = None,
    prior: Tensor | None = None,
    group: Any = None,
    device: torch.device | str | None = None,
    chunk_rows: int | None = None,
) -> Tensor:
    """Hard labels with prescribed cluster sizes, close to a transport plan.

    Args:
        row_scores: ``row_scores(rows)`` returns the ``(n, K)`` float log-plan of the given
            rows of this process (``rows`` a slice or a LongTensor of row indices), up to a
            per-row constant; ``-inf`` for zero plan mass (such a pair is chosen only when the
            greedy rounds leave a sample no other cluster with room).
        row_offset: ``(n_rows,)`` the per-row constants: ``row_scores(rows) + row_offset[rows]``
            is the log of the row-normalised plan (each row's ``logsumexp`` is 0), the score by
            which clusters rank samples. Default 0 (then ``row_scores`` must be normalised).
        n_rows: number of rows held by this process.
        n_clusters: K.
        prior: (K,) cluster-size prior (default uniform), normalised to sum 1.
        group: ``None`` (single process) or a process group over which the rows are sharded.
        device: where the labels live (default: CPU).
        chunk_rows: rows scored at once (bounds the temporary memory).

    Returns:
        LongTensor ``(n_rows,)`` of this process's labels. Over all processes, cluster ``k``
        receives exactly ``balanced_capacities(N, prior, demand)[k]`` samples.
    """
    K = int(n_clusters)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if prior is None:
        prior = torch.full((K,), 1.0 / K, dtype=torch.float64)
    if chunk_rows is None:
        chunk_rows = max(1, (1 << 22) // max(K, 1))
    n_total_t = torch.tensor([float(n_rows)], device=dev)
    all_reduce_(n_total_t, group)
    n_total = round(float(n_total_t.item()))

    # round 1: every sample proposes to its most likely cluster
    prop = torch.empty(n_rows, dtype=torch.long, device=dev)
    prop_score = torch.empty(n_rows, dtype=torch.float32, device=dev)
    offset = (
        row_offset.to(dev, torch.float32)
        if row_offset is not None
        else torch.zeros(n_rows, dtype=torch.float32, device=dev)
    )
    for lo in range(0, n_rows, chunk_rows):
        hi = min(lo + chunk_rows, n_rows)
        best = row_scores(slice(lo, hi)).max(dim=1)
        prop[lo:hi] = best.indices.to(dev)
        prop_score[lo:hi] = best.values.to(dev, torch.float32)
    prop_score += offset
    demand = torch.bincount(prop, minlength=K).to(torch.float64)
    all_reduce_(demand, group)
    room = balanced_capacities(n_total, prior, demand).to(dev)

    labels = torch.full((n_rows,), -1, dtype=torch.long, device=dev)
    pending = torch.arange(n_rows, device=dev)
    while True:
        ok = _accept(prop, prop_score, room, group)
        labels[pending[ok]] = prop[ok]
        room -= _count(prop[ok], K, group)
        pending = pending[~ok]
        left = torch.tensor([float(pending.numel())], device=dev)
        all_reduce_(left, group)
        if left.item() == 0:
            return labels
        # the rejected propose to their most likely cluster that still has room
        full = room <= 0
        prop = torch.empty(pending.numel(), dtype=torch.long, device=dev)
        prop_score = torch.empty(pending.numel(), dtype=torch.float32, device=dev)
        for lo in range(0, pending.numel(), chunk_rows):
            idx = pending[lo : lo + chunk_rows]
            s = row_scores(idx).to(torch.float32)
            s[:, full.to(s.device)] = -math.inf
            best = s.max(dim=1)
            prop[lo : lo + idx.numel()] = best.indices.to(dev)
            prop_score[lo : lo + idx.numel()] = best.values.to(dev)
        prop_score += offset[pending]
        # a sample that can go nowhere else (all -inf) still takes any cluster with room
        stuck = ~torch.isfinite(prop_score)
        if bool(stuck.any()):
            free = torch.nonzero(~full).flatten()
            prop[stuck] = free[0] if free.numel() else 0


def _count(clusters: Tensor, K: int, group: Any) -> Tensor:
    counts = torch.bincount(clusters, minlength=K).to(torch.float64)
    all_reduce_(counts, group)
    return counts.to(torch.long)
