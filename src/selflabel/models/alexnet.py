"""SeLa's AlexNet with BatchNorm (Asano et al., ICLR 2020; the DeepCluster variant).

Five convolutions (96-256-384-384-256 filters; 11×11/4, 5×5, 3×3, 3×3, 3×3), each followed by
BatchNorm and ReLU, 3×3/2 max-pools after the first, second and fifth, then two 4096-unit fully
connected layers with dropout. Parameter names follow SeLa's code (``features.0.weight``,
``features.1.running_mean``, ``classifier.1.weight``, ``classifier.4.weight``), so its checkpoints
load with :func:`selflabel.models.load_pretrained`.

Differences from SeLa, for any input size: an adaptive average pool to ``pool_size × pool_size``
(6 by default, which is a no-op at 224 px) sits before the classifier, so the network works at any
resolution ≥ ``min_input_size`` (63 px with the standard stem). ``small_stem=True`` (for ≤ 64 px)
makes ``conv1`` a 3×3/1 convolution and pads the max-pools, so 32 px gives a 4×4 map and 12 px a
2×2 one (``min_input_size`` 1; the default pool size is then 2).

Example::

    net = AlexNet(in_channels=3)
    net(torch.randn(2, 3, 96, 96)).shape                      # (2, 4096)
    AlexNet(in_channels=1, small_stem=True, width=0.5).out_dim  # 2048
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["AlexNet"]

# (filters, kernel, stride, padding) per convolution; "M" is a max-pool (SeLa's "big" config).
_CFG: tuple[tuple[int, int, int, int] | str, ...] = (
    (96, 11, 4, 2), "M", (256, 5, 1, 2), "M", (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1), "M",
)  # fmt: skip


class AlexNet(nn.Module):
    """AlexNet feature extractor returning the second fully connected layer's 4096-d activations.

    Args:
        in_channels: 1 (grey) or 3 (colour).
        width: multiplier of every convolution's filters and of the hidden size.
        small_stem: 3×3/1 first convolution and padded pools, for small images.
        hidden_dim: size of the two fully connected layers (4096 in SeLa), before ``width``.
        pool_size: side of the adaptive pool before the classifier (default 6; 2 with
            ``small_stem``).
        dropout: dropout probability before each fully connected layer (0.5 in SeLa).

    Attributes:
        out_dim: feature size (``hidden_dim · width``).
        min_input_size: smallest accepted input side (63 px, or 1 px with ``small_stem``).
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        width: float = 1.0,
        small_stem: bool = False,
        hidden_dim: int = 4096,
        pool_size: int | None = None,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be positive (1 grey, 3 colour), got {in_channels}")
        if not width > 0:
            raise ValueError(f"width must be a positive multiplier such as 0.5 or 1, got {width}")
        if hidden_dim < 1:
            raise ValueError(f"hidden_dim must be positive (SeLa uses 4096), got {hidden_dim}")
        if pool_size is None:
            pool_size = 2 if small_stem else 6
        if pool_size < 1:
            raise ValueError(f"pool_size must be positive (6 at 224 px), got {pool_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        in_ch = in_channels
        for i, spec in enumerate(_CFG):
            if isinstance(spec, str):
                pad = 1 if small_stem else 0
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=pad))
                continue
            filters, kernel, stride, padding = spec
            if small_stem and i == 0:
                kernel, stride, padding = 3, 1, 1
            out_ch = max(8, round(filters * width))
            layers += [
                nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            ]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        hidden = max(8, round(hidden_dim * width))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(in_ch * pool_size * pool_size, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
        )
        self.out_dim: int = hidden
        self.min_input_size: int = 1 if small_stem else 63
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last convolutional map after pooling, ``(B, C, pool_size, pool_size)``."""
        return self.avgpool(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        """Features ``(B, out_dim)`` after the two fully connected layers."""
        return self.classifier(torch.flatten(self.forward_features(x), 1))
