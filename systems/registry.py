"""The system registry: ``get_system``, ``register_system``, ``list_systems``, ``from_hamiltonian``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from symflow.integrators.errors import InvalidArgumentError, UnknownNameError
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
    try:
        spec = SYSTEMS.get(name)
    except UnknownNameError as err:
        err.args = (
            f"{err.args[0]} A system of your own: symflow.systems.register_system(...) it, or on the command "
            "line load the file that does with symflow --plugin FILE.py.",
        )
        raise
    return spec(**params)


def get_spec(name: str) -> SystemSpec:
    """The registry entry (parameters and their defaults) behind ``name``."""
    return SYSTEMS.get(name)


def list_systems() -> list[str]:
    """Names of every registered system, in registration order."""
    return SYSTEMS.names()


def from_hamiltonian(
    hamiltonian: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    dof: int,
    *,
    name: str = "custom",
    kinetic: Callable[[torch.Tensor], torch.Tensor] | None = None,
    potential: Callable[[torch.Tensor], torch.Tensor] | None = None,
    sampler: Callable[[int, torch.Generator, float | None], torch.Tensor] | None = None,
    box: float | tuple[Any, Any] = 1.0,
    separable: bool | None = None,
    **kwargs: Any,
) -> HamiltonianSystem:
    """Wrap a user Hamiltonian ``H(q, p)`` as a system (not registered; see :func:`register_system`).

    Args:
        hamiltonian: ``(q, p) -> H`` broadcasting over batch dimensions (``q``, ``p``: ``(..., dof)``);
            ``None`` when ``kinetic`` and ``potential`` are given (then ``H = T + V``).
        dof: degrees of freedom ``n`` (states have ``D = 2n`` components ``[q, p]``).
        kinetic, potential: ``T(p)`` and ``V(q)`` of a separable ``H = T(p) + V(q)``; checked against
            ``H`` at sampled states (a constant offset is allowed).
        sampler: ``(n, generator, energy) -> (n, D)`` float64 initial conditions. Default: uniform in
            ``box`` without ``energy``, and on the shell ``H = energy`` by root finding along random
            rays with it (see :mod:`symflow.systems.custom`).
        box: the default sampler's box: a half-width ``a`` (``[-a, a]^D``) or ``(low, high)``.
        separable: ``None`` (default) detects ``H = T(p) + V(q)`` from ``∂²H/∂q∂p = 0`` at sampled
            states (Hessian-vector products with ``torch.func``) and then gives the system ``T`` and
            ``V``, so explicit splittings (``verlet``, ``yoshida4``) apply; ``True`` requires it,
            ``False`` skips the check. The system's repr says which.
        **kwargs: other :class:`HamiltonianSystem` fields (``exact_flow``, ``poincare``,
            ``invariants``, ``coordinate_names``, ``grad_hamiltonian``, ``description``, ...).

    Example::

        well = from_hamiltonian(lambda q, p: 0.5 * (p**2).sum(-1) + ((q**2 - 1) ** 2).sum(-1), dof=1)
        well            # HamiltonianSystem(custom(), dof=1, separable=True (detected: ...))
        well.sample(8, energy=0.5)   # 8 states with H = 0.5
    """
    from .custom import check_split, default_sampler, detect_separable, sampling_box, split_from

    if isinstance(dof, bool) or not isinstance(dof, int) or dof < 1:
        raise InvalidArgumentError("dof", dof, "a positive integer number of degrees of freedom")
    if (kinetic is None) != (potential is None):
        raise InvalidArgumentError(
            "kinetic/potential", (kinetic, potential), "both given (separable H = T(p) + V(q)) or neither"
        )
    for label, fn in (("kinetic", kinetic), ("potential", potential), ("sampler", sampler)):
        if fn is not None and not callable(fn):
            raise InvalidArgumentError(label, fn, "a callable")
    if hamiltonian is None:
        if kinetic is None:
            raise InvalidArgumentError(
                "hamiltonian", hamiltonian, "a callable H(q, p), or kinetic= and potential="
            )
        T, V = kinetic, potential
        hamiltonian = lambda q, p: T(p) + V(q)  # noqa: E731
    if not callable(hamiltonian):
        raise InvalidArgumentError("hamiltonian", hamiltonian, "a callable H(q, p)")
    if separable not in (None, True, False):
        raise InvalidArgumentError("separable", separable, "None (detect), True or False")
    low, high = sampling_box(box, 2 * dof)
    how = ""
    if kinetic is not None:
        if separable is False:
            raise InvalidArgumentError(
                "separable", separable, "True or None when kinetic/potential are given"
            )
        check_split(hamiltonian, kinetic, potential, dof, low, high)
        how = "given: kinetic= and potential="
    elif separable is not False:
        found, how, ref = detect_separable(hamiltonian, dof, low, high)
        if found:
            kinetic, potential = split_from(hamiltonian, dof, ref)
        elif separable:
            raise InvalidArgumentError(
                "separable", True, f"a separable H = T(p) + V(q), but {how}; pass kinetic= and potential="
            )
    else:
        how = "not checked (separable=False)"
    if sampler is None:
        sampler = default_sampler(hamiltonian, dof, low, high)
    return HamiltonianSystem(
        name=name,
        dof=dof,
        hamiltonian=hamiltonian,
        kinetic=kinetic,
        potential=potential,
        sampler=sampler,
        separability=how,
        **kwargs,
    )
