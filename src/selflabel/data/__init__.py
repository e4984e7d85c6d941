"""The data layer: image sources, batched multi-crop augmentation, loaders.

::

    from selflabel.data import load_source, make_loader, MultiCrop, EvalTransform

    ds = load_source("demo")                            # or a folder, cifar10:DIR, x.npz, ...
    loader = make_loader(ds, batch_size=256, seed=0)
    aug = MultiCrop.for_image_size(ds.image_shape[1], mean=ds.mean, std=ds.std)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for indices, images, labels in loader:          # images: uint8 (B, C, H, W)
            views = aug(images.to(device))              # list of float (B, C, h, w)
"""

from selflabel.data.augment import (
    EvalTransform,
    MultiCrop,
    group_by_resolution,
    sela_transform,
)
from selflabel.data.decode import BadImageError
from selflabel.data.files import FileSource
from selflabel.data.loader import BatchLoader, ShardedBatchSampler, make_loader
from selflabel.data.registry import SOURCE_NAMES, SOURCES, load_source, parse_spec
from selflabel.data.source import ArraySource, ImageSource, SubsetSource

__all__ = [
    "SOURCES",
    "SOURCE_NAMES",
    "ArraySource",
    "BadImageError",
    "BatchLoader",
    "EvalTransform",
    "FileSource",
    "ImageSource",
    "MultiCrop",
    "ShardedBatchSampler",
    "SubsetSource",
    "group_by_resolution",
    "load_source",
    "make_loader",
    "parse_spec",
    "sela_transform",
]
