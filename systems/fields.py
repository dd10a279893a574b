"""Hamiltonian vector fields ``f(t, y) = J∇H(y)``.

With ``y = [q, p]`` and ``J = [[0, I], [-I, 0]]``::

    dq/dt =  ∂H/∂p,    dp/dt = -∂H/∂q.

The gradient is that of ``Σ_batch H`` (samples are independent, so the gradient of the sum is the
per-sample gradient); this works for any batch shape and under ``vmap``, ``jacrev``, ``jvp`` and
ordinary autograd (for learned Hamiltonians with parameters). A system's hand-derived gradient, when
it has one, is used instead unless ``autodiff=True``. Automatic differentiation goes through
:class:`~symflow.systems.autodiff.ScalarGradient`: ``torch.func.grad`` where the result must compose
with transforms or carry a graph, one plain reverse pass otherwise, and a ``torch.compile``d kernel
once a long solve has called it often enough (``compile="auto"``; see :mod:`.autodiff`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import grad

from symflow.integrators.fields import SplitField

from .autodiff import ScalarGradient, check_compile
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

    ``t`` is accepted and ignored (Hamiltonians in the registry are autonomous). ``compile`` applies
    to automatic differentiation only (see :mod:`symflow.systems.autodiff`).
    """

    def __init__(
        self, system: HamiltonianSystem, *, autodiff: bool = False, compile: bool | str = "auto"
    ) -> None:
        self.system = system
        self.n = system.dof
        self.autodiff = autodiff or system.grad_hamiltonian is None
        compile = check_compile(compile)
        n = self.n
        what = f"∇H of {system.name!r}"
        self._grad = ScalarGradient(system.energy, what, compile=compile)
        # The field J∇H as one function of y, so that a compiled kernel covers the rotation too.
        self._field = ScalarGradient(
            system.energy, what, compile=compile, post=lambda g: torch.cat([g[..., n:], -g[..., :n]], dim=-1)
        )
        self.split: SplitField | None = (
            separable_field(system, autodiff=autodiff, compile=compile) if system.separable else None
        )

    def gradient(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(∂H/∂q, ∂H/∂p)`` at ``y``."""
        q, p = self.system.split(y)
        if not self.autodiff:
            return self.system.grad_hamiltonian(q, p)
        g = self._grad(y)
        return g[..., : self.n], g[..., self.n :]

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        if self.autodiff:
            return self._field(y)
        dq, dp = self.gradient(y)
        return torch.cat([dp, -dq], dim=-1)

    def __repr__(self) -> str:
        how = self._field.mode if self.autodiff else "hand-derived gradient"
        return f"HamiltonianField({self.system.name}, {how}, separable={self.split is not None})"


def vector_field(
    system: str | HamiltonianSystem, *, autodiff: bool = False, compile: bool | str = "auto"
) -> HamiltonianField:
    """``f(t, y) = J∇H(y)`` for a system (or a registered name).

    ``autodiff=True`` forces automatic differentiation even where a hand-derived gradient exists.
    ``compile`` (``"auto"``, ``True``, ``False``) decides whether an autodiff gradient is compiled
    with ``torch.compile``: ``"auto"`` does it once a long solve has evaluated it often enough and
    says so with a :class:`~symflow.systems.autodiff.CompiledFieldWarning`.
    """
    return HamiltonianField(get_system(system), autodiff=autodiff, compile=compile)


def separable_field(
    system: str | HamiltonianSystem, *, autodiff: bool = False, compile: bool | str = "auto"
) -> SplitField:
    """The separable pair ``(∂T/∂p, -∂V/∂q)`` used by explicit splitting methods.

    Raises :class:`~symflow.integrators.errors.CapabilityError` for a non-separable system.
    ``compile`` as in :func:`vector_field`.
    """
    from symflow.integrators.errors import CapabilityError

    system = get_system(system)
    if not system.separable:
        why = f" ({system.separability})" if system.separability else ""
        raise CapabilityError(
            f"system {system.name!r} is not separable (H ≠ T(p) + V(q){why}); explicit splittings do "
            "not apply — use an implicit symplectic method such as 'implicit_midpoint' or 'gl4', or, if "
            "H is T(p) + V(q), say so with from_hamiltonian(H, dof, kinetic=T, potential=V)"
        )
    kinetic, potential, n = system.kinetic, system.potential, system.dof
    compile = check_compile(compile)
    if system.grad_kinetic is not None and not autodiff:
        dT, dV = system.grad_kinetic, system.grad_potential

        def drift(t: Tensor, p: Tensor) -> Tensor:
            return dT(p)

        def kick(t: Tensor, q: Tensor) -> Tensor:
            return -dV(q)
    else:
        grad_t = ScalarGradient(kinetic, f"∂T/∂p of {system.name!r}", compile=compile)
        minus_grad_v = ScalarGradient(potential, f"∂V/∂q of {system.name!r}", compile=compile, post=torch.neg)

        def drift(t: Tensor, p: Tensor) -> Tensor:
            return grad_t(p)

        def kick(t: Tensor, q: Tensor) -> Tensor:
            return minus_grad_v(q)

    return SplitField(drift=drift, kick=kick, n=n)
