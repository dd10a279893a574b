"""Liouville transport: a phase-space density carried by a Hamiltonian flow.

A density ``ρ`` moved by a field ``f`` obeys the continuity equation ``∂ρ/∂t + ∇·(ρ f) = 0``; along a
trajectory this is the instantaneous change of variables ``d log ρ(y(t))/dt = −∇·f(y(t))``
(Chen et al., *Neural ODEs*, NeurIPS 2018, Thm. 1). For a Hamiltonian field ``f = J∇H``,

    ∇·f = tr(J ∇²H) = Σ_i (∂²H/∂q_i∂p_i − ∂²H/∂p_i∂q_i) = 0,

so ``log ρ`` is constant along trajectories (Liouville's theorem; Arnold, *Mathematical Methods of
Classical Mechanics*, §16; the flow preserves phase-space volume, ``det ∂φ_t/∂y0 = 1``).

:func:`transport_density` pushes an ensemble of initial conditions with their log-density values
forward by integrating ``[y, log ρ]`` with the exact divergence; :func:`liouville_check` does it for
a registered system and checks the result three independent ways: the integrated log-density change
(should be ~0), the log-determinant of the flow's Jacobian computed by automatic differentiation
through the solver (should be ~0, and equals minus the log-density change for *any* field), and the
states against the system's exact flow where one is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from symflow.integrators import InvalidArgumentError, solve
from symflow.integrators.reprs import compact_repr
from symflow.systems import HamiltonianSystem, get_system, vector_field

from .augmented import AugmentedField

Tensor = torch.Tensor


@dataclass(frozen=True)
class DensityTransport:
    """An ensemble pushed along a flow with its log-density values.

    Attributes:
        ts: output times ``(T,)``.
        ys: states ``(B, T, D)``.
        log_density: ``log ρ_t(y_b(t))``, shape ``(B, T)``.
        status: per-sample solver status codes ``(B,)``.
    """

    ts: Tensor
    ys: Tensor
    log_density: Tensor
    status: Tensor

    @property
    def log_density_change(self) -> Tensor:
        """``log ρ_t(y(t)) − log ρ_0(y(0))``, shape ``(B, T)``."""
        return self.log_density - self.log_density[:, :1]

    def __repr__(self) -> str:
        return compact_repr(self)


def _as_field(field_or_system: Any):
    if isinstance(field_or_system, (str, HamiltonianSystem)):
        return vector_field(get_system(field_or_system))
    if not callable(field_or_system):
        raise InvalidArgumentError(
            "field", field_or_system, "a system name, a HamiltonianSystem or a vector field f(t, y)"
        )
    return field_or_system


def transport_density(
    field: Any,
    y0: Tensor,
    log_density0: Tensor,
    ts: Tensor,
    *,
    method: str = "dopri5",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    dt: float | None = None,
) -> DensityTransport:
    """Push states ``y0 (B, D)`` with log-density values ``log_density0 (B,)`` along ``field``.

    ``field`` is a registered system's name, a :class:`HamiltonianSystem` (its ``J∇H``), or any
    vector field ``f(t, y)``. Integrates ``d log ρ/dt = −tr ∂f/∂y`` exactly (full Jacobian) together
    with the states; returns the states and log-density values at every time of ``ts``.
    """
    f = _as_field(field)
    if not isinstance(y0, Tensor) or y0.dim() != 2:
        raise InvalidArgumentError("y0", y0, "a (B, D) tensor of initial states")
    if not isinstance(log_density0, Tensor) or log_density0.shape != y0.shape[:1]:
        raise InvalidArgumentError("log_density0", log_density0, f"a tensor of shape ({y0.shape[0]},)")
    aug = AugmentedField(f, y0.shape[-1], trace="exact")
    opts: dict[str, Any] = {"dt": dt} if dt is not None else {"rtol": rtol, "atol": atol}
    sol = solve(aug, aug.pack(y0, log_density0), ts, method, **opts)
    parts = aug.unpack(sol.ys)
    return DensityTransport(ts=sol.ts, ys=parts.y, log_density=parts.logp, status=sol.status)


def flow_log_det(field: Any, y0: Tensor, t: float, **solve_options: Any) -> Tensor:
    """``log |det ∂φ_t/∂y0|`` per sample by automatic differentiation through the solver.

    Independent of the divergence integral: ``D`` backward passes through an ordinary solve of the
    state alone (samples are independent, so the gradient of ``Σ_b φ_t(y0_b)_i`` gives every
    sample's ``i``-th Jacobian row).
    """
    f = _as_field(field)
    y = y0.detach().clone().requires_grad_(True)
    ts = torch.tensor([0.0, float(t)], dtype=y0.dtype, device=y0.device)
    with torch.enable_grad():
        yt = solve(f, y, ts, **solve_options).ys[:, -1]
        rows = [
            torch.autograd.grad(yt[:, i].sum(), y, retain_graph=i < y0.shape[-1] - 1)[0]
            for i in range(y0.shape[-1])
        ]
    jac = torch.stack(rows, dim=-2)  # (B, D, D)
    return torch.linalg.slogdet(jac).logabsdet


@dataclass(frozen=True)
class LiouvilleReport:
    """Outcome of :func:`liouville_check` (maxima over the ensemble).

    Attributes:
        system: system name.
        samples, time: ensemble size and final time.
        log_density_change: ``max |log ρ_t(y(t)) − log ρ_0(y0)|`` from the divergence integral.
        log_det_jacobian: ``max |log det ∂φ_t/∂y0|`` by autodiff through the solver.
        consistency: ``max |Δ log ρ + log det ∂φ_t/∂y0|`` (zero for any field, Hamiltonian or not).
        flow_error: ``max |y(t) − φ_t^exact(y0)|`` (NaN without an exact flow).
        transport: the pushed ensemble.
    """

    system: str
    samples: int
    time: float
    log_density_change: float
    log_det_jacobian: float
    consistency: float
    flow_error: float
    transport: DensityTransport

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "transport"}

    def __repr__(self) -> str:
        return compact_repr(self)


def gaussian_ensemble(
    centre: Tensor, width: float | Tensor, n: int, *, seed: int | torch.Generator = 0
) -> tuple[Tensor, Tensor]:
    """``n`` states from ``N(centre, diag(width²))`` and their exact log-densities."""
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    width = torch.as_tensor(width, dtype=centre.dtype).expand(centre.shape)
    eps = torch.randn(n, centre.shape[-1], generator=gen, dtype=centre.dtype)
    y0 = centre + width * eps
    d = centre.shape[-1]
    logp = -0.5 * eps.pow(2).sum(-1) - torch.log(width).sum() - 0.5 * d * math.log(2 * math.pi)
    return y0, logp


def liouville_check(
    system: str | HamiltonianSystem,
    *,
    samples: int = 64,
    time: float = 5.0,
    width: float = 0.05,
    energy: float | None = None,
    seed: int = 0,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    jacobian_samples: int = 8,
) -> LiouvilleReport:
    """Push a Gaussian blob of a registered system's initial conditions forward and check Liouville.

    The blob ``N(y*, width² I)`` sits around a state ``y*`` from the system's sampler (on the energy
    shell ``energy`` if given). Integrates ``[y, log ρ]`` to ``time``; the log-density change, the
    flow's log-determinant (on the first ``jacobian_samples`` states) and, where known, the exact
    flow are compared (see :class:`LiouvilleReport`).
    """
    sys_ = get_system(system)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InvalidArgumentError("samples", samples, "a positive integer")
    centre = sys_.sample(1, seed=seed, energy=energy)[0]
    y0, logp0 = gaussian_ensemble(centre, width, samples, seed=seed + 1)
    ts = torch.tensor([0.0, float(time)], dtype=torch.float64)
    f = vector_field(sys_)
    tr = transport_density(f, y0, logp0, ts, rtol=rtol, atol=atol)
    change = tr.log_density_change[:, -1]
    k = min(jacobian_samples, samples)
    logdet = flow_log_det(f, y0[:k], time, rtol=rtol, atol=atol)
    flow_error = float("nan")
    if sys_.exact_flow is not None:
        flow_error = float((tr.ys[:, -1] - sys_.flow(torch.tensor(float(time)), y0)).abs().max())
    return LiouvilleReport(
        system=sys_.name,
        samples=samples,
        time=float(time),
        log_density_change=float(change.abs().max()),
        log_det_jacobian=float(logdet.abs().max()),
        consistency=float((change[:k] + logdet).abs().max()),
        flow_error=flow_error,
        transport=tr,
    )
