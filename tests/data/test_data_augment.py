"""Multi-crop augmentation: shapes, ranges, determinism, per-sample randomness, exact ops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import selflabel.data.augment as augment_mod
from selflabel.data import EvalTransform, MultiCrop, group_by_resolution, sela_transform
from selflabel.data.ops import (
    LUMA,
    affine_colour,
    colour_maps,
    crop_resize,
    gaussian_blur,
    sample_crop_boxes,
)


def _batch(b: int = 4, c: int = 3, h: int = 40, w: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), generator=g, dtype=torch.uint8)


def _denorm(v: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return v * s + m


def test_swav_default_shapes_order_and_ranges() -> None:
    aug = MultiCrop(seed=0)
    views = aug(_batch(3, h=64, w=80))
    assert [tuple(v.shape) for v in views] == [(3, 3, 224, 224)] * 2 + [(3, 3, 96, 96)] * 6
    assert aug.sizes == [224, 224, 96, 96, 96, 96, 96, 96]
    assert len(aug) == 8
    for v in views:
        assert v.dtype == torch.float32
        assert torch.isfinite(v).all()
        x = _denorm(v, aug.mean, aug.std)
        assert x.min() >= -1e-5
        assert x.max() <= 1 + 1e-5
    assert group_by_resolution(views) == [(0, 2), (2, 8)]


def test_same_seed_same_views_and_chunking_does_not_matter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = _batch(6)
    a = MultiCrop.for_image_size(40, seed=5, blur=True)(x)
    b = MultiCrop.for_image_size(40, seed=5, blur=True)(x)
    monkeypatch.setattr(augment_mod, "_CPU_CHUNK_PIXELS", 1)  # one image per chunk
    c = MultiCrop.for_image_size(40, seed=5, blur=True)(x)
    for u, v, w in zip(a, b, c, strict=True):
        assert torch.equal(u, v)
        assert torch.allclose(u, w, atol=1e-5)
    d = MultiCrop.for_image_size(40, seed=6)(x)
    assert not torch.equal(a[0], d[0])
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    aug = MultiCrop.for_image_size(40)
    assert torch.equal(aug(x, generator=g1)[3], aug(x, generator=g2)[3])


def test_each_sample_and_view_gets_its_own_randomness() -> None:
    same = _batch(1, h=32, w=32).expand(16, -1, -1, -1).contiguous()
    views = MultiCrop.for_image_size(32, seed=0)(same)
    flat = views[0].flatten(1)
    distinct = {tuple(np.round(r.numpy(), 4)) for r in flat}
    assert len(distinct) == 16
    assert not torch.equal(views[0], views[1])


def test_grayscale_batches_are_supported() -> None:
    x = _batch(5, c=1, h=28, w=28)
    aug = MultiCrop.for_image_size(28, mean=(0.286,), std=(0.353,), seed=0)
    views = aug(x)
    assert [tuple(v.shape) for v in views] == [(5, 1, 24, 24)] * 2 + [(5, 1, 12, 12)] * 6
    assert (_denorm(views[0], (0.286,), (0.353,)) <= 1 + 1e-5).all()
    with pytest.raises(ValueError, match="mean has 2 values"):
        MultiCrop(mean=(0.1, 0.2), std=(0.3, 0.3))(_batch(2))


@pytest.mark.parametrize(("size", "glob", "loc", "blur"), [
    (28, 24, 12, False), (32, 32, 16, False), (96, 96, 48, True), (224, 224, 96, True),
    (256, 224, 96, True), (8, 7, 3, False)])
def test_for_image_size_presets(size: int, glob: int, loc: int, blur: bool) -> None:
    aug = MultiCrop.for_image_size(size)
    assert aug.sizes[0] == glob
    assert aug.sizes[-1] == loc
    assert aug.specs[0].blur is blur


def test_sela_preset_and_eval_transform() -> None:
    x = _batch(4, h=36, w=36)
    views = sela_transform(3, 32, seed=0)(x)
    assert len(views) == 3
    assert all(v.shape == (4, 3, 32, 32) for v in views)
    ev = EvalTransform(mean=(0.5,), std=(0.25,))
    out = ev(x)
    assert torch.allclose(out, (x.float() / 255 - 0.5) / 0.25, atol=1e-5)
    assert torch.equal(out, ev(x))
    resized = EvalTransform(32, crop_fraction=0.875)(_batch(2, h=60, w=80))
    assert resized.shape == (2, 3, 32, 32)
    with pytest.raises(TypeError, match="uint8"):
        ev(x.long())


def test_invalid_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="probability"):
        MultiCrop(jitter_p=1.5)
    with pytest.raises(ValueError, match="global_scale"):
        MultiCrop(global_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="at least one view"):
        MultiCrop(n_global=0, n_local=0)
    with pytest.raises(ValueError, match="batch"):
        MultiCrop()(torch.zeros(3, 8, 8, dtype=torch.uint8))


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 300), w=st.integers(1, 300), lo=st.floats(0.01, 1.0),
       seed=st.integers(0, 2**31))
def test_crop_boxes_lie_inside_the_image(h: int, w: int, lo: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    boxes = sample_crop_boxes(64, h, w, (lo, 1.0), (3 / 4, 4 / 3), g)
    x0, y0, bw, bh = boxes.unbind(1)
    assert (bw >= 1).all()
    assert (bh >= 1).all()
    assert (x0 >= 0).all()
    assert (y0 >= 0).all()
    assert (x0 + bw <= w + 1e-9).all()
    assert (y0 + bh <= h + 1e-9).all()


def test_crop_area_follows_the_scale_range() -> None:
    g = torch.Generator().manual_seed(0)
    boxes = sample_crop_boxes(2000, 200, 200, (0.05, 0.14), (3 / 4, 4 / 3), g)
    area = boxes[:, 2] * boxes[:, 3] / 40_000
    assert area.min() > 0.04
    assert area.max() < 0.15
    assert abs(area.mean().item() - 0.095) < 0.005


def test_crop_resize_matches_interpolate_of_the_crop() -> None:
    x = torch.rand(6, 2, 30, 40)
    g = torch.Generator().manual_seed(1)
    boxes = sample_crop_boxes(6, 30, 40, (0.2, 1.0), (3 / 4, 4 / 3), g)
    flip = torch.tensor([0, 1, 0, 1, 1, 0], dtype=torch.bool)
    out = crop_resize(x, boxes, flip, (12, 16))
    for i in range(6):
        x0, y0, bw, bh = (int(v) for v in boxes[i])
        ref = F.interpolate(x[i:i + 1, :, y0:y0 + bh, x0:x0 + bw], size=(12, 16),
                            mode="bilinear", align_corners=False)
        ref = ref.flip(-1) if flip[i] else ref
        assert torch.allclose(out[i:i + 1], ref, atol=1e-5)


def _reference_colour(x: torch.Tensor, f: torch.Tensor, order: torch.Tensor,
                      gray: bool) -> torch.Tensor:
    """torchvision-style jitter on one image (C, H, W), applied op by op (without clamps)."""
    w = torch.tensor(LUMA, dtype=torch.float64).view(3, 1, 1)
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                        [0.211, -0.523, 0.312]], dtype=torch.float64)
    for op in order.tolist():
        if op == 0:
            x = x * f[0]
        elif op == 1:
            m = (x * w).sum(0).mean()
            x = (x - m) * f[1] + m
        elif op == 2:
            gr = (x * w).sum(0, keepdim=True)
            x = (x - gr) * f[2] + gr
        else:
            a = float(f[3]) * 2 * math.pi
            rot = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)],
                                [0, math.sin(a), math.cos(a)]], dtype=torch.float64)
            m = torch.linalg.inv(yiq) @ rot @ yiq
            x = torch.einsum("ij,jhw->ihw", m, x)
    if gray:
        x = (x * w).sum(0, keepdim=True).expand(3, -1, -1)
    return x


def test_affine_colour_equals_op_by_op_jitter() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 5, 6, generator=g, dtype=torch.float64)
    f, order, gray = colour_maps(8, 3, (0.8, 0.8, 0.8, 0.2), 0.8, 0.5, g)
    A, b = affine_colour(f, order, gray, x.mean((2, 3)))
    out = torch.einsum("nij,njhw->nihw", A, x) + b[:, :, None, None]
    for i in range(8):
        ref = _reference_colour(x[i], f[i], order[i], bool(gray[i]))
        assert torch.allclose(out[i], ref, atol=1e-9)


def test_colour_ops_keep_luma_and_identity() -> None:
    f = torch.tensor([[1.0, 1.0, 1.0, 0.13]], dtype=torch.float64)  # hue only
    A, b = affine_colour(f, torch.tensor([[3, 0, 1, 2]]), torch.tensor([False]),
                         torch.rand(1, 3, dtype=torch.float64))
    w = torch.tensor(LUMA, dtype=torch.float64)
    assert torch.allclose(w @ A[0], w, atol=1e-9)
    assert torch.allclose(b, torch.zeros(1, 3, dtype=torch.float64))
    ident = torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    A, b = affine_colour(ident, torch.tensor([[0, 1, 2, 3]]), torch.tensor([False]),
                         torch.rand(1, 3, dtype=torch.float64), in_scale=1 / 255)
    assert torch.allclose(A[0], torch.eye(3, dtype=torch.float64) / 255)


@pytest.mark.parametrize("size", [24, 160])  # matmul path and convolution path
def test_gaussian_blur_matches_scipy(size: int) -> None:
    from scipy.ndimage import gaussian_filter

    x = torch.rand(3, 2, size, size, dtype=torch.float64)
    sigma = torch.tensor([0.6, 1.3, 2.0], dtype=torch.float64)
    out = gaussian_blur(x, sigma)
    r = math.ceil(3 * 2.0)
    for i in range(3):
        s = float(sigma[i])
        ref = gaussian_filter(x[i].numpy(), sigma=(0, s, s), mode="mirror", truncate=r / s)
        assert np.allclose(out[i].numpy(), ref, atol=1e-6)
