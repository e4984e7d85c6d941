"""Functions run in gloo processes by the data loader tests."""

from __future__ import annotations

import torch

from selflabel.data import load_source, make_loader


def epoch_indices(rank: int, world_size: int, epoch: int) -> list[int]:
    ds = load_source("digits")
    loader = make_loader(ds, 100, shuffle=True, drop_last=False, seed=3)  # distributed auto
    loader.set_epoch(epoch)
    seen: list[int] = []
    for idx, images, labels in loader:
        assert torch.equal(labels, ds.labels[idx])
        assert images.shape[1:] == (1, 8, 8)
        seen += idx.tolist()
    return seen
