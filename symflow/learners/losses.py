"""Training losses: Hamiltonian matching (unsupervised) and trajectory matching (from data).

**Hamiltonian matching** (seed 004, "Training SympFlow"): with ``t_i ∈ [0, Δt]`` and
``x0_i ∈ Ω`` drawn afresh,

    L(θ) = (1/N) Σ_i ‖ ∂_t N_θ(t_i, x0_i) − J∇H(N_θ(t_i, x0_i)) ‖²,

where ``∂_t N`` is exact (``torch.func.jvp``, the hand-derived forward mode, or an autograd loop —
see :data:`~symflow.learners.flowmap.DERIVATIVES`) and differentiable w.r.t. the weights. The same
residual trains the PINNs (for the single-IVP PINN, ``N(t)`` has no ``x0``).

**Soft initial condition and collocation weights** (seed 004, slide "PINN"): a PINN whose
``constraint="soft"`` does not impose ``N(0) = x0`` minimises

    γ ‖N(0; x0) − x0‖² + Σ_i ω_i ‖N'(t_i; x0) − F(N(t_i; x0))‖²,

``ic_weight=γ`` and ``weights=ω`` (default ``ω_i = 1/C``, the mean; e.g. Gauss–Legendre quadrature
weights on their nodes make the sum a quadrature of ``(1/T)∫‖residual‖² dt``). For the flow map the
initial-condition term is averaged over the sampled ``x0``. With an exact constraint that term is
identically zero and ``ic_weight`` has no effect.

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
    model: FlowMap,
    field: Field,
    t: Tensor,
    x0: Tensor,
    *,
    derivatives: str | None = None,
    mu: Tensor | None = None,
) -> Tensor:
    """``∂_t N(t, x0) − f(t, N(t, x0))`` per sample, shape ``(B, D)``.

    With parameters ``mu (B, P)`` (a parametric map and family): ``∂_t N(t, x0; μ) − f(t, N; μ)``,
    where ``field(t, y, mu)`` is the family's field (:meth:`~symflow.systems.ParametricFamily.field`).
    """
    y, dy = model.time_derivative(t, x0, mu=mu, derivatives=derivatives)
    return dy - (field(t, y) if mu is None else field(t, y, mu))


def _weighted(sq: Tensor, weights: Tensor | None) -> Tensor:
    """``Σ ω_i sq_i`` (``ω_i = 1/C`` when ``weights`` is None)."""
    if weights is None:
        return sq.mean()
    if not isinstance(weights, Tensor) or weights.shape != sq.shape:
        raise InvalidArgumentError("weights", weights, f"collocation weights of shape {tuple(sq.shape)}")
    return (weights.to(sq) * sq).sum()


def _ic_weight(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidArgumentError("ic_weight", value, "a non-negative weight γ")
    return float(value)


def hamiltonian_matching_loss(
    model: FlowMap,
    field: Field,
    t: Tensor,
    x0: Tensor,
    *,
    derivatives: str | None = None,
    mu: Tensor | None = None,
    weights: Tensor | None = None,
    ic_weight: float = 0.0,
) -> Tensor:
    """Weighted squared residual norm (the slides' ``L(θ)``: the mean over samples by default), plus
    ``γ · mean ‖N(0, x0) − x0‖²`` for a soft-constrained model (``ic_weight=γ``)."""
    res = hamiltonian_matching_residual(model, field, t, x0, derivatives=derivatives, mu=mu)
    loss = _weighted(res.pow(2).sum(-1), weights)
    gamma = _ic_weight(ic_weight)
    if gamma and getattr(model, "constraint", None) == "soft":
        at_zero = model(torch.zeros_like(t), x0) if mu is None else model(torch.zeros_like(t), x0, mu)
        loss = loss + gamma * (at_zero - x0).pow(2).sum(-1).mean()
    return loss


def relative_weights(x0: Tensor, floor: float = 1e-8) -> Tensor:
    """``ωᵢ = 1 / (C · max(|x0ᵢ|², floor))`` for the ``C`` points: Hamiltonian matching of relative
    residuals (the mean of ``|rᵢ|² / |x0ᵢ|²``), so a state of size ``r`` is fitted to the same
    *relative* accuracy as any other — what a decaying (damped) trajectory needs for its energy to
    stay right as it shrinks."""
    return 1.0 / (x0.pow(2).sum(-1).clamp_min(floor) * x0.shape[0])


def ivp_residual(model: IVPPINN, field: Field, t: Tensor) -> Tensor:
    """``N'(t) − F(N(t))`` of a single-IVP PINN at the collocation times ``t (C,)``."""
    y, dy = model.time_derivative(t)
    return dy - field(t, y)


def ivp_loss(
    model: IVPPINN, field: Field, t: Tensor, *, weights: Tensor | None = None, ic_weight: float = 0.0
) -> Tensor:
    """``Σ ω_i ‖dN/dt(t_i) − F(N(t_i))‖²`` of the single-IVP PINN at the times ``t (C,)`` (the mean
    by default), plus ``γ ‖N(0) − x0‖²`` for ``constraint="soft"`` (``ic_weight=γ``)."""
    loss = _weighted(ivp_residual(model, field, t).pow(2).sum(-1), weights)
    gamma = _ic_weight(ic_weight)
    if gamma and model.constraint == "soft":
        loss = loss + gamma * (model(torch.zeros((), dtype=t.dtype, device=t.device)) - model.x0).pow(2).sum()
    return loss


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


def trajectory_loss(
    model: FlowMap, pairs: TrajectoryPairs, index: Tensor | None = None, params: Tensor | None = None
) -> Tensor:
    """Mean squared prediction error ``‖N(gap, start) − end‖²`` over ``pairs[index]``.

    ``params (N_traj, P)``: per-trajectory parameters of a parametric map; pair ``i`` uses
    ``params[pairs.trajectory[i]]``.
    """
    gap, start, end, rows = pairs.gap, pairs.start, pairs.end, pairs.trajectory
    if index is not None:
        gap, start, end, rows = gap[index], start[index], end[index], rows[index]
    mu = None if params is None else params[rows.to(params.device)]
    pred = model(gap, start, mu) if bool((gap <= model.dt).all()) else model.flow(gap, start, mu)
    return (pred - end).pow(2).sum(-1).mean()
