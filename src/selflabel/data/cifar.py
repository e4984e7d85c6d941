"""CIFAR-10 and CIFAR-100 "python version" batches (pickled dicts of uint8 rows).

``DIR`` is the extracted ``cifar-10-batches-py`` / ``cifar-100-python`` folder or its parent.
Splits: ``train`` (50,000) and ``test`` (10,000). CIFAR-100 takes ``label_type="fine"`` (100
classes, default) or ``"coarse"`` (20 super-classes).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selflabel.data.source import ArraySource


def _unpickle(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        raw = pickle.load(f, encoding="bytes")
    if not isinstance(raw, dict):
        raise ValueError(f"{path} is not a CIFAR batch (expected a pickled dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _resolve(root: Path, sub: str, marker: str) -> Path:
    for cand in (root, root / sub):
        if (cand / marker).is_file():
            return cand
    raise ValueError(
        f"no CIFAR files ({marker}) in {root} or {root / sub}; download them with "
        f"`selflabel download {'cifar10' if '10-' in sub else 'cifar100'} {root}`"
    )


def _rows_to_images(data: Any, where: Path) -> np.ndarray:
    arr = np.asarray(data, dtype=np.uint8)
    if arr.ndim != 2 or arr.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{where}: expected data rows of 3072 bytes, got shape {arr.shape}")
    return arr.reshape(-1, 3, 32, 32)


def _class_names(meta: Path, key: str) -> list[str] | None:
    if not meta.is_file():
        return None
    names = _unpickle(meta).get(key)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names else None


def load_cifar10(root: str | os.PathLike[str], split: str = "train") -> ArraySource:
    """Load CIFAR-10. Example: ``load_cifar10("~/data", "test")``."""
    base = _resolve(Path(root).expanduser(), "cifar-10-batches-py", "batches.meta")
    names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    if split not in names:
        raise ValueError(f"cifar10: split must be 'train' or 'test', got {split!r}")
    images, labels = [], []
    for fname in names[split]:
        path = base / fname
        if not path.is_file():
            raise ValueError(f"cifar10: {path} is missing (incomplete extraction?)")
        batch = _unpickle(path)
        images.append(_rows_to_images(batch["data"], path))
        labels.append(np.asarray(batch["labels"], dtype=np.int64))
    return _make(images, labels, "cifar10", split, _class_names(base / "batches.meta",
                                                                "label_names"))


def load_cifar100(
    root: str | os.PathLike[str], split: str = "train", label_type: str = "fine"
) -> ArraySource:
    """Load CIFAR-100 with fine (100) or coarse (20) labels."""
    base = _resolve(Path(root).expanduser(), "cifar-100-python", "meta")
    if split not in ("train", "test"):
        raise ValueError(f"cifar100: split must be 'train' or 'test', got {split!r}")
    if label_type not in ("fine", "coarse"):
        raise ValueError(f"cifar100: label_type must be 'fine' or 'coarse', got {label_type!r}")
    path = base / split
    if not path.is_file():
        raise ValueError(f"cifar100: {path} is missing (incomplete extraction?)")
    batch = _unpickle(path)
    images = [_rows_to_images(batch["data"], path)]
    labels = [np.asarray(batch[f"{label_type}_labels"], dtype=np.int64)]
    return _make(images, labels, "cifar100", split,
                 _class_names(base / "meta", f"{label_type}_label_names"))


def _make(images: list[np.ndarray], labels: list[np.ndarray], name: str, split: str,
          classes: list[str] | None) -> ArraySource:
    x = np.concatenate(images)
    y = np.concatenate(labels)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: {y.shape[0]} labels for {x.shape[0]} images")
    return ArraySource(torch.from_numpy(x), torch.from_numpy(y), name=f"{name}:{split}",
                       classes=classes)
