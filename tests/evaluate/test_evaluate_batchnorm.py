"""``recalibrate_batchnorm``: BatchNorm statistics recomputed as averages over given batches."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from selflabel.evaluate import batchnorm_layers, recalibrate_batchnorm


def _trained_bn(features: int = 3) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(features)
    with torch.no_grad():
        bn.running_mean.fill_(5.0)  # type: ignore[union-attr]
        bn.running_var.fill_(9.0)  # type: ignore[union-attr]
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-1.0, 1.0)
    return bn


@settings(max_examples=25, deadline=None)
@given(
    n_batches=st.integers(1, 5),
    batch=st.integers(2, 9),
    shift=st.floats(-3.0, 3.0),
    scale=st.floats(0.1, 4.0),
    seed=st.integers(0, 2**16),
)
def test_statistics_are_the_average_of_the_batch_statistics(
    n_batches: int, batch: int, shift: float, scale: float, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    batches = [torch.randn(batch, 3, generator=g) * scale + shift for _ in range(n_batches)]
    bn = _trained_bn()
    weight, bias = bn.weight.detach().clone(), bn.bias.detach().clone()
    assert recalibrate_batchnorm(bn, batches) == n_batches
    mean = torch.stack([b.mean(0) for b in batches]).mean(0)
    var = torch.stack([b.var(0, unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, var, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.weight.detach(), weight)  # the affine weights are untouched
    torch.testing.assert_close(bn.bias.detach(), bias)
    assert bn.momentum == 0.1  # restored
    assert bn.training


def test_eval_mode_output_is_normalised_by_the_new_statistics() -> None:
    net = nn.Sequential(nn.Linear(4, 6), _trained_bn(6)).eval()
    x = torch.randn(256, 4) * 3 + 2
    recalibrate_batchnorm(net, [x])
    assert not net.training
    out = (net(x) - net[1].bias) / net[1].weight  # undo the affine part
    torch.testing.assert_close(out.mean(0), torch.zeros(6), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(0), torch.ones(6), atol=1e-2, rtol=0)


def test_layers_the_forward_never_reaches_keep_their_statistics() -> None:
    used, unused = _trained_bn(), _trained_bn()
    net = nn.ModuleDict({"used": used, "unused": unused})
    recalibrate_batchnorm(net, [torch.randn(8, 3) + 1.0], forward=net["used"])
    assert not torch.allclose(used.running_mean, torch.full((3,), 5.0))  # type: ignore[arg-type]
    torch.testing.assert_close(unused.running_mean, torch.full((3,), 5.0))
    torch.testing.assert_close(unused.running_var, torch.full((3,), 9.0))
    assert int(unused.num_batches_tracked) == 0  # type: ignore[arg-type]


def test_other_layers_stay_in_eval_mode_during_the_passes() -> None:
    seen: list[bool] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(self.training)
            return x

    net = nn.Sequential(Probe(), _trained_bn())
    recalibrate_batchnorm(net, [torch.randn(4, 3)])
    assert seen == [False]
    assert net.training  # the mode it had before


def test_errors_name_the_problem_and_leave_the_statistics_alone() -> None:
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        recalibrate_batchnorm(nn.Linear(3, 3), [torch.randn(2, 3)])
    bn = _trained_bn()
    with pytest.raises(ValueError, match="no batch"):
        recalibrate_batchnorm(bn, [])
    torch.testing.assert_close(bn.running_mean, torch.full((3,), 5.0))
    torch.testing.assert_close(bn.running_var, torch.full((3,), 9.0))
    assert bn.momentum == 0.1


def test_batchnorm_layers_finds_every_kind_that_tracks_statistics() -> None:
    net = nn.Sequential(
        nn.BatchNorm1d(2),
        nn.BatchNorm2d(2),
        nn.SyncBatchNorm(2),
        nn.BatchNorm2d(2, track_running_stats=False),
    )
    assert batchnorm_layers(net) == [net[0], net[1], net[2]]


def test_evaluation_forward_reaches_the_head_when_there_is_one() -> None:
    from selflabel.evaluate import evaluation_forward

    class WithHead(nn.Module):
        n_clusters = 3

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x

        def cluster_scores(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    class Headless(WithHead):
        n_clusters = 0

    backbone = nn.Linear(2, 2)
    x = torch.ones(1, 2)
    assert torch.equal(evaluation_forward(WithHead())(x), x * 2)
    assert torch.equal(evaluation_forward(Headless())(x), x)
    assert evaluation_forward(backbone) is backbone
