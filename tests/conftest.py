"""Shared pytest configuration: deterministic, quiet, single-threaded-friendly tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    import torch

    torch.manual_seed(0)
