"""Warm-up + cosine schedule values and setting them on optimisers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from selflabel.engine.optim import build_optimizer
from selflabel.engine.schedule import constant_schedule, cosine_schedule, set_lr, set_weight_decay


def test_warmup_endpoints_cosine_midpoint_and_final() -> None:
    s = cosine_schedule(
        base_lr=1.0, final_lr=0.1, total_iters=110, warmup_iters=10, start_warmup_lr=0.01
    )
    assert s.shape == (110,)
    assert s[0] == pytest.approx(0.01)
    assert s[9] == pytest.approx(1.0)  # the warm-up reaches base_lr at its last iteration
    assert np.all(np.diff(s[:10]) > 0)
    assert s[10] == pytest.approx(1.0)  # cosine starts at base_lr
    assert s[10 + 50] == pytest.approx(0.55)  # midpoint (base + final) / 2
    assert s[-1] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 99 / 100)))
    assert s[-1] > 0.1
    assert s[-1] - 0.1 < 1e-3
    assert np.all(np.diff(s[10:]) <= 0)


def test_no_warmup_and_all_warmup() -> None:
    np.testing.assert_allclose(
        cosine_schedule(1.0, 0.0, 4), [1.0, 0.853553, 0.5, 0.146447], atol=1e-6
    )
    np.testing.assert_allclose(cosine_schedule(1.0, 0.0, 3, warmup_iters=3), [0.0, 0.5, 1.0])


def test_schedule_validation() -> None:
    with pytest.raises(ValueError, match="total_iters"):
        cosine_schedule(1.0, 0.0, 0)
    with pytest.raises(ValueError, match="warmup_iters"):
        cosine_schedule(1.0, 0.0, 5, warmup_iters=6)
    with pytest.raises(ValueError, match="base_lr"):
        cosine_schedule(float("nan"), 0.0, 5)
    assert constant_schedule(0.5, 3).tolist() == [0.5, 0.5, 0.5]


def test_set_lr_keeps_group_multipliers_and_wd_exclusion() -> None:
    opt = build_optimizer("sgd", nn.Linear(3, 2), lr=0.0, weight_decay=1e-4)
    opt.param_groups[1]["lr_mult"] = 0.1
    set_lr(opt, 2.0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([2.0, 0.2])
    set_weight_decay(opt, 0.05)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    plain = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    set_weight_decay(plain, 0.01)
    assert plain.param_groups[0]["weight_decay"] == 0.01
