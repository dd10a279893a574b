"""The Fermi–Pasta–Ulam–Tsingou α-chain."""

from __future__ import annotations

import math

import torch

from .registry import register_system
from .sampling import ray_shell_sampler, uniform
from .spec import HamiltonianSystem, Parameter, SystemSpec

Tensor = torch.Tensor


def fput(n: int, alpha: float) -> HamiltonianSystem:
    """``n`` unit masses between fixed walls, nearest-neighbour springs with a cubic term:

    ``H = Σᵢ pᵢ²/2 + Σ_{i=0}^{n} φ(q_{i+1} − q_i)``, ``φ(r) = r²/2 + α r³/3``, ``q_0 = q_{n+1} = 0``.
    Energy placed in the lowest normal mode famously returns almost completely (FPUT recurrence).
    """

    def stretches(q: Tensor) -> Tensor:
        zero = torch.zeros_like(q[..., :1])
        padded = torch.cat([zero, q, zero], dim=-1)
        return padded[..., 1:] - padded[..., :-1]  # (..., n + 1)

    def potential(q: Tensor) -> Tensor:
        r = stretches(q)
        return (0.5 * r * r + alpha / 3 * r**3).sum(-1)

    def grad_potential(q: Tensor) -> Tensor:
        r = stretches(q)
        force = r + alpha * r * r  # φ'(r)
        return force[..., :-1] - force[..., 1:]

    def kinetic(p: Tensor) -> Tensor:
        return 0.5 * (p * p).sum(-1)

    def h(q: Tensor, p: Tensor) -> Tensor:
        return kinetic(p) + potential(q)

    shell = ray_shell_sampler(h, potential, n)

    def sample(count: int, gen: torch.Generator, energy: float | None) -> Tensor:
        if energy is None:  # the classic start: energy in the lowest mode, random amplitude and phase
            k = torch.arange(1, n + 1, dtype=torch.float64)
            mode = math.sqrt(2 / (n + 1)) * torch.sin(math.pi * k / (n + 1))
            freq = 2 * math.sin(math.pi / (2 * (n + 1)))
            amp, phase = uniform(count, 0.5, 2.0, 1, gen), uniform(count, 0.0, 2 * math.pi, 1, gen)
            return torch.cat([amp * torch.cos(phase) * mode, -amp * freq * torch.sin(phase) * mode], dim=-1)
        return shell(count, gen, energy)

    return HamiltonianSystem(
        name="fput",
        dof=n,
        params={"n": n, "alpha": alpha},
        hamiltonian=h,
        kinetic=kinetic,
        potential=potential,
        grad_kinetic=lambda p: p,
        grad_potential=grad_potential,
        sampler=sample,
        description="FPUT α-chain with fixed ends (near-integrable, recurrence).",
        reference="Fermi, Pasta, Ulam (1955); Gallavotti (ed.), The Fermi-Pasta-Ulam Problem (2008)",
    )


register_system(
    SystemSpec(
        name="fput",
        build=fput,
        parameters=(
            Parameter("n", 8, "number of moving masses", int, minimum=1),
            Parameter("alpha", 0.25, "cubic coupling α", minimum=0.0),
        ),
        summary="FPUT α-chain with n masses",
    ),
    aliases=("fpu", "fput_alpha", "fermi_pasta_ulam"),
)
