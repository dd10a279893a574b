"""Flow maps of damped systems, learned on the doubled phase space and read back physically.

A damped system ``q̇ = p, ṗ = −∇V(q) − 2λp`` is the *physical limit* of a Hamiltonian system on the
doubled phase space (Galley 2013; :mod:`symflow.systems.dissipative`). SympFlow (or the flow-map
PINN) is trained there like on any Hamiltonian system — Hamiltonian matching on the doubled ``H``
(unsupervised) or trajectory pairs of doubled states (from data) — and so stays exactly symplectic
on ``R^{4n}``. To read a physical trajectory back, follow the SympFlow paper (Canizares et al.,
arXiv:2412.16787, 2024, damped-oscillator experiment): every step of the learned map is followed by
the projection onto the physical limit,

    y_{k+1} = L(P(N(Δt, y_k))),   y_0 = L(x_0),   x_k = P(y_k),

with ``L`` the lift ``(q, p) ↦ (q, q, p, −p)`` and ``P`` the projection ``↦ ((q₁+q₂)/2, (p₁−p₂)/2)``.
The exact doubled flow leaves the physical limit invariant, so this changes nothing for the exact
map; for a learned one it removes the error component off the limit before the anti-damped mirror
modes (growth ``e^{2λt}``) can amplify it. :class:`PhysicalLimitFlow` is that composed map as a
:class:`~symflow.learners.FlowMap` (``flow``/``rollout`` compose it), :func:`physical_rollout` the
physical trajectory, and :func:`damped_metrics` the must-show figures against a reference.
"""

from __future__ import annotations

from typing import Any

import torch

from symflow.diagnostics.dissipative import doubling_of, physical_reference
from symflow.integrators.errors import InvalidArgumentError
from symflow.systems import HamiltonianSystem

from .flowmap import FlowMap

Tensor = torch.Tensor

__all__ = [
    "PhysicalLimitFlow",
    "damped_metrics",
    "physical_energy_summary",
    "physical_reference",
    "physical_rollout",
]


class PhysicalLimitFlow(FlowMap):
    """``L ∘ P ∘ N``: a flow map ``N`` on the doubled space followed by the projection onto the
    physical limit (the lift of the projection). ``N`` itself is unchanged (and still symplectic);
    this wrapper only reads it. Its :meth:`flow` and :meth:`rollout` re-project after every ``Δt``.
    """

    def __init__(self, model: FlowMap, system: HamiltonianSystem) -> None:
        link = doubling_of(system)
        if not isinstance(model, FlowMap):
            raise InvalidArgumentError("model", model, "a flow map (SympFlow or FlowMapPINN)")
        if model.dim != link.dim:
            raise InvalidArgumentError(
                "model",
                f"a flow map on states of dimension {model.dim}",
                f"one on the doubled space ({link.dim})",
            )
        super().__init__(
            model.dim, model.dt, model.derivatives if model.derivatives != "closed_form" else "func"
        )
        self.model = model
        self.doubling = link
        self.learner = model.learner

    def forward(self, t: Tensor | float, x0: Tensor) -> Tensor:
        return self.doubling.to_limit(self.model(t, x0))

    def config(self) -> dict[str, Any]:
        return {"wrapped": self.model.config(), "projection": self.doubling.config()}


def physical_rollout(model: FlowMap, system: HamiltonianSystem, x0: Tensor, ts: Tensor) -> Tensor:
    """The physical trajectory ``(B, T, 2n)`` from physical states ``x0 (B, 2n)`` at the times ``ts``:
    ``x0`` lifted, the learned map composed with the projection after every step, states projected."""
    link = doubling_of(system)
    wrapped = model if isinstance(model, PhysicalLimitFlow) else PhysicalLimitFlow(model, system)
    y0 = link.lift(x0)
    with torch.no_grad():
        ys = wrapped.rollout(y0.to(wrapped.parameter_dtype), ts)
    return link.project(ys)


def damped_metrics(
    prediction: Tensor, reference: Tensor, system: HamiltonianSystem, *, energy_floor: float = 1e-3
) -> dict[str, float]:
    """The issue's figures for physical trajectories ``(B, T, 2n)``: the max state error, and the max
    relative error of the physical energy ``|E_pred − E| / E`` over the times where the reference
    ``E(t) > energy_floor · E(0)`` (below that the energy is too small for a relative error to mean
    anything)."""
    physical = doubling_of(system).physical
    err = (prediction.double() - reference.double()).norm(dim=-1)
    e_ref = physical.energy(reference.double())
    e_pred = physical.energy(prediction.double())
    alive = e_ref > energy_floor * e_ref[:, :1]
    rel = ((e_pred - e_ref).abs() / e_ref.clamp_min(1e-300))[alive]
    return {
        "max_error": float(err.max()),
        "final_error": float(err[:, -1].max()),
        "energy_rel_error_max": float(rel.max()) if rel.numel() else float("nan"),
        "energy_floor": energy_floor,
    }


def physical_energy_summary(
    model: FlowMap, system: HamiltonianSystem, y0: Tensor, horizon: float, *, floor: float = 1e-3
) -> tuple[dict[str, float], dict[str, Any]]:
    """Physical figures of a flow map on a doubled system, from doubled states ``y0`` on the physical
    limit, every ``Δt`` to ``horizon``: max state error and max relative error of the physical energy
    (while ``E > floor·E(0)``) against the reference. Returns the summary and, for the energy figure,
    ``{"ts", "relative_error"}`` (zero below the floor)."""
    link = doubling_of(system)
    steps = int(horizon / model.dt + 1e-9)
    ts = torch.arange(steps + 1, dtype=torch.float64) * model.dt
    x0 = link.project(y0.double())
    pred = physical_rollout(model, system, x0, ts).double()
    ref = physical_reference(system, x0, ts)
    m = damped_metrics(pred, ref, system, energy_floor=floor)
    e_ref = link.physical.energy(ref)
    alive = e_ref > floor * e_ref[:, :1]
    rel = torch.where(alive, (link.physical.energy(pred) - e_ref).abs() / e_ref.clamp_min(1e-300), 0.0)
    summary = {
        "energy_horizon": float(ts[-1]),
        "physical_error_max": m["max_error"],
        "physical_energy_relative_error_max": m["energy_rel_error_max"],
        "physical_energy_floor": floor,
    }
    return summary, {"ts": ts, "relative_error": rel}
