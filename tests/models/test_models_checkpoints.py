"""load_pretrained: torchvision and official-SwAV-shaped checkpoints written by the tests."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from torch import nn

from selflabel.models import (
    ProjectionHead,
    Prototypes,
    UnsafeCheckpointError,
    build_backbone,
    load_pretrained,
    read_state_dict,
    resnet18,
)


class _SwAVNet(nn.Module):
    """Our modules arranged as a SwAV network (backbone + projection_head + prototypes)."""

    def __init__(self, backbone: nn.Module, hidden: int, n_prototypes: int | list[int]) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = ProjectionHead(backbone.out_dim, hidden_dim=hidden, out_dim=16)
        self.prototypes = Prototypes(16, n_prototypes)


def _randomised(model: nn.Module) -> nn.Module:
    """Give every tensor (BN statistics included) distinct random values."""
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if "running_var" in key else torch.randn_like(t))
            else:
                t.fill_(7)
    return model


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_models_checkpoints_torchvision_ddp_round_trip(tmp_path: Path) -> None:
    source = _randomised(resnet18())
    ckpt = {f"module.{k}": v for k, v in source.state_dict().items()}
    ckpt["module.fc.weight"] = torch.randn(1000, 512)
    ckpt["module.fc.bias"] = torch.randn(1000)
    path = tmp_path / "resnet18_ddp.pth"
    torch.save(ckpt, path)

    target = resnet18()
    report = load_pretrained(target, path)
    _assert_same(target.state_dict(), source.state_dict())
    assert report.ok
    assert report.missing_keys == []
    assert report.unexpected_keys == []
    assert sorted(report.ignored_keys) == ["fc.bias", "fc.weight"]
    assert len(report.loaded_keys) == len(source.state_dict())
    assert report.source == str(path)
    assert "loaded 120 tensors" in report.summary()  # torchvision resnet18: 122 with fc

    with_fc = resnet18(with_fc=True)
    report_fc = load_pretrained(with_fc, path, strict=True)
    assert report_fc.ignored_keys == []
    assert torch.equal(with_fc.state_dict()["fc.weight"], ckpt["module.fc.weight"])


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_models_checkpoints_wrapped_and_in_memory(tmp_path: Path, wrapper: str) -> None:
    source = _randomised(build_backbone("smallcnn", in_channels=1))
    path = tmp_path / "wrapped.pth"
    torch.save({wrapper: source.state_dict(), "epoch": 3, "lr": 0.1}, path)
    target = build_backbone("smallcnn", in_channels=1)
    assert load_pretrained(target, path, strict=True).ok
    _assert_same(target.state_dict(), source.state_dict())
    in_memory = build_backbone("smallcnn", in_channels=1)
    load_pretrained(in_memory, {wrapper: source.state_dict()}, strict=True)
    _assert_same(in_memory.state_dict(), source.state_dict())
    assert read_state_dict(path).keys() == source.state_dict().keys()


@pytest.mark.parametrize("n_prototypes", [20, [20, 30]])
def test_models_checkpoints_official_swav_layout(n_prototypes: int | list[int]) -> None:
    # what facebookresearch/swav saves: {"epoch", "state_dict": {"module.conv1.weight", ...,
    # "module.projection_head.0.weight", ..., "module.prototypes.weight" or
    # "module.prototypes.prototypes0.weight"}, "optimizer": ...}
    source = _randomised(_SwAVNet(resnet18(), 32, n_prototypes))
    official: dict[str, torch.Tensor] = {}
    for key, value in source.state_dict().items():
        official["module." + key.removeprefix("backbone.")] = value
    assert "module.conv1.weight" in official
    assert "module.projection_head.3.weight" in official
    assert ("module.prototypes.weight" in official) == isinstance(n_prototypes, int)
    checkpoint = {"epoch": 100, "state_dict": official, "optimizer": {"state": {}}}

    net = _SwAVNet(resnet18(), 32, n_prototypes)
    report = load_pretrained(net, checkpoint, strict=True)
    assert report.ok
    assert report.ignored_keys == []
    _assert_same(net.state_dict(), source.state_dict())

    backbone_only = resnet18()
    report_bb = load_pretrained(backbone_only, checkpoint)
    assert report_bb.missing_keys == []
    assert report_bb.unexpected_keys == []
    assert all(k.startswith(("projection_head.", "prototypes.")) for k in report_bb.ignored_keys)
    _assert_same(backbone_only.state_dict(), source.backbone.state_dict())


def test_models_checkpoints_swav_single_linear_projection() -> None:
    # official SwAV with hidden_mlp=0 stores `projection_head.weight`; ours is `projection_head.0`
    net = _SwAVNet(build_backbone("smallcnn", in_channels=1), 0, 10)
    ckpt = {"module.projection_head.weight": torch.randn(16, 256),
            "module.projection_head.bias": torch.randn(16)}  # fmt: skip
    report = load_pretrained(net, ckpt)
    assert report.unexpected_keys == []
    assert torch.equal(net.projection_head[0].weight, ckpt["module.projection_head.weight"])
    assert torch.equal(net.projection_head[0].bias, ckpt["module.projection_head.bias"])
    assert "backbone.blocks.0.0.weight" in report.missing_keys


def test_models_checkpoints_our_network_into_backbone_and_back() -> None:
    source = _randomised(_SwAVNet(resnet18(small_stem=True), 32, 5))
    backbone = resnet18(small_stem=True)
    load_pretrained(backbone, source.state_dict())
    _assert_same(backbone.state_dict(), source.backbone.state_dict())
    # a bare backbone checkpoint into a network: backbone filled, heads reported missing
    net = _SwAVNet(resnet18(small_stem=True), 32, 5)
    report = load_pretrained(net, backbone.state_dict())
    assert {k.split(".")[0] for k in report.missing_keys} == {"projection_head", "prototypes"}
    _assert_same(net.backbone.state_dict(), backbone.state_dict())


def test_models_checkpoints_mismatch_missing_and_strict() -> None:
    source = _randomised(resnet18())
    gray = resnet18(in_channels=1)
    before = {k: v.clone() for k, v in gray.state_dict().items()}
    with pytest.raises(ValueError, match=r"strict=True, nothing loaded[\s\S]*conv1.weight"):
        load_pretrained(gray, source.state_dict(), strict=True)
    _assert_same(gray.state_dict(), before)
    report = load_pretrained(gray, source.state_dict())
    assert [m[0] for m in report.mismatched_keys] == ["conv1.weight"]
    assert report.mismatched_keys[0][1:] == ((64, 3, 7, 7), (64, 1, 7, 7))
    assert "conv1.weight" in report.missing_keys
    assert torch.equal(gray.state_dict()["bn1.weight"], source.state_dict()["bn1.weight"])

    # old torchvision checkpoints lack num_batches_tracked: not reported missing
    old = {k: v for k, v in source.state_dict().items() if "num_batches_tracked" not in k}
    assert load_pretrained(resnet18(), old, strict=True).missing_keys == []
    partial = {k: v for k, v in old.items() if not k.startswith("layer4")}
    report = load_pretrained(resnet18(), partial)
    assert report.missing_keys
    assert all(k.startswith("layer4") for k in report.missing_keys)
    odd = dict(old, **{"encoder.extra.weight": torch.ones(2)})
    assert load_pretrained(resnet18(), odd).unexpected_keys == ["encoder.extra.weight"]


def test_models_checkpoints_rename_prefixes() -> None:
    class _SeLaNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = build_backbone("smallcnn", in_channels=1)
            self.heads = nn.Module()
            self.heads.top_layer0 = nn.Linear(256, 4)

    sela = {
        "module.top_layer0.weight": torch.randn(4, 256),
        "module.top_layer0.bias": torch.randn(4),
    }
    net = _SeLaNet()
    report = load_pretrained(net, sela, rename={"top_layer": "heads.top_layer"})
    assert sorted(report.loaded_keys) == ["heads.top_layer0.bias", "heads.top_layer0.weight"]
    assert torch.equal(net.heads.top_layer0.weight, sela["module.top_layer0.weight"])


def test_models_checkpoints_refuses_unsafe_pickles(tmp_path: Path) -> None:
    path = tmp_path / "with_args.pth.tar"
    torch.save({"state_dict": resnet18().state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(UnsafeCheckpointError, match="refused for safety") as info:
        load_pretrained(resnet18(), path)
    message = str(info.value)
    assert "weights_only=True" in message
    assert "convert it once" in message
    assert isinstance(info.value, ValueError)


def test_models_checkpoints_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_pretrained(resnet18(), tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_pretrained(resnet18(), junk)
    with pytest.raises(ValueError, match="no tensors found"):
        load_pretrained(resnet18(), {"epoch": 3})
    with pytest.raises(TypeError, match="path_or_state_dict"):
        load_pretrained(resnet18(), 42)  # type: ignore[arg-type]
