"""The training objective of neural-ODE discovery, as an ``nn.Module`` (so DDP can wrap it).

For a batch of observation windows — per-sample times ``ts (B, T)``, noisy states ``ys (B, T, D)``
and a mask ``(B, T)`` of real (not padded) observations — the model is integrated from each
window's first observation with the sample's own times (irregular grids, no union) and scored by

    L = Σ_{b,k} m_{bk} ‖ŷ_b(t_{bk}) − y_{bk}‖² / (D Σ_{b,k} m_{bk}).

Gradients come from the continuous adjoint (O(1) memory in solver steps) or, with
``adjoint=False``, from backprop through the solver. Wrapping this module in
``DistributedDataParallel`` averages the gradients across ranks: the adjoint's backward hands the
parameter gradients to autograd like any other op, so DDP's hooks fire as usual.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from symflow.integrators import AdjointOptions

from .models import observed_solve

Tensor = torch.Tensor


def fill_padded_times(ts: Tensor, mask: Tensor) -> Tensor:
    """Replace padded (masked-out, possibly NaN) times by a strictly increasing tail after the last
    real time, so the solver accepts the grid; predictions there are ignored by the loss."""
    if bool(mask.all()):
        return ts
    real = torch.where(mask, ts, torch.full_like(ts, float("-inf")))
    last = real.max(dim=1, keepdim=True).values
    first = torch.where(mask, ts, torch.full_like(ts, float("inf"))).min(dim=1, keepdim=True).values
    span = (last - first).clamp(min=1.0)
    rank = torch.cumsum((~mask).to(ts.dtype), dim=1)  # 1, 2, ... over the padded tail
    return torch.where(mask, ts, last + rank * span * 1e-6)


class TrajectoryObjective(nn.Module):
    """Masked mean squared error of a field integrated from each window's first observation through the
    window's own times (adjoint or backprop gradients), ``L = Σ m‖ŷ − y‖² / (D Σ m)``.
    """

    def __init__(
        self,
        field: nn.Module,
        *,
        method: str = "dopri5",
        rtol: float = 1e-6,
        atol: float = 1e-8,
        dt: float | None = None,
        adjoint: bool | AdjointOptions = True,
    ) -> None:
        super().__init__()
        self.field = field
        self.method = method
        self.solver: dict[str, Any] = {"dt": dt} if dt is not None else {"rtol": rtol, "atol": atol}
        self.adjoint = adjoint

    def predict(self, ts: Tensor, y0: Tensor) -> Tensor:
        return observed_solve(self.field, y0, ts, self.method, adjoint=self.adjoint, **self.solver).ys

    def forward(self, ts: Tensor, ys: Tensor, mask: Tensor) -> Tensor:
        ts = fill_padded_times(ts, mask)
        pred = self.predict(ts, ys[:, 0])
        m = mask.unsqueeze(-1).to(ys.dtype)
        diff = torch.where(mask.unsqueeze(-1), pred - ys, torch.zeros_like(ys))  # padded ys may be NaN
        return (diff * diff * m).sum() / (m.sum() * ys.shape[-1]).clamp(min=1.0)
