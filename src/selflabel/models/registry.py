"""Build a backbone by name: ``build_backbone("resnet50", width=2)``.

Every backbone maps ``(B, C, H, W)`` float images to pooled features ``(B, out_dim)`` and has the
attributes ``out_dim`` and ``min_input_size``; global and local crops of different sizes share it.

======================  ==============================================  =========  ============
name                    for                                             min input  ``out_dim``
======================  ==============================================  =========  ============
``smallcnn``            ≤ 32 px (MNIST, Fashion-MNIST, CIFAR, demo)     1 px       256 · width
``resnet18``/``34``     32–96 px with ``small_stem``, ≥ 96 px without   1 px       512 · width
``resnet50``            ImageNet crops (224 + 96 px); width 2/4/5       1 px       2048 · width
``alexnet``             SeLa's; ≥ 63 px, any size with ``small_stem``   63 / 1 px  4096 · width
======================  ==============================================  =========  ============
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from selflabel.models.alexnet import AlexNet
from selflabel.models.resnet import ResNet, resnet18, resnet34, resnet50
from selflabel.models.small_cnn import SmallCNN

__all__ = ["available_backbones", "build_backbone"]


def _resnet(factory: Callable[..., ResNet]) -> Callable[..., nn.Module]:
    def build(*, in_channels: int, width: float, small_stem: bool, **kw: object) -> nn.Module:
        if float(width) != int(width):
            raise ValueError(f"ResNet width must be an integer (1, 2, 4, 5), got {width}")
        return factory(in_channels=in_channels, width=int(width), small_stem=small_stem, **kw)

    return build


def _smallcnn(*, in_channels: int, width: float, small_stem: bool, **kw: object) -> nn.Module:
    del small_stem  # the small CNN is made for small images; it has no separate stem
    return SmallCNN(in_channels, width=width, **kw)  # type: ignore[arg-type]


def _alexnet(*, in_channels: int, width: float, small_stem: bool, **kw: object) -> nn.Module:
    return AlexNet(in_channels, width=width, small_stem=small_stem, **kw)  # type: ignore[arg-type]


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": _resnet(resnet18),
    "resnet34": _resnet(resnet34),
    "resnet50": _resnet(resnet50),
    "smallcnn": _smallcnn,
    "alexnet": _alexnet,
}
_ALIASES = {
    "resnet50w2": ("resnet50", 2),
    "resnet50w4": ("resnet50", 4),
    "resnet50w5": ("resnet50", 5),
}


def available_backbones() -> list[str]:
    """The names :func:`build_backbone` accepts (SwAV's ``resnet50w2/w4/w5`` also work)."""
    return sorted(_BUILDERS)


def build_backbone(
    name: str,
    *,
    in_channels: int = 3,
    width: float = 1,
    small_stem: bool = False,
    **kw: object,
) -> nn.Module:
    """Build the backbone ``name`` with ``in_channels`` input channels.

    Args:
        name: ``resnet18``, ``resnet34``, ``resnet50`` (or ``resnet50w2/w4/w5``), ``smallcnn`` or
            ``alexnet`` (case-insensitive).
        in_channels: 1 for grey images, 3 for colour.
        width: channel multiplier (an integer for ResNets).
        small_stem: CIFAR-style stem for small images (ResNets, AlexNet; ignored by ``smallcnn``).
        **kw: passed to the architecture, e.g. ``zero_init_residual=True`` or ``with_fc=True``
            (ResNets), ``channels=(32, 64, 128, 256)`` (smallcnn), ``hidden_dim=1024`` (alexnet).

    Returns:
        An ``nn.Module`` mapping ``(B, in_channels, H, W)`` to ``(B, out_dim)``, with ``out_dim``
        and ``min_input_size`` attributes.

    Example::

        net = build_backbone("resnet18", in_channels=1, small_stem=True)
        net(torch.randn(4, 1, 32, 32)).shape      # (4, 512)
    """
    if not isinstance(name, str):
        raise TypeError(f"backbone name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key in _ALIASES:
        base, alias_width = _ALIASES[key]
        if width not in (1, alias_width):
            raise ValueError(f"{name} already sets width={alias_width}; got width={width}")
        key, width = base, alias_width
    if key not in _BUILDERS:
        raise ValueError(
            f"unknown backbone {name!r}; choose one of {', '.join(available_backbones())}"
        )
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(
            f"in_channels must be a positive integer (1 grey, 3 colour), got {in_channels!r}"
        )
    if isinstance(width, bool) or not isinstance(width, int | float) or not width > 0:
        raise ValueError(f"width must be a positive number, got {width!r}")
    return _BUILDERS[key](in_channels=in_channels, width=width, small_stem=small_stem, **kw)
