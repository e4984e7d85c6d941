"""The rounding's first proposals recorded by the solver's last pass equal a separate pass."""

from __future__ import annotations

import pytest
import torch

import selflabel.ot.equipartition as eq
from selflabel.ot import sinkhorn_equipartition
from selflabel.ot.rounding import balanced_labels


def test_first_choice_gives_the_same_labels_as_scoring_every_row() -> None:
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(300, 7, generator=g)
    offset = torch.randn(300, generator=g)
    best = scores.max(dim=1)
    ref = balanced_labels(lambda rows: scores[rows], 300, 7, row_offset=offset)
    fast = balanced_labels(
        lambda rows: scores[rows],
        300,
        7,
        row_offset=offset,
        first_choice=(best.indices, best.values + offset),
    )
    assert torch.equal(ref, fast)


@pytest.mark.parametrize("inplace", [False, True])
def test_solver_uses_its_last_pass_and_labels_equal_a_separate_scoring_pass(
    inplace: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = torch.Generator().manual_seed(2)
    log_p = torch.log_softmax(3 * torch.randn(2000, 40, generator=g), dim=1)
    real = eq.balanced_labels
    used: list[bool] = []

    def solve(drop_first_choice: bool) -> torch.Tensor:
        def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
            used.append(kwargs.get("first_choice") is not None)
            if drop_first_choice:
                kwargs["first_choice"] = None
            return real(*args, **kwargs)

        monkeypatch.setattr(eq, "balanced_labels", spy)
        res = sinkhorn_equipartition(log_p.clone(), lam=25.0, tol=1e-3, inplace=inplace)
        assert res.n_iter > 0
        return res.labels

    fast, ref = solve(False), solve(True)
    assert used == [True, True]
    assert (fast == ref).float().mean() >= 0.999
    assert torch.bincount(fast, minlength=40).tolist() == [50] * 40
