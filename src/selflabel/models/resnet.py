"""ResNet-18/34/50 backbones with torchvision's parameter names.

The state-dict keys are exactly torchvision's (``conv1.weight``, ``bn1.running_mean``,
``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``, ``layer2.0.downsample.1.running_var``,
...), so torchvision and official SwAV checkpoints load without renaming. ``width`` multiplies every
channel count (stem, bottleneck inner width and block outputs), which is the shape of the released
SwAV ``RN50-w2/w4/w5`` checkpoints (94M/375M/586M parameters; note that the SwAV repository's
``resnet50.py`` widens the bottleneck twice and does not match its own checkpoints, see
facebookresearch/swav issue #49). ``small_stem=True`` replaces the 7×7/2 conv
and the max-pool by a 3×3/1 conv (CIFAR-style) for 32–96 px images.

The backbone returns globally average-pooled features ``(B, out_dim)``; with ``with_fc=True`` a
``fc`` classifier is added (``num_classes`` outputs) and ``forward`` returns its logits.

Example::

    net = resnet18(small_stem=True, in_channels=1)
    feats = net(torch.randn(8, 1, 32, 32))      # (8, 512)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50"]


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    """The projection shortcut (``downsample.0`` conv, ``downsample.1`` BN) when shapes change."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(_conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = _conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = _downsample(in_ch, out_ch, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carries the stride, as torchvision v1.5), 1×1 expand ×4 (ResNet-50)."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        inner = planes
        out_ch = planes * self.expansion
        self.conv1 = _conv1x1(in_ch, inner)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = _conv3x3(inner, inner, stride)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv3 = _conv1x1(inner, out_ch)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, out_ch, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_Block = type[BasicBlock] | type[Bottleneck]


class ResNet(nn.Module):
    """A ResNet feature extractor: stem, four stages, global average pool.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        in_channels: 1 (grey) or 3 (colour) input channels.
        width: integer width multiplier of every channel count (SwAV's RN50-w2/w4/w5).
        small_stem: 3×3 stride-1 ``conv1`` and no max-pool, for small images.
        zero_init_residual: start every residual branch at zero (last BN weight = 0).
        with_fc: add the ``fc`` classifier; ``forward`` then returns logits.
        num_classes: outputs of ``fc`` when ``with_fc``.

    Attributes:
        out_dim: size of the pooled features (512·width for 18/34, 2048·width for 50).
        min_input_size: the smallest input side accepted (1 px; useful features need ≥ 32 px
            with the standard stem and ≥ 8 px with the small stem).
    """

    def __init__(
        self,
        block: _Block,
        layers: tuple[int, int, int, int],
        *,
        in_channels: int = 3,
        width: int = 1,
        small_stem: bool = False,
        zero_init_residual: bool = False,
        with_fc: bool = False,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"ResNet width must be a positive integer (1, 2, 4, 5), got {width!r}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be positive (1 grey, 3 colour), got {in_channels}")
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ValueError(f"layers must be four positive block counts, got {layers!r}")
        stem_ch = 64 * width
        if small_stem:
            self.conv1 = nn.Conv2d(in_channels, stem_ch, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_ch, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_ch)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module = (
            nn.Identity() if small_stem else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        )
        in_ch = stem_ch
        stages = []
        for i, n_blocks in enumerate(layers):
            planes = 64 * width * 2**i
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(in_ch, planes, stride))
                in_ch = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.out_dim: int = in_ch
        self.min_input_size: int = 1
        self.small_stem = small_stem
        self.fc: nn.Linear | None = nn.Linear(in_ch, num_classes) if with_fc else None
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock | Bottleneck):
                    nn.init.zeros_(m.last_bn().weight)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's feature map ``(B, out_dim, h, w)`` before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        """Pooled features ``(B, out_dim)`` (or ``fc`` logits when built ``with_fc``)."""
        feats = torch.flatten(self.avgpool(self.forward_features(x)), 1)
        if self.fc is not None:
            return self.fc(feats)
        return feats


def resnet18(**kwargs: object) -> ResNet:
    """ResNet-18 (BasicBlock, 2-2-2-2); keyword arguments as :class:`ResNet`.

    Example: ``resnet18(small_stem=True)(torch.randn(2, 3, 32, 32)).shape == (2, 512)``
    """
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)  # type: ignore[arg-type]


def resnet34(**kwargs: object) -> ResNet:
    """ResNet-34 (BasicBlock, 3-4-6-3); keyword arguments as :class:`ResNet`."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)  # type: ignore[arg-type]


def resnet50(**kwargs: object) -> ResNet:
    """ResNet-50 (Bottleneck, 3-4-6-3); keyword arguments as :class:`ResNet`.

    Example: ``resnet50(width=2).out_dim == 4096`` (SwAV's RN50-w2).
    """
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)  # type: ignore[arg-type]
