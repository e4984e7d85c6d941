"""Array files (``.npz``, ``.npy``) and scikit-learn's digits as in-memory sources.

- ``.npz`` with ``images`` (uint8, ``N×H×W`` gray or ``N×H×W×C``, C = 1 or 3; ``N×C×H×W`` is
  accepted when C is 1 or 3 and the last axis is not) and optional ``labels`` (N integers, −1 =
  unknown). Other keys are accepted as images when they are the only array (``x``, ``X``, ``data``).
- ``.npy`` of images, with optional ``labels=`` (a path to a ``.npy``/``.txt`` or a sequence).
- Float images in 0..1 are scaled to 0..255; other dtypes must already be within 0..255.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from selflabel.data.source import ArraySource

_IMAGE_KEYS = ("images", "x", "X", "data", "imgs")
_LABEL_KEYS = ("labels", "y", "targets", "label")


def images_to_tensor(arr: np.ndarray, where: str) -> torch.Tensor:
    """Convert an array of images to uint8 ``(N, C, H, W)`` (layouts: see the module docstring)."""
    arr = np.asarray(arr)
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4:
        if arr.shape[-1] in (1, 3):
            arr = arr.transpose(0, 3, 1, 2)
        elif arr.shape[1] not in (1, 3):
            raise ValueError(f"{where}: images of shape {arr.shape} have neither 1 nor 3 channels")
    else:
        raise ValueError(f"{where}: images must be N×H×W or N×H×W×C, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if arr.dtype.kind == "f" and arr.size and np.nanmax(arr) <= 1.0 and np.nanmin(arr) >= 0:
            arr = np.round(arr * 255.0)
        if arr.dtype.kind not in "uif" or (arr.size and (arr.min() < 0 or arr.max() > 255)):
            raise ValueError(
                f"{where}: images must be uint8 (or values within 0..255, or floats in 0..1); "
                f"got {arr.dtype} with range {arr.min()}..{arr.max()}"
            )
        arr = arr.astype(np.uint8)
    if arr.shape[0] == 0:
        raise ValueError(f"{where}: holds no images")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _labels_array(labels: object, n: int, where: str) -> torch.Tensor:
    if isinstance(labels, str | os.PathLike):
        p = Path(labels)
        y = np.load(p) if p.suffix == ".npy" else np.loadtxt(p, dtype=np.int64, ndmin=1)
    else:
        y = np.asarray(labels)
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(
            f"{where}: {y.shape[0]} labels for {n} images; labels need one entry per image"
        )
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"{where}: labels must be integers, got {y.dtype}")
    if y.size and y.min() < -1:
        raise ValueError(f"{where}: labels must be >= 0, or -1 for unknown")
    return torch.from_numpy(y.astype(np.int64))


def load_npz(path: str | os.PathLike[str], labels: object = None) -> ArraySource:
    """Load ``images`` (and ``labels``) from an ``.npz`` file."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        key = next((k for k in _IMAGE_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
        if key is None:
            raise ValueError(f"{path}: no 'images' array (found {keys}); save with "
                             "np.savez(path, images=..., labels=...)")
        images = images_to_tensor(z[key], str(path))
        lkey = next((k for k in _LABEL_KEYS if k in keys), None)
        y = z[lkey] if labels is None and lkey is not None else labels
        lab = _labels_array(y, images.shape[0], str(path)) if y is not None else None
    return ArraySource(images, lab, name=str(path))


def load_npy(path: str | os.PathLike[str], labels: object = None) -> ArraySource:
    """Load images from an ``.npy`` file, with optional ``labels`` (path or sequence)."""
    path = Path(path)
    images = images_to_tensor(np.load(path, allow_pickle=False), str(path))
    lab = _labels_array(labels, images.shape[0], str(path)) if labels is not None else None
    return ArraySource(images, lab, name=str(path))


def load_digits_source() -> ArraySource:
    """scikit-learn's digits (1,797 images, 8×8, 10 classes), scaled from 0..16 to 0..255.

    Kept at the native 8×8: pass ``image_size`` to :func:`~selflabel.data.load_source` to upscale
    (e.g. 32), or use ``MultiCrop.for_image_size(8)``.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(np.asarray(d.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
    y = torch.from_numpy(d.target.astype(np.int64))
    return ArraySource(torch.from_numpy(x).unsqueeze(1), y, name="digits",
                       classes=[str(c) for c in d.target_names])


def labels_from(labels: Sequence[int] | None, n: int, where: str) -> torch.Tensor | None:
    """Validate optional labels for ``n`` images (a helper for callers with their own arrays)."""
    return None if labels is None else _labels_array(labels, n, where)
