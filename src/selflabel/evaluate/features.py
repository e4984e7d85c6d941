"""Feature extraction: frozen-model features of every image of a dataset, in dataset order.

The model runs in eval mode under ``torch.no_grad()``, on un-augmented images, batch by batch,
with a tqdm progress bar. ``model`` is a :class:`~selflabel.methods.Method` (its ``features``
method is used) or any backbone module (called directly); a 4-D output ``(B, C, h, w)`` is
average-pooled over space. With ``out=PATH`` the features go straight into a memory-mapped float32
``.npy`` (``np.lib.format.open_memmap``) and the labels and dataset indices are saved beside it
as ``PATH.labels.npy`` and ``PATH.indices.npy``, so 1.28M × 2048 features never sit in memory.

``data`` is any of: a selflabel image source (anything with ``get_batch(indices)`` returning
``(indices, uint8 images (B, C, H, W), labels)``), an iterable of such batches (a loader), or a
map-style dataset of ``(index, uint8 image C×H×W, label)`` items. ``transform`` maps a uint8
batch on ``device`` to the model's float input (e.g. ``selflabel.data.EvalTransform``); by default
images are only scaled to ``[0, 1]``. A :class:`~selflabel.evaluate.views.TestViews` as
``transform`` gives each image the mean of its L2-normalised features over the views.

Example::

    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> ds = TensorDataset(torch.arange(4), torch.zeros(4, 1, 8, 8, dtype=torch.uint8),
    ...                    torch.tensor([0, 1, 0, 1]))
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    >>> feats, labels, indices = extract_features(model, ds, batch_size=3, progress=False)
    >>> feats.shape, labels.tolist(), indices.tolist()
    ((4, 3), [0, 1, 0, 1], [0, 1, 2, 3])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from selflabel.evaluate.io import labels_path_for
from selflabel.evaluate.views import TestViews, average_features

Transform = Callable[[Tensor], Tensor]


class ExtractedFeatures(NamedTuple):
    """Features ``(N, D)`` float32 (a memmap when written to a file), labels, indices ``(N,)``."""

    features: np.ndarray
    labels: np.ndarray
    indices: np.ndarray


def _batches(
    data: Any, batch_size: int, num_workers: int | None
) -> tuple[Iterable[Any], int | None]:
    """An iterable of ``(indices, images, labels)`` batches and the number of images, if known."""
    if hasattr(data, "get_batch") and hasattr(data, "__len__"):
        n = len(data)
        if getattr(data, "in_memory", True) is False or num_workers:
            from selflabel.data import make_loader  # file sources: decode in loader workers

            source_loader = make_loader(
                data,
                batch_size,
                shuffle=False,
                drop_last=False,
                num_workers=num_workers,
                distributed=False,
            )
            return source_loader, n

        def by_range() -> Iterator[Any]:
            for s in range(0, n, batch_size):
                yield data.get_batch(torch.arange(s, min(s + batch_size, n)))

        return by_range(), n
    if isinstance(data, Dataset) and hasattr(data, "__len__") and not isinstance(data, DataLoader):
        loader = DataLoader(
            data, batch_size=batch_size, shuffle=False, num_workers=num_workers or 0
        )
        return loader, len(data)
    if isinstance(data, DataLoader):
        try:
            return data, len(data.dataset)  # type: ignore[arg-type]
        except TypeError:
            return data, None
    if isinstance(data, Iterable):
        return data, None
    raise TypeError(
        f"data must be an image source, a loader of (indices, images, labels) batches or a "
        f"dataset of (index, image, label) items, got {type(data).__name__}"
    )


def _unpack(batch: Any) -> tuple[Tensor, Tensor, Tensor]:
    if isinstance(batch, dict):
        batch = (batch["indices"], batch["images"], batch["labels"])
    if not isinstance(batch, (tuple, list)) or len(batch) != 3:
        raise ValueError(
            "each batch must be (indices, images, labels); got "
            f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}"
        )
    idx, images, labels = (torch.as_tensor(b) for b in batch)
    if images.ndim != 4:
        raise ValueError(f"images must be a (B, C, H, W) batch, got shape {tuple(images.shape)}")
    return idx.reshape(-1).long(), images, labels.reshape(-1).long()


def _forward(model: nn.Module, x: Tensor) -> Tensor:
    features = getattr(model, "features", None)
    out = features(x) if callable(features) and not isinstance(features, nn.Module) else model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if out.ndim == 4:
        out = out.mean(dim=(2, 3))
    return out.reshape(out.shape[0], -1).float()


def _default_transform(images: Tensor) -> Tensor:
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


@torch.no_grad()
def extract_features(
    model: nn.Module,
    data: Any,
    *,
    transform: Transform | TestViews | None = None,
    device: str | torch.device | None = None,
    out: str | Path | None = None,
    batch_size: int = 256,
    num_workers: int | None = None,
    progress: bool = True,
) -> ExtractedFeatures:
    """Features of every image of ``data`` (see the module docstring for the accepted inputs).

    Returns ``(features, labels, indices)``, rows in the order the data yields them (dataset
    order for sources and datasets). In-memory sources are sliced batch by batch in this
    process; file sources (``in_memory=False``) or ``num_workers > 0`` go through
    :func:`selflabel.data.make_loader` (``num_workers=None``: its default). With ``out`` the
    features are a read-write memmap of ``out`` and the labels/indices are also saved beside it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    tf = transform if transform is not None else _default_transform
    batches, n_total = _batches(data, batch_size, num_workers)
    if out is not None and n_total is None:
        raise ValueError("writing to a file needs the number of images: pass a dataset or source")
    was_training = model.training
    model.eval().to(dev)
    feats: np.memmap[Any, Any] | None = None
    chunks: list[np.ndarray] = []
    labels: list[Tensor] = []
    indices: list[Tensor] = []
    row = 0
    try:
        with tqdm(total=n_total, disable=not progress, unit="img", desc="extract") as bar:
            for batch in batches:
                idx, images, y = _unpack(batch)
                x = images.to(dev)
                if isinstance(tf, TestViews):
                    f = average_features([_forward(model, v) for v in tf.views(x)]).cpu().numpy()
                else:
                    f = _forward(model, tf(x)).cpu().numpy()
                if out is not None:
                    if feats is None:
                        Path(out).parent.mkdir(parents=True, exist_ok=True)
                        feats = np.lib.format.open_memmap(
                            out, mode="w+", dtype=np.float32, shape=(n_total or 0, f.shape[1])
                        )
                    if row + f.shape[0] > feats.shape[0]:
                        raise ValueError(f"the data yielded more than the {n_total} images it has")
                    feats[row : row + f.shape[0]] = f
                else:
                    chunks.append(f)
                labels.append(y.cpu())
                indices.append(idx.cpu())
                row += f.shape[0]
                bar.update(f.shape[0])
    finally:
        model.train(was_training)
    if n_total is not None and row != n_total:
        raise ValueError(
            f"the data yielded {row} images but has {n_total}; use a loader without drop_last "
            "or sampling"
        )
    lab = torch.cat(labels).numpy() if labels else np.zeros(0, dtype=np.int64)
    ind = torch.cat(indices).numpy() if indices else np.zeros(0, dtype=np.int64)
    if out is not None:
        if feats is None:
            feats = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(0, 0))
        feats.flush()
        np.save(labels_path_for(out), lab)
        np.save(labels_path_for(out, "indices"), ind)
        return ExtractedFeatures(feats, lab, ind)
    arr = np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)
    return ExtractedFeatures(arr, lab, ind)


__all__ = ["ExtractedFeatures", "Transform", "extract_features"]
