"""Functions run by the 2-process gloo tests (importable by spawned children)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from selflabel.ot import sinkhorn_codes, sinkhorn_equipartition


def make_scores(seed: int, B: int, K: int, scale: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(B, K, generator=g)


def make_log_p(seed: int, N: int, K: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(2.0 * torch.randn(N, K, generator=g), dim=1)


def shard(n: int, rank: int, splits: list[int]) -> slice:
    lo = sum(splits[:rank])
    return slice(lo, lo + splits[rank])


def codes_shard(
    rank: int,
    world: int,
    seed: int,
    B: int,
    K: int,
    settings: list[tuple[float, float]],
    splits: list[int],
) -> list[torch.Tensor]:
    out = []
    for scale, eps in settings:
        scores = make_scores(seed, B, K, scale)[shard(B, rank, splits)]
        out.append(sinkhorn_codes(scores, eps=eps, n_iters=3, group=dist.group.WORLD))
    return out


def equipartition_shard(
    rank: int, world: int, seed: int, N: int, K: int, lam: float, splits: list[int]
) -> list[dict[str, object]]:
    out = []
    for inplace in (False, True):
        log_p = make_log_p(seed, N, K)[shard(N, rank, splits)].contiguous()
        res = sinkhorn_equipartition(
            log_p, lam=lam, tol=1e-4, group=dist.group.WORLD, inplace=inplace
        )
        out.append(
            {
                "labels": res.labels,
                "g": res.potentials.g,
                "f": res.potentials.f,
                "n_iter": res.n_iter,
                "error": res.error,
            }
        )
    return out
