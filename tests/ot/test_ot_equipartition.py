"""sinkhorn_equipartition: marginals, balance, LP optimum, POT agreement, stability, warm start,
equivariance, distributed = single, and hypothesis over shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _ot_dist_fns import equipartition_shard, make_log_p
from hypothesis import given, settings
from hypothesis import strategies as st

from selflabel.ot import (
    Potentials,
    balanced_capacities,
    sinkhorn_equipartition,
    transport_plan,
)
from selflabel.ot import equipartition as equipartition_module
from selflabel.testing import run_distributed


def assert_balanced(labels: torch.Tensor, K: int) -> None:
    counts = torch.bincount(labels, minlength=K)
    N = labels.numel()
    assert counts.sum() == N
    assert counts.min() >= N // K, counts.tolist()
    assert counts.max() <= -(-N // K), counts.tolist()


def column_error(plan_rows: torch.Tensor, r: torch.Tensor | None = None) -> float:
    N, K = plan_rows.shape
    target = torch.full((K,), 1.0 / K) if r is None else r / r.sum()
    return float((plan_rows.double().sum(0) / N - target.double()).abs().sum())


@pytest.mark.parametrize(("N", "K"), [(1000, 10), (997, 13), (300, 300), (50, 1)])
def test_marginals_and_balanced_labels(N: int, K: int) -> None:
    log_p = make_log_p(0, N, K)
    res = sinkhorn_equipartition(log_p, lam=25.0, tol=1e-4)
    assert res.converged
    assert res.error <= 1e-4
    plan = res.soft_plan(log_p)
    torch.testing.assert_close(plan.sum(1), torch.ones(N))
    assert column_error(plan) <= 1.5e-4  # float32 re-evaluation of the reported error
    assert res.labels.dtype == torch.long
    assert res.labels.shape == (N,)
    assert_balanced(res.labels, K)
    torch.testing.assert_close(transport_plan(log_p, res.potentials), plan)


def test_nonuniform_prior() -> None:
    N, K = 2000, 5
    r = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05])
    log_p = make_log_p(1, N, K)
    res = sinkhorn_equipartition(log_p, lam=25.0, tol=1e-4, r=r)
    assert column_error(res.soft_plan(log_p), r) <= 1.5e-4
    assert torch.bincount(res.labels, minlength=K).tolist() == [800, 600, 300, 200, 100]
    assert balanced_capacities(N, r).tolist() == [800, 600, 300, 200, 100]


def test_exact_assignment_when_n_equals_k() -> None:
    from scipy.optimize import linear_sum_assignment

    for seed in range(3):
        K = 12
        log_p = make_log_p(seed, K, K)
        res = sinkhorn_equipartition(log_p, lam=300.0, tol=1e-3, max_iter=20000)
        rows, cols = linear_sum_assignment(-log_p.double().numpy())
        assert res.labels[torch.from_numpy(rows)].tolist() == cols.tolist()


def test_exact_lp_optimum_when_n_is_a_multiple_of_k() -> None:
    from scipy.optimize import linprog

    N, K = 24, 4
    for seed in range(3):
        log_p = make_log_p(10 + seed, N, K)
        res = sinkhorn_equipartition(log_p, lam=300.0, tol=1e-3, max_iter=20000)
        C = -log_p.double().numpy()
        A_eq = np.zeros((N + K, N * K))
        for n in range(N):
            A_eq[n, n * K : (n + 1) * K] = 1
        for k in range(K):
            A_eq[N + k, k::K] = 1
        b_eq = np.concatenate([np.ones(N), np.full(K, N / K)])
        lp = linprog(C.ravel(), A_eq=A_eq, b_eq=b_eq, bounds=(0, 1), method="highs")
        ours = C[np.arange(N), res.labels.numpy()].sum()
        assert ours == pytest.approx(lp.fun, rel=1e-9, abs=1e-9)
        assert_balanced(res.labels, K)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_pot_log_domain(seed: int) -> None:
    ot = pytest.importorskip("ot")
    N, K, lam = 400, 9, 25.0
    log_p = make_log_p(seed, N, K)
    res = sinkhorn_equipartition(log_p, lam=lam, tol=1e-6, max_iter=5000)
    a, b = np.full(N, 1.0 / N), np.full(K, 1.0 / K)
    P = ot.sinkhorn(
        a,
        b,
        -log_p.double().numpy(),
        1.0 / lam,
        method="sinkhorn_log",
        stopThr=1e-10,
        numItermax=100000,
    )
    ours = res.soft_plan(log_p).double().numpy() / N
    assert np.abs(ours - P).sum() < 1e-4
    assert (P.argmax(1) == ours.argmax(1)).mean() >= 0.995
    # rounding stays close: labels agree with POT's argmax except where balance forces a move
    assert (P.argmax(1) == res.labels.numpy()).mean() >= 0.9


@pytest.mark.parametrize("lam", [25.0, 100.0, 300.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_stable_for_large_lambda_and_low_precision(lam: float, dtype: torch.dtype) -> None:
    N, K = 600, 20
    log_p = make_log_p(3, N, K).to(dtype)
    res = sinkhorn_equipartition(log_p, lam=lam, tol=1e-3, max_iter=5000)
    plan = res.soft_plan(log_p)
    assert torch.isfinite(plan).all()
    assert torch.isfinite(res.potentials.g).all()
    assert res.converged
    assert column_error(plan) <= 2e-3
    assert_balanced(res.labels, K)


def test_collapsed_network_is_still_partitioned() -> None:
    # every sample is 30 nats surer of cluster 0 than of anything else: with lam=100 the kernel
    # spans e^-3000, far beyond float32 (and float64), yet the plan must stay balanced
    N, K = 500, 10
    logits = torch.randn(N, K)
    logits[:, 0] += 30.0
    log_p = torch.log_softmax(logits, dim=1)
    res = sinkhorn_equipartition(log_p, lam=100.0, tol=1e-3, max_iter=5000)
    assert res.converged
    assert res.n_absorb > 0
    assert column_error(res.soft_plan(log_p)) <= 2e-3
    assert_balanced(res.labels, K)
    # in place, entries below e^-60 of their row are lost when the kernel is written: here the
    # potentials move by thousands of nats, so the in-place solver may not converge, but it
    # must say so, and its labels are balanced all the same
    res_in = sinkhorn_equipartition(log_p.clone(), lam=100.0, tol=1e-3, max_iter=300, inplace=True)
    assert res_in.converged == (res_in.error <= 1e-3)
    assert_balanced(res_in.labels, K)


def test_under_autocast() -> None:
    log_p = make_log_p(4, 300, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = sinkhorn_equipartition(log_p, lam=25.0)
    assert res.converged
    assert res.potentials.g.dtype == torch.float32


def test_does_not_modify_input_unless_inplace() -> None:
    log_p = make_log_p(5, 500, 10)
    before = log_p.clone()
    res = sinkhorn_equipartition(log_p, tol=1e-5)
    assert torch.equal(log_p, before)
    work = log_p.clone()
    res_in = sinkhorn_equipartition(work, tol=1e-5, inplace=True)
    assert not torch.equal(work, before)  # overwritten with the kernel, as documented
    assert torch.equal(res.labels, res_in.labels)
    torch.testing.assert_close(res.potentials.g, res_in.potentials.g, rtol=0, atol=1e-3)


def test_warm_start_needs_fewer_iterations() -> None:
    N, K = 3000, 30
    log_p = make_log_p(6, N, K)
    cold = sinkhorn_equipartition(log_p, lam=25.0, tol=1e-4)
    changed = torch.log_softmax(log_p + 0.01 * torch.randn(N, K), dim=1)
    cold2 = sinkhorn_equipartition(changed, lam=25.0, tol=1e-4)
    warm = sinkhorn_equipartition(changed, lam=25.0, tol=1e-4, init=cold.potentials)
    assert warm.converged
    assert warm.n_iter < 0.75 * cold2.n_iter, (warm.n_iter, cold2.n_iter)
    assert (warm.labels == cold2.labels).float().mean() > 0.99
    # the g tensor alone works too, and so does a warm start from another lambda
    again = sinkhorn_equipartition(changed, lam=25.0, tol=1e-4, init=cold.potentials.g)
    assert again.n_iter == warm.n_iter
    other = sinkhorn_equipartition(changed, lam=30.0, tol=1e-4, init=cold.potentials)
    assert other.converged


def test_permutation_equivariance() -> None:
    N, K = 400, 8
    log_p = make_log_p(7, N, K)
    res = sinkhorn_equipartition(log_p, tol=1e-5)
    rows, cols = torch.randperm(N), torch.randperm(K)
    res2 = sinkhorn_equipartition(log_p[rows][:, cols], tol=1e-5)
    assert torch.equal(cols[res2.labels], res.labels[rows])
    torch.testing.assert_close(res2.potentials.g, res.potentials.g[cols], rtol=0, atol=2e-3)


def test_soft_plan_of_a_chunk_equals_rows_of_the_full_plan() -> None:
    log_p = make_log_p(8, 200, 6)
    res = sinkhorn_equipartition(log_p)
    full = res.soft_plan(log_p)
    idx = torch.tensor([5, 0, 199, 17])
    torch.testing.assert_close(res.soft_plan(log_p[idx]), full[idx])
    assert isinstance(res.potentials, Potentials)
    assert res.potentials.lam == 25.0


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="lam"):
        sinkhorn_equipartition(torch.randn(4, 2), lam=-1.0)
    with pytest.raises(ValueError, match="r must"):
        sinkhorn_equipartition(torch.randn(4, 2), r=torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="init"):
        sinkhorn_equipartition(torch.randn(4, 2), init=torch.zeros(3))
    with pytest.raises(ValueError, match="inplace"):
        sinkhorn_equipartition(torch.randn(4, 2).t(), inplace=True)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 80), K=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_property_shapes(N: int, K: int, seed: int) -> None:
    log_p = make_log_p(seed, N, K)
    res = sinkhorn_equipartition(log_p, lam=25.0, tol=1e-3, max_iter=5000)
    assert res.converged
    assert res.labels.shape == (N,)
    counts = torch.bincount(res.labels, minlength=K)
    assert counts.min() >= N // K
    assert counts.max() <= -(-N // K)
    assert torch.isfinite(res.soft_plan(log_p)).all()


@pytest.mark.distributed
def test_two_processes_equal_one() -> None:
    N, K, lam, splits = 301, 7, 25.0, [120, 181]
    runs = run_distributed(equipartition_shard, 2, 9, N, K, lam, splits)
    for inplace, parts in zip((False, True), zip(*runs, strict=True), strict=True):
        single = sinkhorn_equipartition(make_log_p(9, N, K), lam=lam, tol=1e-4, inplace=inplace)
        assert [p["n_iter"] for p in parts] == [single.n_iter] * 2
        assert torch.equal(torch.cat([p["labels"] for p in parts]), single.labels)
        for p in parts:
            torch.testing.assert_close(p["g"], single.potentials.g, rtol=0, atol=1e-4)
            assert p["error"] == pytest.approx(single.error, rel=1e-3, abs=1e-6)
        assert single.potentials.f is not None
        f = torch.cat([p["f"] for p in parts])
        torch.testing.assert_close(f, single.potentials.f, rtol=0, atol=1e-3)


def test_separated_clusters_of_unequal_size_converge_by_annealing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Confident scores for clusters of random sizes: balancing them moves the potentials by
    hundreds of nats; plain Sinkhorn at lam = 25 needs ~1900 iterations (23 absorptions), the
    cold start's epsilon-scaling fallback ~200."""
    g = torch.Generator().manual_seed(0)
    N, K = 2000, 100
    centres = torch.randn(K, 128, generator=g)
    feats = centres[torch.randint(0, K, (N,), generator=g)] + 0.5 * torch.randn(N, 128, generator=g)
    logits = feats @ (0.1 * centres).t()
    res = sinkhorn_equipartition(logits, 25.0, tol=1e-2, max_iter=400)
    assert res.converged
    assert res.n_iter <= 300
    assert float(res.potentials.g.min()) < -200  # the problem really is that peaked
    assert_balanced(res.labels, K)
    # plain iterations from the same cold start do not get there within the same budget
    monkeypatch.setattr(equipartition_module, "_COLD_BUDGET", 10**9)
    plain = sinkhorn_equipartition(logits, 25.0, tol=1e-2, max_iter=400)
    assert not plain.converged
