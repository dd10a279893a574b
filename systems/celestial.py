"""Gravitational systems: the planar Kepler problem and the softened N-body problem."""

from __future__ import annotations

import math

import torch

from symflow.integrators.errors import InvalidArgumentError

from .exact import kepler_flow
from .registry import register_system
from .sampling import rejection, uniform
from .spec import HamiltonianSystem, Parameter, SystemSpec

Tensor = torch.Tensor


def _cross2(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def kepler(mu: float) -> HamiltonianSystem:
    """Planar Kepler problem (reduced two-body), ``H = |p|²/2 − μ/|q|``.

    Besides the energy, the angular momentum ``L = q × p`` and the Laplace–Runge–Lenz vector
    ``A = p × L ẑ − μ q/|q| = (p_y L, −p_x L) − μ q/|q|`` are conserved (|A| = μ e).
    """

    def potential(q: Tensor) -> Tensor:
        return -mu / q.norm(dim=-1)

    def kinetic(p: Tensor) -> Tensor:
        return 0.5 * (p * p).sum(-1)

    def h(q: Tensor, p: Tensor) -> Tensor:
        return kinetic(p) + potential(q)

    def grad_potential(q: Tensor) -> Tensor:
        r = q.norm(dim=-1, keepdim=True)
        return mu * q / r**3

    def lrl(q: Tensor, p: Tensor) -> Tensor:
        ang = _cross2(q, p)
        r = q.norm(dim=-1)
        return torch.stack([p[..., 1] * ang - mu * q[..., 0] / r, -p[..., 0] * ang - mu * q[..., 1] / r], -1)

    def sample(n: int, gen: torch.Generator, energy: float | None) -> Tensor:
        # Bound orbits from elements: a from the energy (or in [0.7, 1.3]), e in [0, 0.6],
        # true anomaly ν and orientation ω uniform, prograde or retrograde at random.
        if energy is None:
            a = uniform(n, 0.7, 1.3, 1, gen)[:, 0]
        elif energy < 0:
            a = torch.full((n,), -mu / (2 * energy), dtype=torch.float64)
        else:
            raise InvalidArgumentError("energy", energy, "a negative energy (bound Kepler orbits)")
        e = uniform(n, 0.0, 0.6, 1, gen)[:, 0]
        nu, om = uniform(n, 0.0, 2 * math.pi, 2, gen).unbind(-1)
        sense = torch.where(torch.rand(n, generator=gen, dtype=torch.float64) < 0.5, -1.0, 1.0)
        slr = a * (1 - e**2)  # semi-latus rectum
        r = slr / (1 + e * torch.cos(nu))
        vs = torch.sqrt(mu / slr)
        pos = torch.stack([r * torch.cos(nu), r * torch.sin(nu)], -1)
        vel = torch.stack([-vs * torch.sin(nu), vs * (e + torch.cos(nu))], -1)
        pos[:, 1] *= sense
        vel[:, 1] *= sense
        rot = torch.stack([torch.cos(om), -torch.sin(om), torch.sin(om), torch.cos(om)], -1).reshape(n, 2, 2)
        return torch.cat([(rot @ pos[..., None])[..., 0], (rot @ vel[..., None])[..., 0]], dim=-1)

    return HamiltonianSystem(
        name="kepler",
        dof=2,
        params={"mu": mu},
        hamiltonian=h,
        kinetic=kinetic,
        potential=potential,
        grad_kinetic=lambda p: p,
        grad_potential=grad_potential,
        sampler=sample,
        exact_flow=kepler_flow(mu),
        invariants={"angular_momentum": lambda q, p: _cross2(q, p), "lrl": lrl},
        coordinate_names=("x", "y", "p_x", "p_y"),
        description="Planar Kepler problem; exact flow for bound orbits via Kepler's equation.",
        reference="Danby, Fundamentals of Celestial Mechanics (2nd ed., 1988), ch. 6",
    )


register_system(
    SystemSpec(
        name="kepler",
        build=kepler,
        parameters=(
            Parameter("mu", 1.0, "gravitational parameter μ = G(m1 + m2)", minimum=0.0, strict=True),
        ),
        summary="planar Kepler two-body problem, exact flow, L and LRL invariants",
    ),
    aliases=("two_body",),
)


def nbody(n: int, dim: int, gravity: float, mass: float, softening: float) -> HamiltonianSystem:
    """``n`` equal masses in ``dim`` dimensions with Plummer softening ε.

    ``H = Σᵢ |pᵢ|²/(2m) − Σ_{i<j} G m² / √(|qᵢ − qⱼ|² + ε²)``. State layout: ``q`` is the ``n·dim``
    flattened positions (body-major), ``p`` the momenta. Total momentum and angular momentum are
    conserved.
    """
    gm2 = gravity * mass * mass
    eps2 = softening**2

    def pairwise(q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r = q.reshape(*q.shape[:-1], n, dim)
        diff = r[..., :, None, :] - r[..., None, :, :]
        eye = torch.eye(n, dtype=q.dtype, device=q.device)
        # The diagonal gets +1 so nothing divides by zero; it is masked out of every sum.
        d2 = (diff * diff).sum(-1) + eps2 + eye
        return diff, d2, 1 - eye

    def potential(q: Tensor) -> Tensor:
        _, d2, off = pairwise(q)
        return -0.5 * gm2 * (off / torch.sqrt(d2)).sum((-1, -2))

    def grad_potential(q: Tensor) -> Tensor:
        diff, d2, off = pairwise(q)
        w = off / (d2 * torch.sqrt(d2))
        return (gm2 * (w[..., None] * diff).sum(-2)).reshape(q.shape)

    def kinetic(p: Tensor) -> Tensor:
        return (p * p).sum(-1) / (2 * mass)

    def h(q: Tensor, p: Tensor) -> Tensor:
        return kinetic(p) + potential(q)

    def momentum(q: Tensor, p: Tensor) -> Tensor:
        return p.reshape(*p.shape[:-1], n, dim).sum(-2)

    def angular_momentum(q: Tensor, p: Tensor) -> Tensor:
        r = q.reshape(*q.shape[:-1], n, dim)
        v = p.reshape(*p.shape[:-1], n, dim)
        if dim == 2:
            return _cross2(r, v).sum(-1)
        return torch.linalg.cross(r, v, dim=-1).sum(-2)

    def sample(count: int, gen: torch.Generator, energy: float | None) -> Tensor:
        # Positions in the unit ball, centre of mass at the origin; momenta Gaussian with zero total,
        # scaled to the requested energy, or to virial equilibrium 2T = -V when none is given.
        def draw(m: int) -> Tensor:
            r = uniform(m * n, -1.0, 1.0, dim, gen).reshape(m, n, dim)
            r = r - r.mean(1, keepdim=True)
            return r.reshape(m, n * dim)

        target = energy

        def accept(q: Tensor, rows: Tensor) -> Tensor:
            close = pairwise(q)[1] + torch.eye(n, dtype=q.dtype) * 1e9
            ok = close.amin((-1, -2)) > 0.04  # no pair closer than 0.2 (avoids near-collisions)
            return ok & (potential(q) < target) if target is not None else ok

        q = rejection(count, draw, accept, what=energy)
        v = torch.randn(count, n, dim, generator=gen, dtype=torch.float64)
        v = (v - v.mean(1, keepdim=True)).reshape(count, n * dim)
        kin_target = (-0.5 * potential(q)) if energy is None else (energy - potential(q))
        p = v * torch.sqrt(kin_target / kinetic(v))[:, None]
        return torch.cat([q, p], dim=-1)

    return HamiltonianSystem(
        name="nbody",
        dof=n * dim,
        params={"n": n, "dim": dim, "gravity": gravity, "mass": mass, "softening": softening},
        hamiltonian=h,
        kinetic=kinetic,
        potential=potential,
        grad_kinetic=lambda p: p / mass,
        grad_potential=grad_potential,
        sampler=sample,
        invariants={"momentum": momentum, "angular_momentum": angular_momentum},
        description="Gravitational N-body problem with Plummer softening (equal masses).",
        reference="Aarseth, Gravitational N-Body Simulations (2003), ch. 1-2",
    )


register_system(
    SystemSpec(
        name="nbody",
        build=nbody,
        parameters=(
            Parameter("n", 3, "number of bodies", int, minimum=2),
            Parameter("dim", 2, "spatial dimension (2 or 3)", int, minimum=2, maximum=3),
            Parameter("gravity", 1.0, "gravitational constant G", minimum=0.0, strict=True),
            Parameter("mass", 1.0, "mass of each body", minimum=0.0, strict=True),
            Parameter("softening", 0.0, "Plummer softening length ε", minimum=0.0),
        ),
        summary="gravitational N-body with softening",
    ),
    aliases=("n_body",),
)
