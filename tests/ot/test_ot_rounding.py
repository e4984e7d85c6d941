"""balanced_labels / balanced_capacities: exact sizes, close to the plan, distributed-safe."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from selflabel.ot import balanced_capacities, balanced_labels


def test_capacities_uniform_and_prior() -> None:
    cap = balanced_capacities(10, torch.full((4,), 0.25))
    assert sorted(cap.tolist()) == [2, 2, 3, 3]
    assert cap.sum() == 10
    # ties in the remainder go to the most demanded clusters
    cap = balanced_capacities(10, torch.full((4,), 0.25), demand=torch.tensor([0, 5, 1, 4]))
    assert cap.tolist() == [2, 3, 2, 3]
    cap = balanced_capacities(7, torch.tensor([0.5, 0.3, 0.2]))
    assert cap.tolist() == [4, 2, 1]
    assert cap.sum() == 7


def _scores_fn(log_plan: torch.Tensor):  # type: ignore[no-untyped-def]
    return lambda rows: log_plan[rows]


def test_keeps_the_argmax_when_it_is_balanced() -> None:
    K = 5
    labels = torch.arange(100) % K
    log_plan = torch.log_softmax(10 * torch.nn.functional.one_hot(labels, K).float(), dim=1)
    out = balanced_labels(_scores_fn(log_plan), 100, K)
    assert torch.equal(out, labels)


def test_overfull_cluster_keeps_its_most_likely_members() -> None:
    # everyone prefers cluster 0; cluster 0 keeps the 25 samples with the highest probability
    N, K = 100, 4
    logits = torch.randn(N, K)
    logits[:, 0] += 5.0 + torch.linspace(0, 1, N)  # later samples are surer of cluster 0
    log_plan = torch.log_softmax(logits, dim=1)
    out = balanced_labels(_scores_fn(log_plan), N, K)
    assert torch.bincount(out, minlength=K).tolist() == [25, 25, 25, 25]
    keep = torch.nonzero(out == 0).flatten()
    best = torch.topk(log_plan[:, 0], 25).indices
    assert set(keep.tolist()) == set(best.tolist())


@settings(max_examples=60, deadline=None)
@given(
    N=st.integers(1, 200), K=st.integers(1, 20), seed=st.integers(0, 2**16), skew=st.floats(0, 20)
)
def test_property_balanced_for_any_plan(N: int, K: int, seed: int, skew: float) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(N, K, generator=g)
    logits[:, 0] += skew  # arbitrarily unbalanced preferences
    log_plan = torch.log_softmax(logits, dim=1)
    out = balanced_labels(_scores_fn(log_plan), N, K, chunk_rows=7)
    counts = torch.bincount(out, minlength=K)
    assert counts.sum() == N
    assert counts.min() >= N // K
    assert counts.max() <= -(-N // K)


def test_impossible_pairs_still_give_balanced_labels() -> None:
    N, K = 40, 4
    log_plan = torch.log_softmax(torch.randn(N, K), dim=1)
    log_plan[:20, 3] = -float("inf")  # the first half has zero plan mass on cluster 3
    out = balanced_labels(_scores_fn(log_plan), N, K)
    assert torch.bincount(out, minlength=K).tolist() == [10, 10, 10, 10]


@pytest.mark.slow
def test_benchmark_quick_mode_runs(tmp_path: Path) -> None:
    """The benchmark's --quick smoke run (skipped if this machine is too slow for it)."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "sinkhorn.py"
    out = tmp_path / "bench.md"
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, str(script), "--quick", "--pot", "none", "--output", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("benchmark --quick took longer than 120 s on this machine")
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "label step" in text
    assert "codes" in text
    assert "not measured" in text
    assert time.perf_counter() - t0 < 120
