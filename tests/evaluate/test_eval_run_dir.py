"""``selflabel extract`` and ``selflabel eval`` given a run directory (config.yaml + checkpoint)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

RunCli = Callable[[list[str]], str]


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


class _StandInSwAV(_StandInMethod):
    """A stand-in whose main head has prototypes in the features' space."""

    def feature_centres(self) -> torch.Tensor:
        return torch.nn.functional.normalize(self.head.weight.detach(), dim=1)


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
    cli: RunCli, tmp_path: Path, tiny_images: Path, monkeypatch: pytest.MonkeyPatch
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
    text = cli(["extract", str(run), "--out", str(out), "--quiet"])
    assert "checkpoint_last.pt, epoch 3" in text
    assert built[0]["method"] == "stand-in"
    with torch.no_grad():
        x = torch.from_numpy(np.load(tiny_images)["images"][:, None].astype(np.float32) / 255.0)
        mean, std = float(x.mean()), float(x.std())
        expected = method.eval().features((x - mean) / std).numpy()
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-3, atol=1e-3)
    # eval with only --checkpoint: train and test sources come from the run's config
    text = cli(["eval", "knn", "--checkpoint", str(run), "--k", "1", "--quiet"])
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
    cli: RunCli, tmp_path: Path, tiny_images: Path, view: int | None
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
    text = cli(["extract", str(run), "--out", str(out), "--quiet"])
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


def test_run_directory_with_test_time_views(cli: RunCli, tmp_path: Path, tiny_images: Path) -> None:
    """A run evaluated with test-time views (``eval.tta_sizes``, ``eval.tta_flip``): extract
    gives the mean of the L2-normalised features of its views, as the run's own figures did;
    ``--single-view`` gives the plain ``eval.image_size`` view."""
    from selflabel.config import load_config
    from selflabel.data import EvalTransform, load_source
    from selflabel.run.build import build_method

    views = ["eval.image_size=12", "eval.tta_sizes=[16]", "eval.tta_flip=true"]
    cfg = load_config("demo", [f"data.source={tiny_images}", "data.batch_size=8", *views])
    src = load_source(str(tiny_images))
    method = build_method(cfg, src)
    run = _write_run(tmp_path / "run", cfg, method)
    _, images, _ = src.get_batch(torch.arange(24))
    with torch.no_grad():
        feats = []
        for size in (12, 16):
            x = EvalTransform(size, mean=src.mean, std=src.std)(images)
            for v in (x, x.flip(-1)):
                feats.append(torch.nn.functional.normalize(method.eval().features(v), dim=1))
        expected = (sum(feats) / 4).numpy()  # type: ignore[union-attr]
        plain = method.features(EvalTransform(12, mean=src.mean, std=src.std)(images)).numpy()
    out = tmp_path / "f.npy"
    text = cli(["extract", str(run), "--out", str(out), "--quiet"])
    assert "test-time views at 16 px, each mirrored" in text
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-4, atol=1e-5)
    text = cli(["extract", str(run), "--out", str(out), "--quiet", "--single-view"])
    assert "test-time views" not in text
    np.testing.assert_allclose(np.load(out), plain, rtol=1e-4, atol=1e-5)
    text = cli(["eval", "knn", "--checkpoint", str(run), "--k", "1", "--quiet"])
    assert "view 12 (crop fraction 1.0), averaged" in text


def test_holdout_run_is_scored_on_its_own_validation_split(
    cli: RunCli, tmp_path: Path, tiny_images: Path
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
    text = cli(["eval", "knn", "--checkpoint", str(run), "--k", "1", "--quiet", "--json", str(out)])
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
    text = cli(
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
    result = json.loads(out.read_text())
    assert (result["n_train"], result["n_test"]) == (18, 24)


def test_self_label_run_evaluates_on_images_of_another_size(
    cli: RunCli, tmp_path: Path, tiny_images: Path
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
    cli(["extract", str(run), "--data", str(other), "--out", str(out), "--quiet"])
    src = load_source(str(other))
    _, images, _ = src.get_batch(torch.arange(30))
    with torch.no_grad():  # the checkpoint's own weights, in the run's evaluation view
        tf = EvalTransform(cfg.eval.image_size, mean=src.mean, std=src.std)
        expected = method.eval().features(tf(images)).numpy()
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-4, atol=1e-5)
    knn_json = tmp_path / "knn.json"
    args = ["eval", "knn", "--checkpoint", str(run), "--train-data", str(other), "--k", "1"]
    cli([*args, "--quiet", "--json", str(knn_json)])
    assert json.loads(knn_json.read_text())["n_train"] == 30


def test_eval_recomputes_batchnorm_statistics_as_the_run_did(
    cli: RunCli, tmp_path: Path, tiny_images: Path
) -> None:
    """``eval.bn_recalibrate`` of a run directory (or ``--bn-recalibrate N``): the features come
    from a network whose BatchNorm statistics were recomputed on N training images, as in
    :func:`selflabel.run.evaluation.recalibrated`; ``--bn-recalibrate 0`` keeps the trained ones."""
    from selflabel.config import load_config
    from selflabel.data import load_source
    from selflabel.evaluate import knn_accuracy
    from selflabel.run.build import build_eval_views, build_method
    from selflabel.run.evaluation import predict, recalibrated

    cfg = load_config(
        "demo", [f"data.source={tiny_images}", "eval.bn_recalibrate=10", "seed=4"]
    )
    src = load_source(str(tiny_images))
    method = build_method(cfg, src)
    run = _write_run(tmp_path / "run", cfg, method)
    views = build_eval_views(cfg, src)
    cpu = torch.device("cpu")

    def top1(net: Any) -> float:
        pred = predict(net, src, cpu, 256, views)
        res = knn_accuracy(pred.features, pred.labels, pred.features, pred.labels, k=1,
                           exclude_self=True)
        return float(res["top1"])

    new = top1(recalibrated(method, src, views, 10, device=cpu, batch_size=256, seed=4))
    old = top1(method)
    assert new != old  # the statistics matter on these images, so the check below can fail
    for extra, expected in (([], new), (["--bn-recalibrate", "0"], old)):
        out = tmp_path / f"knn{len(extra)}.json"
        text = cli(["eval", "knn", "--checkpoint", str(run), "--k", "1", "--quiet",
                    "--json", str(out), *extra])
        assert ("BatchNorm statistics recomputed on 10" in text) is (not extra)
        assert json.loads(out.read_text())["top1"] == pytest.approx(expected)
    # extract: the same recomputed network, on the run's training images, as its figures used
    feats = tmp_path / "f.npy"
    text = cli(["extract", str(run), "--out", str(feats), "--quiet", "--split", "test"])
    assert "BatchNorm statistics recomputed on 10 training images" in text
    net = recalibrated(method, src, views, 10, device=cpu, batch_size=256, seed=4)
    expected_f = predict(net, load_source(str(tiny_images), split="test"), cpu, 256, views)
    np.testing.assert_allclose(np.load(feats), expected_f.features, rtol=1e-4, atol=1e-5)


def test_extract_writes_the_prototypes_beside_the_features(
    cli: RunCli, tmp_path: Path, tiny_images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import selflabel.commands.extract as extract_cmd

    run, _ = _fake_run_dir(tmp_path, tiny_images)
    for cls, name in ((_StandInSwAV, "swav"), (_StandInMethod, "plain")):
        built: list[torch.nn.Module] = []

        def build(config: object, state: dict[str, torch.Tensor], source: object,
                  cls: type[_StandInMethod] = cls,
                  built: list[torch.nn.Module] = built) -> object:
            built.append(cls())
            built[-1].load_state_dict(state)
            return built[-1]

        monkeypatch.setattr(extract_cmd, "_method_from_config", build)
        out = tmp_path / f"{name}.npy"
        text = cli(["extract", str(run), "--out", str(out), "--quiet"])
        protos = tmp_path / f"{name}.prototypes.npy"
        if cls is _StandInSwAV:
            assert "the main head's prototypes" in text
            np.testing.assert_allclose(np.load(protos), built[0].feature_centres().numpy())
        else:
            assert not protos.exists()
