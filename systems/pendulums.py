"""Simple pendulum (separable) and double pendulum (non-separable, chaotic)."""

from __future__ import annotations

import math

import torch

from .registry import register_system
from .sampling import everywhere, shell_sampler, uniform
from .spec import HamiltonianSystem, Parameter, PoincareSurface, SystemSpec

Tensor = torch.Tensor


def pendulum(mass: float, length: float, g: float) -> HamiltonianSystem:
    """``H = p²/(2 m l²) + m g l (1 − cos q)``; energy 0 at rest, separatrix at ``2 m g l``."""
    inertia = mass * length**2
    mgl = mass * g * length

    def kinetic(p: Tensor) -> Tensor:
        return (p * p).sum(-1) / (2 * inertia)

    def potential(q: Tensor) -> Tensor:
        return mgl * (1 - torch.cos(q)).sum(-1)

    def h(q: Tensor, p: Tensor) -> Tensor:
        return kinetic(p) + potential(q)

    shell = shell_sampler(h, everywhere, -math.pi, math.pi, 1)

    def sample(n: int, gen: torch.Generator, energy: float | None) -> Tensor:
        if energy is None:  # librations of moderate amplitude
            return torch.cat([uniform(n, -2.0, 2.0, 1, gen), uniform(n, -1.0, 1.0, 1, gen)], dim=-1)
        return shell(n, gen, energy)

    return HamiltonianSystem(
        name="pendulum",
        dof=1,
        params={"mass": mass, "length": length, "g": g},
        hamiltonian=h,
        kinetic=kinetic,
        potential=potential,
        grad_kinetic=lambda p: p / inertia,
        grad_potential=lambda q: mgl * torch.sin(q),
        sampler=sample,
        coordinate_names=("theta", "p_theta"),
        description="Simple pendulum; librations below energy 2mgl, rotations above.",
        reference="Hairer, Lubich, Wanner, Geometric Numerical Integration (2006), §I.1.4",
    )


register_system(
    SystemSpec(
        name="pendulum",
        build=pendulum,
        parameters=(
            Parameter("mass", 1.0, "bob mass m", minimum=0.0, strict=True),
            Parameter("length", 1.0, "rod length l", minimum=0.0, strict=True, family_range=(0.5, 2.0)),
            Parameter("g", 1.0, "gravitational acceleration g", minimum=0.0, family_range=(0.5, 2.0)),
        ),
        summary="simple pendulum",
    ),
    aliases=("simple_pendulum",),
)


def double_pendulum(m1: float, m2: float, l1: float, l2: float, g: float) -> HamiltonianSystem:
    """Planar double pendulum in canonical angles ``(θ1, θ2)`` and momenta ``(p1, p2)``.

    ``H = [m2 l2² p1² + (m1+m2) l1² p2² − 2 m2 l1 l2 p1 p2 cos Δ] / [2 m2 l1² l2² (m1 + m2 sin² Δ)]
    − (m1+m2) g l1 cos θ1 − m2 g l2 cos θ2`` with ``Δ = θ1 − θ2``: the kinetic energy depends on the
    angles, so H is not separable.
    """

    def h(q: Tensor, p: Tensor) -> Tensor:
        th1, th2 = q[..., 0], q[..., 1]
        p1, p2 = p[..., 0], p[..., 1]
        delta = th1 - th2
        num = m2 * l2**2 * p1**2 + (m1 + m2) * l1**2 * p2**2 - 2 * m2 * l1 * l2 * p1 * p2 * torch.cos(delta)
        den = 2 * m2 * l1**2 * l2**2 * (m1 + m2 * torch.sin(delta) ** 2)
        return num / den - (m1 + m2) * g * l1 * torch.cos(th1) - m2 * g * l2 * torch.cos(th2)

    shell = shell_sampler(h, everywhere, -math.pi / 2, math.pi / 2, 2)

    def sample(n: int, gen: torch.Generator, energy: float | None) -> Tensor:
        if energy is None:
            return torch.cat([uniform(n, -1.0, 1.0, 2, gen), uniform(n, -1.0, 1.0, 2, gen)], dim=-1)
        return shell(n, gen, energy)

    return HamiltonianSystem(
        name="double_pendulum",
        dof=2,
        params={"m1": m1, "m2": m2, "l1": l1, "l2": l2, "g": g},
        hamiltonian=h,
        sampler=sample,
        poincare=PoincareSurface(
            g=lambda y: y[..., 0],
            direction=1,
            coords=(1, 3),
            labels=("theta2", "p2"),
            description="theta1 = 0, theta1 increasing",
        ),
        coordinate_names=("theta1", "theta2", "p1", "p2"),
        description="Planar double pendulum (non-separable, chaotic at moderate energy).",
        reference="Shinbrot et al., Am. J. Phys. 60, 491 (1992)",
    )


register_system(
    SystemSpec(
        name="double_pendulum",
        build=double_pendulum,
        parameters=(
            Parameter("m1", 1.0, "upper bob mass", minimum=0.0, strict=True),
            Parameter("m2", 1.0, "lower bob mass", minimum=0.0, strict=True),
            Parameter("l1", 1.0, "upper rod length", minimum=0.0, strict=True),
            Parameter("l2", 1.0, "lower rod length", minimum=0.0, strict=True),
            Parameter("g", 1.0, "gravitational acceleration", minimum=0.0),
        ),
        summary="double pendulum (non-separable)",
    ),
)
