"""Test-time views: features averaged over several un-augmented views of each image.

A frozen model's feature of an image depends on the exact view it is given: the resolution and,
for a network that is not mirror-symmetric, the orientation. :class:`TestViews` runs the model on
every view of a batch — each of its transforms (e.g. resized to 24 and to 28 pixels), and with
``flip`` also each one mirrored left-right — and averages the **L2-normalised** features over the
views (so that no view dominates by its norm), or the softmax probabilities of a cluster head.
One view and no flip is exactly the plain feature of that view.

This is an evaluation choice, never a training one: SeLa's label pass and its label files
(``labels.npy``, ``labels_head{t}.csv``) use the single view of ``eval.image_size``; a run's
metrics and its ``labels.csv`` (the evaluated clusters) use the views. In a run they are set by
``eval.tta_sizes`` (extra sizes) and ``eval.tta_flip``; each view costs one forward pass. With
``eval.tta_scope: probes`` only the kNN and linear probes use the views, while k-means, the head
and ``labels.csv`` keep the single view.

Example::

    >>> import torch
    >>> from selflabel.data import EvalTransform
    >>> views = TestViews([EvalTransform(4), EvalTransform(6)], flip=True)
    >>> images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    >>> len(views), views.features(lambda x: x.amax(dim=(2, 3)), images).shape
    (4, torch.Size([2, 1]))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Transform = Callable[[Tensor], Tensor]


class TestViews:
    """The views of a batch: ``transforms`` × (identity, and the left-right mirror if ``flip``)."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, transforms: Sequence[Transform], *, flip: bool = False) -> None:
        if not transforms:
            raise ValueError("TestViews needs at least one transform (e.g. EvalTransform(24))")
        self.transforms, self.flip = tuple(transforms), flip

    def __len__(self) -> int:
        return len(self.transforms) * (2 if self.flip else 1)

    def __repr__(self) -> str:
        return f"TestViews({len(self.transforms)} transforms, flip={self.flip})"

    def views(self, images: Tensor) -> list[Tensor]:
        """Every view of the uint8 batch ``images`` ``(B, C, H, W)``, as model input."""
        out = []
        for tf in self.transforms:
            x = tf(images)
            out.append(x)
            if self.flip:
                out.append(x.flip(-1))
        return out

    def features(self, fn: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
        """Mean over the views of ``normalize(fn(view))``; the plain ``fn(view)`` for one view."""
        return mean_features(fn, self.views(images))

    def probabilities(self, fn: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
        """Mean over the views of ``softmax(fn(view))`` (``fn`` gives cluster scores)."""
        return mean_probabilities(fn, self.views(images))


def resized_views(
    image_size: int | None,
    extra_sizes: Sequence[int] = (),
    *,
    mean: Sequence[float],
    std: Sequence[float],
    crop_fraction: float = 1.0,
    flip: bool = False,
) -> TestViews:
    """The views at ``image_size`` (``None``: native size) and at each other size of
    ``extra_sizes``: :class:`~selflabel.data.EvalTransform` each (resize, centre crop by
    ``crop_fraction``, normalised by ``mean``/``std``), each also mirrored with ``flip``."""
    from selflabel.data import EvalTransform

    sizes = [image_size, *(size for size in extra_sizes if size != image_size)]
    transforms = [EvalTransform(size, mean, std, crop_fraction=crop_fraction) for size in sizes]
    return TestViews(transforms, flip=flip)


def mean_features(fn: Callable[[Tensor], Tensor], views: Sequence[Tensor]) -> Tensor:
    """Mean of ``normalize(fn(x))`` over already-built ``views``; the plain ``fn(x)`` for one."""
    return average_features([fn(x) for x in views])


def average_features(features: Sequence[Tensor]) -> Tensor:
    """Mean of the L2-normalised ``features`` of the views of one batch (each ``(B, D)``); the
    plain features (as float) when there is one view."""
    if len(features) == 1:
        return features[0].float()
    total = sum(F.normalize(f.float().flatten(1), dim=1) for f in features)
    return torch.as_tensor(total) / len(features)


def mean_probabilities(fn: Callable[[Tensor], Tensor], views: Sequence[Tensor]) -> Tensor:
    """Mean of ``softmax(fn(x))`` over already-built ``views``."""
    total = sum(torch.softmax(fn(x).float(), dim=1) for x in views)
    return torch.as_tensor(total) / len(views)


__all__ = [
    "TestViews",
    "average_features",
    "mean_features",
    "mean_probabilities",
    "resized_views",
]
