"""`selflabel cluster-eval` end to end through click's CliRunner on tiny files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from selflabel.cli import main


@pytest.fixture
def files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 12)) * 10
    y = np.repeat(np.arange(4), 30) + 100
    x = (centres[y - 100] + rng.normal(size=(120, 12))).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "xv.npy", x[::4])
    np.save(tmp_path / "yv.npy", y[::4])
    np.savez(tmp_path / "both.npz", features=x, labels=y)
    torch.save({"feats": torch.from_numpy(x), "targets": torch.from_numpy(y)}, tmp_path / "d.pt")
    bad = x.copy()
    bad[5] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["cluster-eval", *args])
    return result.exit_code, result.output


def test_cli_end_to_end_with_json(files: Path) -> None:
    out = files / "r.json"
    code, text = _run("--train-features", str(files / "x.npy"), "--train-labels",
                      str(files / "y.npy"), "--val-features", str(files / "xv.npy"),
                      "--val-labels", str(files / "yv.npy"), "--k", "4", "--pca-dim", "4",
                      "--seeds", "2", "--overcluster", "1.5", "--n-init", "3", "--json", str(out),
                      "--quiet")
    assert code == 0, text
    assert "ACC" in text
    assert "NMI" in text
    assert "scored on val" in text
    data = json.loads(out.read_text())
    assert data["protocol"]["n_clusters"] == 6
    assert data["mean"]["acc"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("features", "labels"),
    [("both.npz", "both.npz"), ("d.pt", "d.pt"), ("both.npz:features", "both.npz:labels")],
)
def test_cli_reads_npz_and_pt(files: Path, features: str, labels: str) -> None:
    code, text = _run("--train-features", str(files / features), "--train-labels",
                      str(files / labels), "--k", "4", "--seeds", "1", "--n-init", "3", "--quiet")
    assert code == 0, text
    assert "ACC" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train-features", "x.npy", "--k", "4"], "--train-labels is required"),
        (["--train-features", "x.npy", "--train-labels", "yv.npy", "--k", "4"],
         "one label per feature row"),
        (["--train-features", "x.npy", "--train-labels", "y.npy", "--k", "500"],
         "only 120 training samples"),
        (["--train-features", "bad.npy", "--train-labels", "y.npy", "--k", "4"],
         "NaN or infinite"),
        (["--train-features", "x.npy", "--train-labels", "y.npy", "--val-features", "xv.npy",
          "--k", "4"], "together"),
        (["--train-features", "nope.npy", "--train-labels", "y.npy", "--k", "4"],
         "no such file"),
        (["--train-features", "x.npy", "--train-labels", "y.npy", "--k", "4",
          "--overcluster", "0"], "must be positive"),
    ],
)
def test_cli_errors(files: Path, args: list[str], message: str) -> None:
    full = [str(files / a) if a.endswith(".npy") else a for a in args]
    code, text = _run(*full, "--quiet")
    assert code != 0
    assert message in text
    assert "Traceback" not in text


def test_cli_umap_step(files: Path) -> None:
    out = files / "u.json"
    code, text = _run("--train-features", str(files / "x.npy"), "--train-labels",
                      str(files / "y.npy"), "--k", "4", "--umap-dim", "3", "--umap-neighbors",
                      "10", "--seeds", "1", "--n-init", "5", "--json", str(out), "--quiet")
    assert code == 0, text
    data = json.loads(out.read_text())
    assert (data["protocol"]["umap_dim"], data["protocol"]["umap_neighbors"]) == (3, 10)
    assert data["mean"]["acc"] == 1.0
    code, text = _run("--train-features", str(files / "x.npy"), "--train-labels",
                      str(files / "y.npy"), "--k", "4", "--umap-dim", "200", "--quiet")
    assert code != 0
    assert "lower umap_dim" in text


def test_cli_balanced_step(files: Path) -> None:
    out = files / "b.json"
    code, text = _run("--train-features", str(files / "x.npy"), "--train-labels",
                      str(files / "y.npy"), "--k", "4", "--balanced", "--seeds", "1",
                      "--n-init", "5", "--json", str(out), "--quiet")
    assert code == 0, text
    data = json.loads(out.read_text())
    assert data["protocol"]["balanced"] is True
    assert data["mean"]["acc"] == 1.0


def test_cli_init_centroids_runs_k_means_once_from_them(files: Path) -> None:
    x, y = np.load(files / "x.npy"), np.load(files / "y.npy")
    np.save(files / "start.npy", np.stack([x[y == c].mean(0) for c in np.unique(y)]))
    out = files / "i.json"
    code, text = _run("--train-features", str(files / "x.npy"), "--train-labels",
                      str(files / "y.npy"), "--k", "4", "--init-centroids",
                      str(files / "start.npy"), "--json", str(out), "--quiet")
    assert code == 0, text
    data = json.loads(out.read_text())
    assert data["protocol"]["init"] == "given centroids"
    assert data["protocol"]["seeds"] == [0]
    assert data["mean"]["acc"] == 1.0
    # asking for several seeds from one deterministic start is refused, with the fix
    code, text = _run("--train-features", str(files / "x.npy"), "--train-labels",
                      str(files / "y.npy"), "--k", "4", "--init-centroids",
                      str(files / "start.npy"), "--seeds", "3", "--quiet")
    assert code != 0
    assert "pass seeds=1 and n_init=1" in text
