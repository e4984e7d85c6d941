from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from selflabel.methods import Batch, StepContext
from selflabel.methods.network import EmbeddingNetwork
from selflabel.methods.swav import SwAV, swapped_prediction_loss, swav_loss_plain


class TinyBackbone(nn.Module):
    """Global-average-pooled 1x1 conv: works at any resolution, like the real backbones."""

    out_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, self.out_dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def make_swav(**kw: object) -> SwAV:
    net = EmbeddingNetwork(
        TinyBackbone(), n_prototypes=kw.pop("n_prototypes", 5), hidden_dim=16, embedding_dim=4
    )
    return SwAV(net, **kw)  # type: ignore[arg-type]


def views(b: int = 6, n_local: int = 2) -> list[Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(b, 1, 12, 12, generator=g) for _ in range(2)] + [
        torch.randn(b, 1, 6, 6, generator=g) for _ in range(n_local)
    ]


def ctx(iteration: int = 0, epoch: int = 0) -> StepContext:
    return StepContext(epoch=epoch, iteration=iteration, iters_per_epoch=10, total_iters=100)


def test_uniform_scores_give_ln_k() -> None:
    k = 7
    scores = [torch.zeros(4, k) for _ in range(4)]
    codes = [torch.full((4, k), 1.0 / k) for _ in range(2)]
    assert swapped_prediction_loss(scores, codes, 0.1).item() == pytest.approx(math.log(k))


def test_hand_checked_two_views() -> None:
    # one global view coded as one-hot class 0, the other view predicts log-probs we know.
    scores = [torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0) * 0.1, 0.0]])]
    codes = [torch.tensor([[1.0, 0.0]])]
    # view 1 softmax(scores/0.1) = [3/4, 1/4] -> loss = -log(3/4)
    assert swapped_prediction_loss(scores, codes, 0.1).item() == pytest.approx(-math.log(0.75))


def test_training_step_matches_plain_algorithm() -> None:
    swav = make_swav(freeze_prototypes_iters=0)
    v = views()
    out = swav.training_step(Batch(indices=torch.arange(6), views=v), ctx())
    _, scores = swav.network(v)
    plain = swav_loss_plain(list(scores[0].split(6)), n_global=2, temperature=0.1, eps=0.05)
    torch.testing.assert_close(out.loss, plain, rtol=1e-5, atol=1e-6)
    assert set(out.logs) >= {"code_entropy", "clusters_used", "queue_in_use"}


def test_multi_head_loss_is_mean_of_heads() -> None:
    torch.manual_seed(0)
    net = EmbeddingNetwork(TinyBackbone(), n_prototypes=[5, 9], hidden_dim=16, embedding_dim=4)
    swav = SwAV(net)
    v = views()
    loss = swav.training_step(Batch(indices=torch.arange(6), views=v), ctx()).loss
    _, scores = net(v)
    per_head = [swav_loss_plain(list(s.split(6)), 2, 0.1, 0.05) for s in scores]
    torch.testing.assert_close(loss, sum(per_head) / 2, rtol=1e-5, atol=1e-6)


def test_prototypes_frozen_then_trained_and_normalised() -> None:
    swav = make_swav(freeze_prototypes_iters=2)
    opt = torch.optim.SGD(swav.parameters(), lr=1.0)
    for it in range(4):
        before = swav.network.prototypes.state_dict()
        before = {k: t.clone() for k, t in before.items()}
        opt.zero_grad()
        swav.training_step(Batch(torch.arange(6), views()), ctx(it)).loss.backward()
        swav.on_before_optimizer_step(ctx(it))
        grads = [p.grad for p in swav.network.prototypes.parameters()]
        assert all(g is None for g in grads) == (it < 2)
        opt.step()
        swav.on_after_optimizer_step(ctx(it))
        after = swav.network.prototypes.state_dict()
        changed = any(not torch.allclose(before[k], after[k], atol=1e-6) for k in before)
        assert changed == (it >= 2)
        for w in after.values():
            torch.testing.assert_close(w.norm(dim=1), torch.ones(w.shape[0]))


def test_queue_starts_at_epoch_and_is_used_only_when_full() -> None:
    swav = make_swav(queue_length=12, queue_start_epoch=1)
    b = Batch(torch.arange(6), views())
    swav.on_epoch_start(ctx(epoch=0))
    assert swav.training_step(b, ctx()).logs["queue_in_use"] == 0.0
    assert int(swav.queue_fill) == 0  # not started yet
    swav.on_epoch_start(ctx(epoch=1))
    logs = [swav.training_step(b, ctx(epoch=1)).logs["queue_in_use"] for _ in range(3)]
    # 6 per step into a queue of 12: not full at steps 1-2 (codes computed before enqueue).
    assert logs == [0.0, 0.0, 1.0]
    assert int(swav.queue_fill) == 12
    state = swav.state_dict()
    assert state["queue"].shape == (2, 12, 4)
    fresh = make_swav(queue_length=12, queue_start_epoch=1)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.queue, swav.queue)
    assert bool(fresh.queue_active)


def test_queue_changes_codes_and_is_per_rank() -> None:
    swav = make_swav(queue_length=12, queue_start_epoch=0, world_size=2)
    assert swav.queue.shape[1] == 6
    with pytest.raises(ValueError, match="queue_length"):
        make_swav(queue_length=1, world_size=4)


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="temperature"):
        make_swav(temperature=0.0)
    swav = make_swav()
    with pytest.raises(ValueError, match="at least 2 views"):
        swav.training_step(Batch(torch.arange(6), views()[:1]), ctx())
    two = swav.training_step(Batch(torch.arange(6), views()[:2]), ctx())  # no local crops: valid
    assert torch.isfinite(two.loss)
