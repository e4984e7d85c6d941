"""The CPU sparse (CSR) kernel of sinkhorn_equipartition: the same entries, the same solution."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from selflabel.ot import sinkhorn_equipartition, sparse_kernel, transport_plan
from selflabel.ot.scaling import _DROP
from selflabel.ot.sparse_kernel import CsrKernel

pytestmark = pytest.mark.skipif(not sparse_kernel.available(), reason="numba not installed")


@pytest.fixture(autouse=True)
def _sparse_for_small_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    # the solver keeps small problems dense (overheads); these tests want the sparse path
    monkeypatch.setattr(sparse_kernel, "MIN_ENTRIES", 0)


def peaked(seed: int, N: int, K: int, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(scale * torch.randn(N, K, generator=g), dim=1)


def dense_reference(monkeypatch: pytest.MonkeyPatch, log_p: torch.Tensor, **kw):  # type: ignore[no-untyped-def]
    with monkeypatch.context() as m:
        m.setattr(sparse_kernel, "available", lambda: False)
        return sinkhorn_equipartition(log_p, **kw)


def test_build_keeps_exactly_the_dense_kernels_entries() -> None:
    log_p = peaked(0, 300, 40)
    log_p[0, :5] = -math.inf  # impossible pairs are never kept
    g = 0.3 * torch.randn(40)
    lam = 25.0
    built = CsrKernel.build(log_p, g, lam, _DROP, max_density=1.0)
    assert built is not None
    csr, f, rowsum = built
    x = lam * log_p + g
    m = x.amax(dim=1, keepdim=True)
    keep = (x - m) > -_DROP
    rows = np.repeat(np.arange(300), np.diff(csr.indptr))
    dense_np = np.zeros((300, 40), np.float32)
    dense_np[rows, csr.indices] = csr.values
    dense = torch.from_numpy(dense_np)
    assert torch.equal(dense > 0, keep)
    assert torch.allclose(dense[keep], torch.exp(x - m)[keep], rtol=1e-5)
    assert torch.allclose(f, -m.squeeze(1))
    assert torch.allclose(rowsum, dense.sum(dim=1), rtol=1e-5)
    assert csr.density == pytest.approx(float(keep.float().mean()))


def test_a_dense_problem_declines_the_sparse_kernel() -> None:
    flat = torch.log_softmax(0.01 * torch.randn(200, 10), dim=1)
    assert CsrKernel.build(flat, torch.zeros(10), 25.0, _DROP) is None


@pytest.mark.parametrize(("N", "K", "scale"), [(2000, 50, 3.0), (999, 7, 5.0), (500, 200, 2.0)])
def test_sparse_and_dense_paths_agree(
    monkeypatch: pytest.MonkeyPatch, N: int, K: int, scale: float
) -> None:
    log_p = peaked(N, N, K, scale)
    kw = {"lam": 25.0, "tol": 1e-4}
    ref = dense_reference(monkeypatch, log_p, **kw)
    res = sinkhorn_equipartition(log_p, **kw)
    assert res.n_iter == ref.n_iter
    assert res.n_absorb == ref.n_absorb
    assert torch.allclose(res.potentials.g, ref.potentials.g, atol=1e-3)
    assert (res.labels != ref.labels).float().mean() < 0.002  # ties may break differently
    # a warm start from those potentials after a small change agrees as well
    moved = log_p + 0.02 * torch.randn(N, K)
    ref2 = dense_reference(monkeypatch, moved, init=ref.potentials, **kw)
    res2 = sinkhorn_equipartition(moved, init=res.potentials, **kw)
    assert res2.n_iter == ref2.n_iter
    assert torch.allclose(res2.potentials.g, ref2.potentials.g, atol=1e-3)


def test_small_problems_stay_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sparse_kernel, "MIN_ENTRIES", 10**9)
    log_p = peaked(1, 400, 20)
    ws = torch.full_like(log_p, float("nan"))
    sinkhorn_equipartition(log_p, lam=25.0, workspace=ws)
    assert torch.isfinite(ws).all()


def test_sparse_path_does_not_touch_the_workspace() -> None:
    log_p = peaked(1, 400, 20)
    ws = torch.full_like(log_p, float("nan"))
    res = sinkhorn_equipartition(log_p, lam=25.0, workspace=ws)
    assert res.converged
    assert torch.isnan(ws).all()


@settings(max_examples=30, deadline=None)
@given(
    N=st.integers(1, 120),
    K=st.integers(1, 15),
    scale=st.floats(0.5, 8.0),
    seed=st.integers(0, 2**16),
)
def test_property_sparse_equals_dense(N: int, K: int, scale: float, seed: int) -> None:
    # On such tiny problems the dual is often nearly degenerate (potentials 60 nats apart):
    # float rounding of the sums may then steer the adaptive iterations along another path to a
    # different plan within tol, so the property is that the sparse solution is as valid.
    log_p = peaked(seed, N, K, scale)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sparse_kernel, "available", lambda: False)
        ref = sinkhorn_equipartition(log_p, lam=25.0, tol=1e-3)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sparse_kernel, "MIN_ENTRIES", 0)  # the autouse fixture does not reach here
        res = sinkhorn_equipartition(log_p, lam=25.0, tol=1e-3)
    assert res.converged == ref.converged
    if res.converged:
        plan = transport_plan(log_p, res.potentials).double()
        col_err = float((plan.sum(0) / N - 1.0 / K).abs().sum())
        assert col_err <= 1e-3 + 1e-5
    counts = torch.bincount(res.labels, minlength=K)
    assert int(counts.min()) >= N // K
    assert int(counts.max()) <= -(-N // K)
