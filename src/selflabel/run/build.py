"""Turn a :class:`~selflabel.config.RunConfig` into a run's objects: data, views and method."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from selflabel.config import RunConfig
from selflabel.data import ImageSource, MultiCrop, load_source
from selflabel.methods import Method
from selflabel.methods.network import EmbeddingNetwork
from selflabel.methods.swav import SwAV
from selflabel.models import build_backbone

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """The sources of a run: ``train`` is what the method learns from, ``test`` is optional."""

    train: ImageSource
    test: ImageSource | None


def resolve_device(name: str) -> torch.device:
    """``auto`` picks the local CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name} but CUDA is not available; use train.device=cpu")
    return device


def build_data(cfg: RunConfig) -> RunData:
    """Load the training source (and the test source when the config names one)."""
    d = cfg.data
    train = load_source(d.source, split=d.split, image_size=d.image_size, strict=d.strict)
    test = None
    if d.test_source:
        test = load_source(
            d.test_source, split=d.test_split, image_size=d.image_size, strict=d.strict
        )
    if len(train) < d.batch_size:
        raise ValueError(
            f"the source has {len(train)} images, fewer than data.batch_size={d.batch_size}: "
            "lower the batch size"
        )
    return RunData(train=train, test=test)


def image_shape(source: ImageSource) -> tuple[int, int, int]:
    """(C, H, W) of the source's images (all images of a source share one shape)."""
    _, image, _ = source[0]
    c, h, w = image.shape
    return int(c), int(h), int(w)


class ResumableAugment:
    """Applies a :class:`MultiCrop` with a generator seeded from torch's global RNG per batch.

    The engine checkpoints and restores the global RNG, so drawing each batch's seed from it makes
    augmentation part of the exactly-resumable state (the transform's own generator is not saved).
    """

    def __init__(self, transform: MultiCrop) -> None:
        self.transform = transform

    def __call__(self, images: Tensor) -> list[Tensor]:
        generator = torch.Generator()
        generator.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        return list(self.transform(images, generator=generator))


def build_augment(cfg: RunConfig, source: ImageSource) -> MultiCrop:
    """The multi-crop views of the config, sized for the source's images when sizes are unset."""
    a = cfg.augment
    _, h, w = image_shape(source)
    options: dict[str, object] = {
        "n_global": a.n_global,
        "global_scale": a.global_scale,
        "n_local": a.n_local,
        "local_scale": a.local_scale,
        "color_strength": a.color_strength,
        "blur": a.blur,
        "flip_p": 0.5 if a.flip else 0.0,
        "mean": source.mean,
        "std": source.std,
    }
    if a.global_size is not None:
        options["global_size"] = a.global_size
    if a.local_size is not None:
        options["local_size"] = a.local_size
    return MultiCrop.for_image_size(min(h, w), **options)


def build_backbone_from(cfg: RunConfig, in_channels: int) -> nn.Module:
    m = cfg.model
    kwargs: dict[str, object] = {"in_channels": in_channels, "width": m.width}
    if m.backbone.startswith("resnet"):
        kwargs["small_stem"] = m.small_stem
    return build_backbone(m.backbone, **kwargs)


def build_method(cfg: RunConfig, source: ImageSource, world_size: int = 1) -> Method:
    """The method named by ``cfg.method`` with its network, ready for training."""
    c, _, _ = image_shape(source)
    backbone = build_backbone_from(cfg, c)
    if cfg.method == "swav":
        network = EmbeddingNetwork(
            backbone,
            n_prototypes=cfg.model.n_prototypes,
            hidden_dim=cfg.model.hidden_dim,
            embedding_dim=cfg.model.embedding_dim,
            batch_norm=cfg.model.projection_bn,
        )
        s = cfg.swav
        return SwAV(
            network,
            n_global=cfg.augment.n_global,
            temperature=s.temperature,
            epsilon=s.epsilon,
            sinkhorn_iters=s.sinkhorn_iters,
            freeze_prototypes_iters=s.freeze_prototypes_iters,
            queue_length=s.queue_length,
            queue_start_epoch=s.queue_start_epoch,
            world_size=world_size,
        )
    raise ValueError(f"method {cfg.method!r} is not available in this version; use --method swav")
