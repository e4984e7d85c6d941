"""make_loader: batches, epochs, sharding, workers, the (indices, uint8, labels) contract."""

from __future__ import annotations

import functools
import operator
from pathlib import Path

import pytest
import torch
from _data_fixtures import class_folder

from selflabel.data import ShardedBatchSampler, load_source, make_loader
from selflabel.testing import run_distributed


def test_array_batches_cover_the_dataset_once_per_epoch() -> None:
    ds = load_source("digits")
    loader = make_loader(ds, 128, drop_last=False, seed=1)
    seen = []
    for idx, images, labels in loader:
        assert images.dtype == torch.uint8
        assert images.shape[1:] == (1, 8, 8)
        assert idx.dtype == torch.long
        assert torch.equal(labels, ds.labels[idx])
        assert torch.equal(images, ds.images[idx])
        seen += idx.tolist()
    assert sorted(seen) == list(range(len(ds)))
    assert len(loader) == 15


def test_epochs_reshuffle_deterministically() -> None:
    ds = load_source("digits")
    a = make_loader(ds, 64, seed=7)
    b = make_loader(ds, 64, seed=7)
    first = next(iter(a))[0]
    assert torch.equal(first, next(iter(b))[0])
    a.set_epoch(1)
    assert not torch.equal(first, next(iter(a))[0])
    a.set_epoch(0)
    assert torch.equal(first, next(iter(a))[0])
    assert len(a) == 1797 // 64


def test_sampler_shards_are_disjoint_and_padded() -> None:
    shards = [ShardedBatchSampler(10, 2, shuffle=True, drop_last=False, seed=0, rank=r,
                                  world_size=3) for r in range(3)]
    idx = [s.rank_indices() for s in shards]
    assert all(len(i) == 4 for i in idx)
    assert sorted(functools.reduce(operator.iadd, idx, [])[:10]) != []
    assert set(functools.reduce(operator.iadd, idx, [])) == set(range(10))
    assert [len(list(s)) for s in shards] == [2, 2, 2]
    plain = ShardedBatchSampler(10, 4, shuffle=False, drop_last=False)
    assert list(plain) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="no batch"):
        ShardedBatchSampler(10, 20)


def test_file_source_decodes_in_workers(tmp_path: Path) -> None:
    ds = load_source(class_folder(tmp_path, per_class=5))
    loader = make_loader(ds, 4, num_workers=2, drop_last=False, shuffle=False,
                         persistent_workers=False)
    batches = list(loader)
    assert [b[0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert torch.equal(batches[2][1], ds.get_batch([8, 9])[1])
    assert batches[1][2].tolist() == [0, 1, 1, 1]


def test_make_loader_rejects_non_sources() -> None:
    with pytest.raises(TypeError, match="ImageSource"):
        make_loader([1, 2, 3], 2)  # type: ignore[arg-type]


@pytest.mark.distributed
def test_two_ranks_split_each_epoch() -> None:
    from _data_dist_fns import epoch_indices

    r0, r1 = run_distributed(epoch_indices, 2, 4)
    assert len(r0) == len(r1) == 899
    assert set(r0) | set(r1) == set(range(1797))
    assert len(set(r0) & set(r1)) <= 1


def test_transform_in_workers_is_independent_of_worker_count() -> None:
    from selflabel.data import MultiCrop

    ds = load_source("digits").subset(range(64))
    aug = MultiCrop.for_image_size(8, n_local=2, mean=ds.mean, std=ds.std)
    runs = []
    for workers in (0, 2):
        loader = make_loader(ds, 16, seed=4, num_workers=workers, transform=aug,
                             persistent_workers=False)
        loader.set_epoch(2)
        runs.append(list(loader))
    assert len(runs[0]) == 4
    for (i0, v0, y0), (i1, v1, y1) in zip(*runs, strict=True):
        assert torch.equal(i0, i1)
        assert torch.equal(y0, y1)
        assert [tuple(v.shape) for v in v0] == [(16, 1, 7, 7)] * 2 + [(16, 1, 3, 3)] * 2
        assert all(torch.equal(a, b) for a, b in zip(v0, v1, strict=True))
    first, second = runs[0][0][1][0], runs[0][1][1][0]
    assert not torch.equal(first, second)
