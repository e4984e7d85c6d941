"""Collapse detection and the non-finite loss stop."""

from __future__ import annotations

import math

import pytest
import torch

from selflabel.engine.monitor import CollapseMonitor, NonFiniteLossError, check_finite
from selflabel.methods.base import StepContext


def test_uniform_predictions_and_single_cluster_are_diagnosed() -> None:
    k = 50
    mon = CollapseMonitor(k)
    for _ in range(20):
        mon.update(loss=math.log(k) + 1e-3, assignments=torch.zeros(64, dtype=torch.long))
    report = mon.report()
    assert report.collapsed
    assert "ln K" in report.diagnosis
    assert "only 1 of 50 clusters" in report.diagnosis
    assert "learning rate" in report.diagnosis
    assert report.stats["clusters_used"] == 1
    assert report.stats["largest_cluster_fraction"] == 1.0


def test_healthy_training_is_not_flagged() -> None:
    k = 10
    mon = CollapseMonitor(k)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        codes = torch.softmax(torch.randn(64, k, generator=g) * 5, dim=1)
        mon.update(loss=0.7, assignments=codes)
    report = mon.report()
    assert not report.collapsed
    assert report.diagnosis == ""
    assert report.stats["clusters_used"] == k
    assert report.stats["code_entropy"] < 0.9


def test_uniform_codes_flag_epsilon_and_reset_forgets() -> None:
    mon = CollapseMonitor(8)
    mon.update(loss=0.5, assignments=torch.full((32, 8), 1 / 8) + 1e-4 * torch.rand(32, 8))
    report = mon.report()
    assert report.collapsed
    assert "epsilon" in report.diagnosis
    mon.reset()
    assert mon.report().stats == {}


def test_monitor_validates_inputs() -> None:
    with pytest.raises(ValueError, match="n_clusters"):
        CollapseMonitor(1)
    mon = CollapseMonitor(4)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        mon.update(assignments=torch.rand(3, 5))
    with pytest.raises(ValueError, match="cluster ids"):
        mon.update(assignments=torch.tensor([0, 4]))


def test_check_finite_passes_values_and_explains_failures() -> None:
    ctx = StepContext(epoch=2, iteration=25, iters_per_epoch=10, total_iters=100)
    assert check_finite(torch.tensor(1.5), ctx) == 1.5
    with pytest.raises(NonFiniteLossError) as info:
        check_finite(float("nan"), ctx, lr=0.3, last_finite_loss=4.2, amp="fp16", logs={"ent": 1.0})
    msg = str(info.value)
    for part in (
        "epoch 2",
        "iteration 25",
        "step 5 of 10",
        "lr=0.3",
        "last finite loss=4.2",
        "fp32",
        "clipping",
        "epsilon",
        "ent=1",
    ):
        assert part in msg
    with pytest.raises(NonFiniteLossError, match="no finite loss yet"):
        check_finite(torch.tensor(float("inf")), ctx)


def test_method_logs_stand_in_for_assignments() -> None:
    k = 16
    mon = CollapseMonitor(k)
    for _ in range(5):
        mon.update(loss=1.0, logs={"code_entropy": 0.99 * math.log(k), "clusters_used": 1.0})
    report = mon.report()
    assert report.collapsed
    assert "single cluster" in report.diagnosis
    assert "epsilon" in report.diagnosis
    assert report.stats["batch_clusters_used"] == 1.0
    healthy = CollapseMonitor(k)
    healthy.update(loss=1.0, logs={"code_entropy": 0.3 * math.log(k), "clusters_used": 12.0})
    assert not healthy.report().collapsed


def test_first_epoch_loss_at_ln_k_is_not_a_collapse_but_one_cluster_is() -> None:
    k = 50
    mon = CollapseMonitor(k)
    for i in range(20):  # a healthy start: loss near ln K, assignments spread over the clusters
        mon.update(loss=math.log(k) - 1e-3, assignments=torch.arange(64) % k + 0 * i)
    assert not mon.report(first_epoch=True).collapsed
    assert mon.report().collapsed  # the same numbers later in training are a collapse
    mon.reset()
    for _ in range(20):
        mon.update(loss=math.log(k), assignments=torch.zeros(64, dtype=torch.long))
    report = mon.report(first_epoch=True)
    assert report.collapsed
    assert "ln K" not in report.diagnosis
