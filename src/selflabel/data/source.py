"""The dataset type every source returns: :class:`ImageSource`.

Item ``i`` of a source is ``(index, image, label)``: ``index`` is ``i`` itself (stable, so methods
such as SeLa can keep self-labels by index), ``image`` a ``uint8`` tensor ``C×H×W`` and ``label``
the ground-truth class or ``-1`` when unknown. Besides item access a source offers a batched
:meth:`ImageSource.get_batch` (what :func:`selflabel.data.make_loader` uses), so in-memory arrays
cost one ``index_select`` per batch instead of one Python call per image::

    ds = load_source("demo")
    idx, images, labels = ds.get_batch([0, 1, 2])     # (3,), (3, 1, 28, 28) uint8, (3,)
    train, val = ds.split(0.1, seed=0)                  # a held-out validation split

Two implementations: :class:`ArraySource` (images held in memory as one tensor) and
:class:`~selflabel.data.files.FileSource` (image files decoded on access).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

#: ImageNet statistics: the default normalisation for colour image files.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the same for one-channel image files (the mean over ImageNet's channels).
GRAY_MEAN = (0.449,)
GRAY_STD = (0.226,)

Item = tuple[int, Tensor, int]
BatchTriple = tuple[Tensor, Tensor, Tensor]


def _as_index_tensor(indices: Sequence[int] | Tensor, n: int) -> Tensor:
    idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
    if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
        raise IndexError(f"index out of range for a source of {n} images")
    return torch.where(idx < 0, idx + n, idx)


class ImageSource(Dataset[Item]):
    """Base class: a map-style dataset of ``(index, uint8 image C×H×W, label)``.

    Attributes every source sets: ``name`` (the spec it came from), ``num_classes`` (0 when
    unlabelled), ``classes`` (class names or ``None``), ``channels`` (1 or 3), ``skipped``
    (``(path, reason)`` of every input left out), ``paths`` (one path per index, or ``None``),
    ``mean``/``std`` (per-channel normalisation, 0..1 scale), ``image_shape`` (``(C, H, W)``)
    and ``in_memory`` (True when no decoding happens on access; the loader then needs no workers).
    """

    name: str = "source"
    num_classes: int = 0
    classes: list[str] | None = None
    channels: int = 3
    skipped: list[tuple[str, str]]
    paths: list[str] | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    image_shape: tuple[int, int, int] = (3, 0, 0)
    in_memory: bool = False
    labels: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> Item:
        idx, images, labels = self.get_batch([int(i)])
        return int(idx[0]), images[0], int(labels[0])

    def __getitems__(self, indices: Sequence[int]) -> list[Item]:
        idx, images, labels = self.get_batch(indices)
        return [(int(j), im, int(y)) for j, im, y in zip(idx, images, labels, strict=True)]

    def get_batch(self, indices: Sequence[int] | Tensor) -> BatchTriple:
        """Return ``(indices (B,), images uint8 (B, C, H, W), labels (B,))``."""
        raise NotImplementedError

    @property
    def labelled(self) -> bool:
        """Whether any image has a known label."""
        return bool((self.labels >= 0).any())

    def split(self, fraction: float, seed: int = 0) -> tuple[SubsetSource, SubsetSource]:
        """Split into ``(rest, held_out)`` with ``round(fraction * len)`` random images held out.

        Each part renumbers its indices ``0..n-1``; ``part.parent_indices[i]`` is the index in this
        source. Example::

            train, val = ds.split(0.1, seed=0)
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"split fraction must be in (0, 1), got {fraction}")
        n = len(self)
        n_held = round(fraction * n)
        if n_held == 0 or n_held == n:
            raise ValueError(f"fraction {fraction} of {n} images leaves one part empty")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        held, rest = perm[:n_held].sort().values, perm[n_held:].sort().values
        return SubsetSource(self, rest), SubsetSource(self, held)

    def subset(self, indices: Sequence[int] | Tensor) -> SubsetSource:
        """A source of the given indices of this one, renumbered ``0..len(indices)-1``."""
        return SubsetSource(self, _as_index_tensor(indices, len(self)))

    def describe(self) -> str:
        """One line: name, size, shape, classes, skipped count."""
        c, h, w = self.image_shape
        shape = f"{c}×{h}×{w}" if h else f"{c}×(varied)"
        return (
            f"{self.name}: {len(self)} images {shape}, "
            f"{self.num_classes or 'no'} classes, {len(self.skipped)} skipped"
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class ArraySource(ImageSource):
    """Images held in memory as one ``uint8`` tensor ``(N, C, H, W)``.

    ``mean``/``std`` default to the statistics of the images themselves (computed on at most
    20,000 images), so any array source is normalised sensibly without configuration.

    Example::

        ds = ArraySource(torch.zeros(10, 1, 28, 28, dtype=torch.uint8), name="zeros")
    """

    in_memory = True

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        *,
        name: str = "arrays",
        classes: list[str] | None = None,
        num_classes: int | None = None,
        skipped: list[tuple[str, str]] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise TypeError(
                f"ArraySource needs a uint8 tensor (N, C, H, W); got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        if images.shape[1] not in (1, 3):
            raise ValueError(f"images need 1 or 3 channels, got {images.shape[1]}")
        n = int(images.shape[0])
        if n == 0:
            raise ValueError(f"source {name!r} is empty: no images")
        if labels is None:
            labels = torch.full((n,), -1, dtype=torch.long)
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if labels.shape[0] != n:
            raise ValueError(
                f"source {name!r}: {labels.shape[0]} labels for {n} images; "
                "the labels must have one entry per image"
            )
        self.images = images.contiguous()
        self.labels = labels
        self.name = name
        self.classes = classes
        known = labels[labels >= 0]
        self.num_classes = (
            num_classes
            if num_classes is not None
            else (len(classes) if classes else (int(known.max()) + 1 if known.numel() else 0))
        )
        self.channels = int(images.shape[1])
        self.image_shape = (self.channels, int(images.shape[2]), int(images.shape[3]))
        self.skipped = list(skipped or [])
        self.paths = None
        if mean is None or std is None:
            mean_t, std_t = channel_stats(self.images)
        self.mean = tuple(float(m) for m in (mean if mean is not None else mean_t))
        self.std = tuple(float(s) for s in (std if std is not None else std_t))

    def get_batch(self, indices: Sequence[int] | Tensor) -> BatchTriple:
        idx = _as_index_tensor(indices, len(self))
        return idx, self.images.index_select(0, idx), self.labels.index_select(0, idx)


def channel_stats(images: Tensor, max_images: int = 20_000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (0..1 scale) of a uint8 ``(N, C, H, W)`` tensor.

    Uses an evenly spaced subset of at most ``max_images`` images and float64 accumulation.
    """
    n = images.shape[0]
    step = max(1, n // max_images)
    sample = images[::step]
    c = sample.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    count = 0
    for chunk in sample.split(2048):
        x = chunk.to(torch.float64).div_(255.0).transpose(0, 1).reshape(c, -1)
        total += x.sum(1)
        total_sq += (x * x).sum(1)
        count += x.shape[1]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
    std = torch.where(std < 1e-3, torch.ones_like(std), std)  # constant images: do not blow up
    return mean.tolist(), std.tolist()


class SubsetSource(ImageSource):
    """Some images of a parent source, renumbered ``0..n-1`` (see :meth:`ImageSource.split`)."""

    def __init__(self, parent: ImageSource, parent_indices: Tensor) -> None:
        if parent_indices.numel() == 0:
            raise ValueError("a subset needs at least one index")
        self.parent = parent
        self.parent_indices = parent_indices.to(torch.long)
        self.labels = parent.labels.index_select(0, self.parent_indices)
        for attr in ("name", "num_classes", "classes", "channels", "mean", "std",
                     "image_shape", "in_memory"):
            setattr(self, attr, getattr(parent, attr))
        self.skipped = []
        self.paths = (
            [parent.paths[int(i)] for i in self.parent_indices] if parent.paths is not None
            else None
        )

    def get_batch(self, indices: Sequence[int] | Tensor) -> BatchTriple:
        idx = _as_index_tensor(indices, len(self))
        _, images, labels = self.parent.get_batch(self.parent_indices.index_select(0, idx))
        return idx, images, labels


def resize_uint8(images: Tensor, size: int, chunk: int = 1024) -> Tensor:
    """Resize a uint8 batch so its shorter side is ``size`` and center-crop it to ``size×size``.

    Antialiased bilinear when shrinking; used to bring in-memory arrays to ``image_size``.
    """
    import torch.nn.functional as F

    _, _, h, w = images.shape
    if (h, w) == (size, size):
        return images
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    out = []
    for part in images.split(chunk):
        x = F.interpolate(part.float(), size=(nh, nw), mode="bilinear", align_corners=False,
                          antialias=scale < 1)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[:, :, top:top + size, left:left + size]
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)

