"""Linear systems with exact flows: harmonic oscillator, coupled oscillator chain, charged particle.

All three have quadratic Hamiltonians, so their exact flows are matrix exponentials
(:func:`symflow.systems.exact.linear_flow`); the oscillator also has the closed form used here.
"""

from __future__ import annotations

import torch
from torch.func import hessian

from .exact import linear_flow
from .registry import register_system
from .sampling import ray_shell_sampler, uniform
from .spec import HamiltonianSystem, Parameter, PoincareSurface, SystemSpec

Tensor = torch.Tensor


def _hessian_at_origin(h, dim: int) -> Tensor:
    """Hessian of a quadratic ``H(y)`` (constant), computed once in float64."""
    return hessian(lambda y: h(y[: dim // 2], y[dim // 2 :]))(torch.zeros(dim, dtype=torch.float64))


def _sampler(h, potential, dof: int, offset=None):
    """Box ``[-1, 1]^D`` by default; on the energy shell along random rays when ``energy`` is given."""
    shell = ray_shell_sampler(h, potential, dof, offset=offset)

    def sample(n: int, gen: torch.Generator, energy: float | None) -> Tensor:
        if energy is None:
            return uniform(n, -1.0, 1.0, 2 * dof, gen)
        return shell(n, gen, energy)

    return sample


# --- harmonic oscillator --------------------------------------------------------------------------


def harmonic_oscillator(n: int, mass: float, omega: float) -> HamiltonianSystem:
    """``H = |p|²/(2m) + ½ m ω² |q|²`` in ``n`` dimensions (isotropic)."""
    k = mass * omega**2

    def h(q: Tensor, p: Tensor) -> Tensor:
        return (p * p).sum(-1) / (2 * mass) + 0.5 * k * (q * q).sum(-1)

    def flow(t: Tensor, y0: Tensor) -> Tensor:
        batch = torch.broadcast_shapes(t.shape, y0.shape[:-1])
        y0 = y0.expand(*batch, y0.shape[-1])
        c, s = torch.cos(omega * t)[..., None], torch.sin(omega * t)[..., None]
        q0, p0 = y0[..., :n], y0[..., n:]
        return torch.cat([q0 * c + p0 * s / (mass * omega), p0 * c - q0 * s * (mass * omega)], dim=-1)

    return HamiltonianSystem(
        name="harmonic_oscillator",
        dof=n,
        params={"n": n, "mass": mass, "omega": omega},
        hamiltonian=h,
        kinetic=lambda p: (p * p).sum(-1) / (2 * mass),
        potential=lambda q: 0.5 * k * (q * q).sum(-1),
        grad_kinetic=lambda p: p / mass,
        grad_potential=lambda q: k * q,
        sampler=_sampler(h, lambda q: 0.5 * k * (q * q).sum(-1), n),
        exact_flow=flow,
        coordinate_names=("q", "p") if n == 1 else None,
        description="Isotropic harmonic oscillator H = |p|²/2m + mω²|q|²/2; exact flow is a rotation.",
        reference="Hairer, Lubich, Wanner, Geometric Numerical Integration (2006), §I.1",
    )


register_system(
    SystemSpec(
        name="harmonic_oscillator",
        build=harmonic_oscillator,
        parameters=(
            Parameter("n", 1, "number of degrees of freedom", int, minimum=1),
            Parameter("mass", 1.0, "mass m", minimum=0.0, strict=True),
            Parameter("omega", 1.0, "angular frequency ω", minimum=0.0, strict=True, family_range=(0.5, 2.0)),
        ),
        summary="harmonic oscillator, exact flow",
    ),
    aliases=("oscillator", "sho"),
)


# --- coupled oscillators --------------------------------------------------------------------------


def coupled_oscillators(n: int, omega: float, kappa: float) -> HamiltonianSystem:
    """Open chain: ``H = ½|p|² + ½ω²|q|² + ½κ Σᵢ (q_{i+1} − q_i)²`` (normal modes, exact flow)."""
    lap = torch.zeros(n, n, dtype=torch.float64)  # graph Laplacian of the path 0-1-...-(n-1)
    for i in range(n - 1):
        lap[i, i] += 1
        lap[i + 1, i + 1] += 1
        lap[i, i + 1] -= 1
        lap[i + 1, i] -= 1
    stiffness = omega**2 * torch.eye(n, dtype=torch.float64) + kappa * lap

    def potential(q: Tensor) -> Tensor:
        dq = q[..., 1:] - q[..., :-1]
        return 0.5 * omega**2 * (q * q).sum(-1) + 0.5 * kappa * (dq * dq).sum(-1)

    def grad_potential(q: Tensor) -> Tensor:
        return q @ stiffness.to(dtype=q.dtype, device=q.device)

    def h(q: Tensor, p: Tensor) -> Tensor:
        return 0.5 * (p * p).sum(-1) + potential(q)

    return HamiltonianSystem(
        name="coupled_oscillators",
        dof=n,
        params={"n": n, "omega": omega, "kappa": kappa},
        hamiltonian=h,
        kinetic=lambda p: 0.5 * (p * p).sum(-1),
        potential=potential,
        grad_kinetic=lambda p: p,
        grad_potential=grad_potential,
        sampler=_sampler(h, potential, n),
        exact_flow=linear_flow(_hessian_at_origin(h, 2 * n)),
        description="Chain of n unit-mass oscillators (frequency ω) with nearest-neighbour springs κ.",
        reference="Goldstein, Classical Mechanics (3rd ed.), ch. 6 (small oscillations)",
    )


register_system(
    SystemSpec(
        name="coupled_oscillators",
        build=coupled_oscillators,
        parameters=(
            Parameter("n", 2, "number of oscillators", int, minimum=2),
            Parameter("omega", 1.0, "on-site angular frequency ω", minimum=0.0, strict=True),
            Parameter("kappa", 0.5, "coupling spring constant κ", minimum=0.0),
        ),
        summary="chain of coupled oscillators, exact flow",
    ),
)


# --- charged particle in a magnetic field ---------------------------------------------------------


def charged_particle(b: float, omega: float) -> HamiltonianSystem:
    """Unit charge and mass in the plane, uniform field ``B ẑ`` (symmetric gauge), harmonic trap.

    ``H = ½|p − A(q)|² + ½ω²|q|²`` with ``A = (B/2)(−y, x)``. Not separable: the kinetic energy
    couples ``q`` and ``p``. Canonical angular momentum ``x p_y − y p_x`` is conserved.
    """
    half_b = 0.5 * b

    def vector_potential(q: Tensor) -> Tensor:
        return torch.stack([-half_b * q[..., 1], half_b * q[..., 0]], dim=-1)

    def h(q: Tensor, p: Tensor) -> Tensor:
        pi = p - vector_potential(q)
        return 0.5 * (pi * pi).sum(-1) + 0.5 * omega**2 * (q * q).sum(-1)

    def grad_h(q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        pi = p - vector_potential(q)
        dq = torch.stack([-half_b * pi[..., 1], half_b * pi[..., 0]], dim=-1) + omega**2 * q
        return dq, pi

    def angular_momentum(q: Tensor, p: Tensor) -> Tensor:
        return q[..., 0] * p[..., 1] - q[..., 1] * p[..., 0]

    return HamiltonianSystem(
        name="charged_particle",
        dof=2,
        params={"b": b, "omega": omega},
        hamiltonian=h,
        grad_hamiltonian=grad_h,
        sampler=_sampler(h, lambda q: 0.5 * omega**2 * (q * q).sum(-1), 2, offset=vector_potential),
        exact_flow=linear_flow(_hessian_at_origin(h, 4)),
        invariants={"angular_momentum": angular_momentum},
        poincare=PoincareSurface(
            g=lambda y: y[..., 1],
            direction=1,
            coords=(0, 2),
            labels=("x", "p_x"),
            description="y = 0, y increasing",
        ),
        coordinate_names=("x", "y", "p_x", "p_y"),
        description="Charged particle in a uniform magnetic field and a harmonic trap (non-separable).",
        reference="Goldstein, Classical Mechanics (3rd ed.), §8.1 (velocity-dependent potentials)",
    )


register_system(
    SystemSpec(
        name="charged_particle",
        build=charged_particle,
        parameters=(
            Parameter("b", 1.0, "magnetic field strength B"),
            Parameter("omega", 0.5, "trap angular frequency ω", minimum=0.0, strict=True),
        ),
        summary="charged particle in a magnetic field (non-separable), exact flow",
    ),
    aliases=("magnetic",),
)
