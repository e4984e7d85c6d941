"""SwAV + SeLa in 2 gloo processes equals one process on the whole batches and dataset."""

from __future__ import annotations

import pytest
import torch
from _swavsela_dist_fns import train_swavsela

from selflabel.testing import run_distributed


@pytest.mark.distributed
def test_two_processes_equal_one_process() -> None:
    """Codes reduced across ranks, SeLa's sharded label steps, SyncBN, DDP gradients."""
    single = train_swavsela(0, 1)
    r0, r1 = run_distributed(train_swavsela, 2)
    assert torch.equal(r0["sela.labels"], single["sela.labels"])
    assert int(single["sela.steps_done"]) == 3, "t = 0, 1/4 and 1 of one epoch: all done"
    moved = (single["backbone.conv.weight"] - single["init.backbone.conv.weight"]).abs().max()
    assert moved > 1e-2, "the backbone trained: the comparison below is not of two untouched inits"
    for key, value in single.items():
        if "queue" in key or "num_batches_tracked" in key:
            continue
        torch.testing.assert_close(r0[key], value, rtol=1e-4, atol=1e-4, msg=key)
        torch.testing.assert_close(r1[key], value, rtol=1e-4, atol=1e-4, msg=key)
