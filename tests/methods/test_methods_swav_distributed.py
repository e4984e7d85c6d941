from __future__ import annotations

import pytest
import torch
from _swav_dist_fns import train_swav

from selflabel.testing import run_distributed


@pytest.mark.distributed
def test_two_processes_equal_one_process_on_the_whole_batch() -> None:
    """Sinkhorn reduced across ranks + SyncBN + DDP gradient averaging = one big batch."""
    single = train_swav(0, 1)
    r0, r1 = run_distributed(train_swav, 2)
    for key, value in single.items():
        if key.startswith("queue") or "num_batches_tracked" in key:
            continue
        torch.testing.assert_close(r0[key], value, rtol=1e-4, atol=1e-4, msg=key)
        torch.testing.assert_close(r1[key], value, rtol=1e-4, atol=1e-4, msg=key)
