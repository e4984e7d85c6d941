"""Linear probe: separable data, noisy data, determinism, the streaming path, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import selflabel.evaluate.linear as linear_mod
from selflabel.evaluate.linear import linear_probe


def _blobs(n: int, d: int, k: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 4
    y = rng.integers(0, k, size=n)
    return (centres[y] + spread * rng.normal(size=(n, d))).astype(np.float32), y


def test_linearly_separable_data_is_solved() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3000, 10))
    w = rng.normal(size=(10, 3))
    scores = z @ w
    top2 = np.sort(scores, axis=1)[:, -2:]
    keep = (top2[:, 1] - top2[:, 0]) > 0.5  # a margin between the three classes
    x = (z[keep] * 3 + 7).astype(np.float32)  # offset and scale: undone by the standardisation
    y = scores[keep].argmax(1)
    n = len(y) * 2 // 3
    res = linear_probe(x[:n], y[:n], x[n:], y[n:], epochs=20, batch_size=64)
    assert res["top1"] >= 99.0
    assert res["top5"] == 100.0


def test_noisy_data_beats_chance_and_reports_protocol() -> None:
    x, y = _blobs(900, 16, 6, spread=6.0, seed=1)
    res = linear_probe(x[:600], y[:600], x[600:], y[600:], epochs=10)
    assert 100 / 6 + 15 < res["top1"] < 100.0
    assert res["top5"] >= res["top1"]
    assert [s["weight_decay"] for s in res["sweep"]] == [0.0, 1e-5, 1e-4, 1e-3, 1e-2]
    assert res["weight_decay"] in {0.0, 1e-5, 1e-4, 1e-3, 1e-2}
    p = res["protocol"]
    for part in (
        "frozen features",
        "standardised",
        "SGD momentum 0.9",
        "cosine",
        "10 epochs",
        "held-out",
        "top-1/top-5",
    ):
        assert part in p
    assert (res["n_train"], res["n_test"], res["dim"], res["n_classes"]) == (600, 300, 16, 6)


def test_seeded_runs_are_identical() -> None:
    x, y = _blobs(300, 8, 4, spread=5.0, seed=2)
    a = linear_probe(x[:200], y[:200], x[200:], y[200:], epochs=3, seed=0)
    b = linear_probe(x[:200], y[:200], x[200:], y[200:], epochs=3, seed=0)
    assert a == b


def test_streaming_from_memmap_equals_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = _blobs(300, 8, 3, spread=4.0, seed=3)
    np.save(tmp_path / "f.npy", x.astype(np.float16))
    mm = np.load(tmp_path / "f.npy", mmap_mode="r")
    kw = dict(epochs=2, weight_decays=(0.0, 1e-3), batch_size=32)
    ref = linear_probe(
        x.astype(np.float16).astype(np.float32)[:200], y[:200], mm[200:], y[200:], **kw
    )  # type: ignore[arg-type]
    monkeypatch.setattr(linear_mod, "IN_MEMORY_LIMIT", 0)
    streamed = linear_probe(mm[:200], y[:200], mm[200:], y[200:], **kw)  # type: ignore[arg-type]
    assert streamed["top1"] == pytest.approx(ref["top1"])
    assert [r["weight_decay"] for r in streamed["sweep"]] == [
        r["weight_decay"] for r in ref["sweep"]
    ]
    assert [r["val_top1"] for r in streamed["sweep"]] == pytest.approx(
        [r["val_top1"] for r in ref["sweep"]]
    )


def test_single_weight_decay_skips_the_sweep() -> None:
    x, y = _blobs(100, 4, 2, spread=1.0, seed=4)
    res = linear_probe(x, y, x, y, epochs=2, weight_decays=(1e-4,))
    assert res["sweep"] == []
    assert res["weight_decay"] == 1e-4
    assert "weight decay 0.0001" in res["protocol"]


def test_linear_probe_validation() -> None:
    x, y = _blobs(50, 4, 2, spread=1.0, seed=5)
    with pytest.raises(ValueError, match="dims"):
        linear_probe(x, y, x[:, :3], y)
    with pytest.raises(ValueError, match="differ in length"):
        linear_probe(x, y[:10], x, y)
    with pytest.raises(ValueError, match="weight_decays"):
        linear_probe(x, y, x, y, weight_decays=())
    with pytest.raises(ValueError, match="val_fraction"):
        linear_probe(x, y, x, y, val_fraction=1.5)
    with pytest.raises(ValueError, match="n_classes"):
        linear_probe(x, y, x, y, n_classes=1)
    with pytest.raises(ValueError, match="positive"):
        linear_probe(x, y, x, y, epochs=0)
