"""Projection head, prototypes and SeLa's multi-head classifier: shapes, names, normalisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from selflabel.models import MultiHeadClassifier, ProjectionHead, Prototypes


def test_models_heads_projection_swav_layout_and_unit_rows() -> None:
    head = ProjectionHead(512, hidden_dim=2048, out_dim=128)
    assert head.out_dim == 128
    assert [type(m) for m in head] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes["0.weight"] == (2048, 512)
    assert shapes["1.running_mean"] == (2048,)
    assert shapes["3.weight"] == (128, 2048)
    assert shapes["3.bias"] == (128,)
    z = head(torch.randn(16, 512))
    assert z.shape == (16, 128)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(16))


def test_models_heads_projection_variants() -> None:
    x = torch.randn(6, 32)
    linear = ProjectionHead(32, hidden_dim=0, out_dim=8, normalize=False)
    assert list(linear.state_dict()) == ["0.weight", "0.bias"]
    torch.testing.assert_close(linear(x), x @ linear[0].weight.T + linear[0].bias)
    no_bn = ProjectionHead(32, hidden_dim=16, out_dim=8, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in no_bn.modules())
    assert no_bn(x).shape == (6, 8)
    identity = ProjectionHead(32, hidden_dim=64, out_dim=0, normalize=False)
    assert identity.out_dim == 32
    assert len(list(identity.parameters())) == 0
    assert torch.equal(identity(x), x)
    torch.testing.assert_close(ProjectionHead(32, out_dim=0)(x), F.normalize(x, dim=1))
    unnormalised = ProjectionHead(32, hidden_dim=16, out_dim=8, normalize=False)
    assert not torch.allclose(unnormalised(x).norm(dim=1), torch.ones(6))
    with pytest.raises(ValueError, match="in_dim"):
        ProjectionHead(0)
    with pytest.raises(ValueError, match="hidden_dim and out_dim"):
        ProjectionHead(8, hidden_dim=-1)


def test_models_heads_prototypes_single_head_official_names() -> None:
    net = nn.Module()
    net.prototypes = Prototypes(128, 3000)
    assert list(net.state_dict()) == ["prototypes.weight"]
    assert tuple(net.state_dict()["prototypes.weight"].shape) == (3000, 128)
    z = torch.randn(4, 128)
    (scores,) = net.prototypes(z)
    torch.testing.assert_close(scores, z @ net.prototypes.weight.T)
    assert net.prototypes.n_heads == 1
    assert net.prototypes.n_prototypes == (3000,)


def test_models_heads_prototypes_multi_head_official_names() -> None:
    net = nn.Module()
    net.prototypes = Prototypes(64, [30, 50, 70])
    assert list(net.state_dict()) == [
        "prototypes.prototypes0.weight",
        "prototypes.prototypes1.weight",
        "prototypes.prototypes2.weight",
    ]
    scores = net.prototypes(torch.randn(5, 64))
    assert [tuple(s.shape) for s in scores] == [(5, 30), (5, 50), (5, 70)]
    assert not any(
        p.bias is not None for p in net.prototypes.children() if isinstance(p, nn.Linear)
    )
    # a one-element list is a multi-head set, as in official SwAV (MultiPrototypes)
    assert list(Prototypes(8, [10]).state_dict()) == ["prototypes0.weight"]


def test_models_heads_prototypes_normalize_in_place() -> None:
    protos = Prototypes(16, [7, 9])
    with torch.no_grad():
        for w in protos.weights():
            w.mul_(5.0)
    ids = [id(w) for w in protos.weights()]
    protos.normalize_()
    assert [id(w) for w in protos.weights()] == ids  # same parameters (the optimiser keeps them)
    for w in protos.weights():
        assert w.requires_grad
        torch.testing.assert_close(w.norm(dim=1), torch.ones(w.shape[0]))
    z = F.normalize(torch.randn(10, 16), dim=1)
    for s in protos(z):
        assert float(s.detach().abs().max()) <= 1.0 + 1e-5  # cosine similarities
    # normalising does not touch the autograd graph
    single = Prototypes(4, 3)
    single.normalize_()
    assert single.weight.grad is None
    assert single.weight.grad_fn is None


@pytest.mark.parametrize("bad", [0, -3, [], [10, 0], "30", 2.5, True])
def test_models_heads_prototypes_rejects_bad_counts(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="n_prototypes"):
        Prototypes(8, bad)  # type: ignore[arg-type]


def test_models_heads_multi_head_classifier() -> None:
    clf = MultiHeadClassifier(32, n_classes=10, n_heads=3)
    assert list(clf.state_dict()) == [
        f"top_layer{i}.{p}" for i in range(3) for p in ("weight", "bias")
    ]
    logits = clf(torch.randn(4, 32))
    assert len(logits) == 3
    assert all(tuple(lg.shape) == (4, 10) for lg in logits)
    assert not torch.equal(logits[0], logits[1])  # independent heads
    assert len(MultiHeadClassifier(8, 5)(torch.randn(2, 8))) == 1
    with pytest.raises(ValueError, match="n_heads"):
        MultiHeadClassifier(8, 5, n_heads=0)


def test_models_heads_traceable() -> None:
    head = ProjectionHead(32, hidden_dim=16, out_dim=8).eval()
    protos = Prototypes(8, [5, 6])
    x = torch.randn(3, 32)
    torch.testing.assert_close(fx.symbolic_trace(head)(x), head(x))
    z = head(x)
    for a, b in zip(fx.symbolic_trace(protos)(z), protos(z), strict=True):
        torch.testing.assert_close(a, b)
