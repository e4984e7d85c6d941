"""SeLa: schedule, label step (balanced, deterministic, warm start), multi-head shapes, resume."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from _methods_toys import TinyBackbone
from torch import Tensor, nn

from selflabel.methods import Batch, StepContext
from selflabel.methods.sela import SeLa, head_scores, label_step_epochs, label_step_times
from selflabel.ot import sinkhorn_equipartition

N, K, T = 60, 6, 3


def images() -> Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randn(N, 1, 8, 8, generator=g)


def make_sela(**kw: object) -> tuple[SeLa, list[bool]]:
    data = images()
    modes: list[bool] = []

    def label_data(augment: bool) -> Iterator[tuple[Tensor, Tensor]]:
        modes.append(augment)
        for idx in torch.arange(N).split(16):
            yield idx, data[idx]

    torch.manual_seed(0)
    options: dict[str, object] = {"n_clusters": K, "n_heads": T, "dataset_size": N}
    options.update(kw)
    sela = SeLa(TinyBackbone(), label_data=label_data, **options)  # type: ignore[arg-type]
    return sela, modes


def ctx(epoch: int, epochs: int = 8, ipe: int = 4) -> StepContext:
    return StepContext(
        epoch=epoch, iteration=epoch * ipe, iters_per_epoch=ipe, total_iters=epochs * ipe
    )


def test_schedule_is_quadratic_and_hits_both_ends() -> None:
    assert label_step_times(3) == [0.0, 0.25, 1.0]
    assert label_step_epochs(5, 8) == [0, 1, 2, 5, 8]
    assert label_step_epochs(4, 100) == [0, 12, 45, 100]
    with pytest.raises(ValueError, match="at least 2"):
        label_step_times(1)


def test_initial_labels_are_balanced_random_per_head() -> None:
    sela, _ = make_sela()
    assert sela.labels.shape == (N, T)
    for h in range(T):
        assert torch.bincount(sela.labels[:, h], minlength=K).tolist() == [N // K] * K
    assert not torch.equal(sela.labels[:, 0], sela.labels[:, 1])


def test_label_step_balanced_deterministic_eval_mode() -> None:
    sela, modes = make_sela()
    sela.train()
    stats = sela.label_step()
    assert sela.training, "label step must restore train mode"
    assert modes == [False], "default label step is one un-augmented pass"
    for h in range(T):
        assert torch.bincount(sela.labels[:, h], minlength=K).tolist() == [N // K] * K
    assert stats["label_solver_error"] <= 1e-2
    first = sela.labels.clone()
    again, _ = make_sela()
    again.label_step()
    assert torch.equal(first, again.labels)
    # the labels follow the heads: every sample's label is consistent with the head's argmax
    # when lambda is large (balanced argmax of a confident head)
    assert bool(sela.has_potentials)


def test_label_step_uses_eval_mode_batchnorm() -> None:
    sela, _ = make_sela()
    bn = sela.backbone.bn
    assert isinstance(bn, nn.BatchNorm2d)
    before = torch.as_tensor(bn.running_mean).clone()
    sela.label_step()
    assert torch.equal(before, torch.as_tensor(bn.running_mean))


def test_warm_start_reuses_potentials_and_is_not_slower() -> None:
    sela, _ = make_sela(lam=10.0, tol=1e-4)
    cold = sela.label_step()["label_solver_iters"]
    pots = sela.potentials.clone()
    warm = sela.label_step()["label_solver_iters"]
    assert warm <= cold
    assert warm <= 2
    assert torch.allclose(pots, sela.potentials, atol=1e-3)


def test_augmented_label_passes_are_averaged() -> None:
    sela, modes = make_sela(label_augmentations=3)
    sela.label_step()
    assert modes == [True, True, True]
    feats = torch.randn(2, 5, 4)
    w, b = torch.randn(3, 4), torch.randn(3)
    scores = head_scores(feats, w, b)
    assert torch.allclose(scores, (feats[0] @ w.T + feats[1] @ w.T) / 2 + b, atol=1e-5)
    buf = torch.empty(5, 3)
    assert head_scores(feats, w, b, out=buf) is buf
    assert torch.allclose(buf, scores)


def test_label_step_on_logits_equals_label_step_on_log_probs() -> None:
    # the label step skips log_softmax: a per-row shift changes nothing of the solution
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(2, 400, 8, generator=g)
    w, b = torch.randn(20, 8, generator=g), torch.randn(20, generator=g)
    log_p = sum(torch.log_softmax(feats[a] @ w.T + b, 1) for a in range(2)) / 2
    a = sinkhorn_equipartition(head_scores(feats, w, b), lam=10.0, tol=1e-5)
    ref = sinkhorn_equipartition(log_p, lam=10.0, tol=1e-5)
    assert torch.equal(a.labels, ref.labels)
    assert torch.allclose(a.potentials.g, ref.potentials.g, atol=1e-3)


def test_training_step_multi_head_shapes_and_gradients() -> None:
    sela, _ = make_sela()
    idx = torch.tensor([0, 5, 7, 9])
    views = [torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8), torch.randn(4, 1, 4, 4)]
    out = sela.training_step(Batch(indices=idx, views=views), ctx(0))
    assert out.loss.ndim == 0
    assert torch.isfinite(out.loss)
    out.loss.backward()
    heads = sela.heads.heads()
    assert len(heads) == T
    assert all(h.weight.grad is not None for h in heads)
    assert [s.shape for s in sela.heads(torch.randn(2, 8))] == [(2, K)] * T
    assert sela.cluster_scores(views[0]).shape == (4, K)


def test_hooks_follow_the_schedule() -> None:
    sela, modes = make_sela(label_steps=5)
    for epoch in range(8):
        sela.on_epoch_start(ctx(epoch))
        sela.on_epoch_end(ctx(epoch))
    # epochs 0, 1, 2, 5 and after the last epoch (8)
    assert len(modes) == 5
    assert int(sela.steps_done) == 5
    sela.on_epoch_start(ctx(7))  # replays never relabel twice
    assert len(modes) == 5


def test_state_dict_round_trip_keeps_labels_and_potentials() -> None:
    sela, _ = make_sela()
    sela.on_epoch_start(ctx(0))
    sela.on_epoch_start(ctx(1))
    state = sela.state_dict()
    assert {"labels", "potentials", "has_potentials", "steps_done"} <= set(state)
    fresh, modes = make_sela(seed=123)
    assert not torch.equal(fresh.labels, sela.labels)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.labels, sela.labels)
    assert torch.equal(fresh.potentials, sela.potentials)
    fresh.on_epoch_start(ctx(1))  # already done before the checkpoint: no new label step
    assert modes == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_clusters"):
        SeLa(TinyBackbone(), n_clusters=100, dataset_size=10)
    sela = SeLa(TinyBackbone(), n_clusters=3, dataset_size=10)
    with pytest.raises(ValueError, match="label_data"):
        sela.label_step()
