"""The main job end to end on a tiny array source: files written, metrics present, resume works."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from selflabel.cli import main


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 24)
    images = rng.integers(0, 60, size=(96, 16, 16), dtype=np.uint8)
    for c in range(4):  # a bright square per class at a class-specific place
        images[labels == c, 2 + 3 * c : 6 + 3 * c, 2:12] = 230
    path = tmp_path / "tiny.npz"
    np.savez(path, images=images, labels=labels)
    return path


def _train(args: list[str]) -> str:
    result = CliRunner().invoke(main, ["train", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


FAST = [
    "data.batch_size=32",
    "model.hidden_dim=32",
    "model.embedding_dim=16",
    "model.n_prototypes=[8]",
    "augment.n_local=2",
    "eval.seeds=1",
    "eval.gallery_per_cluster=3",
    "train.log_every=1",
    "optim.warmup_epochs=0",
]


def test_train_writes_a_complete_run_directory(tiny_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(["--data", str(tiny_npz), "--epochs", "1", "--out", str(out), *FAST])
    for name in ("config.yaml", "checkpoint_last.pt", "metrics.json", "labels.csv", "metrics.csv"):
        assert (out / name).is_file(), name
    for name in ("training.png", "cluster_sizes.png", "gallery.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("acc", "nmi", "ami", "ari", "knn", "baseline_kmeans_raw", "head_acc"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["epochs_done"] == 1
    # each k-means seed is the best of eval.kmeans_restarts runs (default 10)
    assert metrics["clustering_benchmark"]["protocol"]["n_init"] == 10
    with open(out / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 96
    assert [int(r["index"]) for r in rows] == list(range(96))
    assert {int(r["cluster"]) for r in rows} <= set(range(4))
    assert all(0.0 <= float(r["confidence"]) <= 1.0 for r in rows)


def test_test_split_figures_are_the_benchmark_on_the_test_images(
    tiny_npz: Path, tmp_path: Path
) -> None:
    """With the training images as test source, every test_* figure equals its train twin."""
    out = tmp_path / "run"
    _train(["--data", str(tiny_npz), "--epochs", "1", "--out", str(out), *FAST,
            f"data.test_source={tiny_npz}", "eval.gallery_per_cluster=0",
            "eval.kmeans_restarts=3"])
    m = json.loads((out / "metrics.json").read_text())
    assert m["clustering_benchmark"]["protocol"]["n_init"] == 3
    for name in ("acc", "nmi", "ami", "ari", "head_acc", "head_nmi", "head_ami", "head_ari"):
        assert m[f"test_{name}"] == pytest.approx(m[name], abs=1e-9), name
    assert m["test_baseline_kmeans_raw"] == pytest.approx(m["baseline_kmeans_raw"], abs=1e-9)
    assert m["test_std"].keys() == {"acc", "nmi", "ami", "ari"}
    assert "96 test images" in m["test_protocol"]
    assert m["knn_protocol"].endswith("train -> test (96 images)")


def test_test_time_views_change_the_evaluation_not_the_training(
    tiny_npz: Path, tmp_path: Path
) -> None:
    import torch

    args = ["--data", str(tiny_npz), "--epochs", "1", *FAST, "eval.gallery_per_cluster=0"]
    _train([*args, "--out", str(tmp_path / "plain")])
    _train([*args, "--out", str(tmp_path / "tta"), "eval.tta_sizes=[12]", "eval.tta_flip=true"])
    plain, tta = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("plain", "tta"))
    assert (plain["eval_views"], tta["eval_views"]) == (1, 4)
    confidences = []  # the head's softmax of each image; with test-time views, over 4 views
    for run in ("plain", "tta"):
        with open(tmp_path / run / "labels.csv") as f:
            confidences.append([float(r["confidence"]) for r in csv.DictReader(f)])
    assert confidences[0] != pytest.approx(confidences[1], abs=1e-4)
    weights = [torch.load(tmp_path / r / "checkpoint_last.pt", weights_only=False)["model"]
               for r in ("plain", "tta")]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_rerun_resumes_and_extends(tiny_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(["--data", str(tiny_npz), "--epochs", "1", "--out", str(out), *FAST])
    _train(["--data", str(tiny_npz), "--epochs", "2", "--out", str(out), *FAST])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_done"] == 2


def test_bad_override_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["train", "model.bakcbone=x"])
    assert result.exit_code == 2
    assert "valid keys" in result.output


def test_interrupted_run_resumes_exactly(tiny_npz: Path, tmp_path: Path) -> None:
    import torch

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _train(["--data", str(tiny_npz), "--epochs", "2", "--out", str(straight), *FAST])
    # interrupted after its first step by the time budget (a checkpoint mid-epoch), then resumed
    _train(["--data", str(tiny_npz), "--epochs", "2", "--max-minutes", "0.00001", "--out",
            str(resumed), *FAST])
    partial = json.loads((resumed / "metrics.json").read_text())
    assert partial["stopped_early"]
    _train(["--data", str(tiny_npz), "--epochs", "2", "--out", str(resumed), *FAST])
    a = torch.load(straight / "checkpoint_last.pt", weights_only=True)["model"]
    b = torch.load(resumed / "checkpoint_last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_holdout_is_a_disjoint_validation_split_used_as_test(tiny_npz: Path) -> None:
    from selflabel.config import load_config
    from selflabel.run.build import build_data

    cfg = load_config(
        "demo", [f"data.source={tiny_npz}", "data.holdout=0.25", "data.batch_size=8",
                 f"data.test_source={tiny_npz}"]
    )
    data = build_data(cfg)
    assert data.test is not None
    assert (len(data.train), len(data.test)) == (72, 24)
    train_idx = set(data.train.parent_indices.tolist())  # type: ignore[attr-defined]
    held_idx = set(data.test.parent_indices.tolist())  # type: ignore[attr-defined]
    assert not train_idx & held_idx
    assert train_idx | held_idx == set(range(96))
    # the same split on every build (the choice of held-out images does not follow `seed`)
    again = build_data(load_config("demo", [f"data.source={tiny_npz}", "data.holdout=0.25",
                                            "data.batch_size=8", "seed=5"]))
    assert set(again.test.parent_indices.tolist()) == held_idx  # type: ignore[union-attr]


def test_eval_image_size_resizes_the_unaugmented_view(tiny_npz: Path) -> None:
    """``eval.image_size`` is the view of evaluation, self-labels and SeLa's label pass."""
    import torch

    from selflabel.config import load_config
    from selflabel.run.build import build_data, build_eval_transform, build_label_data

    cfg = load_config("demo-sela", [f"data.source={tiny_npz}", "eval.image_size=12",
                                    "data.batch_size=8", "eval.batch_size=40"])
    source = build_data(cfg).train
    _, images, _ = source.get_batch(torch.arange(4))
    assert build_eval_transform(cfg, source)(images).shape == (4, 1, 12, 12)
    batches = list(build_label_data(cfg, source)(False))
    assert [tuple(x.shape) for _, x in batches] == [(40, 1, 12, 12), (40, 1, 12, 12),
                                                    (16, 1, 12, 12)]
    native = load_config("demo-sela", [f"data.source={tiny_npz}"])
    assert build_eval_transform(native, source)(images).shape == (4, 1, 16, 16)


def test_convs_per_block_deepens_the_small_cnn_only() -> None:
    from torch import nn

    from selflabel.config import load_config
    from selflabel.run.build import build_backbone_from

    def n_convs(overrides: list[str]) -> int:
        net = build_backbone_from(load_config("demo", overrides), in_channels=1)
        return sum(isinstance(m, nn.Conv2d) for m in net.modules())

    assert n_convs([]) == 4
    assert n_convs(["model.convs_per_block=2"]) == 8
    with pytest.raises(ValueError, match="smallcnn backbone only"):
        n_convs(["model.backbone=resnet18", "model.convs_per_block=2"])


def test_channels_set_the_small_cnn_blocks_only() -> None:
    from selflabel.config import load_config
    from selflabel.run.build import build_backbone_from

    net = build_backbone_from(load_config("demo", ["model.channels=[16,32,64,512]"]), 1)
    assert net.out_dim == 512
    convs = [m.out_channels for m in net.modules() if hasattr(m, "out_channels")]
    assert convs == [16, 32, 64, 512]
    resnet = load_config("demo", ["model.backbone=resnet18", "model.channels=[8]"])
    with pytest.raises(ValueError, match="smallcnn backbone only"):
        build_backbone_from(resnet, 1)


@pytest.mark.parametrize("center", ["knn", "all"])
def test_eval_center_reaches_knn_and_the_benchmark_as_set(
    center: str, tiny_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / center
    _train(["--data", str(tiny_npz), "--epochs", "1", "--out", str(out), *FAST,
            "eval.gallery_per_cluster=0", f"eval.center={center}"])
    m = json.loads((out / "metrics.json").read_text())
    assert "centred features (train mean)" in m["knn_protocol"]
    assert m["clustering_benchmark"]["protocol"]["center"] is (center == "all")
    assert m["baseline_detail"]["detail"]["protocol"]["center"] is (center == "all")
    assert m["labels_from"] == "kmeans"  # 8 prototypes, 4 classes: labels.csv from k-means
