"""Multi-crop augmentation on whole uint8 batches, on the batch's device.

:class:`MultiCrop` turns a uint8 batch ``(B, C, H, W)`` into a list of normalised float32 views,
global views first, then local ones — SwAV's multi-crop with its defaults (2×224 px at scale
(0.14, 1), 6×96 px at scale (0.05, 0.14), flip p=0.5, colour jitter (0.8s, 0.8s, 0.8s, 0.2s) with
p=0.8, grayscale p=0.2, Gaussian blur σ∈(0.1, 2) with p=0.5 on every crop as in SwAV's code)::

    aug = MultiCrop.for_image_size(28, mean=ds.mean, std=ds.std, seed=0)   # 2×24 px + 6×12 px
    views = aug(images.to(device))                  # [B×C×24×24, B×C×24×24, B×C×12×12, ...]
    for start, end in group_by_resolution(views):   # one forward pass per resolution
        feats = model(torch.cat(views[start:end]))

Every random parameter is drawn per sample from the transform's own generator (or one passed to
the call), on the CPU, so a seed reproduces the views exactly on any device. In distributed
training give each rank its own seed (e.g. ``seed + rank``).

Grayscale (one-channel) batches are supported: brightness and contrast jitter apply, saturation,
hue and random grayscale are no-ops (they need colour). See :mod:`selflabel.data.ops` for how the
operations are batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from selflabel.data.ops import (
    apply_affine_colour,
    colour_linear_maps,
    colour_maps,
    crop_resize,
    gaussian_blur,
    sample_crop_boxes,
)
from selflabel.data.source import IMAGENET_MEAN, IMAGENET_STD

#: on the CPU, images are processed in chunks of about this many source pixels per channel.
_CPU_CHUNK_PIXELS = 8 * 224 * 224

#: ImageNet normalisation, the default when no ``mean``/``std`` are given (pass ``ds.mean``).
DEFAULT_MEAN = IMAGENET_MEAN
DEFAULT_STD = IMAGENET_STD


def _stats(values: Sequence[float], channels: int, what: str) -> Tensor:
    t = torch.tensor([float(v) for v in values], dtype=torch.float32)
    if t.numel() == channels:
        return t
    if t.numel() == 1:
        return t.expand(channels).clone()
    if channels == 1:
        return t.mean().reshape(1)
    raise ValueError(f"{what} has {t.numel()} values for {channels}-channel images; give 1 or "
                     f"{channels} (e.g. ds.{what})")


def _check_batch(images: Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"expected a batch (B, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {images.shape[1]}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"images must be uint8 (0..255) or float (0..1), got {images.dtype}")


def _to_float(images: Tensor) -> tuple[Tensor, float]:
    """Return the batch as float and the factor that maps it to 0..1."""
    _check_batch(images)
    if images.dtype == torch.uint8:
        return images.float(), 1.0 / 255.0
    return images.float(), 1.0


def normalise(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """In-place ``(x - mean) / std`` per channel of a float batch (values on the 0..1 scale)."""
    C = x.shape[1]
    m = _stats(mean, C, "mean").to(x.device).view(1, C, 1, 1)
    s = _stats(std, C, "std").to(x.device).view(1, C, 1, 1)
    return x.sub_(m).div_(s)


@dataclass(frozen=True)
class CropSpec:
    """One group of identically distributed views: how many, their size and crop-area scale."""

    count: int
    size: int
    scale: tuple[float, float]
    blur: bool


class MultiCrop:
    """SwAV-style multi-crop on uint8 batches; returns normalised float32 views (global first).

    Args:
        n_global, global_size, global_scale: the large views (count, pixels, area fraction range).
        n_local, local_size, local_scale: the small views.
        color_strength: ``s`` of SimCLR's colour distortion: jitter ``(0.8s, 0.8s, 0.8s, 0.2s)``.
        jitter: explicit ``(brightness, contrast, saturation, hue)`` instead of ``color_strength``.
        jitter_p, gray_p: probabilities of colour jitter and of random grayscale.
        blur: Gaussian blur on the global views; ``blur_local`` also on the local views (SwAV's
            code blurs every crop); ``blur_p`` its probability, ``blur_sigma`` its σ range in
            pixels at 224 px (scaled with the view size).
        flip_p: horizontal flip probability. ``ratio``: aspect-ratio range of the crops.
        mean, std: normalisation (per channel, 0..1 scale) — pass ``ds.mean``/``ds.std``.
        seed: seed of the transform's own generator (``None``: drawn from torch's global RNG).
    """

    def __init__(
        self,
        n_global: int = 2,
        global_size: int = 224,
        global_scale: tuple[float, float] = (0.14, 1.0),
        n_local: int = 6,
        local_size: int = 96,
        local_scale: tuple[float, float] = (0.05, 0.14),
        color_strength: float = 1.0,
        *,
        jitter: tuple[float, float, float, float] | None = None,
        jitter_p: float = 0.8,
        gray_p: float = 0.2,
        blur: bool = True,
        blur_local: bool = True,
        blur_p: float = 0.5,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        flip_p: float = 0.5,
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        mean: Sequence[float] = DEFAULT_MEAN,
        std: Sequence[float] = DEFAULT_STD,
        seed: int | None = None,
    ) -> None:
        if n_global < 0 or n_local < 0 or n_global + n_local == 0:
            raise ValueError(f"need at least one view; got n_global={n_global}, n_local={n_local}")
        for name, (lo, hi) in (("global_scale", global_scale), ("local_scale", local_scale)):
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"{name} must satisfy 0 < min <= max <= 1, got {(lo, hi)}")
        for name, p in (("jitter_p", jitter_p), ("gray_p", gray_p), ("blur_p", blur_p),
                        ("flip_p", flip_p)):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if min(global_size, local_size) < 1:
            raise ValueError("view sizes must be >= 1 pixel")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
        s = color_strength
        self.jitter = jitter if jitter is not None else (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
        if not 0 <= self.jitter[3] <= 0.5:
            raise ValueError(f"hue jitter must be within [0, 0.5], got {self.jitter[3]}")
        self.specs = [
            spec for spec in (
                CropSpec(n_global, global_size, global_scale, blur),
                CropSpec(n_local, local_size, local_scale, blur and blur_local),
            ) if spec.count
        ]
        self.jitter_p, self.gray_p, self.blur_p, self.flip_p = jitter_p, gray_p, blur_p, flip_p
        self.blur_sigma, self.ratio = blur_sigma, ratio
        self.mean, self.std = tuple(mean), tuple(std)
        self.generator = torch.Generator()
        self.generator.manual_seed(seed if seed is not None else
                                   int(torch.randint(0, 2**62, (1,)).item()))

    @classmethod
    def for_image_size(cls, image_size: int, **kwargs: object) -> MultiCrop:
        """A :class:`MultiCrop` with view sizes suited to ``image_size`` px inputs.

        ``< 32`` → global ``round(6/7·size)``, local half of it (28 → 24/12); ``32..223`` →
        global = size, local = size/2 (32 → 32/16, 96 → 96/48); ``>= 224`` → SwAV's 224/96.
        Blur is off below 64 px global views (as SimCLR does on CIFAR) and its σ scales with
        the view size. ``kwargs`` override any argument, e.g. ``n_local=4, mean=ds.mean``.
        """
        if image_size < 4:
            raise ValueError(f"image_size must be >= 4, got {image_size}")
        if image_size >= 224:
            g, loc = 224, 96
        elif image_size >= 32:
            g, loc = image_size, image_size // 2
        else:
            g = max(4, round(image_size * 6 / 7))
            loc = max(2, g // 2)
        params: dict[str, object] = {
            "global_size": g,
            "local_size": loc,
            "blur": g >= 64,
            "blur_sigma": (0.1 * g / 224, 2.0 * g / 224) if g < 224 else (0.1, 2.0),
        }
        params.update(kwargs)
        return cls(**params)  # type: ignore[arg-type]

    @property
    def sizes(self) -> list[int]:
        """Output size of each view, in order."""
        return [spec.size for spec in self.specs for _ in range(spec.count)]

    def __len__(self) -> int:
        return sum(spec.count for spec in self.specs)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """Augment a batch: ``uint8 (B, C, H, W)`` (or float 0..1) → list of ``(B, C, s, s)``."""
        g = generator if generator is not None else self.generator
        _check_batch(images)
        B, _, H, W = images.shape
        in_scale = 1.0 / 255.0 if images.dtype == torch.uint8 else 1.0
        # 1. every random parameter of every view, drawn view by view in a fixed order
        plans = [self._plan(images, in_scale, spec, g)
                 for spec in self.specs for _ in range(spec.count)]
        # 2. apply them chunk by chunk of images: on the CPU a chunk of source images stays in
        #    cache while all its views are made; on a GPU the whole batch is one chunk
        step = B if images.device.type != "cpu" else max(1, _CPU_CHUNK_PIXELS // (H * W))
        with torch.no_grad():
            for a in range(0, B, step):
                c = slice(a, min(B, a + step))
                x = images[c].float()
                for plan in plans:
                    plan.apply(x, c)
        return [plan.out for plan in plans]

    def _plan(self, images: Tensor, in_scale: float, spec: CropSpec,
              g: torch.Generator) -> _ViewPlan:
        B, C, H, W = images.shape
        boxes = sample_crop_boxes(B, H, W, spec.scale, self.ratio, g)
        flip = torch.rand(B, generator=g) < self.flip_p
        factors, order, gray = colour_maps(B, C, self.jitter, self.jitter_p, self.gray_p, g)
        do_blur = torch.rand(B, generator=g) < self.blur_p
        do_blur &= spec.blur and self.blur_p > 0
        lo, hi = self.blur_sigma
        sigma = torch.rand(B, generator=g, dtype=torch.float64) * (hi - lo) + lo
        A, L = colour_linear_maps(factors, order, gray, C, in_scale)
        # fold the normalisation in: 0..1 clamping becomes per-channel bounds
        m = _stats(self.mean, C, "mean").double()
        s = _stats(self.std, C, "std").double()
        return _ViewPlan(
            size=spec.size, boxes=boxes, flip=flip.to(images.device),
            A=A / s[None, :, None], L=L / s[None, :, None], offset=-m / s,
            lower=(-m / s).tolist(), upper=((1 - m) / s).tolist(),
            needs_mean=bool((factors[:, 1] != 1).any()), do_blur=do_blur, sigma=sigma,
            out=torch.empty((B, C, spec.size, spec.size), dtype=torch.float32,
                            device=images.device),
        )


@dataclass
class _ViewPlan:
    """The random parameters of one view for a whole batch, and its output tensor."""

    size: int
    boxes: Tensor
    flip: Tensor
    A: Tensor
    L: Tensor
    offset: Tensor
    lower: list[float]
    upper: list[float]
    needs_mean: bool
    do_blur: Tensor
    sigma: Tensor
    out: Tensor

    def apply(self, x: Tensor, c: slice) -> None:
        """Write this view of the images ``x`` (float, 0..255 or 0..1) into ``out[c]``."""
        v = crop_resize(x, self.boxes[c], self.flip[c], (self.size, self.size))
        n, C = v.shape[:2]
        means = (v.mean((2, 3)).cpu().double() if self.needs_mean
                 else torch.zeros(n, C, dtype=torch.float64))
        b = (self.L[c] @ means[:, :, None]).squeeze(2) + self.offset
        o = apply_affine_colour(v, self.A[c], b, lower=self.lower, upper=self.upper,
                                out=self.out[c])
        sel = self.do_blur[c].nonzero().squeeze(1)
        if sel.numel():
            dev_sel = sel.to(x.device)
            o.index_copy_(0, dev_sel, gaussian_blur(o.index_select(0, dev_sel), self.sigma[c][sel]))


def sela_transform(
    n_views: int = 1,
    size: int = 224,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    mean: Sequence[float] = DEFAULT_MEAN,
    std: Sequence[float] = DEFAULT_STD,
    seed: int | None = None,
    **kwargs: object,
) -> MultiCrop:
    """SeLa's augmentation: random resized crop, flip, colour jitter (0.4, 0.4, 0.4, 0.4) always
    applied, grayscale p=0.2, no blur; ``n_views`` views of ``size`` px (SeLa's "A" augmentations).

    Example: ``views = sela_transform(1, 32, mean=ds.mean, std=ds.std)(images)`` → ``[B×C×32×32]``.
    """
    params: dict[str, object] = {
        "n_global": n_views, "global_size": size, "global_scale": scale, "n_local": 0,
        "jitter": (0.4, 0.4, 0.4, 0.4), "jitter_p": 1.0, "gray_p": 0.2, "blur": False,
        "mean": mean, "std": std, "seed": seed,
    }
    params.update(kwargs)
    return MultiCrop(**params)  # type: ignore[arg-type]


class EvalTransform:
    """Deterministic evaluation transform: uint8 batch → normalised float32 batch.

    With ``size`` the shorter side is resized (antialiased bilinear) to ``round(size /
    crop_fraction)`` and the center ``size × size`` kept (``crop_fraction=0.875`` gives the
    ImageNet-style 256 → 224). Without ``size`` only dtype and normalisation change.

    Example: ``x = EvalTransform(mean=ds.mean, std=ds.std)(images)``.
    """

    def __init__(
        self,
        size: int | None = None,
        mean: Sequence[float] = DEFAULT_MEAN,
        std: Sequence[float] = DEFAULT_STD,
        crop_fraction: float = 1.0,
    ) -> None:
        if size is not None and size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if not 0 < crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        self.size, self.crop_fraction = size, crop_fraction
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, images: Tensor) -> Tensor:
        x, in_scale = _to_float(images)
        x = x * in_scale
        if self.size is not None:
            _, _, h, w = x.shape
            short = round(self.size / self.crop_fraction)
            if min(h, w) != short:
                f = short / min(h, w)
                nh, nw = max(short, round(h * f)), max(short, round(w * f))
                x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False,
                                  antialias=f < 1).clamp_(0, 1)
            _, _, h, w = x.shape
            top, left = (h - self.size) // 2, (w - self.size) // 2
            x = x[:, :, top:top + self.size, left:left + self.size].contiguous()
        return normalise(x, self.mean, self.std)


def group_by_resolution(views: Sequence[Tensor]) -> list[tuple[int, int]]:
    """Consecutive ``(start, end)`` ranges of views with equal spatial size.

    Example: sizes ``[224, 224, 96, 96, 96]`` → ``[(0, 2), (2, 5)]``; the model concatenates
    ``views[start:end]`` and runs one forward pass per range.
    """
    ranges: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(views) + 1):
        if i == len(views) or views[i].shape[-2:] != views[start].shape[-2:]:
            ranges.append((start, i))
            start = i
    return ranges if views else []
