"""SwAV's online codes: a few Sinkhorn-Knopp iterations on a batch of prototype scores.

:func:`sinkhorn_codes` returns the same codes as the paper's plain algorithm
(:func:`plain_sinkhorn_codes`, kept for reference and benchmarks) wherever that one is finite, and
finite codes for every finite input. See ``docs/ot.md`` for the derivation.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from selflabel.ot.distributed import all_reduce_, group_size

__all__ = ["plain_sinkhorn_codes", "sinkhorn_codes"]

# Kernel entries below exp(-_DROP) times their column's largest entry are set to exactly 0:
# exp() would otherwise make float32 subnormals, which are 10-20x slower in every later pass.
# The fast path checks that the dropped mass is below 1e-8 of every row (else: log domain).
_DROP = 75.0
_TINY = math.exp(-_DROP)
_DROPPED_MASS_FACTOR = _TINY * 1e8


def _check(scores: Tensor, eps: float, n_iters: int) -> None:
    if not isinstance(scores, Tensor) or scores.ndim != 2 or not scores.is_floating_point():
        raise ValueError("scores must be a floating-point tensor of shape (B, K)")
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a positive finite number, got {eps}")
    if int(n_iters) != n_iters or n_iters < 1:
        raise ValueError(f"n_iters must be an integer >= 1, got {n_iters}")


@torch.no_grad()
def sinkhorn_codes(
    scores: Tensor, eps: float = 0.05, n_iters: int = 3, group: Any = None
) -> Tensor:
    """SwAV codes of a batch: equipartitioned soft assignments of B samples to K prototypes.

    Computes exactly what SwAV's ``distributed_sinkhorn`` computes (the paper's Algorithm:
    ``Q = exp(scores / eps).T``, normalise the total, then ``n_iters`` times normalise the
    prototype sums to ``1/K`` and the sample sums to ``1/B``, return ``(Q * B).T``), but safely:

    * The kernel is shifted by each prototype's largest score before ``exp``; the first
      prototype normalisation cancels that shift exactly, so nothing can overflow.
    * The iterations run on scaling vectors (two matrix-vector products per iteration) instead of
      rewriting the B x K matrix four times, so it is faster than the plain algorithm.
    * If the shifted kernel underflows (a sample whose every score is more than ~75 * eps below
      every prototype's best), the same iterations run in the log domain instead. The check
      costs O(B + K).

    Args:
        scores: ``(B, K)`` scores of this process's samples against the K prototypes, any
            floating dtype (fp16/bf16/fp32/fp64), any device, any strides. Never modified.
            Inside ``torch.autocast`` the computation still runs in float32.
        eps: entropic regularisation (SwAV's ``epsilon``), > 0. Finite output for scores/eps up
            to about 1e37 in magnitude (e.g. scores of +-1e4 with eps=1e-3).
        n_iters: number of Sinkhorn iterations (prototype then sample normalisation), >= 1.
        group: ``None`` for a single process. A ``torch.distributed`` process group (e.g.
            ``torch.distributed.group.WORLD``) to treat the rows of all its processes as one
            batch: prototype sums and the batch size are reduced across the group, and each
            process receives the codes of its own rows, equal (up to float rounding of the
            reductions) to the rows a single process holding all rows in rank order would get.

    Returns:
        ``(B, K)`` float32 codes on ``scores.device``, no gradient; every row sums to 1 and
        each prototype receives about ``B_total / K`` of the mass (exactly after the last
        prototype step, up to the last sample normalisation, as in the paper).

    Example:
        >>> scores = torch.randn(256, 30) / 3
        >>> q = sinkhorn_codes(scores, eps=0.05, n_iters=3)
        >>> torch.allclose(q.sum(1), torch.ones(256))
        True
    """
    _check(scores, eps, n_iters)
    with torch.autocast(device_type=scores.device.type, enabled=False):
        out = _fast_codes(scores, float(eps), int(n_iters), group)
        if out is None:
            out = _log_domain_codes(scores, float(eps), int(n_iters), group)
    return out


def _fast_codes(scores: Tensor, eps: float, n_iters: int, group: Any) -> Tensor | None:
    """Scaling-form iterations on ``P = exp((scores - column max) / eps)``; None if unsafe."""
    B, K = scores.shape
    P = scores.to(dtype=torch.float32, copy=True)
    col_max = P.amax(dim=0) if B > 0 else P.new_full((K,), -math.inf)
    all_reduce_(col_max, group, "max")
    P.sub_(col_max).div_(eps)  # <= 0, and 0 at each prototype's best sample
    # exp of arguments below ~-87 is 10-100x slower on CPU and makes slow subnormals:
    # clamp, exponentiate, and set what is below exp(-_DROP) to exactly 0
    P.clamp_(min=-_DROP - 1.0).exp_()
    F.threshold(P, _TINY, 0.0, inplace=True)
    inv_r = P.new_ones(B)
    bad = torch.zeros((), dtype=torch.bool, device=P.device)
    inv_c = P.new_ones(K)
    for _ in range(n_iters):
        # prototype step: column sums (the 1/K and 1/B constants cancel in the row step)
        c = torch.mv(P.t(), inv_r)
        all_reduce_(c, group)
        inv_c = c.reciprocal()
        # sample step: row sums of P * inv_c
        r = torch.mv(P, inv_c)
        # dropped entries are < exp(-_DROP) * inv_c.max() each: demand they are negligible
        floor = K * _DROPPED_MASS_FACTOR * inv_c.max()
        bad = bad | ~torch.isfinite(inv_c).all() | (r.amin() <= floor if B > 0 else bad)
        inv_r = r.reciprocal()
    flag = bad.to(torch.float32).reshape(1)
    all_reduce_(flag, group, "max")
    if bool(flag.item()):
        return None
    return P.mul_(inv_c).mul_(inv_r.unsqueeze(1))


def _log_domain_codes(scores: Tensor, eps: float, n_iters: int, group: Any) -> Tensor:
    """The same iterations on log-potentials: exact for every finite input, slower."""
    L = scores.to(torch.float32).div(eps)
    B, K = L.shape
    f = L.new_zeros(B, 1)
    g = L.new_zeros(K)
    for _ in range(n_iters):
        g = -_global_column_logsumexp(L + f, group)
        f = -torch.logsumexp(L + g, dim=1, keepdim=True)
    return torch.softmax(L + g, dim=1)


def _global_column_logsumexp(X: Tensor, group: Any) -> Tensor:
    """log(sum over all processes' rows of exp(X)) per column, without overflow."""
    m = X.amax(dim=0) if X.shape[0] > 0 else X.new_full((X.shape[1],), -math.inf)
    all_reduce_(m, group, "max")
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    s = torch.exp(X - m).sum(dim=0)
    all_reduce_(s, group)
    return m + torch.log(s)


@torch.no_grad()
def plain_sinkhorn_codes(
    scores: Tensor, eps: float = 0.05, n_iters: int = 3, group: Any = None
) -> Tensor:
    """The paper's plain algorithm, verbatim (SwAV's ``distributed_sinkhorn``). Unsafe.

    Overflows to NaN when ``scores / eps`` exceeds ~88 in float32 (or ~11 in fp16). Kept as
    the reference that :func:`sinkhorn_codes` is tested and benchmarked against. Computes in
    the dtype of ``scores``; returns ``(B, K)``.
    """
    Q = torch.exp(scores / eps).t()  # (K, B)
    B = Q.shape[1] * group_size(group)
    K = Q.shape[0]
    sum_Q = torch.sum(Q)
    all_reduce_(sum_Q, group)
    Q /= sum_Q
    for _ in range(n_iters):
        sum_of_rows = torch.sum(Q, dim=1, keepdim=True)
        all_reduce_(sum_of_rows, group)
        Q /= sum_of_rows
        Q /= K
        Q /= torch.sum(Q, dim=0, keepdim=True)
        Q /= B
    Q *= B
    return Q.t()
