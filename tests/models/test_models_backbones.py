"""Small CNN, AlexNet and the registry: shapes at several resolutions, widths, traceability."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import fx, nn

from selflabel.models import AlexNet, SmallCNN, available_backbones, build_backbone

_SMALL = [
    ("smallcnn", {}),
    ("smallcnn", {"width": 0.5}),
    ("alexnet", {"small_stem": True, "hidden_dim": 256}),
    ("resnet18", {"small_stem": True}),
]


@pytest.mark.parametrize(("name", "kw"), _SMALL)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_models_backbones_multi_resolution_shapes(
    name: str, kw: dict[str, Any], in_channels: int
) -> None:
    model = build_backbone(name, in_channels=in_channels, **kw)
    assert isinstance(model.out_dim, int)
    assert model.min_input_size <= 12
    for size in (28, 24, 12):
        out = model(torch.randn(3, in_channels, size, size))
        assert out.shape == (3, model.out_dim)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()


def test_models_backbones_smallcnn_widths_and_channels() -> None:
    assert SmallCNN(1).out_dim == 256
    assert SmallCNN(1, width=0.5).out_dim == 128
    assert SmallCNN(3, width=2).out_dim == 512
    custom = SmallCNN(1, channels=(16, 32, 48, 64), convs_per_block=2)
    assert custom.out_dim == 64
    assert sum(isinstance(m, nn.Conv2d) for m in custom.modules()) == 8
    fmap = SmallCNN(1).forward_features(torch.randn(2, 1, 28, 28))
    assert fmap.shape == (2, 256, 4, 4)


def test_models_backbones_alexnet_standard_stem_and_names() -> None:
    with torch.device("meta"):  # names and shapes of the full-size network
        model = AlexNet(in_channels=3)
    assert model.out_dim == 4096
    assert model.min_input_size == 63
    keys = model.state_dict().keys()
    # SeLa's names: conv + BN + ReLU triplets and pools in `features`, FC layers 1 and 4
    for key in ("features.0.weight", "features.0.bias", "features.1.running_mean",
                "features.4.weight", "features.14.weight", "features.15.running_var",
                "classifier.1.weight", "classifier.4.weight"):  # fmt: skip
        assert key in keys
    assert tuple(model.state_dict()["features.0.weight"].shape) == (96, 3, 11, 11)
    assert tuple(model.state_dict()["classifier.1.weight"].shape) == (4096, 256 * 6 * 6)
    # at 224 px the adaptive pool is a no-op: SeLa's 6×6 map (shape inference on meta tensors)
    assert model.forward_features(torch.empty(1, 3, 224, 224, device="meta")).shape == (
        1,
        256,
        6,
        6,
    )
    model = AlexNet(in_channels=3, hidden_dim=64).eval()
    for size in (63, 80):
        assert model(torch.randn(2, 3, size, size)).shape == (2, 64)
    with pytest.raises(RuntimeError):
        model(torch.randn(1, 3, 48, 48))  # below the documented minimum


def test_models_backbones_alexnet_small_stem_width() -> None:
    model = build_backbone("alexnet", in_channels=1, small_stem=True, width=0.5, hidden_dim=512)
    assert model.out_dim == 256
    assert tuple(model.state_dict()["features.0.weight"].shape) == (48, 1, 3, 3)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 256)


def test_models_backbones_registry_errors_and_names() -> None:
    assert available_backbones() == ["alexnet", "resnet18", "resnet34", "resnet50", "smallcnn"]
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg16'.*resnet18"):
        build_backbone("vgg16")
    with pytest.raises(ValueError, match="in_channels"):
        build_backbone("smallcnn", in_channels=0)
    with pytest.raises(ValueError, match="width"):
        build_backbone("smallcnn", width=-1)
    with pytest.raises(ValueError, match="already sets width=2"):
        build_backbone("resnet50w2", width=4)
    with pytest.raises(TypeError, match="string"):
        build_backbone(18)  # type: ignore[arg-type]
    assert build_backbone("ResNet-18").out_dim == 512


_TRACEABLE: dict[str, Callable[[], nn.Module]] = {
    "smallcnn": lambda: SmallCNN(1),
    "alexnet": lambda: AlexNet(1, small_stem=True, hidden_dim=64),
    "resnet18": lambda: build_backbone("resnet18", small_stem=True),
}


@pytest.mark.parametrize("name", sorted(_TRACEABLE))
def test_models_backbones_traceable_and_channels_last(name: str) -> None:
    """No data-dependent Python control flow (fx traces it), and channels_last gives the same."""
    model = _TRACEABLE[name]().eval()
    x = torch.randn(2, _in_ch(model), 32, 32)
    traced = fx.symbolic_trace(model)
    ref = model(x)
    torch.testing.assert_close(traced(x), ref)
    cl_model = model.to(memory_format=torch.channels_last)
    out = cl_model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def _in_ch(model: nn.Module) -> int:
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return int(first.in_channels)


def test_models_backbones_train_step_updates() -> None:
    model = build_backbone("smallcnn", in_channels=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 1, 28, 28)
    before = [p.detach().clone() for p in model.parameters()]
    loss = model(x).pow(2).mean() + model(torch.randn(8, 1, 12, 12)).pow(2).mean()
    loss.backward()
    opt.step()
    assert all(p.grad is not None for p in model.parameters())
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
