"""Optimal transport for self-labelling: Sinkhorn-Knopp solvers that are exact, safe and fast.

* :func:`sinkhorn_codes` — SwAV's online codes for a batch of prototype scores (B, K).
* :func:`sinkhorn_equipartition` — SeLa's label step over a whole dataset (N, K): balanced hard
  labels, potentials for warm starts, soft targets via :meth:`EquipartitionResult.soft_plan`
  or :func:`transport_plan`.
* :func:`balanced_labels` / :func:`balanced_capacities` — rounding a plan to equal-size clusters.

Every function takes ``group``: ``None`` means a single process; a ``torch.distributed`` process
group (e.g. ``torch.distributed.group.WORLD``) means the rows are sharded across its processes
and the result equals the single-process one. See ``docs/ot.md``.
"""

from selflabel.ot.codes import plain_sinkhorn_codes, sinkhorn_codes
from selflabel.ot.equipartition import (
    EquipartitionResult,
    Potentials,
    sinkhorn_equipartition,
    transport_plan,
)
from selflabel.ot.rounding import balanced_capacities, balanced_labels

__all__ = [
    "EquipartitionResult",
    "Potentials",
    "balanced_capacities",
    "balanced_labels",
    "plain_sinkhorn_codes",
    "sinkhorn_codes",
    "sinkhorn_equipartition",
    "transport_plan",
]
