"""Batched, per-sample-random image operations behind :mod:`selflabel.data.augment`.

Everything works on whole float batches ``(B, C, H, W)`` on their own device; every random
parameter is drawn per sample from an explicit :class:`torch.Generator` (on the CPU, so the same
seed gives the same parameters on any device). The operations are written as linear algebra so
that a batch costs a few passes over memory:

- random resized crop + flip: one ``grid_sample`` with a per-sample affine grid (bilinear);
- colour jitter (brightness, contrast, saturation, hue in a per-sample random order) and random
  grayscale: composed into one per-sample affine colour map ``A x + b`` (one ``bmm``);
  hue is a rotation of the chroma plane in YIQ space;
- Gaussian blur: per-sample separable Gaussian kernels (batched matmuls or depthwise conv1d).

Example::

    g = torch.Generator().manual_seed(0)
    boxes = sample_crop_boxes(8, 32, 32, (0.14, 1.0), (3 / 4, 4 / 3), g)
    crops = crop_resize(x, boxes, torch.zeros(8, dtype=torch.bool), (24, 24))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: ITU-R 601 luma weights (PIL's and torchvision's grayscale).
LUMA = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
)


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64) * (high - low) + low


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
    attempts: int = 10,
) -> Tensor:
    """Draw ``n`` random-resized-crop boxes ``(x0, y0, w, h)`` in pixels (float64, CPU).

    Same distribution as torchvision's ``RandomResizedCrop``: area fraction uniform in ``scale``,
    log-aspect uniform in ``ratio``, up to ``attempts`` tries, then a center crop of the closest
    allowed aspect ratio.
    """
    area = float(height * width)
    s = torch.rand(n, attempts, generator=generator, dtype=torch.float64)
    s = s * (scale[1] - scale[0]) + scale[0]
    lr = torch.rand(n, attempts, generator=generator, dtype=torch.float64)
    r = torch.exp(lr * (math.log(ratio[1]) - math.log(ratio[0])) + math.log(ratio[0]))
    w = torch.sqrt(area * s * r).round()
    h = torch.sqrt(area * s / r).round()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ok.to(torch.int8).argmax(1)
    rows = torch.arange(n)
    cw, ch = w[rows, first], h[rows, first]
    # fallback: the whole image clipped to the allowed aspect range, centered
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = float(width), float(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = float(round(height * ratio[1])), float(height)
    else:
        fw, fh = float(width), float(height)
    has = ok.any(1)
    cw = torch.where(has, cw, torch.full_like(cw, fw))
    ch = torch.where(has, ch, torch.full_like(ch, fh))
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    x0 = torch.where(has, torch.floor(u[:, 0] * (width - cw + 1)), (width - cw) / 2)
    y0 = torch.where(has, torch.floor(u[:, 1] * (height - ch + 1)), (height - ch) / 2)
    return torch.stack([x0, y0, cw, ch], 1)


def crop_resize(images: Tensor, boxes: Tensor, flip: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop each image to its box, flip it horizontally where ``flip``, resize to ``size``.

    ``images`` float ``(B, C, H, W)``; ``boxes`` ``(B, 4)`` as ``(x0, y0, w, h)`` pixels. Bilinear
    with half-pixel centers (as ``interpolate(align_corners=False)``), without antialiasing —
    accurate when a crop is at most ~1.5× larger than the output, as in the multi-crop presets.
    """
    B, _, H, W = images.shape
    b = boxes.to(torch.float64)
    theta = torch.zeros(B, 2, 3, dtype=torch.float64)
    sign = 1.0 - 2.0 * flip.to(torch.float64).cpu()
    theta[:, 0, 0] = b[:, 2] / W * sign
    theta[:, 0, 2] = (2 * b[:, 0] + b[:, 2]) / W - 1
    theta[:, 1, 1] = b[:, 3] / H
    theta[:, 1, 2] = (2 * b[:, 1] + b[:, 3]) / H - 1
    theta = theta.to(device=images.device, dtype=images.dtype)
    # the same grid as F.affine_grid(theta, ..., align_corners=False), built by broadcasting
    h, w = size
    xs = (torch.arange(w, device=images.device, dtype=images.dtype) * 2 + 1) / w - 1
    ys = (torch.arange(h, device=images.device, dtype=images.dtype) * 2 + 1) / h - 1
    gx = theta[:, 0, 0, None] * xs[None] + theta[:, 0, 2, None]      # (B, w)
    gy = theta[:, 1, 1, None] * ys[None] + theta[:, 1, 2, None]      # (B, h)
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def _luma(channels: int) -> Tensor:
    return torch.tensor(LUMA if channels == 3 else (1.0,), dtype=torch.float64)


def colour_maps(
    n: int,
    channels: int,
    jitter: tuple[float, float, float, float],
    jitter_p: float,
    gray_p: float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample colour distortion parameters: ``(jitter_factors (n, 4), jitter_order (n, 4),
    gray (n,) bool)``.

    Factors are brightness, contrast, saturation multipliers and the hue shift (fraction of a
    turn); samples without jitter get the identity ``(1, 1, 1, 0)``. For one-channel images
    saturation and hue are fixed to the identity and grayscale is a no-op.
    """
    b, c, s, h = jitter
    f = torch.stack([
        _uniform(n, max(0.0, 1 - b), 1 + b, generator),
        _uniform(n, max(0.0, 1 - c), 1 + c, generator),
        _uniform(n, max(0.0, 1 - s), 1 + s, generator),
        _uniform(n, -h, h, generator),
    ], 1)
    apply = torch.rand(n, generator=generator, dtype=torch.float64) < jitter_p
    identity = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    f = torch.where(apply[:, None], f, identity)
    if channels == 1:
        f[:, 2], f[:, 3] = 1.0, 0.0
    order = torch.argsort(torch.rand(n, 4, generator=generator), dim=1)
    gray = torch.rand(n, generator=generator, dtype=torch.float64) < gray_p
    if channels == 1:
        gray[:] = False
    return f, order, gray


def colour_linear_maps(
    factors: Tensor, order: Tensor, gray: Tensor, channels: int, in_scale: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Compose the colour distortion into ``A`` and ``L`` (both ``(n, C, C)``, float64).

    The distortion of a crop with per-channel mean ``μ`` (input units) is ``y = A x + L μ``:
    every operation is linear in the colour vector, and contrast's offset is linear in the mean
    of the image it is applied to, so the offset is a linear function of the crop's mean.
    ``in_scale`` multiplies the input first (``1/255`` for 0..255 input, so ``y`` is on 0..1).
    Matches torchvision's ``ColorJitter`` + ``RandomGrayscale`` up to the intermediate clamps.
    """
    n, C = factors.shape[0], channels
    eye = torch.eye(C, dtype=torch.float64).expand(n, C, C)
    w = _luma(C)
    ones_w = torch.ones(C, 1, dtype=torch.float64) @ w[None]  # each row = luma weights
    if C == 3:
        t = _RGB_TO_YIQ
        ang = factors[:, 3] * 2 * math.pi
        rot = torch.zeros(n, 3, 3, dtype=torch.float64)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2] = torch.cos(ang), -torch.sin(ang)
        rot[:, 2, 1], rot[:, 2, 2] = torch.sin(ang), torch.cos(ang)
        hue = torch.linalg.inv(t) @ rot @ t
    else:
        hue = eye.clone()
    fb, fc, fs = factors[:, 0, None, None], factors[:, 1, None, None], factors[:, 2, None, None]
    mats = torch.stack([eye * fb, eye * fc, eye * fs + (1 - fs) * ones_w, hue], 1)  # (n,4,C,C)
    rows = torch.arange(n)
    A = eye * in_scale
    L = torch.zeros(n, C, C, dtype=torch.float64)
    for k in range(4):
        op = order[:, k]
        M = mats[rows, op]
        # contrast adds (1 - fc) · (gray mean of the current image) to every channel
        cur = A + L                                       # current mean = (A + L) μ
        offset = (1 - fc) * (ones_w @ cur)                # (n, C, C), applied to μ
        L = M @ L + torch.where((op == 1)[:, None, None], offset, torch.zeros_like(offset))
        A = M @ A
    G = torch.where(gray[:, None, None], ones_w.expand(n, C, C), eye)
    return G @ A, G @ L


def affine_colour(
    factors: Tensor, order: Tensor, gray: Tensor, channel_means: Tensor, in_scale: float = 1.0
) -> tuple[Tensor, Tensor]:
    """The colour distortion as ``y = A x + b`` for crops with the given per-channel means.

    ``channel_means`` (n, C) in input units. See :func:`colour_linear_maps`.
    """
    A, L = colour_linear_maps(factors, order, gray, channel_means.shape[1], in_scale)
    b = (L @ channel_means.to(torch.float64)[:, :, None]).squeeze(2)
    return A, b


def apply_affine_colour(
    x: Tensor,
    A: Tensor,
    b: Tensor,
    lower: Sequence[float] | None = None,
    upper: Sequence[float] | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """``y = A x + b`` per sample and pixel, clamped per channel to ``[lower, upper]``.

    ``x`` (n, C, h, w) float; bounds default to 0..1. Passing a normalisation folded into
    ``A``/``b`` with the matching bounds gives normalised output in the same single pass.
    ``out`` (n, C, h, w, contiguous) receives the result when given.
    """
    n, C, h, w = x.shape
    A = A.to(device=x.device, dtype=x.dtype)
    b = b.to(device=x.device, dtype=x.dtype)
    y = out.view(n, C, h * w) if out is not None else None
    y = torch.baddbmm(b[:, :, None], A, x.reshape(n, C, h * w), out=y)
    lo = torch.tensor(lower if lower is not None else [0.0] * C, dtype=x.dtype, device=x.device)
    hi = torch.tensor(upper if upper is not None else [1.0] * C, dtype=x.dtype, device=x.device)
    return torch.clamp(y, lo[:, None], hi[:, None], out=y).view(n, C, h, w)


def gaussian_kernels(sigma: Tensor, max_radius: int) -> tuple[Tensor, int]:
    """Normalised 1-D Gaussian kernels ``(n, 2r+1)`` for per-sample ``sigma`` (pixels).

    The radius is ``ceil(3·σmax)``, at least 1 and at most ``max_radius``.
    """
    radius = max(1, min(max_radius, math.ceil(3 * float(sigma.max()))))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    s = sigma.to(torch.float64).clamp_min(1e-3)[:, None]
    k = torch.exp(-(taps[None] ** 2) / (2 * s**2))
    return k / k.sum(1, keepdim=True), radius


def _reflect_matrices(size: int, k: Tensor, radius: int) -> Tensor:
    """Per-sample ``(n, size, size)`` matrices applying kernels ``k`` with reflected borders."""
    taps = torch.arange(-radius, radius + 1)
    i = torch.arange(size)[:, None] + taps[None]
    i = torch.where(i < 0, -i, i)
    i = torch.where(i >= size, 2 * (size - 1) - i, i)
    n, t = k.shape
    M = torch.zeros(n, size, size, dtype=torch.float64)
    M.scatter_add_(2, i[None].expand(n, size, t), k[:, None, :].expand(n, size, t))
    return M


def _blur_rows(x: Tensor, k: Tensor, r: int) -> Tensor:
    """Blur along the last axis: one depthwise ``conv1d`` over contiguous rows."""
    n, C, h, w = x.shape
    y = F.pad(x.reshape(1, n * C * h, w), (r, r), mode="reflect")
    weight = k.to(device=x.device, dtype=x.dtype).repeat_interleave(C * h, 0)[:, None, :]
    return F.conv1d(y, weight, groups=n * C * h).reshape(n, C, h, w)


def gaussian_blur(x: Tensor, sigma: Tensor, matmul_below: int = 64) -> Tensor:
    """Blur each image of ``x`` (n, C, h, w) with its own ``sigma`` (n,) in pixels.

    Reflected borders. Images up to ``matmul_below`` px use per-sample blur matrices (two batched
    matmuls); larger ones a depthwise ``conv1d`` along rows, then along columns (transposed) —
    whichever is faster on a CPU.
    """
    n, _, h, w = x.shape
    if n == 0:
        return x
    k, r = gaussian_kernels(sigma, min(h, w) - 1)
    if max(h, w) <= matmul_below:
        Mh = _reflect_matrices(h, k, r).to(device=x.device, dtype=x.dtype)
        Mw = Mh if w == h else _reflect_matrices(w, k, r).to(device=x.device, dtype=x.dtype)
        return torch.matmul(torch.matmul(Mh[:, None], x), Mw[:, None].transpose(-1, -2))
    y = _blur_rows(x, k, r)
    y = _blur_rows(y.transpose(2, 3).contiguous(), k, r)
    return y.transpose(2, 3)
