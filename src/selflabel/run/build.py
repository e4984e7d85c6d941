"""Turn a :class:`~selflabel.config.RunConfig` into a run's objects: data, views and method."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from selflabel.config import RunConfig
from selflabel.data import EvalTransform, ImageSource, MultiCrop, load_source, sela_transform
from selflabel.evaluate.views import TestViews, resized_views
from selflabel.methods import Method
from selflabel.methods.network import EmbeddingNetwork
from selflabel.methods.offline import DeepClusterV2, SeLaV2
from selflabel.methods.sela import LabelData, SeLa
from selflabel.methods.supervised import Supervised, read_labels
from selflabel.methods.swav import SwAV
from selflabel.methods.swavsela import SwAVSeLa
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


def holdout_split(source: ImageSource, fraction: float) -> tuple[ImageSource, ImageSource]:
    """``(train, validation)`` as ``data.holdout=fraction`` makes them: the same images for every
    run and every later evaluation of it (a fixed split seed, independent of the run's seed)."""
    return source.split(fraction, seed=0)


def build_data(cfg: RunConfig) -> RunData:
    """Load the training source and the evaluation source: ``data.holdout`` of the training
    images when set (a validation split), else ``data.test_source`` when the config names one."""
    d = cfg.data
    train = load_source(d.source, split=d.split, image_size=d.image_size, strict=d.strict)
    test: ImageSource | None = None
    if d.holdout > 0:
        train, test = holdout_split(train, d.holdout)
        log.info(
            "data.holdout=%s: training on %d images, validating on %d held-out ones%s",
            d.holdout, len(train), len(test),
            f" (instead of {d.test_source})" if d.test_source else "",
        )
    elif d.test_source:
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
    extra: dict[str, object] = {}
    smallcnn_only = {"convs_per_block": m.convs_per_block != 1, "channels": m.channels is not None}
    for key, is_set in smallcnn_only.items():
        if not is_set:
            continue
        if m.backbone.lower() != "smallcnn":
            raise ValueError(
                f"model.{key}={getattr(m, key)} applies to the smallcnn backbone only, "
                f"not {m.backbone!r}: leave it unset (the ResNets' depth and width are in their "
                "name and model.width)"
            )
        extra[key] = tuple(m.channels) if key == "channels" and m.channels else getattr(m, key)
    return build_backbone(
        m.backbone, in_channels=in_channels, width=m.width, small_stem=m.small_stem, **extra
    )


def build_network(cfg: RunConfig, backbone: nn.Module) -> EmbeddingNetwork:
    """SwAV-style backbone + projection + prototypes from ``cfg.model``."""
    m = cfg.model
    return EmbeddingNetwork(
        backbone,
        n_prototypes=m.n_prototypes,
        hidden_dim=m.hidden_dim,
        embedding_dim=m.embedding_dim,
        batch_norm=m.projection_bn,
    )


def build_method(cfg: RunConfig, source: ImageSource, world_size: int = 1) -> Method:
    """The method named by ``cfg.method`` with its network, ready for training."""
    c, _, _ = image_shape(source)
    backbone = build_backbone_from(cfg, c)
    if cfg.method == "swav":
        return build_swav(cfg, backbone, world_size)
    if cfg.method == "sela":
        return build_sela(cfg, backbone, source, cfg.sela.n_clusters or cfg.model.n_prototypes[0])
    if cfg.method == "swavsela":
        if cfg.sela.n_clusters is None:
            raise ValueError(
                "method=swavsela needs sela.n_clusters, the classes of SeLa's heads (SwAV's "
                "prototypes are model.n_prototypes), e.g. sela.n_clusters=30"
            )
        swav = build_swav(cfg, backbone, world_size)
        sela = build_sela(cfg, backbone, source, cfg.sela.n_clusters)
        return SwAVSeLa(swav, sela, sela_weight=cfg.sela.loss_weight)
    if cfg.method in ("selav2", "deepclusterv2"):
        network = build_network(cfg, backbone)
        oc = cfg.offline
        common = {
            "dataset_size": len(source),
            "temperature": oc.temperature,
            "bank_crops": min(oc.bank_crops, cfg.augment.n_global),
            "seed": cfg.seed,
        }
        if cfg.method == "selav2":
            return SeLaV2(
                network,
                epsilon=oc.epsilon,
                tol=oc.tol,
                max_iter=oc.max_iter,
                freeze_prototypes_iters=oc.freeze_prototypes_iters,
                **common,  # type: ignore[arg-type]
            )
        return DeepClusterV2(network, kmeans_iters=oc.kmeans_iters, **common)  # type: ignore[arg-type]
    if cfg.method == "supervised":
        if not cfg.labels:
            raise ValueError(
                "method=supervised needs labels=PATH (labels.npy or a labels CSV, e.g. from "
                "`selflabel label RUN_DIR`)"
            )
        labels = read_labels(cfg.labels)
        if labels.shape[0] != len(source):
            raise ValueError(
                f"{cfg.labels} has {labels.shape[0]} rows but the source has {len(source)} "
                "images: use labels exported from this very source"
            )
        return Supervised(backbone, labels)
    raise ValueError(
        f"method {cfg.method!r} is not available; use swav, sela, swavsela, selav2, deepclusterv2 "
        "or supervised"
    )


def build_swav(cfg: RunConfig, backbone: nn.Module, world_size: int = 1) -> SwAV:
    """SwAV over ``backbone`` with ``cfg.model``'s projection and prototypes."""
    s = cfg.swav
    return SwAV(
        build_network(cfg, backbone),
        n_global=cfg.augment.n_global,
        temperature=s.temperature,
        epsilon=s.epsilon,
        sinkhorn_iters=s.sinkhorn_iters,
        freeze_prototypes_iters=s.freeze_prototypes_iters,
        queue_length=s.queue_length,
        queue_start_epoch=s.queue_start_epoch,
        world_size=world_size,
    )


def build_sela(cfg: RunConfig, backbone: nn.Module, source: ImageSource, n_clusters: int) -> SeLa:
    """SeLa's ``cfg.sela.n_heads`` heads of ``n_clusters`` classes over ``backbone``."""
    sc = cfg.sela
    return SeLa(
        backbone,
        n_clusters=n_clusters,
        dataset_size=len(source),
        label_data=build_label_data(cfg, source),
        n_heads=sc.n_heads,
        label_steps=sc.label_steps,
        lam=sc.lam,
        tol=sc.tol,
        max_iter=sc.max_iter,
        label_augmentations=sc.label_augmentations,
        seed=cfg.seed,
    )


def build_eval_transform(cfg: RunConfig, source: ImageSource) -> EvalTransform:
    """The un-augmented view of ``source`` (``eval.image_size``/``crop_fraction``, normalised)."""
    e = cfg.eval
    return EvalTransform(e.image_size, source.mean, source.std, crop_fraction=e.crop_fraction)


def build_eval_views(cfg: RunConfig, source: ImageSource) -> TestViews:
    """The evaluation's test-time views: ``eval.image_size`` and ``eval.tta_sizes``, mirrored
    too with ``eval.tta_flip`` (one view, the plain :func:`build_eval_transform`, by default)."""
    e = cfg.eval
    return resized_views(
        e.image_size,
        e.tta_sizes,
        mean=source.mean,
        std=source.std,
        crop_fraction=e.crop_fraction,
        flip=e.tta_flip,
    )


def build_label_data(
    cfg: RunConfig, source: ImageSource, device: torch.device | None = None
) -> LabelData:
    """SeLa's view of the whole dataset: ``label_data(augment)`` yields ``(indices, images)``.

    Images are normalised floats, on ``device`` when given (else on the CPU; the method moves
    them to its own device), un-augmented (:class:`EvalTransform`) unless ``augment``, then one
    SeLa-augmented view (:func:`sela_transform`) drawn from a generator seeded by torch's global
    RNG (so label steps resume exactly). Under ``torch.distributed`` each
    process gets the contiguous shard ``rank`` of ``world_size`` of the indices.
    """
    _, h, w = image_shape(source)
    plain = build_eval_transform(cfg, source)
    augment = sela_transform(1, min(h, w), scale=(0.2, 1.0), mean=source.mean, std=source.std)
    batch = cfg.eval.batch_size

    def label_data(augmented: bool) -> Iterator[tuple[Tensor, Tensor]]:
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        shard = torch.arange(len(source)).tensor_split(world)[rank]
        for chunk in shard.split(batch):
            idx, images, _ = source.get_batch(chunk)
            if device is not None:
                images = images.to(device)
            if augmented:
                g = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
                x = augment(images, generator=g)[0]
            else:
                x = plain(images)
            yield idx, x

    return label_data
