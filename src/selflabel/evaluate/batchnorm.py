"""BatchNorm statistics recomputed on the evaluation's own inputs ("precise BN").

In eval mode a BatchNorm layer normalises with its running mean and variance, an exponential
average over the last training batches. With multi-crop those batches mix resolutions: SwAV runs
the backbone once on the 224 (here 24) px global crops and once on the 96 (12) px local crops per
step, so the running statistics describe a blend of both, the small crops last, while every
evaluation forward sees whole images at one size. :func:`recalibrate_batchnorm` resets the
statistics of every BatchNorm layer and recomputes them as the plain average over the batches it
is given (``momentum=None``), with the weights and every other layer left as they are; layers the
forward never reaches keep their trained statistics. No label is involved.

Run it on a **copy** of a network that goes on training (``copy.deepcopy``): it overwrites the
buffers in place.

Example::

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    >>> batches = [torch.randn(8, 1, 12, 12) + 3.0 for _ in range(4)]
    >>> recalibrate_batchnorm(net, batches)
    4
    >>> bool(net.training), int(net[1].num_batches_tracked)
    (True, 4)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from selflabel.evaluate.views import TestViews

if TYPE_CHECKING:
    from selflabel.data import ImageSource

__all__ = [
    "batchnorm_layers",
    "evaluation_forward",
    "recalibrate_batchnorm",
    "recalibrate_on_source",
    "view_batches",
]


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    """Every BatchNorm layer of ``model`` (1d/2d/3d and SyncBatchNorm) that tracks statistics."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    inputs: Iterable[Tensor],
    forward: Callable[[Tensor], Any] | None = None,
) -> int:
    """Recompute the running statistics of ``model``'s BatchNorm layers over ``inputs``.

    Every batch of ``inputs`` goes through ``forward`` (default: ``model`` itself; pass e.g.
    ``method.cluster_scores`` to reach the head too) with the BatchNorm layers in training mode
    and everything else in eval mode; each layer's running mean and variance become the average of
    the per-batch mean and (unbiased) variance over all the batches that reached it. A layer that
    no batch reached keeps its previous statistics. The model's training/eval mode is restored.
    Returns the number of batches.

    Raises ValueError when ``model`` has no BatchNorm layer with running statistics or
    ``inputs`` is empty.
    """
    layers = batchnorm_layers(model)
    if not layers:
        raise ValueError(
            "recalibrate_batchnorm: the model has no BatchNorm layer with running statistics; "
            "there is nothing to recompute (set eval.bn_recalibrate: 0 for this network)"
        )
    saved = [({k: v.clone() for k, v in m.state_dict().items()}, m.momentum) for m in layers]
    was_training = model.training
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    run = forward if forward is not None else model
    n = 0
    try:
        for x in inputs:
            run(x)
            n += 1
    finally:
        for m, (state, momentum) in zip(layers, saved, strict=True):
            m.momentum = momentum
            if not _reached(m):  # no batch reached it: its trained statistics
                m.load_state_dict(state)
        model.train(was_training)
    if n == 0:
        raise ValueError("recalibrate_batchnorm: inputs gave no batch; pass at least one")
    return n


def evaluation_forward(model: nn.Module) -> Callable[[Tensor], Any]:
    """The forward pass that reaches every BatchNorm layer a method's evaluation uses: its
    ``cluster_scores`` (backbone, projection and prototypes) when it has a clustering head
    (``n_clusters > 0``), else its ``features``, else ``model`` itself (a plain backbone)."""
    scores = getattr(model, "cluster_scores", None)
    if getattr(model, "n_clusters", 0) and callable(scores):
        return scores
    features = getattr(model, "features", None)
    return features if callable(features) and not isinstance(features, nn.Module) else model


def view_batches(
    source: ImageSource,
    transform: TestViews | Callable[[Tensor], Tensor],
    n_images: int,
    *,
    batch_size: int = 512,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Iterator[Tensor]:
    """Model inputs for :func:`recalibrate_batchnorm`: ``n_images`` images of ``source`` (a random
    subset drawn with ``seed``, in index order; all of them when it has fewer), ``batch_size`` at
    a time, each view of ``transform`` (a :class:`~selflabel.evaluate.views.TestViews` or one
    transform of uint8 batches) its own batch, as the evaluation would see them."""
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    order = torch.randperm(len(source), generator=torch.Generator().manual_seed(seed))
    subset = order[: min(n_images, len(source))].sort().values
    views = transform if isinstance(transform, TestViews) else TestViews([transform])
    for start in range(0, len(subset), batch_size):
        _, images, _ = source.get_batch(subset[start : start + batch_size])
        yield from views.views(images.to(device))


def recalibrate_on_source(
    model: nn.Module,
    source: ImageSource,
    transform: TestViews | Callable[[Tensor], Tensor],
    n_images: int,
    *,
    batch_size: int = 512,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> int:
    """:func:`recalibrate_batchnorm` of ``model`` in place over :func:`view_batches` of
    ``source``, through :func:`evaluation_forward`; returns the number of images used."""
    inputs = view_batches(source, transform, n_images, batch_size=batch_size, seed=seed,
                          device=device)
    recalibrate_batchnorm(model, inputs, forward=evaluation_forward(model))
    return min(n_images, len(source))


def _reached(layer: _BatchNorm) -> bool:
    tracked = layer.num_batches_tracked
    return tracked is not None and int(tracked) > 0
