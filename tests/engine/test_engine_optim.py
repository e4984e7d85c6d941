"""LARS on hand-computed steps, bias/norm exclusion, the optimiser builder."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from selflabel.engine.optim import LARS, build_optimizer, param_groups


def test_lars_first_step_matches_hand_computation() -> None:
    # w = (3, 4): |w| = 5; g = (0.6, 0.8); d = g + 0.1 w = (0.9, 1.2): |d| = 1.5
    # trust = 0.03 * 5 / 1.5 = 0.1 -> step = (0.09, 0.12); lr = 1 -> w = (2.91, 3.88)
    w = nn.Parameter(torch.tensor([[3.0, 4.0]]))
    opt = LARS([w], lr=1.0, momentum=0.9, weight_decay=0.1, eta=0.03)
    w.grad = torch.tensor([[0.6, 0.8]])
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([[2.91, 3.88]]))


def test_lars_second_step_uses_momentum_and_new_trust_ratio() -> None:
    w = nn.Parameter(torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    opt = LARS([w], lr=1.0, momentum=0.9, weight_decay=0.1, eta=0.03)
    g = torch.tensor([[0.6, 0.8]], dtype=torch.float64)
    w.grad = g.clone()
    opt.step()
    w.grad = g.clone()
    opt.step()
    # by hand: w1 = (2.91, 3.88), |w1| = 4.85; d = g + 0.1 w1 = (0.891, 1.188), |d| = 1.485
    trust = 0.03 * 4.85 / 1.485
    buf = [0.9 * 0.09 + 0.891 * trust, 0.9 * 0.12 + 1.188 * trust]
    expected = torch.tensor([[2.91 - buf[0], 3.88 - buf[1]]], dtype=torch.float64)
    torch.testing.assert_close(w.detach(), expected)


def test_lars_zero_weight_falls_back_to_trust_one() -> None:
    w = nn.Parameter(torch.zeros(2, 2))
    opt = LARS([w], lr=0.5, momentum=0.0, weight_decay=0.0)
    w.grad = torch.ones(2, 2)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((2, 2), -0.5))


def test_lars_group_without_adaptation_equals_sgd() -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    lars = LARS(
        [{"params": a.parameters(), "lars": False}], lr=0.1, momentum=0.9, weight_decay=0.01
    )
    sgd = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(3):
        x = torch.randn(5, 4)
        for m, opt in ((a, lars), (b, sgd)):
            opt.zero_grad()
            m(x).pow(2).sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_param_groups_exclude_bias_and_norm() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LayerNorm(4), nn.Linear(4, 2)
    )
    groups = param_groups(model, weight_decay=1e-4)
    decay, no_decay = groups
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[4].weight)}
    assert len(no_decay["params"]) == 6  # conv bias, bn w/b, ln w/b, linear bias
    assert decay["lars"]
    assert decay["weight_decay"] == 1e-4
    assert decay["wd_mult"] == 1.0
    assert not no_decay["lars"]
    assert no_decay["weight_decay"] == 0.0
    assert no_decay["wd_mult"] == 0.0
    everything = param_groups(model, 1e-4, exclude_bias_and_norm=False)
    assert len(everything) == 1
    assert len(everything[0]["params"]) == 8


def test_lars_leaves_bias_and_norm_unadapted_and_undecayed() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    opt = LARS(param_groups(model, weight_decay=0.5), lr=0.1, momentum=0.0, eta=0.001)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    for name in ("0.bias", "1.weight", "1.bias"):  # plain SGD: p - lr * g
        torch.testing.assert_close(
            dict(model.named_parameters())[name].detach(), before[name] - 0.1
        )
    w0, w1 = before["0.weight"], model[0].weight.detach()
    d = torch.ones(2, 2) + 0.5 * w0
    trust = 0.001 * w0.norm() / d.norm()
    torch.testing.assert_close(w1, w0 - 0.1 * trust * d)


def test_param_groups_skip_frozen_and_reject_empty() -> None:
    model = nn.Linear(3, 3)
    model.bias.requires_grad_(False)
    groups = param_groups(model, 0.1)
    assert len(groups) == 1
    assert groups[0]["params"] == [model.weight]
    model.weight.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(model, 0.1)


@pytest.mark.parametrize(
    ("name", "cls"), [("sgd", torch.optim.SGD), ("LARS", LARS), ("adamw", torch.optim.AdamW)]
)
def test_build_optimizer(name: str, cls: type) -> None:
    opt = build_optimizer(name, nn.Linear(3, 2), lr=0.1, weight_decay=1e-3, momentum=0.9)
    assert isinstance(opt, cls)
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-3, 0.0]


def test_build_optimizer_rejects_unknown_and_bad_values() -> None:
    with pytest.raises(ValueError, match="sgd, lars, adamw"):
        build_optimizer("adam", nn.Linear(2, 2), 0.1, 0.0)
    with pytest.raises(ValueError, match="momentum"):
        LARS(nn.Linear(2, 2).parameters(), lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match="eta"):
        LARS(nn.Linear(2, 2).parameters(), lr=0.1, eta=0.0)


def test_lars_state_dict_round_trip() -> None:
    model = nn.Linear(3, 2)
    opt = build_optimizer("lars", model, lr=0.1, weight_decay=1e-6)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    fresh = build_optimizer("lars", model, lr=0.1, weight_decay=1e-6)
    fresh.load_state_dict(opt.state_dict())
    buf = fresh.state[model.weight]["momentum_buffer"]
    assert torch.equal(buf, opt.state[model.weight]["momentum_buffer"])
    assert math.isclose(fresh.param_groups[0]["eta"], 0.001)
