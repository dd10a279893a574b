"""Energy of damped systems followed on the doubled phase space.

For a doubled system (:func:`symflow.systems.doubled`, Galley 2013) the doubled Hamiltonian ``H`` is
conserved by the exact flow and vanishes on the physical limit, so its error says how well the map
respects the doubled structure — but not how the physical energy decays. This module reports both,
per trajectory:

* ``H(y(t)) − H(y(0))`` (absolute: ``H(y(0)) = 0`` on the physical limit);
* the physical energy ``E(t) = E(P y(t))`` of the projected state and ``E(t) − E(0)`` (it decreases,
  ``dE/dt = −2λ|p|²``);
* where a reference is known (the physical exact solution, else the damped field integrated with
  ``dopri5``), the relative error ``|E(t) − E_ref(t)| / E_ref(t)`` while ``E_ref(t) > floor·E(0)``,
  and the distance of the projected state from the reference;
* ``limit_defect``: ``|y − L(P(y))|``, how far the doubled state left the physical limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from symflow.integrators import InvalidArgumentError, Solution, solve
from symflow.integrators.reprs import compact_repr, short
from symflow.systems import HamiltonianSystem

from .energy import _as_trajectories  # the one (t, y) / Solution / Trajectories coercion, shape-checked
from .sources import Trajectories

Tensor = torch.Tensor

ENERGY_FLOOR = 1e-3
"""Relative energy errors are reported only while ``E_ref(t) > ENERGY_FLOOR · E(0)``."""


@dataclass(frozen=True)
class PhysicalEnergyReport:
    """Physical and doubled energy of ``N`` doubled trajectories (see the module docstring).

    Attributes: ``t (N, T)``; ``physical_energy``, ``energy_change`` (``E(t) − E(0)``),
    ``doubled_change`` (``H(t) − H(0)``), ``limit_defect``, and (with a reference) ``reference_energy``,
    ``energy_relative_error`` (NaN below the floor) and ``state_error``, all ``(N, T)``, NaN where
    invalid.
    """

    t: Tensor
    physical_energy: Tensor
    energy_change: Tensor
    doubled_change: Tensor
    limit_defect: Tensor
    reference_energy: Tensor | None
    energy_relative_error: Tensor | None
    state_error: Tensor | None
    floor: float

    def summary(self) -> dict[str, Any]:
        def top(x: Tensor | None) -> float | None:
            if x is None:
                return None
            x = x[torch.isfinite(x)]
            return float(x.abs().max()) if x.numel() else None

        e0 = self.physical_energy[:, 0]
        last = _last_valid(self.physical_energy)
        return {
            "physical_energy_initial_median": float(e0.median()),
            "physical_energy_final_over_initial_median": float((last / e0).median()),
            "physical_energy_change_max": top(self.energy_change),
            "doubled_hamiltonian_change_max": top(self.doubled_change),
            "limit_defect_max": top(self.limit_defect),
            "physical_energy_relative_error_max": top(self.energy_relative_error),
            "state_error_max": top(self.state_error),
            "energy_floor": self.floor,
            "reference": self.reference_energy is not None,
        }

    def __repr__(self) -> str:
        s = self.summary()
        return compact_repr(
            self,
            fields=(),
            n=int(self.t.shape[0]),
            energy_change_max=s["physical_energy_change_max"],
            doubled_change_max=s["doubled_hamiltonian_change_max"],
            relative_error_max=s["physical_energy_relative_error_max"],
            t=short(self.t),
        )


def doubling_of(system: Any):
    """``system.doubling``, or a one-line error for a system that is not a doubled one."""
    link = getattr(system, "doubling", None)
    if link is None:
        raise InvalidArgumentError(
            "system",
            getattr(system, "name", system),
            "a doubled-phase-space system (e.g. get_system('damped_harmonic_oscillator'))",
        )
    return link


def physical_reference(system: HamiltonianSystem, x0: Tensor, ts: Tensor, *, rtol: float = 1e-11) -> Tensor:
    """The physical reference ``(B, T, 2n)``: the exact solution where known (the oscillator), else the
    damped field integrated with ``dopri5`` at tight tolerances (float64)."""
    physical = doubling_of(system).physical
    x0 = x0.to(torch.float64)
    ts = ts.to(torch.float64)
    if physical.exact_flow is not None:
        return physical.flow(ts[None, :], x0[:, None, :])
    sol = solve(physical.field, x0, ts, method="dopri5", rtol=rtol, atol=rtol * 1e-2)
    return sol.ys


def _last_valid(x: Tensor) -> Tensor:
    finite = torch.isfinite(x)
    idx = (finite.cumsum(1) * finite).argmax(1)
    return x.gather(1, idx[:, None])[:, 0]


def physical_energy_report(
    data: Trajectories | Solution | tuple[Tensor, Tensor],
    system: HamiltonianSystem,
    *,
    reference: bool = True,
    floor: float = ENERGY_FLOOR,
) -> PhysicalEnergyReport:
    """Physical energy ``E(t) − E(0)`` of the projected trajectories next to the doubled ``H``.

    Args:
        data: doubled trajectories: :class:`Trajectories`, a ``Solution``, or ``(t, y)`` with ``t``
            ``(T,)`` or ``(N, T)`` and ``y (N, T, 4n)``.
        system: the doubled system (``system.doubling`` set), e.g.
            ``get_system("damped_harmonic_oscillator", lam=0.1)``.
        reference: also compare with the physical reference solution from each trajectory's first
            projected state (exact where known, else ``dopri5`` at ``rtol=1e-11``).
        floor: relative energy errors only while ``E_ref(t) > floor · E(0)``.
    """
    link = doubling_of(system)
    if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor < 1:
        raise InvalidArgumentError("floor", floor, "a fraction 0 <= floor < 1")
    traj = _as_trajectories(data)
    if traj.dim != link.dim:
        raise InvalidArgumentError(
            "data",
            f"states of dimension {traj.dim}",
            f"doubled states of size {link.dim} ({system.name})",
        )
    mask = traj.mask
    nan = math.nan
    y = torch.where(mask[..., None], traj.y, torch.zeros_like(traj.y)).double()
    with torch.no_grad():
        e = link.physical_energy(y)
        h = system.energy(y)
        defect = link.limit_defect(y)
    t = torch.where(mask, traj.t.double(), torch.full_like(traj.t.double(), nan))

    def masked(x: Tensor) -> Tensor:
        return torch.where(mask, x, torch.full_like(x, nan))

    ref_e = rel = state_err = None
    if reference:
        x = link.project(y)
        refs = []
        for i in range(traj.n):  # per-sample grids (files may be irregular)
            k = int(traj.length[i])
            ts = traj.t[i, :k].double()
            r = physical_reference(system, x[i : i + 1, 0], ts - ts[0])[0]
            refs.append(torch.cat([r, torch.full((traj.t.shape[1] - k, r.shape[-1]), nan, dtype=r.dtype)]))
        ref_x = torch.stack(refs)
        ref_e = link.physical.energy(ref_x)
        alive = mask & (ref_e > floor * ref_e[:, :1])
        rel = torch.where(alive, (e - ref_e).abs() / ref_e.clamp_min(1e-300), torch.full_like(e, nan))
        state_err = masked((x - ref_x).norm(dim=-1))
        ref_e = masked(ref_e)
    return PhysicalEnergyReport(
        t=t,
        physical_energy=masked(e),
        energy_change=masked(e - e[:, :1]),
        doubled_change=masked(h - h[:, :1]),
        limit_defect=masked(defect),
        reference_energy=ref_e,
        energy_relative_error=rel,
        state_error=state_err,
        floor=float(floor),
    )
