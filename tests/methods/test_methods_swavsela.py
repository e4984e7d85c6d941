"""SwAV + SeLa on one backbone: the loss is the weighted sum, hooks reach both, labels export."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from _methods_toys import TinyBackbone
from click.testing import CliRunner
from torch import Tensor, nn

from selflabel.cli import main
from selflabel.config import load_config
from selflabel.methods import Batch, StepContext
from selflabel.methods.network import EmbeddingNetwork
from selflabel.methods.sela import SeLa
from selflabel.methods.swav import SwAV
from selflabel.methods.swavsela import SwAVSeLa

N = 24


def data() -> Tensor:
    return torch.randn(N, 1, 10, 10, generator=torch.Generator().manual_seed(2))


def make(weight: float = 1.0, backbone: nn.Module | None = None) -> SwAVSeLa:
    torch.manual_seed(0)
    shared = TinyBackbone()
    images = data()

    def label_data(augment: bool) -> Iterator[tuple[Tensor, Tensor]]:
        for idx in torch.arange(N).split(10):
            yield idx, images[idx]

    swav = SwAV(
        EmbeddingNetwork(shared, n_prototypes=3, hidden_dim=0, embedding_dim=0),
        freeze_prototypes_iters=2,
    )
    sela = SeLa(
        backbone or shared, n_clusters=6, n_heads=2, dataset_size=N, label_data=label_data
    )
    return SwAVSeLa(swav, sela, sela_weight=weight)


def batch() -> Batch:
    g = torch.Generator().manual_seed(5)
    views = [torch.randn(6, 1, 10, 10, generator=g) for _ in range(2)]
    views += [torch.randn(6, 1, 5, 5, generator=g) for _ in range(2)]
    return Batch(indices=torch.tensor([0, 3, 5, 7, 11, 20]), views=views)


def ctx(epoch: int = 0, iteration: int = 0) -> StepContext:
    return StepContext(epoch=epoch, iteration=iteration, iters_per_epoch=2, total_iters=8)


@pytest.mark.parametrize("weight", [0.0, 0.5, 2.0])
def test_loss_is_swav_plus_weighted_sela_on_one_forward(weight: float) -> None:
    method = make(weight)
    swav_alone = copy.deepcopy(method.swav)
    sela_alone = copy.deepcopy(method.sela)
    b = batch()
    out = method.training_step(b, ctx())
    expected = swav_alone.training_step(b, ctx()).loss
    expected = expected + weight * sela_alone.training_step(b, ctx()).loss
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.logs["swav_loss"] > 0
    assert out.logs["sela_loss"] > 0
    assert {"code_entropy", "label_steps_done"} <= out.logs.keys()


def test_both_heads_and_the_backbone_get_gradients() -> None:
    method = make(1.0)
    method.training_step(batch(), ctx()).loss.backward()
    for name, p in method.named_parameters():
        assert p.grad is not None, name
        assert bool(p.grad.abs().sum() > 0), name
    # the shared backbone is one set of parameters, not three
    n_backbone = sum(1 for _ in method.backbone.parameters())
    assert sum(1 for _ in method.parameters()) == n_backbone + 1 + 2 * 2


def test_hooks_run_label_steps_and_freeze_prototypes() -> None:
    method = make()
    before = method.sela.labels.clone()
    method.on_epoch_start(ctx(0))
    assert int(method.sela.steps_done) == 1, "the t=0 label step runs at the first epoch start"
    assert not torch.equal(before, method.sela.labels)
    method.training_step(batch(), ctx()).loss.backward()
    method.on_before_optimizer_step(ctx(iteration=0))
    assert all(p.grad is None for p in method.swav.network.prototypes.parameters())
    method.on_epoch_end(ctx(3))  # the last epoch: SeLa's step at t = 1
    assert int(method.sela.steps_done) == method.sela.n_label_steps


def test_cluster_scores_and_state_are_swavs_and_selas() -> None:
    method = make()
    x = data()[:4]
    assert torch.equal(method.cluster_scores(x), method.swav.cluster_scores(x))
    assert method.n_clusters == 3
    state = method.state_dict()
    assert {"sela.labels", "sela.potentials", "swav.queue"} <= state.keys()


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="same backbone"):
        make(backbone=TinyBackbone())
    with pytest.raises(ValueError, match="sela_weight"):
        make(weight=-1.0)


def test_config_needs_sela_classes() -> None:
    from selflabel.run.build import build_method

    cfg = load_config("demo", ["method=swavsela"])
    source = _Source()
    with pytest.raises(ValueError, match=r"sela\.n_clusters"):
        build_method(cfg, source)  # type: ignore[arg-type]
    cfg = load_config("demo", ["method=swavsela", "sela.n_clusters=5", "sela.loss_weight=0.5"])
    method = build_method(cfg, source)  # type: ignore[arg-type]
    assert isinstance(method, SwAVSeLa)
    assert method.sela.n_clusters == 5
    assert method.sela_weight == 0.5
    assert method.n_clusters == cfg.model.n_prototypes[0]


class _Source:
    """The two things build_method reads of a source: its length and an image's shape."""

    mean, std = (0.5,), (0.25,)

    def __len__(self) -> int:
        return 40

    def __getitem__(self, i: int) -> tuple[int, Tensor, int]:
        return i, torch.zeros(1, 12, 12, dtype=torch.uint8), -1


def test_train_command_writes_swav_and_sela_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 24)
    images = rng.integers(0, 60, size=(96, 16, 16), dtype=np.uint8)
    for c in range(4):
        images[labels == c, 2 + 3 * c : 6 + 3 * c, 2:12] = 230
    npz = tmp_path / "tiny.npz"
    np.savez(npz, images=images, labels=labels)
    out = tmp_path / "run"
    args = ["train", "--data", str(npz), "--method", "swavsela", "--epochs", "2",
            "--out", str(out), "data.batch_size=32", "model.embedding_dim=0",
            "model.n_prototypes=[4]", "sela.n_clusters=8", "sela.n_heads=2",
            "sela.label_steps=3", "augment.n_local=2", "eval.seeds=1",
            "eval.gallery_per_cluster=0", "optim.warmup_epochs=0"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = np.load(out / "labels.npy")
    assert table.shape == (96, 3)  # SwAV's head, then SeLa's two heads
    assert set(np.unique(table[:, 0])) <= set(range(4))
    for h in (1, 2):  # SeLa's labels are equipartitioned over its 8 classes
        assert np.bincount(table[:, h], minlength=8).tolist() == [12] * 8
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_done"] == 2
    assert 0.0 <= metrics["acc"] <= 1.0
