"""The system registry: ``get_system``, ``register_system``, ``list_systems``, ``from_hamiltonian``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from symflow.integrators.errors import InvalidArgumentError
from symflow.integrators.registry import Registry

from .spec import HamiltonianSystem, SystemSpec

SYSTEMS: Registry[SystemSpec] = Registry("system")


def register_system(
    spec: SystemSpec | HamiltonianSystem, *, aliases: tuple[str, ...] = (), overwrite: bool = False
) -> SystemSpec:
    """Add a system family (a :class:`SystemSpec`) or a fixed system to the registry.

    Duplicate names are refused unless ``overwrite=True``. A plain :class:`HamiltonianSystem` is
    registered as a family without parameters.
    """
    if isinstance(spec, HamiltonianSystem):
        system = spec
        spec = SystemSpec(name=system.name, build=lambda: system, summary=system.description)
    if not isinstance(spec, SystemSpec):
        raise InvalidArgumentError("spec", spec, "a SystemSpec or a HamiltonianSystem")
    SYSTEMS.register(spec.name, spec, aliases=aliases, overwrite=overwrite)
    return spec


def get_system(name: str | HamiltonianSystem, **params: Any) -> HamiltonianSystem:
    """The registered system ``name`` built with ``params`` (defaults for the rest).

    ``get_system("henon_heils")`` raises with "did you mean 'henon_heiles'"; unknown or ill-typed
    parameters raise naming the parameter. A :class:`HamiltonianSystem` passes through unchanged.
    """
    if isinstance(name, HamiltonianSystem):
        if params:
            raise InvalidArgumentError("params", params, "no parameters when passing a built system")
        return name
    return SYSTEMS.get(name)(**params)


def get_spec(name: str) -> SystemSpec:
    """The registry entry (parameters and their defaults) behind ``name``."""
    return SYSTEMS.get(name)


def list_systems() -> list[str]:
    """Names of every registered system, in registration order."""
    return SYSTEMS.names()


def from_hamiltonian(
    hamiltonian: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    dof: int,
    *,
    name: str = "custom",
    kinetic: Callable[[torch.Tensor], torch.Tensor] | None = None,
    potential: Callable[[torch.Tensor], torch.Tensor] | None = None,
    sampler: Callable[[int, torch.Generator, float | None], torch.Tensor] | None = None,
    **kwargs: Any,
) -> HamiltonianSystem:
    """Wrap a user Hamiltonian ``H(q, p)`` as a system (not registered; see :func:`register_system`).

    Example::

        sys = from_hamiltonian(lambda q, p: 0.5 * (p**2).sum(-1) + (1 - torch.cos(q)).sum(-1), dof=1)
    """
    if not callable(hamiltonian):
        raise InvalidArgumentError("hamiltonian", hamiltonian, "a callable H(q, p)")
    return HamiltonianSystem(
        name=name,
        dof=dof,
        hamiltonian=hamiltonian,
        kinetic=kinetic,
        potential=potential,
        sampler=sampler,
        **kwargs,
    )
