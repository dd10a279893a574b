"""Hamiltonian vector fields ``f(t, y) = J∇H(y)``.

With ``y = [q, p]`` and ``J = [[0, I], [-I, 0]]``::

    dq/dt =  ∂H/∂p,    dp/dt = -∂H/∂q.

The gradient comes from ``torch.func.grad`` of ``Σ_batch H`` (samples are independent, so the
gradient of the sum is the per-sample gradient); this works for any batch shape and under
``vmap``, ``jacrev``, ``jvp`` and ordinary autograd (for learned Hamiltonians with parameters).
A system's hand-derived gradient, when it has one, is used instead unless ``autodiff=True``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import grad

from symflow.integrators.fields import SplitField

from .registry import get_system
from .spec import HamiltonianSystem

Tensor = torch.Tensor


def gradient_of(energy: Callable[[Tensor], Tensor], y: Tensor) -> Tensor:
    """∇E(y) for a scalar-per-sample function ``energy: (..., D) -> (...)``."""
    return grad(lambda z: energy(z).sum())(y)


def symplectic_gradient(energy: Callable[[Tensor], Tensor], y: Tensor) -> Tensor:
    """``J∇E(y)`` for a scalar-per-sample energy of the state ``y = [q, p]``."""
    g = gradient_of(energy, y)
    n = y.shape[-1] // 2
    return torch.cat([g[..., n:], -g[..., :n]], dim=-1)


class HamiltonianField:
    """Callable ``f(t, y) = J∇H(y)`` of a system; carries ``split`` when ``H`` is separable.

    ``t`` is accepted and ignored (Hamiltonians in the registry are autonomous).
    """

    def __init__(self, system: HamiltonianSystem, *, autodiff: bool = False) -> None:
        self.system = system
        self.n = system.dof
        self.autodiff = autodiff or system.grad_hamiltonian is None
        self.split: SplitField | None = (
            separable_field(system, autodiff=autodiff) if system.separable else None
        )

    def gradient(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(∂H/∂q, ∂H/∂p)`` at ``y``."""
        q, p = self.system.split(y)
        if not self.autodiff:
            return self.system.grad_hamiltonian(q, p)
        g = gradient_of(self.system.energy, y)
        return g[..., : self.n], g[..., self.n :]

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        dq, dp = self.gradient(y)
        return torch.cat([dp, -dq], dim=-1)

    def __repr__(self) -> str:
        how = "torch.func.grad" if self.autodiff else "hand-derived gradient"
        return f"HamiltonianField({self.system.name}, {how}, separable={self.split is not None})"


def vector_field(system: str | HamiltonianSystem, *, autodiff: bool = False) -> HamiltonianField:
    """``f(t, y) = J∇H(y)`` for a system (or a registered name).

    ``autodiff=True`` forces ``torch.func.grad`` even where a hand-derived gradient exists.
    """
    return HamiltonianField(get_system(system), autodiff=autodiff)


def separable_field(system: str | HamiltonianSystem, *, autodiff: bool = False) -> SplitField:
    """The separable pair ``(∂T/∂p, -∂V/∂q)`` used by explicit splitting methods.

    Raises :class:`~symflow.integrators.errors.CapabilityError` for a non-separable system.
    """
    from symflow.integrators.errors import CapabilityError

    system = get_system(system)
    if not system.separable:
        raise CapabilityError(
            f"system {system.name!r} is not separable (H ≠ T(p) + V(q)); explicit splittings do not "
            "apply — use an implicit symplectic method such as 'implicit_midpoint' or 'gl4'"
        )
    kinetic, potential, n = system.kinetic, system.potential, system.dof
    if system.grad_kinetic is not None and not autodiff:
        dT, dV = system.grad_kinetic, system.grad_potential

        def drift(t: Tensor, p: Tensor) -> Tensor:
            return dT(p)

        def kick(t: Tensor, q: Tensor) -> Tensor:
            return -dV(q)
    else:

        def drift(t: Tensor, p: Tensor) -> Tensor:
            return grad(lambda z: kinetic(z).sum())(p)

        def kick(t: Tensor, q: Tensor) -> Tensor:
            return -grad(lambda z: potential(z).sum())(q)

    return SplitField(drift=drift, kick=kick, n=n)
