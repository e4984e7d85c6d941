"""Feature and label arrays: loading ``.npy``/``.npz``/``.pt`` files and reading rows in chunks.

Files are read with :func:`selflabel.cluster.io.load_array` (``.npy`` memory-mapped, ``.npz``,
``.pt``; ``file.npz:KEY`` names one array). Features are kept as they come (a memory-mapped
``.npy`` stays on disk); the probes read them a chunk of rows at a time with
:func:`rows_as_tensor`. ``selflabel extract`` writes ``feats.npy``
with the labels beside it in ``feats.labels.npy`` and the dataset indices in ``feats.indices.npy``;
:func:`labels_path_for` gives those names.

Example::

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "feats.npy")
    >>> np.save(path, np.ones((3, 2), dtype=np.float16))
    >>> load_array(path).shape
    (3, 2)
    >>> labels_path_for(path).name
    'feats.labels.npy'
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from selflabel.cluster.io import iter_chunks, load_array

#: What the probes accept as features or labels: numpy arrays (memory-mapped ones too) or tensors.
ArrayLike = np.ndarray | Tensor


def check_features(features: ArrayLike, name: str = "features") -> tuple[int, int]:
    """Validate a 2-D float feature matrix and return ``(n_rows, dim)``."""
    if not isinstance(features, (np.ndarray, Tensor)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(features)}")
    if features.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples × dims), got shape {tuple(features.shape)}")
    is_float = (
        features.dtype.is_floating_point
        if isinstance(features, Tensor)
        else np.issubdtype(features.dtype, np.floating)
    )
    if not is_float:
        raise TypeError(f"{name} must hold floats, got dtype {features.dtype}")
    return int(features.shape[0]), int(features.shape[1])


def rows_as_tensor(features: ArrayLike, start: int, stop: int) -> Tensor:
    """Rows ``start:stop`` as a float32 CPU tensor (reads only those rows of a memmap).

    Example::

        >>> rows_as_tensor(np.arange(6, dtype=np.float16).reshape(3, 2), 1, 3).tolist()
        [[2.0, 3.0], [4.0, 5.0]]
    """
    if isinstance(features, Tensor):
        return features[start:stop].detach().to("cpu", torch.float32)
    return torch.from_numpy(np.array(features[start:stop], dtype=np.float32))


def iter_row_chunks(features: ArrayLike, rows: int) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(start, float32 CPU tensor)`` blocks of ``rows`` rows; a memmap's pages are handed
    back to the OS after each block (:func:`selflabel.cluster.io.iter_chunks`).

    Example::

        >>> [(s, tuple(c.shape)) for s, c in iter_row_chunks(np.zeros((5, 2)), 2)]
        [(0, (2, 2)), (2, (2, 2)), (4, (1, 2))]
    """
    if isinstance(features, Tensor):
        for start in range(0, int(features.shape[0]), rows):
            yield start, rows_as_tensor(features, start, start + rows)
        return
    for start, chunk in iter_chunks(features, rows=rows, dtype=np.float32):
        yield start, torch.from_numpy(chunk)


def take_rows(features: ArrayLike, index: np.ndarray) -> Tensor:
    """Rows at ``index`` (any order) as a float32 CPU tensor; reads a memmap in sorted order."""
    if isinstance(features, Tensor):
        return features[torch.from_numpy(index)].detach().to("cpu", torch.float32)
    order = np.argsort(index, kind="stable")
    rows = np.asarray(features[index[order]], dtype=np.float32)
    out = np.empty_like(rows)
    out[order] = rows
    return torch.from_numpy(out)


def as_label_tensor(labels: ArrayLike, name: str = "labels") -> Tensor:
    """Validate integer class labels (1-D, >= 0) and return them as an int64 CPU tensor.

    Example::

        >>> as_label_tensor(np.array([0, 2, 1])).tolist()
        [0, 2, 1]
    """
    t = (
        labels.detach().cpu()
        if isinstance(labels, Tensor)
        else torch.from_numpy(np.asarray(labels))
    )
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one class per sample), got shape {tuple(t.shape)}")
    if t.dtype.is_floating_point:
        if not bool((t == t.round()).all()):
            raise ValueError(f"{name} must be integer class ids, got non-integer floats")
    elif t.dtype == torch.bool or t.dtype.is_complex:
        raise TypeError(f"{name} must be integer class ids, got dtype {t.dtype}")
    t = t.to(torch.int64)
    if t.numel() and int(t.min()) < 0:
        raise ValueError(
            f"{name} must be >= 0 (got {int(t.min())}); drop unlabelled (-1) samples before probing"
        )
    return t


def labels_path_for(features_path: str | Path, kind: str = "labels") -> Path:
    """``feats.npy`` -> ``feats.labels.npy`` (or ``feats.indices.npy`` for ``kind="indices"``)."""
    p = Path(features_path)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(f"{stem}.{kind}.npy")


def load_labels_for(features_path: str | Path, labels_path: str | Path | None) -> np.ndarray:
    """Labels for a features file.

    From ``labels_path`` when given; else from ``FEATS.labels.npy`` beside the features (what
    ``selflabel extract`` writes); else from the ``labels``/``targets``/``y`` entry of the same
    ``.npz``/``.pt`` container.
    """
    if labels_path is not None:
        return np.asarray(load_array(labels_path, role="labels", mmap_mode=None))
    text = str(features_path)
    base = Path(text.rsplit(":", 1)[0]) if ":" in Path(text).name else Path(text)
    beside = labels_path_for(base)
    if beside.exists():
        return np.asarray(np.load(beside))
    if base.suffix.lower() in (".npz", ".pt", ".pth"):
        for key in ("labels", "targets", "y"):
            try:
                return np.asarray(load_array(f"{base}:{key}", role="labels", mmap_mode=None))
            except ValueError:
                continue
    raise ValueError(
        f"no labels for {features_path}: pass the labels file, or put them in {beside} "
        "or under the key 'labels' of the same .npz/.pt"
    )


__all__ = [
    "ArrayLike",
    "as_label_tensor",
    "check_features",
    "iter_row_chunks",
    "labels_path_for",
    "load_array",
    "load_labels_for",
    "rows_as_tensor",
    "take_rows",
]
