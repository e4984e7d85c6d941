"""Optimisers: SwAV-style LARS, parameter groups without decay on biases and norms, a builder.

Parameter groups carry three extra keys that the engine understands:

- ``lars`` (bool): :class:`LARS` adapts the step of this group with its trust ratio;
- ``lr_mult`` (float): :func:`selflabel.engine.schedule.set_lr` sets ``lr = schedule * lr_mult``;
- ``wd_mult`` (float): :func:`selflabel.engine.schedule.set_weight_decay` sets
  ``weight_decay = schedule * wd_mult`` (0 for biases and norms, so they never decay).

Usage::

    opt = build_optimizer("lars", model, lr=4.8, weight_decay=1e-6, momentum=0.9)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al., 2017), as used by SwAV.

    For a parameter ``w`` with gradient ``g`` in a group with ``lars=True``::

        d = g + weight_decay * w
        d = d * eta * ||w|| / ||d||        (only when both norms are > 0)
        buf = momentum * buf + d
        w = w - lr * buf

    Groups with ``lars=False`` (biases and norm parameters from :func:`param_groups`) take the
    plain SGD-with-momentum step with their own ``weight_decay`` (0 from :func:`param_groups`).

    Example::

        opt = LARS(param_groups(model, weight_decay=1e-6), lr=0.3, momentum=0.9)
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 1e-6,
        eta: float = 0.001,
        *,
        lars: bool = True,
        nesterov: bool = False,
    ) -> None:
        if lr < 0:
            raise ValueError(f"LARS: lr must be >= 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"LARS: momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"LARS: weight_decay must be >= 0, got {weight_decay}")
        if eta <= 0:
            raise ValueError(f"LARS: eta (trust coefficient) must be > 0, got {eta}")
        if nesterov and momentum == 0:
            raise ValueError("LARS: nesterov=True needs momentum > 0")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "eta": eta,
            "lars": lars,
            "nesterov": nesterov,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Take one optimisation step; ``closure`` re-evaluates the loss as in torch optimisers."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if wd != 0:
                    d = d.add(p, alpha=wd)
                if group["lars"]:
                    w_norm = torch.linalg.vector_norm(p)
                    d_norm = torch.linalg.vector_norm(d)
                    trust = torch.where(
                        (w_norm > 0) & (d_norm > 0),
                        group["eta"] * w_norm / d_norm,
                        torch.ones_like(w_norm),
                    )
                    d = d.mul(trust)
                if momentum != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = torch.clone(d).detach()
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(momentum).add_(d)
                    d = d.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.add_(d, alpha=-lr)
        return loss


def is_bias_or_norm(name: str, param: Tensor, module: nn.Module | None = None) -> bool:
    """Whether a parameter is a bias or belongs to a normalisation layer (1-D parameters)."""
    if module is not None and isinstance(module, _NORM_TYPES):
        return True
    return param.ndim <= 1 or name.endswith(".bias") or name == "bias"


def param_groups(
    model: nn.Module | Iterable[Tensor],
    weight_decay: float,
    *,
    exclude_bias_and_norm: bool = True,
) -> list[dict[str, Any]]:
    """Split parameters into a decayed, LARS-adapted group and a bias/norm group without either.

    Parameters with ``requires_grad=False`` are left out. A bare iterable of tensors is split by
    dimension (1-D tensors are biases/norm scales). Empty groups are dropped.

    Example::

        groups = param_groups(model, weight_decay=1e-6)
        # [{"params": [...], "weight_decay": 1e-6, "wd_mult": 1.0, "lars": True},
        #  {"params": [...], "weight_decay": 0.0, "wd_mult": 0.0, "lars": False}]
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    named: list[tuple[str, Tensor, nn.Module | None]] = []
    if isinstance(model, nn.Module):
        seen: set[int] = set()
        for mod_name, module in model.named_modules():
            for p_name, p in module.named_parameters(recurse=False):
                if id(p) in seen or not p.requires_grad:
                    continue
                seen.add(id(p))
                named.append((f"{mod_name}.{p_name}" if mod_name else p_name, p, module))
    else:
        named = [(f"param{i}", p, None) for i, p in enumerate(model) if p.requires_grad]
    if not named:
        raise ValueError("param_groups: the model has no trainable parameters")
    decay: list[Tensor] = []
    no_decay: list[Tensor] = []
    for name, p, module in named:
        excluded = exclude_bias_and_norm and is_bias_or_norm(name, p, module)
        (no_decay if excluded else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "wd_mult": 1.0, "lars": True},
        {"params": no_decay, "weight_decay": 0.0, "wd_mult": 0.0, "lars": False},
    ]
    return [g for g in groups if g["params"]]


OPTIMIZERS = ("sgd", "lars", "adamw")


def build_optimizer(
    name: str,
    model_or_params: nn.Module | Iterable[Tensor],
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    *,
    eta: float = 0.001,
    exclude_bias_and_norm: bool = True,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """Build ``"sgd"``, ``"lars"`` or ``"adamw"`` over :func:`param_groups` of a model.

    ``lr`` is the initial value; the trainer overwrites it every iteration from its schedule.

    Example::

        opt = build_optimizer("sgd", model, lr=0.1, weight_decay=5e-4, momentum=0.9)
    """
    groups = param_groups(
        model_or_params, weight_decay, exclude_bias_and_norm=exclude_bias_and_norm
    )
    key = name.lower()
    if key == "lars":
        return LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta)
    if key == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if key == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
