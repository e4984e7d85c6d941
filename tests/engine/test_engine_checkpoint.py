"""Atomic saves, weights_only loading and refusal, RNG round trips, resume lookup."""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from selflabel.engine import checkpoint as ckpt


def _draws() -> tuple[list[float], list[float], list[float]]:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random(), random.gauss(0, 1)]  # noqa: NPY002 - the global RNG is under test


def test_rng_round_trip_in_memory_and_through_a_file(tmp_path: Path) -> None:
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    np.random.standard_normal()  # and in numpy's  # noqa: NPY002 - the global RNG is under test
    state = ckpt.capture_rng()
    first = _draws()
    ckpt.restore_rng(state)
    assert _draws() == first
    ckpt.save_checkpoint(tmp_path / "rng.pt", {"rng": state})
    torch.manual_seed(123)
    np.random.seed(5)  # noqa: NPY002 - the global RNG is under test
    random.seed(9)
    ckpt.restore_rng(ckpt.load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert _draws() == first


def test_save_and_load_a_training_like_state(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 3)).sum().backward()
    opt.step()
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 2,
        "config": ckpt.to_plain({"out": tmp_path, "crops": (2, 6)}),
        "rng": ckpt.capture_rng(),
    }
    path = ckpt.save_checkpoint(tmp_path / "run" / ckpt.LAST, state)
    loaded = ckpt.load_checkpoint(path)
    assert loaded["epoch"] == 2
    assert loaded["config"] == {"out": str(tmp_path), "crops": [2, 6]}
    assert torch.equal(loaded["model"]["weight"], model.weight.detach())
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_crash_while_writing_leaves_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ckpt.LAST
    ckpt.save_checkpoint(path, {"epoch": 1, "w": torch.ones(4)})
    real_save = torch.save

    def torn_save(obj: Any, f: Any, *a: Any, **k: Any) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full (simulated crash mid-write)")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, {"epoch": 2, "w": torch.zeros(4)})
    monkeypatch.setattr(torch, "save", real_save)
    assert ckpt.load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.LAST]


def test_crash_before_rename_leaves_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ckpt.LAST
    ckpt.save_checkpoint(path, {"epoch": 1})

    def boom(src: str, dst: str) -> None:
        raise KeyboardInterrupt  # killed between fsync and rename

    monkeypatch.setattr(ckpt.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [ckpt.LAST]


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(ckpt.CheckpointError, match="arbitrary unpickling"):
        ckpt.load_checkpoint(path)


def test_missing_corrupt_and_non_dict_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load_checkpoint(tmp_path / "bad.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ckpt.CheckpointError, match="expected a dict"):
        ckpt.load_checkpoint(tmp_path / "list.pt")


def test_find_resume_prefers_last_then_highest_epoch(tmp_path: Path) -> None:
    assert ckpt.find_resume(tmp_path) is None
    for e in (2, 10, 3):
        ckpt.save_checkpoint(tmp_path / ckpt.epoch_checkpoint_name(e), {"epoch": e})
    assert ckpt.find_resume(tmp_path) == tmp_path / "checkpoint_epoch10.pt"
    ckpt.save_checkpoint(tmp_path / ckpt.LAST, {"epoch": 11})
    assert ckpt.find_resume(tmp_path) == tmp_path / ckpt.LAST


def test_to_plain_and_config_diff() -> None:
    with pytest.raises(TypeError, match=r"config\.fn"):
        ckpt.to_plain({"fn": print})
    diffs = ckpt.config_diff(
        {"optim": {"lr": 0.1}, "epochs": 5, "a": 1},
        {"optim": {"lr": 0.2}, "epochs": 9, "b": 1},
        ignore=("epochs",),
    )
    assert diffs == [
        "a: 1 (checkpoint) != '<missing>' (now)",
        "b: '<missing>' (checkpoint) != 1 (now)",
        "optim.lr: 0.1 (checkpoint) != 0.2 (now)",
    ]
