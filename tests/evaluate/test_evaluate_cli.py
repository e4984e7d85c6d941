"""``selflabel extract`` and ``selflabel eval knn|linear|cluster`` round trips on tiny files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from selflabel.cli import main


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


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_eval_knn_from_files_prints_protocol_and_writes_json(tmp_path: Path) -> None:
    f = _features(tmp_path)
    out = tmp_path / "knn.json"
    text = _run(
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


def test_eval_knn_defaults_labels_beside_and_leave_one_out(tmp_path: Path) -> None:
    f = _features(tmp_path, n_train=250)
    np.save(tmp_path / "train.labels.npy", np.load(f["train_y"]))  # what `extract` writes
    text = _run(["eval", "knn", "--train-features", str(f["train"])])
    assert "leave-one-out" in text
    for k in ("20", "200", "50"):
        assert f"\n{k:>5} " in text


def test_eval_linear_from_npz_and_pt(tmp_path: Path) -> None:
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
    text = _run(
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


def test_eval_cluster_from_files(tmp_path: Path) -> None:
    f = _features(tmp_path)
    out = tmp_path / "cl.json"
    text = _run(
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


@pytest.fixture
def tiny_images(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    labels = np.arange(24) % 3
    images = (rng.integers(0, 60, size=(24, 12, 12)) + 60 * labels[:, None, None]).astype(np.uint8)
    path = tmp_path / "imgs.npz"
    np.savez(path, images=images, labels=labels)
    return path


def test_extract_plain_backbone_then_eval(tmp_path: Path, tiny_images: Path) -> None:
    from selflabel.models import build_backbone

    ckpt = tmp_path / "backbone.pt"
    torch.save(build_backbone("smallcnn", in_channels=1).state_dict(), ckpt)
    out = tmp_path / "feats" / "train.npy"
    text = _run(
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
    via_files = _run(["eval", "knn", "--train-features", str(out), "--k", "3"])
    via_ckpt = _run(
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


class _StandInMethod(torch.nn.Module):
    """A method-like module: backbone + .features(), as build_method would return."""

    def __init__(self) -> None:
        super().__init__()
        from selflabel.models import build_backbone

        self.backbone = build_backbone("smallcnn", in_channels=1)
        self.head = torch.nn.Linear(256, 4)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.backbone(x)
        return out


def _fake_run_dir(tmp_path: Path, tiny_images: Path) -> tuple[Path, _StandInMethod]:
    import yaml

    from selflabel.engine.checkpoint import save_checkpoint

    run = tmp_path / "run"
    run.mkdir()
    config = {
        "method": "stand-in",
        "data": {"source": str(tiny_images), "split": "train", "test_source": str(tiny_images)},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    method = _StandInMethod()
    save_checkpoint(
        run / "checkpoint_last.pt",
        {"format": "selflabel-checkpoint", "model": method.state_dict(), "epoch": 3},
    )
    return run, method


def test_run_directory_defaults_to_its_data(
    tmp_path: Path, tiny_images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import selflabel.commands.extract as extract_cmd

    run, method = _fake_run_dir(tmp_path, tiny_images)
    built: list[dict[str, object]] = []

    def build(config: dict[str, object], state: dict[str, torch.Tensor], source: object) -> object:
        built.append(config)
        m = _StandInMethod()
        m.load_state_dict(state)
        return m

    monkeypatch.setattr(extract_cmd, "_method_from_config", build)
    out = tmp_path / "f.npy"
    text = _run(["extract", str(run), "--out", str(out), "--quiet"])
    assert "checkpoint_last.pt, epoch 3" in text
    assert built[0]["method"] == "stand-in"
    with torch.no_grad():
        x = torch.from_numpy(np.load(tiny_images)["images"][:, None].astype(np.float32) / 255.0)
        mean, std = float(x.mean()), float(x.std())
        expected = method.eval().features((x - mean) / std).numpy()
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-3, atol=1e-3)
    # eval with only --checkpoint: train and test sources come from the run's config
    text = _run(["eval", "knn", "--checkpoint", str(run), "--k", "1", "--quiet"])
    assert "train -> test" in text
    assert text.splitlines()[-1].split()[-2] == "100.00"  # test = train: 1-NN is itself


def _write_run(run: Path, cfg: Any, method: torch.nn.Module) -> Path:
    """A run directory as `selflabel train` writes it: config.yaml + checkpoint_last.pt."""
    from selflabel.config import dump_config
    from selflabel.engine.checkpoint import save_checkpoint

    run.mkdir()
    (run / "config.yaml").write_text(dump_config(cfg))
    save_checkpoint(
        run / "checkpoint_last.pt",
        {"format": "selflabel-checkpoint", "model": method.state_dict(), "epoch": 1},
    )
    return run


@pytest.mark.parametrize("view", [None, 12])
def test_real_swav_run_directory_round_trip(
    tmp_path: Path, tiny_images: Path, view: int | None
) -> None:
    """A run directory as `selflabel train` writes it: config.yaml + checkpoint_last.pt; its
    features are taken in the run's own evaluation view (``eval.image_size``)."""
    from selflabel.config import load_config
    from selflabel.run.build import build_method

    extra = [] if view is None else [f"eval.image_size={view}"]
    cfg = load_config("demo", [f"data.source={tiny_images}", "data.batch_size=8", *extra])
    from selflabel.data import load_source

    method = build_method(cfg, load_source(str(tiny_images)))
    run = _write_run(tmp_path / "run", cfg, method)
    out = tmp_path / "f.npy"
    text = _run(["extract", str(run), "--out", str(out), "--quiet"])
    assert f"run {run}" in text
    feats = np.load(out)
    assert feats.shape[0] == 24
    with torch.no_grad():
        from selflabel.data import EvalTransform

        src = load_source(str(tiny_images))
        _, images, _ = src.get_batch(torch.arange(24))
        tf = EvalTransform(view, mean=src.mean, std=src.std)
        expected = method.eval().features(tf(images))
    np.testing.assert_allclose(feats, expected.numpy(), rtol=1e-4, atol=1e-5)
    size = "native size" if view is None else f"{view} (crop fraction 1.0)"
    assert size in text


def test_holdout_run_is_scored_on_its_own_validation_split(
    tmp_path: Path, tiny_images: Path
) -> None:
    """A run trained with ``data.holdout`` (here SeLa, whose label bank has one row per training
    image): ``eval knn --checkpoint RUN`` keeps the held-out images out of the train features and
    scores exactly those images, as the run's own evaluation did."""
    from selflabel.config import load_config
    from selflabel.data import EvalTransform
    from selflabel.run.build import build_data, build_method

    cfg = load_config(
        "demo-sela",
        [
            f"data.source={tiny_images}",
            "data.batch_size=4",
            "data.holdout=0.25",
            "sela.n_clusters=3",
        ],
    )
    data = build_data(cfg)
    assert data.test is not None
    assert (len(data.train), len(data.test)) == (18, 6)
    method = build_method(cfg, data.train)
    run = _write_run(tmp_path / "run", cfg, method)
    out = tmp_path / "knn.json"
    text = _run(
        ["eval", "knn", "--checkpoint", str(run), "--k", "1", "--quiet", "--json", str(out)]
    )
    assert "held-out validation images (6" in text
    result = json.loads(out.read_text())
    assert (result["n_train"], result["n_test"]) == (18, 6)

    def feats(src: object) -> tuple[np.ndarray, np.ndarray]:
        _, images, labels = src.get_batch(torch.arange(len(src)))  # type: ignore[attr-defined]
        tf = EvalTransform(cfg.eval.image_size, mean=src.mean, std=src.std)  # type: ignore[attr-defined]
        with torch.no_grad():
            f = torch.nn.functional.normalize(method.eval().features(tf(images)), dim=1)
        return f.numpy(), labels.numpy()

    (xtr, ytr), (xva, yva) = feats(data.train), feats(data.test)
    expected = float(np.mean(ytr[np.argmax(xva @ xtr.T, axis=1)] == yva))
    assert result["top1"] == pytest.approx(100 * expected)
    # --test-data still names other images: the train features keep the holdout out
    text = _run(
        [
            "eval",
            "knn",
            "--checkpoint",
            str(run),
            "--test-data",
            str(tiny_images),
            "--k",
            "1",
            "--quiet",
            "--json",
            str(out),
        ]
    )
    assert (json.loads(out.read_text())["n_train"], json.loads(out.read_text())["n_test"]) == (
        18,
        24,
    )


def test_self_label_run_evaluates_on_images_of_another_size(
    tmp_path: Path, tiny_images: Path
) -> None:
    """SeLa keeps one label row per training image; extracting features of other images (here
    30 instead of its 24) must not trip over that bookkeeping."""
    from selflabel.config import load_config
    from selflabel.data import EvalTransform, load_source
    from selflabel.run.build import build_method

    cfg = load_config(
        "demo-sela", [f"data.source={tiny_images}", "data.batch_size=4", "sela.n_clusters=3"]
    )
    method = build_method(cfg, load_source(str(tiny_images)))
    run = _write_run(tmp_path / "run", cfg, method)
    other = tmp_path / "other.npz"
    rng = np.random.default_rng(1)
    np.savez(
        other, images=rng.integers(0, 255, (30, 12, 12), dtype=np.uint8), labels=np.arange(30) % 3
    )
    out = tmp_path / "f.npy"
    _run(["extract", str(run), "--data", str(other), "--out", str(out), "--quiet"])
    src = load_source(str(other))
    _, images, _ = src.get_batch(torch.arange(30))
    with torch.no_grad():  # the checkpoint's own weights, in the run's evaluation view
        tf = EvalTransform(cfg.eval.image_size, mean=src.mean, std=src.std)
        expected = method.eval().features(tf(images)).numpy()
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-4, atol=1e-5)
    knn_json = tmp_path / "knn.json"
    args = ["eval", "knn", "--checkpoint", str(run), "--train-data", str(other), "--k", "1"]
    _run([*args, "--quiet", "--json", str(knn_json)])
    assert json.loads(knn_json.read_text())["n_train"] == 30
