"""Heads on top of a backbone: SwAV's projection MLP, prototypes, SeLa's multi-head classifier.

Parameter names follow the official code so that checkpoints load: a SwAV network whose attributes
are ``projection_head`` and ``prototypes`` has the keys ``projection_head.0.weight``,
``projection_head.1.running_mean``, ``projection_head.3.weight``, ``prototypes.weight`` (one set)
or ``prototypes.prototypes0.weight``, ``prototypes.prototypes1.weight``, ... (several sets), as in
facebookresearch/swav; SeLa's heads are ``top_layer0``, ``top_layer1``, ...

Example::

    head = ProjectionHead(512, hidden_dim=2048, out_dim=128)
    protos = Prototypes(128, [3000, 3000])
    z = head(torch.randn(8, 512))          # (8, 128), unit rows
    scores = protos(z)                     # [(8, 3000), (8, 3000)]
    protos.normalize_()                    # after every optimiser step
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MultiHeadClassifier", "ProjectionHead", "Prototypes"]


def _is_positive_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0


class ProjectionHead(nn.Sequential):
    """SwAV's projection: ``Linear → BatchNorm1d → ReLU → Linear``, then L2 normalisation.

    Args:
        in_dim: backbone feature size.
        hidden_dim: hidden width (2048 in SwAV); 0 gives a single ``Linear(in_dim, out_dim)``.
        out_dim: embedding size (128 in SwAV); 0 means no projection at all (the features pass
            through unchanged, then are normalised if ``normalize``, as SwAV with ``output_dim=0``).
        batch_norm: BatchNorm after the hidden layer (official SwAV always has it).
        normalize: L2-normalise the output rows.

    Attributes:
        out_dim: size of the output (``out_dim`` or ``in_dim`` when ``out_dim=0``).

    Example: ``ProjectionHead(2048)(torch.randn(4, 2048)).norm(dim=1)`` is all ones.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        batch_norm: bool = True,
        normalize: bool = True,
    ) -> None:
        if in_dim < 1:
            raise ValueError(f"in_dim must be the positive backbone feature size, got {in_dim}")
        if hidden_dim < 0 or out_dim < 0:
            raise ValueError(
                f"hidden_dim and out_dim must be >= 0 (0 disables), got {hidden_dim}, {out_dim}"
            )
        layers: list[nn.Module] = []
        if out_dim > 0 and hidden_dim > 0:
            layers.append(nn.Linear(in_dim, hidden_dim))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
        elif out_dim > 0:
            layers.append(nn.Linear(in_dim, out_dim))
        super().__init__(*layers)
        self.in_dim = in_dim
        self.out_dim: int = out_dim if out_dim > 0 else in_dim
        self.normalize = normalize

    def forward(self, x: Tensor) -> Tensor:
        """Project ``(B, in_dim)`` to ``(B, out_dim)`` (unit rows when ``normalize``)."""
        x = super().forward(x)
        if self.normalize:
            x = F.normalize(x, dim=1, p=2)
        return x


class Prototypes(nn.Module):
    """One or several sets of prototype vectors, scored by a bias-free linear layer.

    ``forward(z)`` returns a list with one ``(B, K_h)`` score tensor per set (head), always a
    list, even for one set. With one set the weight is ``weight`` (so ``prototypes.weight`` in a
    network, as official SwAV's ``nn.Linear``); with several they are ``prototypes0.weight``,
    ``prototypes1.weight``, ... (official SwAV's ``MultiPrototypes``).

    Args:
        dim: embedding size.
        n_prototypes: number of prototypes, or a sequence of them for several heads.

    Example::

        protos = Prototypes(128, 3000)
        protos.normalize_()
        (scores,) = protos(F.normalize(torch.randn(8, 128), dim=1))   # cosine similarities
    """

    def __init__(self, dim: int, n_prototypes: int | Sequence[int]) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be the positive embedding size, got {dim}")
        if isinstance(n_prototypes, numbers.Integral):
            counts: list[object] = [n_prototypes]
        elif isinstance(n_prototypes, Sequence) and not isinstance(n_prototypes, str):
            counts = list(n_prototypes)
        else:
            raise TypeError(
                f"n_prototypes must be an int or a list of ints, got {type(n_prototypes).__name__}"
            )
        if not counts or any(not _is_positive_int(k) for k in counts):
            raise ValueError(
                f"n_prototypes must be a positive int or a non-empty list of them, "
                f"got {n_prototypes!r}"
            )
        self.dim = dim
        # (every entry is an Integral now; the filter only narrows the type)
        self.n_prototypes = tuple(int(k) for k in counts if isinstance(k, numbers.Integral))
        self.multi_head = not isinstance(n_prototypes, numbers.Integral)
        if self.multi_head:
            for i, k in enumerate(self.n_prototypes):
                self.add_module(f"prototypes{i}", nn.Linear(dim, k, bias=False))
        else:
            self.weight = nn.Parameter(torch.empty(self.n_prototypes[0], dim))
            # the default initialisation of nn.Linear, as in SwAV
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    @property
    def n_heads(self) -> int:
        """Number of prototype sets."""
        return len(self.n_prototypes)

    def weights(self) -> list[Tensor]:
        """The ``(K_h, dim)`` prototype matrices, one per head."""
        if not self.multi_head:
            return [self.weight]
        return [getattr(self, f"prototypes{i}").weight for i in range(self.n_heads)]

    def forward(self, z: Tensor) -> list[Tensor]:
        """Scores ``z @ C_h.T`` of ``(B, dim)`` embeddings, one ``(B, K_h)`` tensor per head."""
        return [F.linear(z, w) for w in self.weights()]

    @torch.no_grad()
    def normalize_(self) -> None:
        """L2-normalise every prototype vector in place (SwAV does this after every step)."""
        for w in self.weights():
            w.copy_(F.normalize(w, dim=1, p=2))


class MultiHeadClassifier(nn.Module):
    """SeLa's ``T`` linear heads of ``K`` classes each; ``forward`` returns the list of logits.

    The heads are named ``top_layer0``, ``top_layer1``, ... as in SeLa's code.

    Example: ``[l.shape for l in MultiHeadClassifier(4096, 3000, 10)(x)]`` → ten ``(B, 3000)``.
    """

    def __init__(self, in_dim: int, n_classes: int, n_heads: int = 1) -> None:
        super().__init__()
        if in_dim < 1 or n_classes < 1 or n_heads < 1:
            raise ValueError(
                f"in_dim, n_classes and n_heads must be positive, got {in_dim}, {n_classes}, "
                f"{n_heads}"
            )
        self.in_dim = in_dim
        self.n_classes = n_classes
        self.n_heads = n_heads
        for i in range(n_heads):
            head = nn.Linear(in_dim, n_classes)
            nn.init.normal_(head.weight, 0.0, 0.01)
            nn.init.zeros_(head.bias)
            self.add_module(f"top_layer{i}", head)

    def heads(self) -> list[nn.Linear]:
        """The linear heads in order."""
        return [getattr(self, f"top_layer{i}") for i in range(self.n_heads)]

    def forward(self, x: Tensor) -> list[Tensor]:
        """Logits ``(B, n_classes)`` of every head for features ``(B, in_dim)``."""
        return [head(x) for head in self.heads()]
