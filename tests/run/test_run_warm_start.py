"""model.init_from: a run's backbone starts from another run's (or a plain state dict's) weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from selflabel.cli import main
from selflabel.engine.checkpoint import save_checkpoint
from selflabel.methods.sela import SeLa
from selflabel.models import build_backbone
from selflabel.run.warm_start import backbone_state, init_backbone


def _sela(width: float = 1.0) -> SeLa:
    backbone = build_backbone("smallcnn", in_channels=1, width=width)
    return SeLa(backbone, n_clusters=5, dataset_size=20, n_heads=2, label_steps=2)


def _assert_same_backbone(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_backbone_state_takes_the_backbone_of_any_method_layout() -> None:
    w = torch.ones(2)
    state = {
        "backbone.conv.weight": w,  # SeLa
        "network.backbone.fc.bias": w,  # SwAV, offline methods
        "heads.top_layer0.weight": w,
        "network.prototypes.0.weight": w,
        "labels": torch.zeros(3),
        "mybackbone.x": w,  # not a backbone prefix
    }
    assert sorted(backbone_state(state)) == ["conv.weight", "fc.bias"]


def test_a_selflabel_checkpoint_fills_the_backbone_exactly(tmp_path: Path) -> None:
    trained = _sela()
    with torch.no_grad():
        for p in trained.backbone.parameters():
            p.normal_()
    run = tmp_path / "run"
    save_checkpoint(
        run / "checkpoint_last.pt",
        {"format": "selflabel-checkpoint", "model": trained.state_dict(), "epoch": 3},
    )
    fresh = build_backbone("smallcnn", in_channels=1)
    report = init_backbone(fresh, run)  # a run directory resolves to its checkpoint
    assert report.ok
    assert report.source.endswith("checkpoint_last.pt")
    _assert_same_backbone(fresh, trained.backbone)


def test_a_plain_state_dict_with_ddp_prefixes_loads(tmp_path: Path) -> None:
    source = build_backbone("smallcnn", in_channels=1)
    path = tmp_path / "weights.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    fresh = build_backbone("smallcnn", in_channels=1)
    init_backbone(fresh, path)
    _assert_same_backbone(fresh, source)


def test_a_different_width_or_a_missing_path_is_refused_with_the_fix(tmp_path: Path) -> None:
    save_checkpoint(
        tmp_path / "checkpoint_last.pt",
        {"format": "selflabel-checkpoint", "model": _sela(width=1.0).state_dict()},
    )
    wide = build_backbone("smallcnn", in_channels=1, width=1.5)
    before = {k: v.clone() for k, v in wide.state_dict().items()}
    with pytest.raises(ValueError, match=r"model\.width"):
        init_backbone(wide, tmp_path)
    for key, value in wide.state_dict().items():  # nothing was loaded
        assert torch.equal(value, before[key]), key
    with pytest.raises(ValueError, match="does not exist"):
        init_backbone(wide, tmp_path / "nope.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"without checkpoint_last\.pt"):
        init_backbone(wide, tmp_path / "empty")


FAST = [
    "data.batch_size=32",
    "model.n_prototypes=[4]",
    "augment.n_local=0",
    "eval.seeds=1",
    "eval.kmeans_restarts=1",
    "eval.gallery_per_cluster=0",
    "optim.warmup_epochs=0",
]


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--epochs", "1", "--out", str(out), *FAST, *extra]


def _train(args: list[str]) -> None:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_swav_run_starts_from_a_sela_runs_backbone(tiny_npz: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "sela", tmp_path / "swav"
    _train(_args(tiny_npz, first, "method=sela", "sela.label_steps=2"))
    # a vanishing learning rate: the second run's weights stay its initial ones
    lr = ["optim.lr=1e-12", "optim.final_lr=0", "optim.weight_decay=0"]
    _train(_args(tiny_npz, second, "method=swav", f"model.init_from={first}", *lr))
    a = backbone_state(torch.load(first / "checkpoint_last.pt", weights_only=True)["model"])
    b = backbone_state(torch.load(second / "checkpoint_last.pt", weights_only=True)["model"])
    weights = [k for k in a if k.endswith("weight") and a[k].dim() > 1]  # convolutions
    assert weights
    for key in weights:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6)


def test_a_bad_init_from_is_a_clear_cli_error(tiny_npz: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = CliRunner().invoke(main, _args(tiny_npz, tmp_path / "r", f"model.init_from={missing}"))
    assert result.exit_code == 1
    assert "model.init_from" in result.output
    assert "does not exist" in result.output
