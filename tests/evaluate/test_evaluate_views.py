"""Test-time views: which views a batch gets, and how their features and probabilities average."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from selflabel.config import load_config
from selflabel.data import ArraySource, EvalTransform
from selflabel.evaluate.views import TestViews
from selflabel.run.build import build_eval_views


def _images(n: int = 5, size: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)


def _columns(x: torch.Tensor) -> torch.Tensor:
    """A feature that is not mirror-symmetric: the mean of every pixel column."""
    return x.mean(dim=(1, 2))


def _stats(x: torch.Tensor) -> torch.Tensor:
    """Three scores of any image size: mean, first-column mean (not mirror-symmetric), max."""
    return torch.stack([x.mean((1, 2, 3)), x[..., 0].mean((1, 2)), x.amax((1, 2, 3))], dim=1)


def test_views_are_each_transform_then_its_mirror() -> None:
    images = _images()
    views = TestViews([EvalTransform(4), EvalTransform(6)], flip=True).views(images)
    assert [tuple(v.shape) for v in views] == [(5, 1, 4, 4)] * 2 + [(5, 1, 6, 6)] * 2
    assert torch.equal(views[1], views[0].flip(-1))
    assert torch.equal(views[3], views[2].flip(-1))
    assert torch.equal(views[0], EvalTransform(4)(images))


def test_one_view_is_the_plain_feature() -> None:
    images = _images()
    tf = EvalTransform(6)
    out = TestViews([tf]).features(_columns, images)
    assert torch.equal(out, _columns(tf(images)))


def test_features_are_the_mean_of_the_normalised_view_features() -> None:
    images = _images()
    tf = EvalTransform()
    x = tf(images)
    want = (F.normalize(_columns(x), dim=1) + F.normalize(_columns(x.flip(-1)), dim=1)) / 2
    got = TestViews([tf], flip=True).features(_columns, images)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, F.normalize(_columns(x), dim=1))  # the mirror did change it


def test_a_mirror_symmetric_feature_is_unchanged_by_flipping() -> None:
    images = _images()
    tf = EvalTransform()

    def symmetric(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) + x.amax(dim=(2, 3)) ** 2

    got = TestViews([tf], flip=True).features(symmetric, images)
    torch.testing.assert_close(got, F.normalize(symmetric(tf(images)), dim=1))


def test_probabilities_average_the_softmax_of_every_view() -> None:
    images = _images()
    views = TestViews([EvalTransform(4), EvalTransform(8)], flip=True)
    probs = views.probabilities(_stats, images)
    want = sum(torch.softmax(_stats(v), dim=1) for v in views.views(images)) / 4
    torch.testing.assert_close(probs, torch.as_tensor(want))
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(5))


def test_no_transform_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one transform"):
        TestViews([])


def test_config_builds_the_views() -> None:
    source = ArraySource(_images(6, 16), name="tiny")
    plain = build_eval_views(load_config("demo", ["eval.image_size=12"]), source)
    assert len(plain) == 1
    assert plain.views(_images(2, 16))[0].shape == (2, 1, 12, 12)
    cfg = load_config(
        "demo", ["eval.image_size=12", "eval.tta_sizes=[12,16]", "eval.tta_flip=true"]
    )
    views = build_eval_views(cfg, source)
    assert len(views) == 4  # 12 (listed twice, used once) and 16, each mirrored
    assert [v.shape[-1] for v in views.views(_images(2, 16))] == [12, 12, 16, 16]
