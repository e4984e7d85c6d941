"""Feature and label arrays: loading ``.npy``/``.npz``/``.pt`` files and reading rows in chunks.

Features are kept as they come (a memory-mapped ``.npy`` stays on disk); the probes read them a
chunk of rows at a time with :func:`rows_as_tensor`. ``selflabel extract`` writes ``feats.npy``
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

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

#: What the probes accept as features or labels: numpy arrays (memory-mapped ones too) or tensors.
ArrayLike = np.ndarray | Tensor

_FEATURE_KEYS = ("features", "feats", "x", "embeddings")
_LABEL_KEYS = ("labels", "targets", "y")


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
    return torch.from_numpy(np.ascontiguousarray(features[start:stop], dtype=np.float32))


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


def _pick(
    mapping: dict[str, object], key: str | None, candidates: tuple[str, ...], path: Path
) -> object:
    if key is not None:
        if key not in mapping:
            raise ValueError(f"{path} has no array {key!r}; it holds {sorted(mapping)}")
        return mapping[key]
    if len(mapping) == 1:
        return next(iter(mapping.values()))
    for c in candidates:
        if c in mapping:
            return mapping[c]
    raise ValueError(
        f"{path} holds several arrays {sorted(mapping)}; "
        f"name one with PATH:KEY (e.g. {path}:labels)"
    )


def load_array(path: str | Path, *, key: str | None = None, labels: bool = False) -> np.ndarray:
    """Load a feature or label array from ``.npy`` (memory-mapped), ``.npz`` or ``.pt``.

    ``path`` may end in ``:KEY`` to pick one array of an ``.npz`` or a dict saved with
    ``torch.save``; otherwise a single array is taken, or the conventional key (``features`` /
    ``labels``, chosen by ``labels``).
    """
    text = str(path)
    if key is None and ":" in Path(text).name:
        text, key = text.rsplit(":", 1)
    p = Path(text)
    if not p.exists():
        raise ValueError(f"array file {p} does not exist")
    candidates = _LABEL_KEYS if labels else _FEATURE_KEYS
    suffix = p.suffix.lower()
    if suffix == ".npy":
        if key is not None:
            raise ValueError(f"{p} is a single .npy array; drop the :{key} suffix")
        return np.load(p, mmap_mode="r")
    if suffix == ".npz":
        with np.load(p) as z:
            return np.asarray(_pick({k: z[k] for k in z.files}, key, candidates, p))
    if suffix in (".pt", ".pth"):
        obj = torch.load(p, map_location="cpu", weights_only=True)
        if isinstance(obj, dict):
            obj = _pick(obj, key, candidates, p)
        if isinstance(obj, Tensor):
            return obj.detach().cpu().numpy()
        if isinstance(obj, np.ndarray):
            return obj
        raise ValueError(
            f"{p} holds a {type(obj).__name__}, expected a tensor or a dict of tensors"
        )
    raise ValueError(f"unsupported array file {p}: use .npy, .npz or .pt")


def load_labels_for(features_path: str | Path, labels_path: str | Path | None) -> np.ndarray:
    """Labels from ``labels_path``, else from ``FEATS.labels.npy`` beside the features, else from
    the ``labels`` entry of the same ``.npz``/``.pt`` file."""
    if labels_path is not None:
        return np.asarray(load_array(labels_path, labels=True))
    beside = labels_path_for(str(features_path).split(":")[0])
    if beside.exists():
        return np.asarray(np.load(beside))
    base = Path(str(features_path).split(":")[0])
    if base.suffix.lower() in (".npz", ".pt", ".pth"):
        for key in _LABEL_KEYS:
            try:
                return np.asarray(load_array(base, key=key, labels=True))
            except ValueError:
                continue
    raise ValueError(
        f"no labels for {features_path}: pass the labels file, or put them in {beside}"
    )


__all__ = [
    "ArrayLike",
    "as_label_tensor",
    "check_features",
    "labels_path_for",
    "load_array",
    "load_labels_for",
    "rows_as_tensor",
    "take_rows",
]
