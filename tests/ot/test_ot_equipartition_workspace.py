"""The optional ``workspace`` of sinkhorn_equipartition: same result, validated, really used."""

import pytest
import torch

from selflabel.ot import sinkhorn_equipartition


def test_workspace_gives_the_same_result_and_is_used() -> None:
    # a flat problem: its kernel is dense, so it is written to the workspace (a sparse kernel
    # is kept in compressed rows on a CPU and needs none; see test_ot_sparse_kernel.py)
    g = torch.Generator().manual_seed(0)
    log_p = torch.log_softmax(0.1 * torch.randn(500, 20, generator=g), dim=1)
    ref = sinkhorn_equipartition(log_p, lam=20.0, tol=1e-4)
    ws = torch.full_like(log_p, float("nan"))
    res = sinkhorn_equipartition(log_p, lam=20.0, tol=1e-4, workspace=ws)
    assert torch.equal(res.labels, ref.labels)
    assert torch.allclose(res.potentials.g, ref.potentials.g)
    assert torch.isfinite(ws).all()  # the kernel was written there


@pytest.mark.parametrize(
    "bad",
    [torch.empty(500, 21), torch.empty(500, 20, dtype=torch.float64), torch.empty(20, 500).t()],
)
def test_workspace_of_the_wrong_kind_is_refused(bad: torch.Tensor) -> None:
    log_p = torch.log_softmax(torch.randn(500, 20), dim=1)
    with pytest.raises(ValueError, match="workspace must be"):
        sinkhorn_equipartition(log_p, workspace=bad)
    with pytest.raises(ValueError, match="workspace must be"):
        sinkhorn_equipartition(log_p, workspace=log_p)
