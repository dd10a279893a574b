"""Energy error along trajectories and the secular drift estimator.

For a trajectory ``y(t)`` and a Hamiltonian ``H`` the per-sample error is

    e(t) = |H(y(t)) − H(y(t₀))| / |H(y(t₀))|        (relative), or
    e(t) = |H(y(t)) − H(y(t₀))|                      (absolute, when |H(y(t₀))| < ``abs_below``),

summarised per sample by its maximum, its RMS over the valid time points, and the **drift exponent**.

Drift estimator. Symplectic integrators keep the energy error bounded and oscillating for
exponentially long times (backward error analysis: they conserve a modified Hamiltonian ``H̃ = H +
O(hᵖ)``; Hairer, Lubich & Wanner, *Geometric Numerical Integration*, §IX.8); non-symplectic methods
drift, ``e(t) ≈ c·t`` (RK4 on an oscillator damps it), and round-off alone performs a random walk,
``e ∝ √t``. A least-squares slope of ``e`` against ``t`` cannot separate these — an oscillating error
sampled at an unlucky phase has a slope, and the slope's size depends on units. Instead the time span
``(t₀, t₀ + S]`` is cut into windows of equal *logarithmic* width covering its last ``decades`` decades
(``[S·10^{−decades}, S]``), the maximum of ``e`` in each window (its envelope, insensitive to the
phase of the oscillation) is taken, and

    drift exponent α = least-squares slope of log max_window e  against  log t_window,

with ``t_window`` the geometric centre of each window. Bounded oscillation gives ``α ≈ 0``, linear
drift ``α ≈ 1``, a random walk ``α ≈ ½``. A sample is flagged ``drifting`` when ``α > 0.5``
(:data:`DRIFT_THRESHOLD`). The estimate needs windows longer than the oscillation period, i.e.
``S·10^{−decades}`` above it; windows without valid points are skipped and fewer than three usable
windows give NaN. ``drift_rate`` is the matching least-squares slope of the window maxima against
``t`` (error per unit time), for reporting magnitudes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from symflow.integrators import InvalidArgumentError, Solution
from symflow.integrators.reprs import compact_repr, short
from symflow.systems import HamiltonianSystem

from .sources import Trajectories, from_solution

Tensor = torch.Tensor

ABS_BELOW = 1e-10
"""Below this ``|H(y₀)|`` the error is absolute (a relative error of a near-zero energy is noise)."""

DRIFT_THRESHOLD = 0.5
"""Samples with drift exponent above this are reported as drifting (see the module docstring)."""


@dataclass(frozen=True)
class EnergyReport:
    """Energy error of ``N`` trajectories under one Hamiltonian.

    Attributes:
        name: which Hamiltonian (``"true"``, ``"learned"``).
        t: ``(N, T)`` times (NaN where invalid).
        energy: ``(N, T)`` values of ``H`` (NaN where invalid).
        error: ``(N, T)`` relative (or absolute) error ``e(t)`` (NaN where invalid).
        relative: ``(N,)`` True where the error is relative.
        max, rms: ``(N,)`` per-sample maximum and root-mean-square of ``e``.
        drift_exponent, drift_rate: ``(N,)`` the drift estimator (module docstring).
    """

    name: str
    t: Tensor
    energy: Tensor
    error: Tensor
    relative: Tensor
    max: Tensor
    rms: Tensor
    drift_exponent: Tensor
    drift_rate: Tensor

    @property
    def drifting(self) -> Tensor:
        """``(N,)`` True where the drift exponent exceeds :data:`DRIFT_THRESHOLD`."""
        return self.drift_exponent > DRIFT_THRESHOLD

    def summary(self) -> dict[str, Any]:
        """JSON-ready aggregate over samples (NaN-aware; samples with no valid error are ignored)."""
        mx = self.max[torch.isfinite(self.max)]
        alpha = self.drift_exponent[torch.isfinite(self.drift_exponent)]
        rate = self.drift_rate[torch.isfinite(self.drift_rate)]
        return {
            "name": self.name,
            "n_samples": int(self.max.shape[0]),
            "relative_samples": int(self.relative.sum()),
            "max_error": _float(mx.max()) if mx.numel() else None,
            "median_max_error": _float(mx.median()) if mx.numel() else None,
            "rms_error": _float(self.rms[torch.isfinite(self.rms)].pow(2).mean().sqrt())
            if bool(torch.isfinite(self.rms).any())
            else None,
            "median_drift_exponent": _float(alpha.median()) if alpha.numel() else None,
            "median_drift_rate": _float(rate.median()) if rate.numel() else None,
            "drifting_samples": int(self.drifting.sum()),
            "drift_threshold": DRIFT_THRESHOLD,
            **_initial_energy(self.energy),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return compact_repr(
            self,
            fields=("name",),
            samples=s["n_samples"],
            max_error=s["max_error"],
            median_drift_exponent=s["median_drift_exponent"],
            drifting=f"{s['drifting_samples']}/{s['n_samples']}",
            t=short(self.t),
        )


def energy_error(
    data: Trajectories | Solution | tuple[Tensor, Tensor],
    hamiltonian: HamiltonianSystem | Callable[[Tensor], Tensor],
    *,
    name: str = "true",
    abs_below: float = ABS_BELOW,
    decades: float = 2.0,
    windows: int = 10,
) -> EnergyReport:
    """Energy error of trajectories under ``hamiltonian`` (a system, or a callable ``H(y) -> (...)``).

    ``data`` is :class:`Trajectories`, a :class:`~symflow.integrators.Solution`, or a pair
    ``(t, y)`` with ``t`` of shape ``(T,)`` or ``(N, T)`` and ``y`` of shape ``(N, T, D)``.
    """
    traj = _as_trajectories(data)
    h = hamiltonian.energy if isinstance(hamiltonian, HamiltonianSystem) else hamiltonian
    if not callable(h):
        raise InvalidArgumentError("hamiltonian", hamiltonian, "a HamiltonianSystem or a callable H(y)")
    if isinstance(abs_below, bool) or not isinstance(abs_below, (int, float)) or abs_below < 0:
        raise InvalidArgumentError("abs_below", abs_below, "a non-negative threshold")
    if isinstance(decades, bool) or not isinstance(decades, (int, float)) or not decades > 0:
        raise InvalidArgumentError("decades", decades, "a positive number of decades")
    if isinstance(windows, bool) or not isinstance(windows, int) or windows < 3:
        raise InvalidArgumentError("windows", windows, "an integer >= 3")
    mask = traj.mask
    with torch.no_grad():
        energy = h(traj.y)
    if not isinstance(energy, Tensor) or tuple(energy.shape) != tuple(traj.t.shape):
        raise InvalidArgumentError(
            f"hamiltonian {name!r}", energy, f"values of shape {tuple(traj.t.shape)} (one per state)"
        )
    energy = energy.to(traj.y.dtype)
    nan = torch.full_like(energy, math.nan)
    energy = torch.where(mask, energy, nan)
    e0 = energy[:, :1]
    relative = e0[:, 0].abs() >= abs_below
    scale = torch.where(relative.unsqueeze(1), e0.abs(), torch.ones_like(e0))
    error = (energy - e0).abs() / scale
    ok = mask & torch.isfinite(error)
    error = torch.where(ok, error, nan)
    t = torch.where(mask, traj.t, nan)
    count = ok.sum(1)
    zero = torch.zeros_like(error)
    mx = torch.where(ok, error, torch.full_like(error, -math.inf)).amax(1)
    mx = torch.where(count > 0, mx, torch.full_like(mx, math.nan))
    rms = (torch.where(ok, error, zero).pow(2).sum(1) / count.clamp(min=1)).sqrt()
    rms = torch.where(count > 0, rms, torch.full_like(rms, math.nan))
    alpha, rate = drift_exponent(t, error, decades=decades, windows=windows)
    return EnergyReport(name, t, energy, error, relative, mx, rms, alpha, rate)


def energy_errors(
    data: Trajectories | Solution | tuple[Tensor, Tensor],
    hamiltonians: Mapping[str, HamiltonianSystem | Callable[[Tensor], Tensor]],
    **kwargs: Any,
) -> dict[str, EnergyReport]:
    """:func:`energy_error` for several Hamiltonians at once, e.g. ``{"true": system, "learned": H_θ}``."""
    if not isinstance(hamiltonians, Mapping) or not hamiltonians:
        raise InvalidArgumentError("hamiltonians", hamiltonians, "a non-empty mapping name -> H")
    traj = _as_trajectories(data)
    return {name: energy_error(traj, h, name=name, **kwargs) for name, h in hamiltonians.items()}


def drift_exponent(
    t: Tensor, error: Tensor, *, decades: float = 2.0, windows: int = 10
) -> tuple[Tensor, Tensor]:
    """Per-sample drift exponent and drift rate of errors ``(N, T)`` at times ``(N, T)`` (NaN = invalid).

    See the module docstring for the estimator. Returns two ``(N,)`` tensors.
    """
    valid = torch.isfinite(t) & torch.isfinite(error)
    inf = torch.full_like(t, math.inf)
    t0 = torch.where(valid, t, inf).amin(1, keepdim=True)
    elapsed = torch.where(valid, t - t0, torch.zeros_like(t))
    span = elapsed.amax(1, keepdim=True)
    lo = span * 10.0 ** (-float(decades))
    # Window index of each point: equal widths in log(elapsed) over [lo, span].
    pos = torch.log(elapsed.clamp(min=1e-300) / lo.clamp(min=1e-300)) / math.log(10.0) / float(decades)
    idx = torch.floor(pos * windows).clamp(max=windows - 1)
    use = valid & (elapsed >= lo) & (span > 0)
    idx = torch.where(use, idx, torch.zeros_like(idx)).long()
    # Envelope: maximum error per window (-inf where a window is empty).
    env = torch.full((t.shape[0], windows), -math.inf, dtype=t.dtype, device=t.device)
    env = env.scatter_reduce(1, idx, torch.where(use, error, -inf), reduce="amax", include_self=True)
    edges = lo * 10.0 ** (
        float(decades) * torch.arange(windows + 1, dtype=t.dtype, device=t.device) / windows
    )
    centre = (edges[:, :-1] * edges[:, 1:]).sqrt()  # (N, W)
    good = torch.isfinite(env) & (env > 0)
    x = torch.log(centre)
    y = torch.log(torch.where(good, env, torch.ones_like(env)))
    alpha = _ls_slope(x, y, good)
    rate = _ls_slope(centre, torch.where(good, env, torch.zeros_like(env)), torch.isfinite(env))
    return alpha, rate


def _ls_slope(x: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """Least-squares slope of ``y`` on ``x`` per row over the entries where ``w``; NaN below 3 points."""
    wf = w.to(x.dtype)
    n = wf.sum(1)
    safe = n.clamp(min=1)
    mx = (wf * x).sum(1) / safe
    my = (wf * y).sum(1) / safe
    dx = (x - mx.unsqueeze(1)) * wf
    sxx = (dx * dx).sum(1)
    sxy = (dx * (y - my.unsqueeze(1))).sum(1)
    slope = sxy / torch.where(sxx > 0, sxx, torch.ones_like(sxx))
    return torch.where((n >= 3) & (sxx > 0), slope, torch.full_like(slope, math.nan))


def _as_trajectories(data: Any) -> Trajectories:
    if isinstance(data, Trajectories):
        return data
    if isinstance(data, Solution):
        return from_solution(data)
    if isinstance(data, tuple) and len(data) == 2:
        t, y = data
        if not isinstance(y, Tensor) or y.dim() != 3:
            raise InvalidArgumentError("y", y, "states of shape (N, T, D)")
        t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        n, steps = y.shape[:2]
        if t.dim() == 1:
            t = t.expand(n, steps)
        if tuple(t.shape) != (n, steps):
            raise InvalidArgumentError("t", t, f"times of shape ({steps},) or ({n}, {steps})")
        return Trajectories(t.clone(), y, torch.full((n,), steps, dtype=torch.long, device=y.device))
    raise InvalidArgumentError("data", data, "Trajectories, a Solution, or a pair (t, y)")


def _float(x: Tensor) -> float:
    return float(x.item())


def _initial_energy(energy: Tensor) -> dict[str, float | None]:
    """Min, median and max over samples of ``H`` at each trajectory's first state (the orbits' energy)."""
    first = energy[:, 0] if energy.dim() == 2 and energy.shape[1] else energy.new_zeros(0)
    first = first[torch.isfinite(first)]
    if not first.numel():
        return {"initial_energy_min": None, "initial_energy_median": None, "initial_energy_max": None}
    return {
        "initial_energy_min": _float(first.min()),
        "initial_energy_median": _float(first.median()),
        "initial_energy_max": _float(first.max()),
    }
