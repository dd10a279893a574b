"""Seeded initial-condition samplers shared by the system catalogue.

All samplers work in float64 on the CPU with an explicit ``torch.Generator`` so that a seed gives
the same states on every machine; :meth:`HamiltonianSystem.sample` casts and moves the result.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from symflow.integrators.errors import InvalidArgumentError

Tensor = torch.Tensor
F64 = torch.float64


def uniform(n: int, low: Tensor | float, high: Tensor | float, k: int, gen: torch.Generator) -> Tensor:
    """``(n, k)`` uniform samples in the box ``[low, high]`` (scalars or ``(k,)`` tensors)."""
    u = torch.rand(n, k, generator=gen, dtype=F64)
    low = torch.as_tensor(low, dtype=F64)
    high = torch.as_tensor(high, dtype=F64)
    return low + (high - low) * u


def directions(n: int, k: int, gen: torch.Generator) -> Tensor:
    """``(n, k)`` unit vectors, uniform on the sphere (a random sign when ``k = 1``)."""
    v = torch.randn(n, k, generator=gen, dtype=F64)
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-300)


def rejection(
    n: int,
    draw: Callable[[int], Tensor],
    accept: Callable[[Tensor, Tensor], Tensor],
    *,
    what: object,
    max_rounds: int = 500,
) -> Tensor:
    """Rows ``0..n-1`` drawn until each passes ``accept(candidates, row_indices)``.

    ``accept`` sees which rows the candidates are for, so conditions may differ per row (e.g. a
    per-sample energy). Fails clearly if the region is (nearly) empty.
    """
    out: Tensor | None = None
    need = torch.arange(n)
    for _ in range(max_rounds):
        cand = draw(need.numel())
        if out is None:
            out = torch.empty(n, cand.shape[-1], dtype=cand.dtype)
        ok = accept(cand, need)
        out[need[ok]] = cand[ok]
        need = need[~ok]
        if need.numel() == 0:
            return out
    raise InvalidArgumentError("energy", what, "a value for which the sampling region is not empty")


def ray_root(residual: Callable[[Tensor], Tensor], n: int) -> Tensor:
    """Per-row ``s ≥ 0`` with ``residual(s) = 0`` where ``residual(0) < 0`` and it grows along the ray.

    Brackets by doubling, then bisects to float64 resolution (vectorised over the ``n`` rows).
    """
    lo = torch.zeros(n, dtype=F64)
    hi = torch.ones(n, dtype=F64)
    for _ in range(200):
        low_side = residual(hi) < 0
        if not low_side.any():
            break
        lo = torch.where(low_side, hi, lo)
        hi = torch.where(low_side, 2 * hi, hi)
    for _ in range(110):  # 2^-110 of the bracket: beyond float64 resolution
        mid = 0.5 * (lo + hi)
        below = residual(mid) < 0
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def momentum_on_shell(
    hamiltonian: Callable[[Tensor, Tensor], Tensor],
    q: Tensor,
    u: Tensor,
    energy: float | Tensor,
    offset: Tensor | None = None,
) -> Tensor:
    """Momenta ``p = offset + s·u`` with ``H(q, p) = energy``, solving for ``s ≥ 0`` by bisection.

    ``energy`` is a float or a per-row ``(n,)`` tensor. Requires ``H(q, offset) < energy`` and ``H``
    increasing along the ray (true for kinetic energies that are positive-definite quadratic forms
    in ``p - offset``).
    """
    if offset is None:
        offset = torch.zeros_like(u)
    s = ray_root(lambda s: hamiltonian(q, offset + s[:, None] * u) - energy, q.shape[0])
    return offset + s[:, None] * u


def ray_shell_sampler(
    hamiltonian: Callable[[Tensor, Tensor], Tensor],
    potential: Callable[[Tensor], Tensor],
    dof: int,
    *,
    offset: Callable[[Tensor], Tensor] | None = None,
) -> Callable[[int, torch.Generator, float], Tensor]:
    """Sampler of states with ``H = E`` for a potential with its minimum ``V(0) = 0`` at the origin.

    Works in many dimensions where box rejection fails: a fraction ``λ ~ U(0, 1)`` of the energy
    goes to the potential, ``q = r·u`` along a random direction with ``V(q) = λE``, and the momentum
    ``offset(q) + s·u'`` along another random direction takes the rest (``offset`` is the vector
    potential of a magnetic system, zero otherwise).
    """

    def sample(n: int, gen: torch.Generator, energy: float) -> Tensor:
        if energy <= 0:
            raise InvalidArgumentError("energy", energy, "a positive energy (the minimum is V(0) = 0)")
        frac = torch.rand(n, generator=gen, dtype=F64)
        uq = directions(n, dof, gen)
        r = ray_root(lambda s: potential(s[:, None] * uq) - frac * energy, n)
        q = r[:, None] * uq
        base = None if offset is None else offset(q)
        p = momentum_on_shell(hamiltonian, q, directions(n, dof, gen), energy, base)
        return torch.cat([q, p], dim=-1)

    return sample


def shell_sampler(
    hamiltonian: Callable[[Tensor, Tensor], Tensor],
    potential_region: Callable[[Tensor], Tensor],
    q_low: Tensor | float,
    q_high: Tensor | float,
    dof: int,
    *,
    offset: Callable[[Tensor], Tensor] | None = None,
) -> Callable[[int, torch.Generator, float], Tensor]:
    """Sampler of states with ``H = E``: ``q`` uniform in the box ∩ {H(q, offset(q)) < E} ∩ region,
    the momentum direction uniform, its size solved on the energy shell."""

    def sample(n: int, gen: torch.Generator, energy: float) -> Tensor:
        def accept(q: Tensor) -> Tensor:
            p0 = offset(q) if offset is not None else torch.zeros_like(q)
            return potential_region(q) & (hamiltonian(q, p0) < energy)

        q = rejection(n, lambda m: uniform(m, q_low, q_high, dof, gen), lambda q, _: accept(q), what=energy)
        u = directions(n, dof, gen)
        p = momentum_on_shell(hamiltonian, q, u, energy, None if offset is None else offset(q))
        return torch.cat([q, p], dim=-1)

    return sample


def everywhere(q: Tensor) -> Tensor:
    return torch.ones(q.shape[0], dtype=torch.bool)
