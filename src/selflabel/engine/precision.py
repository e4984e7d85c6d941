"""Mixed precision choice: ``torch.amp`` autocast on CUDA only, fp32 everywhere else.

Usage::

    dtype = resolve_amp("auto", torch.device("cuda"))  # bfloat16 where supported, else float16
    with autocast(dtype, device):
        out = method.training_step(batch, ctx)
    scaler = make_grad_scaler(dtype, device)            # enabled only for float16
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

AMP_MODES = ("auto", "bf16", "fp16", "off")


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or ``None`` for fp32.

    ``"auto"`` is bf16 on CUDA devices that support it, fp16 on older CUDA devices and fp32 on
    CPU. Explicit ``"bf16"``/``"fp16"`` also fall back to fp32 on CPU (CPU training is fp32).
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    if amp == "off" or device.type != "cuda":
        return None
    if amp == "fp16":
        return torch.float16
    bf16_ok = torch.cuda.is_bf16_supported()
    if amp == "bf16" and not bf16_ok:
        raise ValueError(
            "amp='bf16' but this GPU does not support bfloat16: use amp='fp16' or 'auto'"
        )
    return torch.bfloat16 if bf16_ok else torch.float16


def autocast(
    dtype: torch.dtype | None, device: torch.device
) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``dtype``; a no-op context for ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler:
    """A ``GradScaler`` that is enabled only for float16 autocast."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
