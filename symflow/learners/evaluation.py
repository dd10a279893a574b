"""How good is a learned flow map: residual, a-posteriori estimate, trajectory and energy errors.

* **Residual** of the Hamiltonian-matching loss on held-out collocation points.
* **A-posteriori estimate** (seed 004, "A-posteriori error estimate"): if the residual
  ``r(t) = N'(t) − F(N(t))`` satisfies ``‖r(t_c)‖ ≤ ε`` at the nodes of a quadrature rule of order
  ``p`` on ``[0, Δt]``, then ``‖x(t) − N(t)‖ ≤ α Δt^{p+1} + β ε`` there. The constants are not
  known; we *estimate* them from Grönwall's inequality,
  ``‖x(t) − N(t)‖ ≤ ∫_0^Δt e^{L(Δt−s)} ‖r(s)‖ ds ≤ β · sup‖r‖`` with ``β = (e^{LΔt} − 1)/L``,
  where ``L`` is the largest spectral norm of ``∂F/∂x`` seen along the model's path (a local
  Lipschitz estimate, not a proven bound). We report ``ε`` at the Gauss–Legendre nodes, ``β ε``,
  the Gauss–Legendre quadrature of the Grönwall integral (the quadrature error is the ``α`` term,
  not estimated), and the *true* error against a reference, side by side.
* **Trajectory error** of ``model.rollout`` against the exact flow (where the system has one) or a
  Gauss–Legendre (``gl6``) reference solve, and the **relative energy error**
  ``|H(x_t) − H(x_0)| / |H(x_0)|`` along long rollouts, with the early and late maxima and a
  least-squares slope that tell bounded oscillation from secular drift.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.func import jacrev, vmap

from symflow.integrators import solve
from symflow.systems import HamiltonianSystem, vector_field

from .flowmap import FlowMap
from .losses import hamiltonian_matching_residual
from .pinn import IVPPINN
from .recovery import gauss_legendre

Tensor = torch.Tensor


def reference_rollout(
    system: HamiltonianSystem, x0: Tensor, ts: Tensor, *, dt: float = 0.01, method: str = "gl6"
) -> Tensor:
    """True states at ``ts`` (``(T,)``, ``ts[0]`` the time of ``x0``): ``(B, T, D)`` in float64.

    The exact flow where the system has one, else a fixed-step ``gl6`` solve with step ``dt``
    (sixth order and symplectic: at ``dt = 0.01`` its error on the catalogue's smooth systems is far
    below the learned models').
    """
    x0 = x0.detach().to(torch.float64)
    ts = ts.detach().to(torch.float64)
    if system.exact_flow is not None:
        return system.flow((ts - ts[0])[None, :], x0[:, None, :])
    return solve(vector_field(system), x0, ts, method=method, dt=dt).ys


def lipschitz_estimate(system: HamiltonianSystem, states: Tensor) -> Tensor:
    """``max ‖∂F/∂x‖₂`` over ``states (..., D)`` for ``F = J∇H`` (spectral norm, via ``jacrev``)."""
    field = vector_field(system)
    flat = states.detach().reshape(-1, states.shape[-1]).to(torch.float64)
    zero = torch.zeros((), dtype=flat.dtype, device=flat.device)
    jac = vmap(jacrev(lambda y: field(zero, y)))(flat)
    return torch.linalg.matrix_norm(jac, ord=2).max()


def a_posteriori(
    model: FlowMap | IVPPINN,
    system: HamiltonianSystem,
    x0: Tensor | None = None,
    *,
    nodes: int = 4,
    dense: int = 41,
) -> dict[str, Any]:
    """The seed's residual-based error estimate next to the true error, on ``[0, Δt]``.

    For a flow map, one estimate per initial state in ``x0 (B, D)``; for an :class:`IVPPINN` its own
    initial state on ``[0, T]`` (``x0`` is ignored). Returns per-sample tensors and a summary.
    """
    field = vector_field(system)
    span = model.dt
    dtype, dev = next(model.parameters()).dtype, next(model.parameters()).device
    c, w = (v.to(dev) for v in gauss_legendre(nodes))
    grid = torch.linspace(0.0, span, dense, dtype=torch.float64, device=dev)
    if isinstance(model, IVPPINN):
        start = model.x0.detach()[None].to(torch.float64)

        def residual(t: Tensor) -> tuple[Tensor, Tensor]:  # t (T,) → (1, T, D)
            y, dy = model.time_derivative(t.to(dtype))
            return y[None].double(), (dy - field(t.to(dtype), y))[None].double()
    else:
        start = x0.detach().to(torch.float64)
        b = start.shape[0]

        def residual(t: Tensor) -> tuple[Tensor, Tensor]:
            tt = t.to(dtype)[None, :].expand(b, -1).reshape(-1)
            xx = start.to(dtype)[:, None, :].expand(-1, t.shape[0], -1).reshape(-1, start.shape[-1])
            y, dy = model.time_derivative(tt, xx)
            r = dy - field(tt, y)
            return y.reshape(b, t.shape[0], -1).double(), r.reshape(b, t.shape[0], -1).double()

    with torch.no_grad():
        _, r_nodes = residual(c * span)
        y_grid, r_grid = residual(grid)
    ref = reference_rollout(system, start, grid, dt=min(0.01, span / 100))
    true_err = (y_grid - ref).norm(dim=-1).amax(dim=-1)
    eps = r_nodes.norm(dim=-1).amax(dim=-1)
    eps_dense = r_grid.norm(dim=-1).amax(dim=-1)
    lip = float(lipschitz_estimate(system, y_grid))
    beta = span if lip < 1e-12 else math.expm1(lip * span) / lip
    growth = torch.exp(lip * (span - c * span))
    quad = (w * span * growth * r_nodes.norm(dim=-1)).sum(-1)
    per_sample = {
        "true_error": true_err,
        "epsilon_gl": eps,
        "epsilon_dense": eps_dense,
        "beta_epsilon_gl": beta * eps,
        "beta_epsilon_dense": beta * eps_dense,
        "gronwall_quadrature": quad,
    }
    summary = {
        "interval": span,
        "gl_nodes": nodes,
        "quadrature_order": 2 * nodes,
        "lipschitz_estimate": lip,
        "beta": beta,
        **{f"{k}_max": float(v.max()) for k, v in per_sample.items()},
        **{f"{k}_median": float(v.median()) for k, v in per_sample.items()},
        "estimate_covers_true_error": float((beta * eps_dense >= true_err).double().mean()),
    }
    return {"summary": summary, "per_sample": per_sample}


def residual_summary(model: FlowMap, system: HamiltonianSystem, t: Tensor, x0: Tensor) -> dict[str, float]:
    """Mean squared residual (the training loss) and its largest norm on held-out points."""
    with torch.no_grad():
        r = hamiltonian_matching_residual(model, vector_field(system), t, x0)
    norms = r.norm(dim=-1)
    return {"residual_mse": float(norms.pow(2).mean()), "residual_max": float(norms.max())}


def rollout_error(
    model: FlowMap, system: HamiltonianSystem, x0: Tensor, horizon: float, *, points: int = 201
) -> dict[str, Any]:
    """Error of ``model.rollout`` against the reference on ``points`` times in ``[0, horizon]``."""
    ts = torch.linspace(0.0, float(horizon), points, dtype=torch.float64, device=x0.device)
    with torch.no_grad():
        pred = model.rollout(x0, ts.to(x0.dtype)).double()
    ref = reference_rollout(system, x0, ts)
    err = (pred - ref).norm(dim=-1)
    scale = ref.norm(dim=-1).amax(dim=-1).clamp_min(1e-300)
    return {
        "ts": ts,
        "prediction": pred,
        "reference": ref,
        "error": err,
        "summary": {
            "horizon": float(horizon),
            "rollout_error_max": float(err.max()),
            "rollout_error_final_max": float(err[:, -1].max()),
            "rollout_error_final_median": float(err[:, -1].median()),
            "rollout_relative_error_max": float((err.amax(dim=-1) / scale).max()),
        },
    }


def energy_error(
    model: FlowMap, system: HamiltonianSystem, x0: Tensor, horizon: float, *, every: float | None = None
) -> dict[str, Any]:
    """Relative energy error of the true ``H`` along ``model.rollout`` to ``horizon``.

    Sampled every ``every`` (default ``Δt``, where the composition is exact arithmetic on the
    ``N(Δt)`` iterates). The summary has the overall maximum, the maxima over the first and last
    10% of the run, and the least-squares slope (per unit time) of the per-time maximum over
    samples: a bounded error has ``late ≈ early`` and a slope near zero; secular drift does not.
    """
    every = model.dt if every is None else float(every)
    steps = math.floor(horizon / every + 1e-9)
    ts = torch.arange(steps + 1, dtype=torch.float64, device=x0.device) * every
    with torch.no_grad():
        traj = model.rollout(x0, ts.to(x0.dtype)).double()
    h = system.energy(traj)
    h0 = system.energy(x0.double())[:, None]
    scale = h0.abs().clamp_min(1e-12)
    rel = (h - h0).abs() / scale
    worst = rel.amax(dim=0)
    tail = max(1, len(ts) // 10)
    tc = ts - ts.mean()
    slope = float((tc * (worst - worst.mean())).sum() / tc.pow(2).sum().clamp_min(1e-300))
    finite = torch.isfinite(rel).all()
    return {
        "ts": ts,
        "relative_error": rel,
        "summary": {
            "energy_horizon": float(ts[-1]),
            "energy_error_max": float(rel.max()) if finite else float("inf"),
            "energy_error_early_max": float(worst[1 : tail + 1].max()),
            "energy_error_late_max": float(worst[-tail:].max()),
            "energy_error_slope": slope,
            "energy_error_final_median": float(rel[:, -1].median()),
        },
    }
