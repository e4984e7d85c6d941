"""The training loop: drives a :class:`~selflabel.methods.base.Method` through its hooks.

Usage::

    trainer = Trainer(method, loader, augment, optimizer, cosine_schedule(0.6, 6e-4, total, warm),
                      epochs=100, out_dir="runs/swav", config=cfg_dict, max_minutes=30)
    result = trainer.fit()          # resumes from runs/swav/checkpoint_last.pt if present

Loader contract: ``len(loader)`` steps per epoch, each ``(indices LongTensor, images uint8 (B, C,
H, W), labels LongTensor)``; ``loader.sampler.set_epoch(epoch)`` is called when it exists, and the
data order must depend only on (seed, epoch) for exact resumes. ``augment(images_on_device)``
returns the list of float views (global crops first).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from selflabel.engine import checkpoint as ckpt
from selflabel.engine.distributed import barrier, get_rank, get_world_size, is_distributed, wrap_ddp
from selflabel.engine.monitor import CollapseMonitor, check_finite
from selflabel.engine.precision import autocast, make_grad_scaler, resolve_amp
from selflabel.engine.resume import Progress, load_training_state, save_training_state
from selflabel.engine.runlog import ProgressBar, RunLogger, format_duration
from selflabel.engine.schedule import set_lr, set_weight_decay
from selflabel.methods.base import Batch, Method, StepContext, StepOutput

Schedule = Sequence[float] | np.ndarray | Callable[[int], float]


class TrainLoader(Protocol):
    """What the trainer iterates: sized, yielding ``(indices, images uint8, labels)``."""

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did. ``stopped_early`` is ``None`` or ``"max_minutes"``."""

    epochs_done: int
    iterations: int
    stopped_early: str | None
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None
    train_seconds: float = 0.0
    collapse: str = ""


class _StepModule(nn.Module):
    """Lets DistributedDataParallel see ``training_step`` as the forward pass."""

    def __init__(self, method: Method) -> None:
        super().__init__()
        self.method = method

    def forward(self, batch: Batch, ctx: StepContext) -> StepOutput:
        return self.method.training_step(batch, ctx)


class Trainer:
    """Epochs of ``training_step`` + backward + optimiser step, with resume, logs and checkpoints.

    Only rank 0 writes logs and the checkpoint (other ranks add a small side file with their
    buffers and RNG state). Every argument is described in docs/engine.md.
    """

    def __init__(
        self,
        method: Method,
        loader: TrainLoader,
        augment: Callable[[Tensor], list[Tensor]],
        optimizer: torch.optim.Optimizer,
        lr_schedule: Schedule,
        *,
        epochs: int,
        out_dir: str | Path,
        device: str | torch.device = "cpu",
        amp: str = "auto",
        channels_last: bool = False,
        wd_schedule: Schedule | None = None,
        grad_clip: float | None = None,
        max_minutes: float | None = None,
        checkpoint_every: int | None = None,
        log_every: int = 10,
        eval_fn: Callable[[Method, int], dict[str, float]] | None = None,
        eval_every: int | None = None,
        config: dict[str, Any] | None = None,
        sync_bn: bool = False,
        find_unused_parameters: bool = False,
        monitor: CollapseMonitor | bool = True,
        progress: bool = True,
        tensorboard: bool = True,
        resume: bool = True,
        resume_ignore: tuple[str, ...] = ("max_minutes", "epochs"),
        dataset_size: int | None = None,
        seed: int | None = None,
    ) -> None:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        if not hasattr(loader, "__len__"):
            raise TypeError("loader must have len() (steps per epoch), e.g. a torch DataLoader")
        for name, v in (("checkpoint_every", checkpoint_every), ("eval_every", eval_every)):
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {v}")
        if log_every < 1 or (grad_clip is not None and grad_clip <= 0):
            raise ValueError(
                f"need log_every >= 1 and grad_clip > 0 or None, got {log_every}, {grad_clip}"
            )
        self.method, self.loader, self.augment, self.optimizer = method, loader, augment, optimizer
        self.epochs, self.out_dir, self.device = epochs, Path(out_dir), torch.device(device)
        self.iters_per_epoch = len(loader)
        if self.iters_per_epoch < 1:
            raise ValueError("the loader yields no batches: check the dataset size and batch size")
        self.total_iters = epochs * self.iters_per_epoch
        self._lr = _as_fn(lr_schedule, self.total_iters, "lr_schedule")
        wd = wd_schedule
        self._wd = None if wd is None else _as_fn(wd, self.total_iters, "wd_schedule")
        self.amp, self.amp_dtype = amp, resolve_amp(amp, self.device)
        self.scaler = make_grad_scaler(self.amp_dtype, self.device)
        self.grad_clip, self.max_minutes, self.keep_every = grad_clip, max_minutes, checkpoint_every
        self.log_every, self.eval_fn, self.eval_every = log_every, eval_fn, eval_every
        self.config: dict[str, Any] = ckpt.to_plain(config or {})
        self.rank, self.world_size = get_rank(), get_world_size()
        self.resume, self.resume_ignore, self.show_progress = resume, resume_ignore, progress
        self.seed = seed
        self.channels_last = channels_last
        self.method.to(self.device)
        if channels_last:  # NHWC convolutions: faster on GPU with AMP and on CPU (oneDNN)
            self.method.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._step_module = wrap_ddp(
            _StepModule(method), self.device, sync_bn, find_unused_parameters=find_unused_parameters
        )
        self.monitor: CollapseMonitor | None = (
            monitor
            if isinstance(monitor, CollapseMonitor)
            else CollapseMonitor(method.n_clusters)
            if monitor and method.n_clusters >= 2
            else None
        )
        self.log = RunLogger(self.out_dir, enabled=self.rank == 0, tensorboard=tensorboard)
        if dataset_size is None:  # StepContext.dataset_size: from loader.dataset or .source
            data: Any = getattr(loader, "dataset", None)
            data = getattr(loader, "source", None) if data is None else data
            dataset_size = len(data) if hasattr(data, "__len__") else 0
        self.dataset_size = dataset_size
        self.state = Progress()
        self._step_times: list[float] = []
        self._last_loss: float | None = None
        self._last_logs: dict[str, float] = {}
        self._last_batch = 0

    # ------------------------------------------------------------------------------ the loop
    def fit(self) -> TrainResult:
        """Train (resuming if a checkpoint exists) until ``epochs`` or the time budget."""
        t_start, stopped, collapse, last_ckpt = time.monotonic(), None, "", None
        st = self.state
        if self.resume and (last_ckpt := ckpt.find_resume(self.out_dir)) is not None:
            st = self.state = load_training_state(
                last_ckpt,
                self.method,
                self.optimizer,
                self.scaler,
                config=self.config,
                ignore=self.resume_ignore,
            )
            self.log.truncate(st.iteration)
            first_rng = st.loader_rng if st.step > 0 and st.loader_rng else st.rng
            if first_rng is not None:  # mid-epoch: the loader's draws, then st.rng at the step
                ckpt.restore_rng(first_rng)
        elif self.seed is not None:  # a fresh run: seed torch, CUDA, numpy, random (+ rank)
            ckpt.seed_everything(self.seed + self.rank)
        while st.epoch < self.epochs and stopped is None:
            epoch, skip, losses, t_epoch = st.epoch, st.step, [], time.monotonic()
            self._set_epoch(epoch)
            self.method.train()
            if skip == 0:  # a mid-epoch resume already ran on_epoch_start (its effects are buffers)
                self.method.on_epoch_start(self._ctx())
                st.loader_rng = ckpt.capture_rng()
                if self.monitor is not None:
                    self.monitor.reset()
            bar = ProgressBar(
                self.iters_per_epoch,
                desc=f"epoch {epoch + 1}/{self.epochs}",
                enabled=self.show_progress and self.rank == 0,
                initial=skip,
            )
            for i, data in enumerate(self.loader):
                if i < skip:  # replay the loader up to the saved step, then the saved RNG
                    continue
                if i == skip and skip > 0 and st.rng is not None:
                    ckpt.restore_rng(st.rng)
                loss, time_up = self._train_step(data, self._ctx(), t_start)
                losses.append(loss)
                st.step, st.iteration = st.step + 1, st.iteration + 1
                self._after_step(bar, loss)
                if time_up and st.step < self.iters_per_epoch:
                    stopped = "max_minutes"
                    break
            bar.close()
            if stopped is not None:  # keep the partial epoch: a resume continues at this step
                last_ckpt = self._save()
                break
            self.method.on_epoch_end(self._ctx())
            st.epoch, st.step = epoch + 1, 0
            row = self._epoch_row(epoch, losses, time.monotonic() - t_epoch)
            collapse = row.pop("collapse", "")
            st.history.append(row)
            rng = ckpt.capture_rng()
            last_ckpt = self._save()  # before evaluating: a finished epoch is never lost
            if self.eval_fn is not None and self.eval_every and st.epoch % self.eval_every == 0:
                row.update(self._evaluate())
            ckpt.restore_rng(rng)  # evaluation must not change the training's random stream
            if st.epoch < self.epochs and self._any_rank(self._time_up(t_start)):
                stopped = "max_minutes"
        self.log.close()
        return TrainResult(
            st.epoch,
            st.iteration,
            stopped,
            list(st.history),
            last_ckpt,
            time.monotonic() - t_start,
            collapse,
        )

    def _layout(self, view: Tensor) -> Tensor:
        if self.channels_last and view.ndim == 4:
            return view.contiguous(memory_format=torch.channels_last)
        return view

    def _train_step(self, data: Any, ctx: StepContext, t_start: float) -> tuple[float, bool]:
        indices, images, labels = data
        t0 = time.perf_counter()
        dev = self.device
        images = images.to(dev, non_blocking=True)
        batch = Batch(
            indices=indices.to(dev, non_blocking=True),
            views=[self._layout(v) for v in self.augment(images)],
            labels=None if labels is None else labels.to(dev, non_blocking=True),
        )
        lr = self.state.lr = self._lr(ctx.iteration)
        set_lr(self.optimizer, lr)
        if self._wd is not None:
            set_weight_decay(self.optimizer, self._wd(ctx.iteration))
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.amp_dtype, dev):
            out: StepOutput = self._step_module(batch, ctx)
        if not isinstance(out.loss, Tensor) or out.loss.ndim != 0:
            raise ValueError(f"{type(self.method).__name__}.training_step must return a 0-d loss")
        # one collective per step: the mean loss (logs, NaN stop) and "is any rank out of time?"
        flag = torch.tensor(float(self._time_up(t_start)), device=out.loss.device)
        shared = torch.stack([out.loss.detach().float(), flag])
        if is_distributed() and self.world_size > 1:
            torch.distributed.all_reduce(shared)
            shared[0] /= self.world_size
        loss_v, time_up = float(shared[0].item()), bool(shared[1].item() > 0)
        amp = self.amp if self.amp_dtype is not None else "off"
        check_finite(loss_v, ctx, lr=lr, last_finite_loss=self._last_loss, amp=amp, logs=out.logs)
        self.scaler.scale(out.loss).backward()
        self.scaler.unscale_(self.optimizer)  # hooks and clipping see true gradients
        self.method.on_before_optimizer_step(ctx)
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.method.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.method.on_after_optimizer_step(ctx)
        if self.monitor is not None:
            self.monitor.update(loss_v, getattr(out, "assignments", None), out.logs)
        self._last_loss, self._last_logs = loss_v, out.logs
        self._step_times.append(time.perf_counter() - t0)
        self._last_batch = images.shape[0] * self.world_size
        return loss_v, time_up

    # ---------------------------------------------------------------------- helpers
    def _ctx(self) -> StepContext:
        return StepContext(
            epoch=self.state.epoch,
            iteration=self.state.iteration,
            iters_per_epoch=self.iters_per_epoch,
            total_iters=self.total_iters,
            world_size=self.world_size,
            rank=self.rank,
            dataset_size=self.dataset_size,
        )

    def _set_epoch(self, epoch: int) -> None:
        """``loader.set_epoch`` or else ``loader.sampler.set_epoch``, when present."""
        target: Any = self.loader
        if not hasattr(target, "set_epoch"):
            target = getattr(self.loader, "sampler", None)
        if hasattr(target, "set_epoch"):
            target.set_epoch(epoch)

    def _time_up(self, t_start: float) -> bool:
        return self.max_minutes is not None and time.monotonic() - t_start >= 60 * self.max_minutes

    def _any_rank(self, flag: bool) -> bool:
        if not (is_distributed() and self.world_size > 1):
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        torch.distributed.all_reduce(t)
        return bool(t.item() > 0)

    def _save(self) -> Path:
        return save_training_state(
            self.out_dir,
            self.method,
            self.optimizer,
            self.scaler,
            self.state,
            config=self.config,
            keep_every=self.keep_every,
        )

    def _after_step(self, bar: ProgressBar, loss: float) -> None:
        st, window = self.state, self._step_times[-self.log_every :]
        ips = self._last_batch * len(window) / max(sum(window), 1e-9)
        eta = sum(self._step_times) / len(self._step_times) * (self.total_iters - st.iteration)
        bar.update(
            1, loss=f"{loss:.4f}", lr=f"{st.lr:.3g}", img_s=f"{ips:.0f}", eta=format_duration(eta)
        )
        if st.iteration % self.log_every == 0 or st.step == self.iters_per_epoch:
            self.log.log(
                {"loss": loss, "lr": st.lr, "images_per_s": ips, **self._last_logs},
                kind="train",
                epoch=st.epoch,
                iteration=st.iteration,
            )

    def _epoch_row(self, epoch: int, losses: list[float], seconds: float) -> dict[str, Any]:
        mean = float(np.mean(losses)) if losses else math.nan
        row: dict[str, Any] = {
            "epoch": epoch,
            "loss": mean,
            "lr": self.state.lr,
            "epoch_time_s": seconds,
        }
        if self.monitor is not None:
            report = self.monitor.report(first_epoch=epoch == 0)
            row.update({f"collapse_{k}": v for k, v in report.stats.items()})
            if report.collapsed and self.rank == 0:
                print(f"[selflabel] epoch {epoch}: {report.diagnosis}", flush=True)
            row["collapse"] = report.diagnosis
        logged = {k: v for k, v in row.items() if k not in ("epoch", "collapse")}
        self.log.log(logged, kind="epoch", epoch=epoch, iteration=self.state.iteration)
        return row

    def _evaluate(self) -> dict[str, float]:
        """``eval_fn`` on rank 0 only (others wait), in eval mode; metrics prefixed ``eval_``."""
        metrics: dict[str, float] = {}
        if self.rank == 0 and self.eval_fn is not None:
            self.method.eval()
            found = self.eval_fn(self.method, self.state.epoch)
            self.method.train()
            metrics = {f"eval_{k}": float(v) for k, v in found.items()}
            self.log.log(
                dict(found), kind="eval", epoch=self.state.epoch - 1, iteration=self.state.iteration
            )
        barrier()
        return metrics


def _as_fn(schedule: Schedule, total_iters: int, label: str) -> Callable[[int], float]:
    if callable(schedule):
        fn = schedule
        return lambda it: float(fn(it))
    values = np.asarray(schedule, dtype=np.float64)
    if values.ndim != 1 or len(values) < total_iters:
        raise ValueError(
            f"{label} has {values.size} values but training runs {total_iters} "
            "iterations: build it with total_iters=epochs * len(loader)"
        )
    return lambda it: float(values[it])
