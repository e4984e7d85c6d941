"""Distributed helpers, CPU SyncBN and the trainer in 2 gloo processes vs 1 process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from _engine_dist_fns import collectives, ddp_identity, train
from torch import nn

from selflabel.engine import checkpoint as ckpt
from selflabel.engine.distributed import (
    all_gather_tensor,
    init_distributed,
    is_main_process,
    reduce_mean,
)
from selflabel.testing import run_distributed


def test_no_launcher_means_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    rank, world_size, local_rank, device = init_distributed()
    assert (rank, world_size, local_rank) == (0, 1, 0)
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert is_main_process()
    x = torch.arange(3.0)
    assert torch.equal(all_gather_tensor(x), x)
    assert torch.equal(reduce_mean(x), x)
    assert ddp_identity(0, 1) == "Linear"  # no wrapper without a process group


def test_world_size_without_master_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        init_distributed(device="cpu")


X = torch.randn(6, 3, 2, 2, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def collective_results() -> list[dict[str, Any]]:
    return run_distributed(collectives, 2, X)


@pytest.mark.distributed
def test_helpers_in_two_processes(collective_results: list[dict[str, Any]]) -> None:
    r0, r1 = (r["helpers"] for r in collective_results)
    assert r0["info"] == (0, 2, 0)
    assert r1["info"] == (1, 2, 1)
    assert r0["main"]
    assert not r1["main"]
    expected = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    assert torch.equal(r0["gathered"], expected)
    assert torch.equal(r1["gathered"], expected)
    assert torch.equal(r0["mean"], torch.tensor([0.5, 10.0]))
    assert torch.equal(r1["local_after"], torch.ones(2, 2))


@pytest.mark.distributed
def test_cpu_sync_batchnorm_equals_batchnorm_on_the_whole_batch(
    collective_results: list[dict[str, Any]],
) -> None:
    x = X
    results = [r["sync_bn"] for r in collective_results]
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    xr = x.clone().requires_grad_(True)
    y = ref(xr)
    (y * torch.arange(y.numel()).reshape(y.shape).float()).sum().div(x.shape[0]).backward()
    assert xr.grad is not None
    for r in results:
        assert r["bn_type"] == "CrossRankBatchNorm"
        torch.testing.assert_close(r["y"], y.detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(r["x_grad"], xr.grad, rtol=1e-4, atol=1e-5)
        for name, p in ref.named_parameters():
            torch.testing.assert_close(r["grads"][name], p.grad, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(r["running_var"], ref[1].running_var)


@pytest.mark.distributed
def test_two_process_training_equals_one_process_on_the_concatenated_batch(tmp_path: Path) -> None:
    one = train(0, 1, str(tmp_path / "one"), 2, 8, None, 0)
    two = run_distributed(train, 2, str(tmp_path / "two"), 2, 4, None, 0)
    for key, value in one.items():
        if key == "index_sum":  # a rank-local buffer: the halves add up to the whole
            assert int(two[0][key] + two[1][key]) == int(value)
            continue
        for r in range(2):
            torch.testing.assert_close(two[r][key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert (tmp_path / "two" / "checkpoint_last.rank1.pt").is_file()
    assert not (tmp_path / "two" / "checkpoint_last.rank0.pt").exists()


@pytest.mark.slow
@pytest.mark.distributed
def test_two_process_resume_restores_rank_local_state(tmp_path: Path) -> None:
    full = run_distributed(train, 2, str(tmp_path / "full"), 2, 4, None, 0)
    run_distributed(train, 2, str(tmp_path / "cut"), 2, 4, 0.0, 0)  # stops after one step
    assert ckpt.load_checkpoint(tmp_path / "cut" / ckpt.LAST)["iteration"] == 1
    resumed = run_distributed(train, 2, str(tmp_path / "cut"), 2, 4, None, 1)
    for r in range(2):
        for key, value in full[r].items():
            assert torch.equal(resumed[r][key], value), (r, key)
    assert int(full[0]["index_sum"]) != int(full[1]["index_sum"])


@pytest.mark.distributed
def test_recomputed_statistics_agree_across_ranks_and_with_one_process(
    collective_results: list[dict[str, Any]],
) -> None:
    """Every rank recomputes them on the same batches, so all ranks agree; the means are those of
    one process, and the unbiased variances differ only by counting each value twice."""
    from selflabel.evaluate import recalibrate_batchnorm

    r0, r1 = (r["bn_recalibrate"] for r in collective_results)
    torch.testing.assert_close(r0["mean"], r1["mean"], rtol=0, atol=0)
    torch.testing.assert_close(r0["var"], r1["var"], rtol=0, atol=0)
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    recalibrate_batchnorm(ref, [X, 2.0 * X + 1.0])
    n = X.shape[0] * X.shape[2] * X.shape[3]  # values per channel in one batch
    torch.testing.assert_close(r0["mean"], ref[1].running_mean, rtol=1e-5, atol=1e-6)
    unbias = (2 * n / (2 * n - 1)) / (n / (n - 1))
    torch.testing.assert_close(r0["var"], ref[1].running_var * unbias, rtol=1e-5, atol=1e-6)
