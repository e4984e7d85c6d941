"""``eval.bn_recalibrate``: the evaluation scores a copy with recomputed BatchNorm statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from selflabel.config import load_config
from selflabel.data import ArraySource
from selflabel.evaluate import batchnorm_layers
from selflabel.run.build import build_eval_views, build_method
from selflabel.run.evaluation import predict, recalibrated


def _source() -> ArraySource:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 16, 16), generator=g, dtype=torch.uint8)
    return ArraySource(images, labels=torch.arange(40) % 4, name="tiny")


def test_recalibrated_is_a_copy_with_new_statistics_and_the_original_is_untouched() -> None:
    cfg = load_config("demo", ["model.n_prototypes=[4]", "eval.tta_flip=true"])
    source = _source()
    method = build_method(cfg, source)
    before = [b.running_mean.clone() for b in batchnorm_layers(method)]  # type: ignore[union-attr]
    views = build_eval_views(cfg, source)
    cpu = torch.device("cpu")
    net = recalibrated(method, source, views, 25, device=cpu, batch_size=10, seed=3)
    assert net is not method
    for layer, mean in zip(batchnorm_layers(method), before, strict=True):
        torch.testing.assert_close(layer.running_mean, mean)  # the trained network is unchanged
    # 25 images in batches of 10, 2 views each (the image and its mirror): 6 batches per layer
    assert [int(b.num_batches_tracked) for b in batchnorm_layers(net)] == [6] * len(before)  # type: ignore[arg-type]
    new, old = predict(net, source, cpu, 16, views), predict(method, source, cpu, 16, views)
    assert not np.allclose(new.features, old.features)
    same = recalibrated(method, source, views, 25, device=cpu, batch_size=10, seed=3)
    np.testing.assert_array_equal(predict(same, source, cpu, 16, views).features, new.features)


def test_a_run_with_eval_bn_recalibrate_records_it(tmp_path: Path, train_tiny: Any) -> None:
    metrics = train_tiny(tmp_path / "run", "model.n_prototypes=[4]", "eval.seeds=1",
                         "eval.bn_recalibrate=1000")
    assert metrics["eval_bn_recalibrate"] == 64  # every training image (fewer than asked)


def test_negative_bn_recalibrate_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="bn_recalibrate"):
        load_config("demo", ["eval.bn_recalibrate=-1"])
