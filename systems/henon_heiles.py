"""The Hénon–Heiles system, the standard test of chaos in two degrees of freedom."""

from __future__ import annotations

import math

import torch

from symflow.integrators.errors import InvalidArgumentError

from .registry import register_system
from .sampling import directions, momentum_on_shell, rejection, uniform
from .spec import HamiltonianSystem, Parameter, PoincareSurface, SystemSpec

Tensor = torch.Tensor


def henon_heiles(lam: float) -> HamiltonianSystem:
    """``H = ½(p_x² + p_y²) + ½(x² + y²) + λ(x² y − y³/3)``.

    Orbits are bounded for ``E < 1/(6λ²)``; the escape energy is reached on the triangle whose
    vertices are the saddles ``(0, 1/λ)`` and ``(±√3/(2λ), −1/(2λ))``. Regular orbits dominate at
    ``E = 1/12`` (λ = 1) and chaos at ``E = 1/8``.
    """

    def potential(q: Tensor) -> Tensor:
        x, y = q[..., 0], q[..., 1]
        return 0.5 * (x * x + y * y) + lam * (x * x * y - y**3 / 3)

    def kinetic(p: Tensor) -> Tensor:
        return 0.5 * (p * p).sum(-1)

    def grad_potential(q: Tensor) -> Tensor:
        x, y = q[..., 0], q[..., 1]
        return torch.stack([x + 2 * lam * x * y, y + lam * (x * x - y * y)], dim=-1)

    def h(q: Tensor, p: Tensor) -> Tensor:
        return kinetic(p) + potential(q)

    def inside_triangle(q: Tensor) -> Tensor:
        # The bounded component of {V < 1/(6λ²)} is the triangle between the three saddles.
        x, y = q[..., 0] * lam, q[..., 1] * lam
        s3 = math.sqrt(3.0)
        return (y > -0.5) & (y < s3 * x + 1) & (y < -s3 * x + 1)

    escape = 1.0 / (6 * lam**2)

    def sample(n: int, gen: torch.Generator, energy: float | None) -> Tensor:
        if energy is None:  # energies drawn uniformly in [0.02, 0.12]/λ², all bounded
            e = (0.02 + 0.10 * torch.rand(n, generator=gen, dtype=torch.float64)) / lam**2
        elif 0 < energy < escape:
            e = torch.full((n,), energy, dtype=torch.float64)
        else:
            raise InvalidArgumentError(
                "energy", energy, f"0 < E < {escape:.6g} (bounded Hénon–Heiles orbits)"
            )
        # q uniform in {V < E} ∩ triangle, drawn from the box that bounds the triangle.
        q = rejection(
            n,
            lambda m: uniform(m, -1.0 / lam, 1.0 / lam, 2, gen),
            lambda cand, rows: inside_triangle(cand) & (potential(cand) < e[rows]),
            what=energy,
        )
        p = momentum_on_shell(h, q, directions(n, 2, gen), e)
        return torch.cat([q, p], dim=-1)

    return HamiltonianSystem(
        name="henon_heiles",
        dof=2,
        params={"lam": lam},
        hamiltonian=h,
        kinetic=kinetic,
        potential=potential,
        grad_kinetic=lambda p: p,
        grad_potential=grad_potential,
        sampler=sample,
        poincare=PoincareSurface(
            g=lambda y: y[..., 0],
            direction=1,
            coords=(1, 3),
            labels=("y", "p_y"),
            description="x = 0, p_x > 0",
        ),
        coordinate_names=("x", "y", "p_x", "p_y"),
        description="Hénon–Heiles galactic potential; bounded below E = 1/6, chaotic near it.",
        reference="Hénon & Heiles, Astron. J. 69, 73 (1964)",
    )


register_system(
    SystemSpec(
        name="henon_heiles",
        build=henon_heiles,
        parameters=(Parameter("lam", 1.0, "strength λ of the cubic terms", minimum=0.0, strict=True),),
        summary="Hénon–Heiles (chaotic, 2 dof)",
    ),
    aliases=("henonheiles", "hh"),
)
