"""sinkhorn_codes: equals SwAV's plain algorithm, finite everywhere, distributed = single."""

from __future__ import annotations

import math

import pytest
import torch
from _ot_dist_fns import codes_shard, make_scores
from hypothesis import given, settings
from hypothesis import strategies as st

from selflabel.ot import plain_sinkhorn_codes, sinkhorn_codes
from selflabel.ot.codes import _fast_codes
from selflabel.testing import run_distributed


def reference_codes(scores: torch.Tensor, eps: float, n_iters: int) -> torch.Tensor:
    """The paper's iterations in float64 log domain (exact for every finite input)."""
    L = scores.double() / eps
    f = torch.zeros(L.shape[0], 1, dtype=torch.float64)
    g = torch.zeros(L.shape[1], dtype=torch.float64)
    for _ in range(n_iters):
        g = -torch.logsumexp(L + f, dim=0)
        f = -torch.logsumexp(L + g, dim=1, keepdim=True)
    return torch.softmax(L + g, dim=1)


@pytest.mark.parametrize(
    ("B", "K", "n_iters"), [(64, 10, 3), (256, 300, 3), (33, 7, 1), (50, 80, 5)]
)
def test_equals_plain_algorithm(B: int, K: int, n_iters: int) -> None:
    scores = torch.nn.functional.normalize(torch.randn(B, K), dim=1)  # cosine-like, as in SwAV
    q = sinkhorn_codes(scores, eps=0.05, n_iters=n_iters)
    plain = plain_sinkhorn_codes(scores.double(), eps=0.05, n_iters=n_iters)
    assert q.dtype == torch.float32
    assert q.shape == (B, K)
    torch.testing.assert_close(q.double(), plain, rtol=1e-5, atol=1e-7)
    plain32 = plain_sinkhorn_codes(scores, eps=0.05, n_iters=n_iters)
    torch.testing.assert_close(q, plain32, rtol=1e-5, atol=1e-7)


def test_marginals() -> None:
    B, K = 512, 64
    scores = torch.nn.functional.normalize(torch.randn(B, K), dim=1)
    q = sinkhorn_codes(scores, eps=0.05, n_iters=3)
    torch.testing.assert_close(q.sum(1), torch.ones(B))
    # the prototype sums move towards B/K: much closer than the plain softmax's
    soft = torch.softmax(scores / 0.05, dim=1)
    assert (q.sum(0) - B / K).abs().max() < 0.2 * (soft.sum(0) - B / K).abs().max()
    q_many = sinkhorn_codes(scores, eps=0.05, n_iters=200)
    torch.testing.assert_close(q_many.sum(0), torch.full((K,), B / K), rtol=1e-3, atol=0)


def test_input_not_modified_and_no_grad() -> None:
    scores = torch.randn(20, 5, requires_grad=True)
    before = scores.detach().clone()
    q = sinkhorn_codes(scores)
    assert torch.equal(scores.detach(), before)
    assert not q.requires_grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("scale", [1.0, 100.0, 1e4])
@pytest.mark.parametrize("eps", [0.05, 1e-3])
def test_finite_on_extreme_inputs(dtype: torch.dtype, scale: float, eps: float) -> None:
    scores = (scale * (2 * torch.rand(64, 30) - 1)).to(dtype)
    q = sinkhorn_codes(scores, eps=eps)
    assert q.dtype == torch.float32
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q.sum(1), torch.ones(64))
    # float32 carries scores/eps with relative error ~6e-8: that bounds any float32 algorithm
    rtol = 1e-5 + 2.4e-7 * scale / eps
    if rtol < 0.1:
        ref = reference_codes(scores.float(), eps, 3)
        torch.testing.assert_close(q.double(), ref, rtol=rtol, atol=1e-6)


def test_plain_algorithm_overflows_where_ours_does_not() -> None:
    scores = torch.randn(32, 8) * 10
    assert not torch.isfinite(plain_sinkhorn_codes(scores, eps=0.05)).all()
    assert torch.isfinite(sinkhorn_codes(scores, eps=0.05)).all()


def test_under_autocast() -> None:
    scores = torch.randn(64, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q = sinkhorn_codes(scores @ torch.eye(16), eps=0.05)
    assert q.dtype == torch.float32
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q.sum(1), torch.ones(64))


def test_log_domain_fallback_is_taken_and_exact() -> None:
    # one sample is far below every prototype's best: the shifted kernel underflows for it
    scores = torch.randn(16, 6)
    scores[3] -= 50.0
    assert _fast_codes(scores, 0.05, 3, None) is None
    q = sinkhorn_codes(scores, eps=0.05)
    torch.testing.assert_close(q.double(), reference_codes(scores, 0.05, 3), rtol=1e-4, atol=1e-7)
    # and the fast path is taken on ordinary inputs
    assert _fast_codes(torch.randn(16, 6), 0.05, 3, None) is not None


def test_permutation_equivariance() -> None:
    scores = torch.randn(40, 12)
    q = sinkhorn_codes(scores)
    rows, cols = torch.randperm(40), torch.randperm(12)
    q2 = sinkhorn_codes(scores[rows][:, cols])
    torch.testing.assert_close(q2, q[rows][:, cols], rtol=1e-5, atol=1e-7)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="eps"):
        sinkhorn_codes(torch.randn(3, 3), eps=0.0)
    with pytest.raises(ValueError, match="n_iters"):
        sinkhorn_codes(torch.randn(3, 3), n_iters=0)
    with pytest.raises(ValueError, match="shape"):
        sinkhorn_codes(torch.randn(3))


@settings(max_examples=40, deadline=None)
@given(
    B=st.integers(1, 40),
    K=st.integers(1, 40),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
    eps=st.sampled_from([0.05, 0.3]),
    seed=st.integers(0, 2**16),
)
def test_property_shapes(B: int, K: int, scale: float, eps: float, seed: int) -> None:
    scores = make_scores(seed, B, K, scale)
    q = sinkhorn_codes(scores, eps=eps, n_iters=3)
    assert q.shape == (B, K)
    assert torch.isfinite(q).all()
    assert (q >= 0).all()
    torch.testing.assert_close(q.sum(1), torch.ones(B))
    # float32 rounds each exponent score/eps to ~6e-8 of its size: the codes' relative error
    # grows with max |score| / eps (up to ~3e-4 at scale 30, eps 0.05, seed 33797)
    rtol = max(1e-4, 1e-6 * float(scores.abs().max()) / eps)
    torch.testing.assert_close(q.double(), reference_codes(scores, eps, 3), rtol=rtol, atol=1e-6)


@pytest.mark.distributed
def test_two_processes_equal_one() -> None:
    # ordinary scores (fast path) and extreme ones (log-domain path), uneven shards
    B, K, splits = 50, 12, [20, 30]
    settings = [(1.0, 0.05), (1e4, 1e-3)]
    runs = run_distributed(codes_shard, 2, 7, B, K, settings, splits)
    for i, (scale, eps) in enumerate(settings):
        single = sinkhorn_codes(make_scores(7, B, K, scale), eps=eps, n_iters=3)
        both = torch.cat([runs[0][i], runs[1][i]])
        torch.testing.assert_close(both, single, rtol=1e-5, atol=1e-7)
        assert math.isclose(float(both.sum()), B, rel_tol=1e-5)
