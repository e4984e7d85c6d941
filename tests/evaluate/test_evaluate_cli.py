"""``selflabel extract`` and ``selflabel eval knn|linear|cluster`` round trips on tiny files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner

from selflabel.cli import main

RunCli = Callable[[list[str]], str]


def _features(tmp: Path, n_train: int = 120, n_test: int = 60, d: int = 6) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, d)) * 4
    ytr, yte = rng.integers(0, 3, n_train), rng.integers(0, 3, n_test)
    files = {
        "train": tmp / "train.npy",
        "test": tmp / "test.npy",
        "train_y": tmp / "train_y.npy",
        "test_y": tmp / "test_y.npy",
    }
    np.save(files["train"], (centres[ytr] + rng.normal(size=(n_train, d))).astype(np.float32))
    np.save(files["test"], (centres[yte] + rng.normal(size=(n_test, d))).astype(np.float16))
    np.save(files["train_y"], ytr)
    np.save(files["test_y"], yte)
    return files


def test_eval_knn_from_files_prints_protocol_and_writes_json(cli: RunCli, tmp_path: Path) -> None:
    f = _features(tmp_path)
    out = tmp_path / "knn.json"
    text = cli(
        [
            "eval",
            "knn",
            "--train-features",
            str(f["train"]),
            "--train-labels",
            str(f["train_y"]),
            "--test-features",
            str(f["test"]),
            "--test-labels",
            str(f["test_y"]),
            "--k",
            "5",
            "--k",
            "50",
            "--temperature",
            "0.1",
            "--json",
            str(out),
        ]
    )
    assert "protocol: weighted kNN" in text
    assert "cosine" in text
    assert "exp(sim/T)" in text
    res = json.loads(out.read_text())
    assert [(r["k"], r["temperature"]) for r in res["results"]] == [(5, 0.1), (50, 0.1)]
    assert res["results"][0]["top1"] > 90
    assert "protocol" in res
    assert "train.npy" in res["inputs"]


def test_eval_knn_defaults_labels_beside_and_leave_one_out(cli: RunCli, tmp_path: Path) -> None:
    f = _features(tmp_path, n_train=250)
    np.save(tmp_path / "train.labels.npy", np.load(f["train_y"]))  # what `extract` writes
    text = cli(["eval", "knn", "--train-features", str(f["train"])])
    assert "leave-one-out" in text
    for k in ("20", "200", "50"):
        assert f"\n{k:>5} " in text


def test_eval_linear_from_npz_and_pt(cli: RunCli, tmp_path: Path) -> None:
    f = _features(tmp_path)
    np.savez(tmp_path / "train.npz", features=np.load(f["train"]), labels=np.load(f["train_y"]))
    torch.save(
        {
            "features": torch.from_numpy(np.load(f["test"]).astype(np.float32)),
            "labels": torch.from_numpy(np.load(f["test_y"])),
        },
        tmp_path / "test.pt",
    )
    out = tmp_path / "lin.json"
    text = cli(
        [
            "eval",
            "linear",
            "--train-features",
            str(tmp_path / "train.npz"),
            "--test-features",
            str(tmp_path / "test.pt"),
            "--epochs",
            "5",
            "--weight-decay",
            "0",
            "--weight-decay",
            "1e-3",
            "--json",
            str(out),
        ]
    )
    assert "protocol: linear probe on frozen features" in text
    assert "top-1" in text
    res = json.loads(out.read_text())
    assert res["top1"] > 90
    assert [s["weight_decay"] for s in res["sweep"]] == [0.0, 1e-3]


def test_eval_cluster_from_files(cli: RunCli, tmp_path: Path) -> None:
    f = _features(tmp_path)
    out = tmp_path / "cl.json"
    text = cli(
        [
            "eval",
            "cluster",
            "--train-features",
            str(f["train"]),
            "--train-labels",
            str(f["train_y"]),
            "--seeds",
            "2",
            "--quiet",
            "--json",
            str(out),
        ]
    )
    assert "protocol: clustering benchmark" in text
    assert "ACC" in text
    res = json.loads(out.read_text())
    assert res["probe"] == "cluster"
    assert res["mean"]["acc"] > 0.9


def test_eval_center_flag_centres_knn_and_clustering(cli: RunCli, tmp_path: Path) -> None:
    f = _features(tmp_path)
    base = ["--train-features", str(f["train"]), "--train-labels", str(f["train_y"]), "--quiet"]
    knn = cli(["eval", "knn", *base, "--k", "5", "--temperature", "0.1", "--center"])
    assert "centred on the train mean" in knn
    out = tmp_path / "cl.json"
    text = cli(["eval", "cluster", *base, "--seeds", "1", "--center", "--json", str(out)])
    assert "centre on the train mean" in text
    assert json.loads(out.read_text())["protocol"]["center"] is True


def test_eval_cluster_balanced_flag(cli: RunCli, tmp_path: Path) -> None:
    f = _features(tmp_path)
    base = ["--train-features", str(f["train"]), "--train-labels", str(f["train_y"]), "--quiet"]
    out = tmp_path / "cl.json"
    text = cli(["eval", "cluster", *base, "--seeds", "1", "--balanced", "--json", str(out)])
    assert "refined into equal-size clusters" in text
    assert json.loads(out.read_text())["protocol"]["balanced"] is True


def test_eval_cluster_umap_step_and_its_test_rows(cli: RunCli, tmp_path: Path) -> None:
    f = _features(tmp_path)
    out = tmp_path / "cl.json"
    text = cli(["eval", "cluster", "--train-features", str(f["train"]), "--train-labels",
                str(f["train_y"]), "--test-features", str(f["test"]), "--test-labels",
                str(f["test_y"]), "--umap-dim", "2", "--umap-neighbors", "10", "--seeds", "3",
                "--quiet", "--json", str(out)])
    assert "UMAP to 2 (n_neighbors 10, one per seed)" in text
    res = json.loads(out.read_text())
    assert (res["protocol"]["umap_dim"], res["protocol"]["scored_on"]) == (2, "val")
    # one k-means run per seed can settle in a local minimum (seed 0 here); the others find it
    assert max(seed["acc"] for seed in res["per_seed"]) == 1.0
    assert res["mean"]["acc"] > 0.8


def test_usage_errors(tmp_path: Path) -> None:
    f = _features(tmp_path)
    runner = CliRunner()
    r = runner.invoke(main, ["eval", "knn"])
    assert r.exit_code != 0
    assert "--train-features" in r.output
    r = runner.invoke(main, ["eval", "knn", "--train-features", str(f["train"])])
    assert r.exit_code != 0
    assert "no labels" in r.output
    r = runner.invoke(
        main,
        [
            "eval",
            "knn",
            "--train-features",
            str(f["train"]),
            "--train-labels",
            str(f["train_y"]),
            "--k",
            "1",
            "--k",
            "2",
            "--temperature",
            "0.1",
            "--temperature",
            "0.2",
            "--temperature",
            "0.3",
        ],
    )
    assert r.exit_code != 0
    assert "paired" in r.output
    r = runner.invoke(
        main,
        [
            "eval",
            "linear",
            "--train-features",
            str(f["train"]),
            "--train-labels",
            str(f["train_y"]),
        ],
    )
    assert r.exit_code != 0
    assert "test features" in r.output


def test_extract_plain_backbone_then_eval(cli: RunCli, tmp_path: Path, tiny_images: Path) -> None:
    from selflabel.models import build_backbone

    ckpt = tmp_path / "backbone.pt"
    torch.save(build_backbone("smallcnn", in_channels=1).state_dict(), ckpt)
    out = tmp_path / "feats" / "train.npy"
    text = cli(
        [
            "extract",
            str(ckpt),
            "--arch",
            "smallcnn",
            "--data",
            str(tiny_images),
            "--out",
            str(out),
            "--batch-size",
            "10",
            "--quiet",
        ]
    )
    assert "protocol: features" in text
    feats = np.load(out)
    assert feats.shape == (24, 256)
    assert np.load(tmp_path / "feats" / "train.labels.npy").tolist() == (np.arange(24) % 3).tolist()
    assert np.load(tmp_path / "feats" / "train.indices.npy").tolist() == list(range(24))
    # the --checkpoint path of eval gives the same numbers as the extracted files
    via_files = cli(["eval", "knn", "--train-features", str(out), "--k", "3"])
    via_ckpt = cli(
        [
            "eval",
            "knn",
            "--checkpoint",
            str(ckpt),
            "--arch",
            "smallcnn",
            "--train-data",
            str(tiny_images),
            "--k",
            "3",
            "--quiet",
        ]
    )
    assert via_files.splitlines()[-1] == via_ckpt.splitlines()[-1]


def test_extract_needs_arch_for_plain_state_dict(tmp_path: Path, tiny_images: Path) -> None:
    ckpt = tmp_path / "sd.pt"
    torch.save({"w": torch.zeros(2)}, ckpt)
    r = CliRunner().invoke(
        main, ["extract", str(ckpt), "--data", str(tiny_images), "--out", str(tmp_path / "f.npy")]
    )
    assert r.exit_code != 0
    assert "--arch" in r.output
