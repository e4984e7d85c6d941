"""The engine layer of selflabel: the training loop and what it needs.

- :mod:`~selflabel.engine.trainer`: :class:`Trainer` drives a method's hooks; :class:`TrainResult`.
- :mod:`~selflabel.engine.optim`: :class:`LARS`, :func:`param_groups`, :func:`build_optimizer`.
- :mod:`~selflabel.engine.schedule`: :func:`cosine_schedule`, :func:`set_lr`.
- :mod:`~selflabel.engine.checkpoint`: atomic, ``weights_only`` checkpoints and RNG state.
- :mod:`~selflabel.engine.distributed`: ``torchrun`` or single-process helpers, DDP wrapping.
- :mod:`~selflabel.engine.runlog`, :mod:`~selflabel.engine.monitor`: logs, collapse and NaN checks.

See docs/engine.md.
"""

from selflabel.engine.checkpoint import (
    CheckpointError,
    capture_rng,
    find_resume,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    seed_everything,
)
from selflabel.engine.distributed import (
    DistInfo,
    all_gather_tensor,
    barrier,
    init_distributed,
    is_main_process,
    reduce_mean,
    wrap_ddp,
)
from selflabel.engine.monitor import CollapseMonitor, NonFiniteLossError, check_finite
from selflabel.engine.optim import LARS, build_optimizer, param_groups
from selflabel.engine.runlog import RunLogger, read_metrics
from selflabel.engine.schedule import cosine_schedule, set_lr, set_weight_decay
from selflabel.engine.sync_bn import CrossRankBatchNorm, convert_sync_batchnorm
from selflabel.engine.trainer import Trainer, TrainResult

__all__ = [
    "LARS",
    "CheckpointError",
    "CollapseMonitor",
    "CrossRankBatchNorm",
    "DistInfo",
    "NonFiniteLossError",
    "RunLogger",
    "TrainResult",
    "Trainer",
    "all_gather_tensor",
    "barrier",
    "build_optimizer",
    "capture_rng",
    "check_finite",
    "convert_sync_batchnorm",
    "cosine_schedule",
    "find_resume",
    "init_distributed",
    "is_main_process",
    "load_checkpoint",
    "param_groups",
    "read_metrics",
    "reduce_mean",
    "restore_rng",
    "save_checkpoint",
    "seed_everything",
    "set_lr",
    "set_weight_decay",
    "wrap_ddp",
]
