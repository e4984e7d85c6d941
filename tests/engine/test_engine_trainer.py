"""The training loop: hook order, logs, checkpoints, eval, validation, non-finite stop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from _engine_toys import ToyLoader, ToyMethod, make_method, noisy_augment

from selflabel.engine import checkpoint as ckpt
from selflabel.engine.monitor import NonFiniteLossError
from selflabel.engine.optim import build_optimizer
from selflabel.engine.runlog import read_metrics
from selflabel.engine.schedule import cosine_schedule
from selflabel.engine.trainer import Trainer
from selflabel.methods.base import Batch, Method, StepContext, StepOutput


def _trainer(out: Path, epochs: int = 2, method_seed: int = 0, **kw: object) -> Trainer:
    method = kw.pop("method", None) or make_method(method_seed)
    loader = kw.pop("loader", None) or ToyLoader()
    opt = build_optimizer("lars", method, lr=0.1, weight_decay=1e-4)
    sched = cosine_schedule(0.5, 0.01, epochs * len(loader), warmup_iters=2)
    return Trainer(
        method,
        loader,
        noisy_augment,
        opt,
        sched,
        epochs=epochs,
        out_dir=out,
        progress=False,
        tensorboard=False,
        log_every=2,
        **kw,
    )  # type: ignore[arg-type]


def test_fit_runs_hooks_in_order_and_writes_logs_and_checkpoints(tmp_path: Path) -> None:
    tr = _trainer(tmp_path, epochs=2, checkpoint_every=1, config={"lr": 0.5})
    before = tr.method.head.weight.detach().clone()
    result = tr.fit()
    assert (result.epochs_done, result.iterations, result.stopped_early) == (2, 6, None)
    calls = tr.method.calls  # type: ignore[union-attr]
    one_step = ["step", "before", "after"]
    assert calls == (["epoch_start", *one_step * 3, "epoch_end"]) * 2
    assert not torch.equal(before, tr.method.head.weight)
    assert int(tr.method.steps_seen) == 6
    assert tr.loader.sampler.epoch == 1  # type: ignore[attr-defined]
    state = ckpt.load_checkpoint(tmp_path / ckpt.LAST)
    assert (state["epoch"], state["step"], state["iteration"], state["epoch_finished"]) == (
        2,
        0,
        6,
        True,
    )
    assert state["config"] == {"lr": 0.5}
    assert (tmp_path / "checkpoint_epoch1.pt").is_file()
    assert (tmp_path / "checkpoint_epoch2.pt").is_file()
    rows = read_metrics(tmp_path / "metrics.csv")
    train = [r for r in rows if r["kind"] == "train"]
    assert [r["iteration"] for r in train] == [2, 3, 4, 6]  # every 2 steps + each epoch's last
    assert {"loss", "lr", "images_per_s", "entropy"} <= set(train[0])
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert len(epochs) == 2
    assert "collapse_mean_loss" in epochs[0]
    assert "collapse_clusters_used" not in epochs[0]  # the toy method gives no assignments
    assert len(result.history) == 2
    assert result.history[1]["epoch"] == 1


def test_lr_schedule_is_applied_per_iteration(tmp_path: Path) -> None:
    seen: list[float] = []
    tr = _trainer(tmp_path, epochs=1)
    orig = tr.method.on_before_optimizer_step

    def spy(ctx: object) -> None:
        seen.append(tr.optimizer.param_groups[0]["lr"])
        orig(ctx)  # type: ignore[arg-type]

    tr.method.on_before_optimizer_step = spy  # type: ignore[method-assign]
    tr.fit()
    expected = cosine_schedule(0.5, 0.01, 3, warmup_iters=2)
    assert seen == pytest.approx(expected.tolist())
    assert tr.optimizer.param_groups[1]["weight_decay"] == 0.0


def test_eval_fn_runs_every_k_epochs_in_eval_mode(tmp_path: Path) -> None:
    calls: list[tuple[int, bool]] = []

    def eval_fn(method: Method, epoch: int) -> dict[str, float]:
        calls.append((epoch, method.training))
        return {"acc": 0.25 * epoch}

    result = _trainer(tmp_path, epochs=4, eval_fn=eval_fn, eval_every=2).fit()
    assert calls == [(2, False), (4, False)]
    assert [r.get("eval_acc") for r in result.history] == [None, 0.5, None, 1.0]
    evals = [r for r in read_metrics(tmp_path / "metrics.csv") if r["kind"] == "eval"]
    assert [r["acc"] for r in evals] == [0.5, 1.0]


def test_non_finite_loss_stops_with_a_diagnosis(tmp_path: Path) -> None:
    tr = _trainer(tmp_path, epochs=2, method=make_method(nan_at=4))
    with pytest.raises(NonFiniteLossError, match="iteration 4") as info:
        tr.fit()
    msg = str(info.value)
    assert "epoch 1" in msg
    assert "last finite loss=" in msg
    assert "lower the learning rate" in msg
    assert all(torch.isfinite(p).all() for p in tr.method.parameters())  # no NaN step was taken
    assert ckpt.load_checkpoint(tmp_path / ckpt.LAST)["epoch"] == 1  # the finished epoch is kept


def test_bad_arguments_are_explained(tmp_path: Path) -> None:
    sgd = torch.optim.SGD(make_method().parameters(), 0.1)
    with pytest.raises(ValueError, match="lr_schedule has 3 values"):
        Trainer(
            make_method(), ToyLoader(), noisy_augment, sgd, [0.1] * 3, epochs=2, out_dir=tmp_path
        )
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        Trainer(
            make_method(), ToyLoader(), noisy_augment, sgd, [0.1] * 3, epochs=0, out_dir=tmp_path
        )
    with pytest.raises(TypeError, match="len"):
        Trainer(
            make_method(),
            iter([]),
            noisy_augment,
            torch.optim.SGD(make_method().parameters(), 0.1),
            [0.1],
            epochs=1,
            out_dir=tmp_path,
        )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="amp must be one of"):
        _trainer(tmp_path, amp="fp8")


def test_amp_requests_fall_back_to_fp32_on_cpu(tmp_path: Path) -> None:
    tr = _trainer(tmp_path, epochs=1, amp="bf16")
    assert tr.amp_dtype is None
    assert not tr.scaler.is_enabled()
    assert tr.fit().epochs_done == 1


def test_grad_clip_bounds_the_update(tmp_path: Path) -> None:
    method = make_method()
    opt = torch.optim.SGD(method.parameters(), lr=1.0)
    before = [p.detach().clone() for p in method.parameters()]
    loader = ToyLoader(n=8, batch_size=8)
    Trainer(
        method,
        loader,
        noisy_augment,
        opt,
        [1.0],
        epochs=1,
        out_dir=tmp_path,
        grad_clip=1e-3,
        progress=False,
        tensorboard=False,
    ).fit()
    # one SGD step with lr 1: the update is the clipped gradient (head re-normalised afterwards)
    delta = torch.cat(
        [
            (p.detach() - b).flatten()
            for p, b in zip(method.backbone.parameters(), before, strict=False)
        ]
    )
    assert delta.norm() <= 1e-3 + 1e-6


@dataclass
class _AssignedOutput(StepOutput):
    assignments: torch.Tensor | None = None


class _CollapsedMethod(ToyMethod):
    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        out = super().training_step(batch, ctx)
        ids = torch.zeros(batch.indices.shape[0], dtype=torch.long)  # everything in cluster 0
        return _AssignedOutput(loss=out.loss, logs=out.logs, assignments=ids)


def test_collapse_is_reported_from_step_assignments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    result = _trainer(tmp_path, epochs=1, method=_CollapsedMethod()).fit()
    assert "only 1 of 5 clusters" in result.collapse
    assert "only 1 of 5 clusters" in capsys.readouterr().out
    assert result.history[0]["collapse_clusters_used"] == 1.0
