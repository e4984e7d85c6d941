"""Resume exactness: a killed or time-limited run, resumed by new Trainer objects, reproduces the
uninterrupted run's parameters bit for bit on CPU."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _engine_toys import ToyLoader, make_method, noisy_augment
from torch import Tensor

from selflabel.engine import checkpoint as ckpt
from selflabel.engine.optim import build_optimizer
from selflabel.engine.runlog import read_metrics
from selflabel.engine.schedule import cosine_schedule
from selflabel.engine.trainer import Trainer, TrainResult

EPOCHS = 4
CONFIG = {"method": "toy", "optim": {"name": "lars", "lr": 0.5}, "epochs": EPOCHS}


class _KilledError(Exception):
    pass


def _run(
    out: Path,
    *,
    restart: int = 0,
    augment: Callable[[Tensor], list[Tensor]] = noisy_augment,
    config: dict[str, Any] | None = None,
    **kw: Any,
) -> tuple[Trainer, TrainResult]:
    """restart=0: a fresh run seeded 0/42; restart=r > 0: a new process's Trainer with another
    init and other RNG states, which must take everything from the checkpoint."""
    method = make_method(restart)
    loader = ToyLoader(n=24, batch_size=8, seed=3)
    opt = build_optimizer("lars", method, lr=0.5, weight_decay=1e-4, momentum=0.9)
    sched = cosine_schedule(0.5, 0.01, EPOCHS * len(loader), warmup_iters=2)
    torch.manual_seed(42 + 1000 * restart)
    np.random.seed(restart)  # noqa: NPY002 - the global RNG is under test
    random.seed(restart)
    tr = Trainer(
        method,
        loader,
        augment,
        opt,
        sched,
        epochs=EPOCHS,
        out_dir=out,
        progress=False,
        tensorboard=False,
        log_every=2,
        config=config or CONFIG,
        **kw,
    )
    return tr, tr.fit()


def _assert_same_state(a: Trainer, b: Trainer) -> None:
    sa, sb = a.method.state_dict(), b.method.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    for p, q in zip(a.method.parameters(), b.method.parameters(), strict=True):
        assert torch.equal(
            a.optimizer.state[p]["momentum_buffer"], b.optimizer.state[q]["momentum_buffer"]
        )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Trainer:
    tr, result = _run(tmp_path_factory.mktemp("ref"))
    assert (result.epochs_done, result.iterations, result.stopped_early) == (EPOCHS, 12, None)
    return tr


def test_kill_then_resume_reproduces_the_uninterrupted_run(
    reference: Trainer, tmp_path: Path
) -> None:
    calls = {"n": 0}

    def dying_augment(images: Tensor) -> list[Tensor]:
        calls["n"] += 1
        if calls["n"] == 9:  # epoch 2, third step: iterations 7 and 8 are done (8 is logged)
            raise _KilledError
        return noisy_augment(images)

    with pytest.raises(_KilledError):
        _run(tmp_path, augment=dying_augment)
    saved = ckpt.load_checkpoint(tmp_path / ckpt.LAST)
    assert (saved["epoch"], saved["step"], saved["iteration"]) == (2, 0, 6)
    resumed, result = _run(tmp_path, restart=1)  # a new Trainer, another init: all from disk
    assert (result.epochs_done, result.iterations, result.stopped_early) == (EPOCHS, 12, None)
    _assert_same_state(reference, resumed)
    assert [r["epoch"] for r in result.history] == [0, 1, 2, 3]
    train_its = [
        r["iteration"] for r in read_metrics(tmp_path / "metrics.csv") if r["kind"] == "train"
    ]
    assert train_its == sorted(
        set(train_its)
    )  # rows after the checkpoint were dropped, not doubled


def test_time_limit_stops_mid_epoch_and_each_resume_continues_exactly(
    reference: Trainer, tmp_path: Path
) -> None:
    runs, stops = 0, []
    while True:  # max_minutes=0: every run does one step, saves and stops
        tr, result = _run(tmp_path, restart=runs, max_minutes=0)
        runs += 1
        stops.append(ckpt.load_checkpoint(tmp_path / ckpt.LAST)["epoch_finished"])
        if result.stopped_early is None:
            break
        assert result.stopped_early == "max_minutes"
        assert result.checkpoint == tmp_path / ckpt.LAST
        assert runs < 20
    assert runs == 12
    assert stops == [False, False, True] * 4  # partial epochs are saved, and epoch ends
    _assert_same_state(reference, tr)


def test_a_finished_run_resumes_to_nothing(reference: Trainer, tmp_path: Path) -> None:
    _run(tmp_path)
    tr, result = _run(tmp_path, restart=5)
    assert (result.epochs_done, result.iterations) == (EPOCHS, 12)
    assert tr.method.calls == []  # type: ignore[union-attr]
    _assert_same_state(reference, tr)


def test_resume_with_another_config_is_refused(tmp_path: Path) -> None:
    _run(tmp_path, max_minutes=0)
    changed = {**CONFIG, "optim": {"name": "lars", "lr": 0.1}}
    with pytest.raises(ValueError, match=r"optim\.lr: 0\.5 \(checkpoint\) != 0\.1 \(now\)"):
        _run(tmp_path, config=changed)
    _run(tmp_path, config={**CONFIG, "max_minutes": 5}, max_minutes=0)  # ignored keys may change


def test_evaluation_does_not_change_the_training(reference: Trainer, tmp_path: Path) -> None:
    def eval_fn(method: Any, epoch: int) -> dict[str, float]:
        torch.rand(100)
        random.random()
        return {"score": float(np.random.rand())}  # noqa: NPY002 - consumes the global RNG

    tr, result = _run(tmp_path, eval_fn=eval_fn, eval_every=1)
    assert all("eval_score" in row for row in result.history)
    _assert_same_state(reference, tr)


def test_weight_decay_schedule_is_applied_to_decayed_groups_only(tmp_path: Path) -> None:
    tr, _ = _run(tmp_path, wd_schedule=np.linspace(0.0, 1.1, 12))
    assert [g["weight_decay"] for g in tr.optimizer.param_groups] == [pytest.approx(1.1), 0.0]


def _fresh(out: Path, seed: int, scramble: int) -> Trainer:
    method = make_method(0)
    loader = ToyLoader(n=24, batch_size=8, seed=3)
    opt = build_optimizer("sgd", method, lr=0.5, weight_decay=1e-4)
    torch.manual_seed(scramble)
    np.random.seed(scramble)  # noqa: NPY002 - the global RNG is under test
    random.seed(scramble)
    tr = Trainer(
        method,
        loader,
        noisy_augment,
        opt,
        [0.5] * 6,
        epochs=2,
        out_dir=out,
        progress=False,
        tensorboard=False,
        seed=seed,
    )
    tr.fit()
    return tr


def test_seed_makes_a_fresh_run_independent_of_the_global_rng(tmp_path: Path) -> None:
    a, b = _fresh(tmp_path / "a", 5, scramble=1), _fresh(tmp_path / "b", 5, scramble=2)
    _assert_same_state(a, b)
    c = _fresh(tmp_path / "c", 6, scramble=1)
    assert not torch.equal(a.method.head.weight, c.method.head.weight)
