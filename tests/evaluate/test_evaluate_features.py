"""Feature extraction: shapes, order, eval mode, memmap output, sources and loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from selflabel.evaluate.features import extract_features


class _Tiny(nn.Module):
    """Conv + BN (eval mode matters) + global pool -> 4 features; records the mode it ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.modes: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.modes.append(self.training)
        return self.bn(self.conv(x).mean(dim=(2, 3)))


class _MethodLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(1, 5, 3)  # 4-D output: pooled by the extractor

    def forward(self, x: Tensor) -> Tensor:  # never used: .features is
        raise AssertionError("extract_features must call .features")

    def features(self, x: Tensor) -> Tensor:
        out: Tensor = self.backbone(x)
        return out


def _dataset(n: int = 10) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 6, 6), dtype=torch.uint8, generator=g)
    return TensorDataset(torch.arange(n), images, torch.arange(n) % 3)


def test_shapes_order_and_eval_mode() -> None:
    model = _Tiny().train()
    feats, labels, indices = extract_features(model, _dataset(), batch_size=4, progress=False)
    assert feats.shape == (10, 4)
    assert feats.dtype == np.float32
    assert labels.tolist() == [i % 3 for i in range(10)]
    assert indices.tolist() == list(range(10))
    assert model.modes == [False, False, False]  # 3 batches, all in eval mode
    assert model.training  # mode restored
    # batch size does not change the result (eval-mode BN, no augmentation)
    again = extract_features(model, _dataset(), batch_size=10, progress=False)
    np.testing.assert_allclose(again.features, feats, rtol=1e-5, atol=1e-6)


def test_transform_and_method_features() -> None:
    seen: list[torch.dtype] = []

    def tf(x: Tensor) -> Tensor:
        seen.append(x.dtype)
        return x.float() / 255.0 - 0.5

    res = extract_features(_MethodLike(), _dataset(7), transform=tf, batch_size=5, progress=False)
    assert res.features.shape == (7, 5)
    assert seen == [torch.uint8, torch.uint8]


def test_memmap_output_with_labels_beside(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "feats.npy"
    res = extract_features(_Tiny(), _dataset(), out=out, batch_size=3, progress=False)
    on_disk = np.load(out, mmap_mode="r")
    assert on_disk.shape == (10, 4)
    assert on_disk.dtype == np.float32
    np.testing.assert_array_equal(on_disk, res.features)
    np.testing.assert_array_equal(np.load(tmp_path / "sub" / "feats.labels.npy"), res.labels)
    np.testing.assert_array_equal(np.load(tmp_path / "sub" / "feats.indices.npy"), np.arange(10))


def test_loader_of_batches_and_selflabel_source() -> None:
    loader = DataLoader(_dataset(), batch_size=4, shuffle=False)
    res = extract_features(_Tiny(), loader, progress=False)
    assert res.features.shape == (10, 4)
    from selflabel.data import load_source

    src = load_source("digits")
    res2 = extract_features(_Tiny(), src.subset(range(50)), batch_size=16, progress=False)
    assert res2.features.shape == (50, 4)
    assert res2.labels.tolist() == src.labels[:50].tolist()


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(_Tiny(), _dataset(), batch_size=0)
    with pytest.raises(TypeError, match="data must be"):
        extract_features(_Tiny(), 42)
    bad = [(torch.arange(2), torch.zeros(2, 6, 6, dtype=torch.uint8))]
    with pytest.raises(ValueError, match=r"\(indices, images, labels\)"):
        extract_features(_Tiny(), bad, progress=False)
    dropping = DataLoader(_dataset(), batch_size=4, drop_last=True)
    with pytest.raises(ValueError, match="yielded 8 images but has 10"):
        extract_features(_Tiny(), dropping, progress=False)
