"""Synchronised batch norm that also works on CPU (gloo), and the converter the engine uses.

``torch.nn.SyncBatchNorm`` only accepts GPU/XPU tensors in training (torch 2.13 raises
"SyncBatchNorm expected input tensor to be on GPU"). :class:`CrossRankBatchNorm` computes the
batch statistics over all ranks with autograd-aware ``all_reduce`` calls, on any device, so a
2-process CPU run normalises exactly like one process on the concatenated batch. On CUDA the
converter uses torch's fused ``SyncBatchNorm``::

    model = convert_sync_batchnorm(model, torch.device("cpu"))   # BatchNorm*d -> CrossRankBatchNorm
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward sums the gradients over ranks (each rank's loss depends on
    every rank's input through the shared statistics)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, t: Tensor) -> Tensor:
        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


def _all_reduce(t: Tensor) -> Tensor:
    out: Tensor = _AllReduceSum.apply(t)
    return out


def _distributed_world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class CrossRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are the mean and variance over every rank's batch.

    Outside training, without a process group or with one process it is ordinary batch norm.
    Statistics use two passes (mean, then centred squares) for numerical agreement with
    single-process batch norm; the running variance is the unbiased one, as in torch.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        if not self.training or _distributed_world() == 1:
            return super().forward(input)
        C = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, C] + [1] * (input.dim() - 2)
        x = input.float()
        local_n = torch.tensor([input.numel() // C], dtype=torch.float32, device=input.device)
        sums = _all_reduce(torch.cat([x.sum(dims), local_n]))
        n = sums[C]
        mean = sums[:C] / n
        centred = x - mean.view(shape)
        var = _all_reduce((centred * centred).sum(dims)) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if (
            self.track_running_stats
            and self.running_mean is not None
            and self.running_var is not None
        ):
            with torch.no_grad():
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
                if self.momentum is None and self.num_batches_tracked is not None:
                    factor = 1.0 / float(self.num_batches_tracked.item())
                else:
                    factor = self.momentum if self.momentum is not None else 0.1
                unbiased = var * (n / (n - 1).clamp(min=1))
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        return out.to(input.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace batch-norm layers by synchronised ones (in place for submodules; returns the root).

    CUDA: ``nn.SyncBatchNorm.convert_sync_batchnorm``. Other devices: :class:`CrossRankBatchNorm`
    sharing the same parameter and buffer tensors (an optimiser built before keeps working).
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_cpu(module)


def _convert_cpu(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, (CrossRankBatchNorm, nn.SyncBatchNorm)
    ):
        out = CrossRankBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        if module.affine:
            out.weight = module.weight
            out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child))
    return out
