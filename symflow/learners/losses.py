"""Training losses: Hamiltonian matching (unsupervised) and trajectory matching (from data).

**Hamiltonian matching** (seed 004, "Training SympFlow"): with ``t_i ∈ [0, Δt]`` and
``x0_i ∈ Ω`` drawn afresh,

    L(θ) = (1/N) Σ_i ‖ ∂_t N_θ(t_i, x0_i) − J∇H(N_θ(t_i, x0_i)) ‖²,

where ``∂_t N`` is exact (``torch.func.jvp``, the hand-derived forward mode, or an autograd loop —
see :data:`~symflow.learners.flowmap.DERIVATIVES`) and differentiable w.r.t. the weights. The same
residual trains the PINNs (for the single-IVP PINN, ``N(t)`` has no ``x0``).

**Trajectory matching**: observed trajectories ``ts (B, T)``, ``ys (B, T, D)``, ``mask (B, T)`` —
exactly the batch layout of the data layer's collate function (NaN padding where ``mask`` is
false). Every ordered pair of observations ``(j, k)`` of one trajectory with
``0 < t_k − t_j ≤ horizon`` (``anchors="all"``), or only those with ``j`` the trajectory's first
observation (``anchors="first"``), gives a target: ``N(t_k − t_j, y_j) ≈ y_k`` (composition beyond
``Δt``), and the loss is the mean squared error over a minibatch of pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from symflow.integrators.errors import InvalidArgumentError
from symflow.integrators.reprs import compact_repr

from .flowmap import FlowMap
from .pinn import IVPPINN

Tensor = torch.Tensor
Field = Callable[[Tensor, Tensor], Tensor]


def hamiltonian_matching_residual(
    model: FlowMap, field: Field, t: Tensor, x0: Tensor, *, derivatives: str | None = None
) -> Tensor:
    """``∂_t N(t, x0) − f(t, N(t, x0))`` per sample, shape ``(B, D)``."""
    y, dy = model.time_derivative(t, x0, derivatives=derivatives)
    return dy - field(t, y)


def hamiltonian_matching_loss(
    model: FlowMap,
    field: Field,
    t: Tensor,
    x0: Tensor,
    *,
    derivatives: str | None = None,
    weights: Tensor | None = None,
) -> Tensor:
    """Mean over samples of the squared residual norm (the slides' ``L(θ)``), each sample's term
    multiplied by ``weights (B,)`` when given (e.g. ``1/|x0|²``: relative residuals)."""
    r2 = hamiltonian_matching_residual(model, field, t, x0, derivatives=derivatives).pow(2).sum(-1)
    return (r2 if weights is None else r2 * weights).mean()


def relative_weights(x0: Tensor, floor: float = 1e-8) -> Tensor:
    """``1 / max(|x0|², floor)``: Hamiltonian matching of relative residuals, so a state of size
    ``r`` is fitted to the same *relative* accuracy as any other — what a decaying (damped)
    trajectory needs for its energy to stay right as it shrinks."""
    return 1.0 / x0.pow(2).sum(-1).clamp_min(floor)


def ivp_residual(model: IVPPINN, field: Field, t: Tensor) -> Tensor:
    """``N'(t) − F(N(t))`` of a single-IVP PINN at the collocation times ``t (C,)``."""
    y, dy = model.time_derivative(t)
    return dy - field(t, y)


def ivp_loss(model: IVPPINN, field: Field, t: Tensor) -> Tensor:
    """Mean squared ODE residual ``‖dN/dt − J∇H(N)‖²`` of the single-IVP PINN at the times ``t``."""
    return ivp_residual(model, field, t).pow(2).sum(-1).mean()


@dataclass(frozen=True)
class TrajectoryPairs:
    """Supervised targets: ``N(gap[i], start[i]) ≈ end[i]``; ``trajectory[i]`` is the source row."""

    gap: Tensor
    start: Tensor
    end: Tensor
    trajectory: Tensor

    def __len__(self) -> int:
        return int(self.gap.shape[0])

    def __repr__(self) -> str:
        return compact_repr(self)


ANCHORS = ("all", "first")


def trajectory_pairs(
    ts: Tensor, ys: Tensor, mask: Tensor | None = None, *, horizon: float, anchors: str = "all"
) -> TrajectoryPairs:
    """Every pair of observed states of one trajectory at most ``horizon`` apart in time.

    Args:
        ts: ``(B, T)`` observation times (strictly increasing where observed), or ``(T,)`` shared.
        ys: ``(B, T, D)`` observed states.
        mask: ``(B, T)`` bool, true where observed (``None``: all observed). Padded entries may be
            NaN; they are never read into the arithmetic.
        horizon: the largest time gap to pair (``Δt`` to train the map alone; larger gaps are
            predicted by composition).
        anchors: ``"all"`` (every observation starts pairs) or ``"first"`` (only each trajectory's
            first observation does: ``y_0 → y_k``, the published SympFlow code's setting).
    """
    if not isinstance(ys, torch.Tensor) or ys.ndim != 3:
        raise InvalidArgumentError("ys", ys, "a tensor of shape (B, T, D)")
    B, T, _ = ys.shape
    if not isinstance(ts, torch.Tensor) or ts.shape not in ((T,), (B, T)):
        raise InvalidArgumentError("ts", ts, f"a tensor of shape ({T},) or ({B}, {T}) matching ys")
    ts = ts.to(ys.dtype).expand(B, T)
    if mask is None:
        mask = torch.ones(B, T, dtype=torch.bool, device=ys.device)
    if not isinstance(mask, torch.Tensor) or mask.shape != (B, T) or mask.dtype != torch.bool:
        raise InvalidArgumentError("mask", mask, f"a bool tensor of shape ({B}, {T})")
    if isinstance(horizon, bool) or not (isinstance(horizon, (int, float)) and horizon > 0):
        raise InvalidArgumentError("horizon", horizon, "a positive time")
    if anchors not in ANCHORS:
        raise InvalidArgumentError("anchors", anchors, f"one of {', '.join(ANCHORS)}")
    t_obs = torch.where(mask, ts, ts.new_zeros(()))
    if not torch.isfinite(t_obs).all() or not torch.isfinite(ys[mask]).all():
        bad = (~torch.isfinite(t_obs) | ~torch.isfinite(ys).all(-1)) & mask
        row = int(bad.any(-1).nonzero()[0])
        raise InvalidArgumentError("ys", ys, f"finite observed times and states (trajectory {row} is not)")
    # The first observation of each row (masks need not be prefixes here).
    first = mask & (mask.cumsum(-1) == 1)
    gaps, starts, ends, rows = [], [], [], []
    for offset in range(1, T):
        gap = t_obs[:, offset:] - t_obs[:, :-offset]
        both = mask[:, offset:] & mask[:, :-offset]
        if both.any() and (gap[both] <= 0).any():
            row = int(((gap <= 0) & both).any(-1).nonzero()[0])
            raise InvalidArgumentError("ts", ts, f"strictly increasing observed times (trajectory {row})")
        keep = both & (gap <= horizon)
        if anchors == "first":
            keep = keep & first[:, :-offset]
        if not keep.any():
            continue
        b, j = keep.nonzero(as_tuple=True)
        gaps.append(gap[b, j])
        starts.append(ys[b, j])
        ends.append(ys[b, j + offset])
        rows.append(b)
    if not gaps:
        raise InvalidArgumentError(
            "horizon", horizon, "a time span that contains at least two observations of one trajectory"
        )
    return TrajectoryPairs(torch.cat(gaps), torch.cat(starts), torch.cat(ends), torch.cat(rows))


def trajectory_loss(model: FlowMap, pairs: TrajectoryPairs, index: Tensor | None = None) -> Tensor:
    """Mean squared prediction error ``‖N(gap, start) − end‖²`` over ``pairs[index]``."""
    gap, start, end = pairs.gap, pairs.start, pairs.end
    if index is not None:
        gap, start, end = gap[index], start[index], end[index]
    pred = model(gap, start) if bool((gap <= model.dt).all()) else model.flow(gap, start)
    return (pred - end).pow(2).sum(-1).mean()
