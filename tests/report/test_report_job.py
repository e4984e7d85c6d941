"""`selflabel report` on a directory written by the real training job (tiny .npz, one epoch)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from selflabel.cli import main

FAST = [
    "data.batch_size=32", "model.hidden_dim=32", "model.embedding_dim=16",
    "model.n_prototypes=[8]", "augment.n_local=2", "eval.seeds=1", "eval.gallery_per_cluster=0",
    "train.log_every=1", "train.eval_every=1", "optim.warmup_epochs=0",
]


def test_report_of_a_trained_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 16)
    images = rng.integers(0, 60, size=(64, 12, 12), dtype=np.uint8)
    for c in range(4):
        images[labels == c, 1 + 3 * c : 3 + 3 * c, 1:11] = 230
    np.savez(tmp_path / "tiny.npz", images=images, labels=labels)
    run = tmp_path / "run"
    train = CliRunner().invoke(
        main, ["train", "--data", str(tmp_path / "tiny.npz"), "--epochs", "1", "--out", str(run),
               *FAST], catch_exceptions=False,
    )
    assert train.exit_code == 0, train.output
    result = CliRunner().invoke(main, ["report", str(run)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    index = run / "report" / "index.html"
    text = index.read_text()
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert set(sources) == {"training.png", "metric_history.png", "cluster_sizes.png",
                            "gallery_confident.png", "gallery_uncertain.png",
                            "gallery_random.png", "confusion.png"}
    for src in sources:
        assert (index.parent / src).read_bytes()[:4] == b"\x89PNG", src
    assert "swav on " in text
    assert "leave-one-out" in text
    assert "galleries skipped" not in text
    assert "no ground-truth" not in text
