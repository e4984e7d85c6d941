"""SeLa-v2 and DeepCluster-v2: memory bank, assignment phase, ignored samples, centroids = head."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from selflabel.methods import Batch, StepContext
from selflabel.methods.network import EmbeddingNetwork
from selflabel.methods.offline import (
    UNASSIGNED,
    DeepClusterV2,
    MemoryBankMethod,
    SeLaV2,
    masked_cross_entropy,
)


class TinyBackbone(nn.Module):
    out_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, self.out_dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


N, B = 40, 10


def make(
    cls: type[MemoryBankMethod], heads: list[int] | None = None, **kw: object
) -> MemoryBankMethod:
    torch.manual_seed(0)
    net = EmbeddingNetwork(
        TinyBackbone(), n_prototypes=heads or [4, 5], hidden_dim=16, embedding_dim=6
    )
    return cls(net, dataset_size=N, **kw)  # type: ignore[arg-type]


def ctx(epoch: int = 0, it: int = 0) -> StepContext:
    return StepContext(epoch=epoch, iteration=it, iters_per_epoch=N // B, total_iters=10 * N // B)


def data() -> Tensor:
    g = torch.Generator().manual_seed(2)
    return torch.randn(N, 1, 8, 8, generator=g)


def run_epoch(m: MemoryBankMethod, epoch: int, skip_last: bool = False) -> list[float]:
    x = data()
    m.on_epoch_start(ctx(epoch))
    losses = []
    order = torch.arange(N).split(B)
    for idx in order[: -1 if skip_last else None]:
        views = [x[idx] + 0.05 * torch.randn(len(idx), 1, 8, 8) for _ in range(2)]
        views.append(x[idx][:, :, :4, :4])
        out = m.training_step(Batch(indices=idx, views=views), ctx(epoch))
        out.loss.backward()
        m.on_before_optimizer_step(ctx(epoch))
        m.zero_grad()
        m.on_after_optimizer_step(ctx(epoch))
        losses.append(float(out.loss.detach()))
    return losses


@pytest.mark.parametrize("cls", [SeLaV2, DeepClusterV2])
def test_first_epoch_unassigned_and_ignored(cls: type[MemoryBankMethod]) -> None:
    m = make(cls)
    assert bool((m.assignments == UNASSIGNED).all())
    losses = run_epoch(m, 0)
    assert losses == [0.0] * len(losses), "no assignment yet: nothing to learn, never label 0"
    assert bool(m.bank_filled.all())
    run_epoch(m, 1)
    assert m.assignments.shape == (2, N)
    assert bool((m.assignments >= 0).all())
    assert int(m.assignments[0].max()) < 4
    assert int(m.assignments[1].max()) < 5


@pytest.mark.parametrize("cls", [SeLaV2, DeepClusterV2])
def test_samples_missing_from_the_bank_stay_unassigned(cls: type[MemoryBankMethod]) -> None:
    m = make(cls)
    run_epoch(m, 0, skip_last=True)
    m.on_epoch_start(ctx(1))
    assert bool((m.assignments[:, N - B :] == UNASSIGNED).all())
    assert bool((m.assignments[:, : N - B] >= 0).all())
    assert not bool(m.bank_filled.any()), "a new epoch starts an empty bank"


def test_masked_cross_entropy_ignores_unassigned() -> None:
    logits = torch.randn(4, 3, requires_grad=True)
    targets = torch.tensor([-1, 2, -1, 0])
    ref = torch.nn.functional.cross_entropy(logits[[1, 3]], targets[[1, 3]])
    assert torch.allclose(masked_cross_entropy(logits, targets), ref)
    none = masked_cross_entropy(logits, torch.full((4,), -1))
    assert float(none.detach()) == 0.0
    assert none.requires_grad
    assert float(masked_cross_entropy(torch.zeros(2, 4), torch.tensor([-1, 3]))) == pytest.approx(
        math.log(4)
    )


def test_deepclusterv2_centroids_are_the_head() -> None:
    m = make(DeepClusterV2)
    run_epoch(m, 0)
    bank = torch.nn.functional.normalize(m.bank[0].clone(), dim=1)
    m.on_epoch_start(ctx(1))
    for h, w in enumerate(m.network.prototypes.weights()):
        assert torch.allclose(w.norm(dim=1), torch.ones(w.shape[0]), atol=1e-5)
        # each label is the nearest centroid (largest cosine) of that sample's bank embedding
        crop = torch.nn.functional.normalize(m.bank[h % 2], dim=1) if h else bank
        assert torch.equal((crop @ w.T).argmax(1), m.assignments[h])
        # and the centroid is the normalised mean of its members
        for k in range(w.shape[0]):
            members = crop[m.assignments[h] == k]
            if len(members):
                mean = torch.nn.functional.normalize(members.mean(0), dim=0)
                assert torch.allclose(mean, w[k], atol=1e-4)


def test_deepclusterv2_head_gets_no_gradient_step() -> None:
    m = make(DeepClusterV2)
    run_epoch(m, 0)
    m.on_epoch_start(ctx(1))
    x = data()[:B]
    out = m.training_step(Batch(indices=torch.arange(B), views=[x, x, x]), ctx(1))
    out.loss.backward()
    m.on_before_optimizer_step(ctx(1))
    assert all(p.grad is None for p in m.network.prototypes.parameters())
    assert any(p.grad is not None for p in m.network.backbone.parameters())


def test_selav2_assignments_are_balanced() -> None:
    m = make(SeLaV2, heads=[4])
    run_epoch(m, 0)
    m.on_epoch_start(ctx(1))
    assert torch.bincount(m.assignments[0], minlength=4).tolist() == [N // 4] * 4


@pytest.mark.parametrize("cls", [SeLaV2, DeepClusterV2])
def test_state_dict_round_trip(cls: type[MemoryBankMethod]) -> None:
    m = make(cls)
    run_epoch(m, 0)
    run_epoch(m, 1)
    other = make(cls)
    other.load_state_dict(m.state_dict())
    for name in ("bank", "bank_filled", "assignments", "phases_done"):
        assert torch.equal(getattr(other, name), getattr(m, name))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="prototypes"):
        make(SeLaV2, heads=[100])
    with pytest.raises(ValueError, match="temperature"):
        make(DeepClusterV2, temperature=0.0)
