"""``predict`` with test-time views: for every figure, or for the kNN/linear probes only."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from selflabel.data import ArraySource, EvalTransform
from selflabel.evaluate.views import TestViews
from selflabel.run.evaluation import predict


class _Tiny(nn.Module):
    """Features that change with size and orientation; a 3-cluster head on them."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(4, 3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        left = x[..., : x.shape[-1] // 2].mean((1, 2, 3))
        return torch.stack([x.mean((1, 2, 3)), left, x.amax((1, 2, 3)), x.std((1, 2, 3))], 1)

    def cluster_scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) * 10


def _source() -> ArraySource:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (37, 1, 8, 8), generator=g, dtype=torch.uint8)
    return ArraySource(images, labels=torch.arange(37) % 3, name="tiny")


def test_probe_scope_keeps_the_plain_view_for_clusters_and_the_views_for_probes() -> None:
    source, model = _source(), _Tiny()
    views = TestViews([EvalTransform(8), EvalTransform(6)], flip=True)
    cpu = torch.device("cpu")
    plain = predict(model, source, cpu, 10, EvalTransform(8))  # type: ignore[arg-type]
    every = predict(model, source, cpu, 10, views)  # type: ignore[arg-type]
    probes = predict(model, source, cpu, 10, views, views_for="probes")  # type: ignore[arg-type]
    assert plain.probe_features is None
    assert every.probe_features is None
    np.testing.assert_array_equal(probes.features, plain.features)
    np.testing.assert_array_equal(probes.prototype, plain.prototype)
    np.testing.assert_array_equal(probes.confidence, plain.confidence)
    np.testing.assert_allclose(probes.probes, every.features, rtol=1e-6)
    assert not np.allclose(every.features, plain.features)  # the views did change the features
    assert not np.array_equal(every.confidence, plain.confidence)
    np.testing.assert_array_equal(plain.probes, plain.features)


def test_probe_scope_with_one_view_is_the_plain_prediction() -> None:
    source, model = _source(), _Tiny()
    one = TestViews([EvalTransform(8)])
    cpu = torch.device("cpu")
    got = predict(model, source, cpu, 16, one, views_for="probes")  # type: ignore[arg-type]
    assert got.probe_features is None
    plain = predict(model, source, cpu, 16, EvalTransform(8))  # type: ignore[arg-type]
    np.testing.assert_array_equal(got.features, plain.features)
