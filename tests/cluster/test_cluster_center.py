"""Centred clustering benchmark (``center=True``, CL2N): the same as the plain benchmark on
hand-centred rows, validation rows centred on the training mean, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selflabel.cluster import center_rows, cluster_benchmark, unit_mean


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    centres = np.abs(rng.normal(size=(3, 8))) + 1.0  # all-positive, like pooled ReLU features
    return (centres[y] + 0.6 * rng.uniform(size=(n, 8))).astype(np.float32), y


@settings(max_examples=30, deadline=None)
@given(
    x=arrays(np.float32, (12, 4), elements=st.floats(0.0625, 4.0, width=32)),
    scale=arrays(np.float32, (12, 1), elements=st.floats(0.25, 8.0, width=32)),
)
def test_unit_mean_ignores_row_scale_and_centred_rows_are_unit(
    x: np.ndarray, scale: np.ndarray
) -> None:
    np.testing.assert_allclose(unit_mean(x * scale), unit_mean(x), rtol=1e-5, atol=1e-6)
    c = center_rows(x, unit_mean(x), chunk_rows=5)
    norms = np.linalg.norm(c, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-4) | (norms < 1e-4))  # unit, or a row on the mean


@pytest.mark.parametrize("pca_dim", [None, 4])
def test_centred_benchmark_is_the_plain_benchmark_on_centred_rows(pca_dim: int | None) -> None:
    x, y = _blobs(300, 0)
    xv, yv = _blobs(90, 1)
    got = cluster_benchmark(x, y, xv, yv, k=3, pca_dim=pca_dim, seeds=2, center=True,
                            progress=False)
    mean = unit_mean(x)  # the validation rows are centred on the *training* mean
    ref = cluster_benchmark(center_rows(x, mean), y, center_rows(xv, mean), yv, k=3,
                            pca_dim=pca_dim, seeds=2, progress=False)
    for a, b in zip(got.per_seed, ref.per_seed, strict=True):
        for m in ("acc", "nmi", "ami", "ari", "objective"):
            assert a[m] == pytest.approx(b[m], rel=1e-5, abs=1e-6)
    assert got.protocol["center"] is True
    assert ref.protocol["center"] is False


def test_centring_changes_the_partition_of_positive_features() -> None:
    x, y = _blobs(300, 2)
    plain = cluster_benchmark(x, y, k=3, seeds=1, progress=False).per_seed[0]
    centred = cluster_benchmark(x, y, k=3, seeds=1, center=True, progress=False).per_seed[0]
    assert centred["objective"] != pytest.approx(plain["objective"])  # a different geometry
    assert centred["acc"] == pytest.approx(1.0)


def test_center_needs_l2_normalisation() -> None:
    x, y = _blobs(30, 3)
    with pytest.raises(ValueError, match="l2_normalize=True"):
        cluster_benchmark(x, y, k=3, seeds=1, center=True, l2_normalize=False, progress=False)
