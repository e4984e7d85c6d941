"""ResNets: torchvision parameter names and shapes, parameter counts, stems, widths, gray input."""

from __future__ import annotations

import pytest
import torch

from selflabel.models import ResNet, build_backbone, resnet18, resnet34, resnet50

_LAYERS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}


def expected_torchvision_shapes(
    name: str, in_channels: int = 3, width: int = 1, with_fc: bool = False
) -> dict[str, tuple[int, ...]]:
    """The state-dict keys and shapes of torchvision's ResNet, built from the architecture rule."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(key: str, out_ch: int, in_ch: int, k: int) -> None:
        shapes[f"{key}.weight"] = (out_ch, in_ch, k, k)

    def bn(key: str, ch: int) -> None:
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{key}.{p}"] = (ch,)
        shapes[f"{key}.num_batches_tracked"] = ()

    bottleneck = name == "resnet50"
    stem = 64 * width
    conv("conv1", stem, in_channels, 7)
    bn("bn1", stem)
    in_ch = stem
    for stage, n_blocks in enumerate(_LAYERS[name]):
        planes = 64 * width * 2**stage
        for b in range(n_blocks):
            pre = f"layer{stage + 1}.{b}"
            if bottleneck:
                out_ch = planes * 4
                conv(f"{pre}.conv1", planes, in_ch, 1)
                bn(f"{pre}.bn1", planes)
                conv(f"{pre}.conv2", planes, planes, 3)
                bn(f"{pre}.bn2", planes)
                conv(f"{pre}.conv3", out_ch, planes, 1)
                bn(f"{pre}.bn3", out_ch)
            else:
                out_ch = planes
                conv(f"{pre}.conv1", planes, in_ch, 3)
                bn(f"{pre}.bn1", planes)
                conv(f"{pre}.conv2", planes, planes, 3)
                bn(f"{pre}.bn2", planes)
            stride = 2 if stage > 0 and b == 0 else 1
            if stride != 1 or in_ch != out_ch:
                conv(f"{pre}.downsample.0", out_ch, in_ch, 1)
                bn(f"{pre}.downsample.1", out_ch)
            in_ch = out_ch
    if with_fc:
        shapes["fc.weight"] = (1000, in_ch)
        shapes["fc.bias"] = (1000,)
    return shapes


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_models_resnet_keys_and_shapes_equal_torchvision(name: str) -> None:
    with torch.device("meta"):  # shapes only
        model = build_backbone(name)
    assert _shapes(model) == expected_torchvision_shapes(name)
    assert not any(k.startswith("fc.") for k in model.state_dict())


def test_models_resnet_with_fc_has_torchvision_fc() -> None:
    model = resnet18(with_fc=True)
    assert _shapes(model) == expected_torchvision_shapes("resnet18", with_fc=True)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


def test_models_resnet_hard_coded_shapes() -> None:
    with torch.device("meta"):
        sd50 = resnet50().state_dict()
    assert tuple(sd50["layer4.2.conv3.weight"].shape) == (2048, 512, 1, 1)
    assert tuple(sd50["layer1.0.downsample.0.weight"].shape) == (256, 64, 1, 1)
    assert tuple(sd50["layer1.0.downsample.1.running_mean"].shape) == (256,)
    assert tuple(sd50["layer3.0.conv2.weight"].shape) == (256, 256, 3, 3)
    sd18 = resnet18().state_dict()
    assert tuple(sd18["conv1.weight"].shape) == (64, 3, 7, 7)
    assert tuple(sd18["layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)
    assert "layer1.0.downsample.0.weight" not in sd18
    assert tuple(sd18["layer4.1.conv2.weight"].shape) == (512, 512, 3, 3)


def test_models_resnet_parameter_counts() -> None:
    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    with torch.device("meta"):
        assert count(resnet18()) == 11_176_512
        assert count(resnet50()) == 23_508_032
        assert count(resnet34()) == 21_284_672
        assert count(resnet18(with_fc=True)) == 11_689_512  # torchvision's resnet18


def test_models_resnet_width_matches_swav_released_checkpoints() -> None:
    # SwAV's RN50-w2 checkpoint: layer1.0.conv1 is (128, 128, 1, 1), features 4096, ~94M params
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = build_backbone("resnet50w2")
    assert isinstance(model, ResNet)
    assert model.out_dim == 4096
    sd = model.state_dict()
    assert tuple(sd["conv1.weight"].shape) == (128, 3, 7, 7)
    assert tuple(sd["layer1.0.conv1.weight"].shape) == (128, 128, 1, 1)
    assert tuple(sd["layer4.2.conv3.weight"].shape) == (4096, 1024, 1, 1)
    assert sum(p.numel() for p in model.parameters()) == 93_907_072
    assert _shapes(resnet18(width=2)) == expected_torchvision_shapes("resnet18", width=2)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_models_resnet_small_stem_forward(name: str, in_channels: int) -> None:
    model = build_backbone(name, in_channels=in_channels, small_stem=True)
    assert tuple(model.state_dict()["conv1.weight"].shape) == (64, in_channels, 3, 3)
    assert isinstance(model.maxpool, torch.nn.Identity)
    sizes = (32, 64) if name == "resnet18" else (32,)
    for size in sizes:
        out = model(torch.randn(2, in_channels, size, size))
        assert out.shape == (2, model.out_dim)
        assert torch.isfinite(out).all()
    assert model.out_dim == (2048 if name == "resnet50" else 512)


def test_models_resnet_standard_stem_multi_resolution() -> None:
    model = resnet18(in_channels=1)
    for size in (224 // 4, 96, 32):
        assert model(torch.randn(2, 1, size, size)).shape == (2, 512)
    fmap = model.forward_features(torch.randn(1, 1, 96, 96))
    assert fmap.shape == (1, 512, 3, 3)


def test_models_resnet_small_stem_keeps_resolution() -> None:
    fmap = resnet18(small_stem=True).forward_features(torch.randn(1, 3, 32, 32))
    assert fmap.shape == (1, 512, 4, 4)


def test_models_resnet_zero_init_residual() -> None:
    m18 = resnet18(zero_init_residual=True)
    assert all(
        int(torch.count_nonzero(b.bn2.weight)) == 0 for s in (m18.layer1, m18.layer4) for b in s
    )
    m50 = resnet50(zero_init_residual=True)
    assert int(torch.count_nonzero(m50.layer2[1].bn3.weight)) == 0
    assert int(torch.count_nonzero(m50.layer2[1].bn2.weight)) > 0
    assert int(torch.count_nonzero(resnet18().layer1[0].bn2.weight)) > 0


@pytest.mark.parametrize("bad", [0, 1.5, -2, True])
def test_models_resnet_rejects_bad_width(bad: object) -> None:
    with pytest.raises(ValueError, match="width"):
        build_backbone("resnet18", width=bad)  # type: ignore[arg-type]
