"""Frozen descriptions of Hamiltonian systems.

A :class:`SystemSpec` is a registry entry: a *family* with named, typed parameters (``"fput"`` with
``n`` masses and coupling ``alpha``). Calling it with parameter values returns a
:class:`HamiltonianSystem`, a concrete system whose callables are bound to those values.

Conventions (see ``docs/concepts.md``): states are ``y = [q, p]`` of shape ``(..., D)``, ``D = 2n``;
``hamiltonian(q, p)`` broadcasts over any batch shape and returns shape ``(...)``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from symflow.integrators.errors import CapabilityError, InvalidArgumentError
from symflow.integrators.registry import Registry

Tensor = torch.Tensor
ScalarFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Parameter:
    """A named system parameter with a default, a type and an allowed range.

    ``kind`` is ``float`` or ``int``; ``minimum``/``maximum`` bound the value (inclusive unless
    ``strict``), so e.g. a mass must be ``> 0``. ``family_range=(lo, hi)`` declares that the parameter
    may vary across a parametric family (:mod:`symflow.systems.families`) and its default range there.
    """

    name: str
    default: float | int
    doc: str
    kind: type = float
    minimum: float | None = None
    maximum: float | None = None
    strict: bool = False
    family_range: tuple[float, float] | None = None

    def validate(self, value: Any, system: str) -> float | int:
        where = f"{system}: parameter {self.name!r}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgumentError(where, value, f"a {self.kind.__name__} ({self.doc})")
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise InvalidArgumentError(where, value, f"an integer ({self.doc})")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise InvalidArgumentError(where, value, f"a finite number ({self.doc})")
        lo, hi = self.minimum, self.maximum
        if lo is not None and (value < lo or (self.strict and value == lo)):
            raise InvalidArgumentError(where, value, f"a value {'>' if self.strict else '>='} {lo}")
        if hi is not None and value > hi:
            raise InvalidArgumentError(where, value, f"a value <= {hi}")
        return value


@dataclass(frozen=True)
class PoincareSurface:
    """A surface of section ``g(y) = 0`` crossed in a chosen direction.

    Attributes:
        g: ``y -> (...)`` whose sign change marks a crossing.
        direction: ``+1`` counts crossings where ``g`` increases, ``-1`` decreasing, ``0`` both.
        coords: indices of the two state components plotted in the section.
        labels: axis labels of those components.
        description: e.g. ``"x = 0, p_x > 0"``.
    """

    g: Callable[[Tensor], Tensor]
    direction: int
    coords: tuple[int, int]
    labels: tuple[str, str]
    description: str

    @classmethod
    def plane(
        cls,
        coordinate: int | str,
        value: float = 0.0,
        *,
        direction: int = 1,
        plot: tuple[int | str, int | str],
        names: Sequence[str] | HamiltonianSystem | None = None,
    ) -> PoincareSurface:
        """The surface ``y[coordinate] = value`` in one line, for the common case.

        ``PoincareSurface.plane("q1", 0.0, direction=+1, plot=("q2", "p2"), names=system)`` is the plane
        ``q1 = 0`` crossed upwards, plotted in ``(q2, p2)``. Coordinates are indices into the state
        ``y = [q, p]`` or names; names are looked up in ``names`` (a system, whose
        ``coordinate_names`` are used, or a sequence of names); :meth:`HamiltonianSystem.surface`
        passes the system itself.

        Args:
            coordinate: the coordinate that is held at ``value`` on the surface.
            value: where the plane sits.
            direction: ``+1`` counts crossings where the coordinate increases, ``-1`` decreasing,
                ``0`` both.
            plot: the two coordinates plotted in the section (neither may be ``coordinate``).
            names: coordinate names for name lookups (and labels).
        """
        if isinstance(names, HamiltonianSystem):
            names = names.coordinate_names
        names = tuple(names) if names is not None else None
        if isinstance(direction, bool) or direction not in (-1, 0, 1):
            raise InvalidArgumentError("direction", direction, "+1 (increasing), -1 (decreasing) or 0 (both)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidArgumentError("value", value, "a finite number")
        if not isinstance(plot, (tuple, list)) or len(plot) != 2:
            raise InvalidArgumentError("plot", plot, "two coordinates (names or indices) to plot")
        index = _coordinate_index(coordinate, names, "coordinate")
        coords = (_coordinate_index(plot[0], names, "plot"), _coordinate_index(plot[1], names, "plot"))
        if coords[0] == coords[1] or index in coords:
            raise InvalidArgumentError(
                "plot", plot, f"two different coordinates, neither of them the section's {coordinate!r}"
            )
        label = names[index] if names is not None else f"y[{index}]"
        labels = tuple(names[c] if names is not None else f"y[{c}]" for c in coords)
        side = {1: "increasing", -1: "decreasing", 0: "either direction"}[direction]
        level = float(value)
        return cls(
            g=lambda y: y[..., index] - level,
            direction=direction,
            coords=coords,
            labels=labels,
            description=f"{label} = {level:g}, {label} {side}",
        )

    def __repr__(self) -> str:
        return (
            f"PoincareSurface({self.description!r}, direction={self.direction:+d}, "
            f"plot={self.labels}, coords={self.coords})"
        )


def _coordinate_index(key: int | str, names: tuple[str, ...] | None, argument: str) -> int:
    """A state index from an index or a coordinate name (with did-you-mean for names)."""
    if isinstance(key, bool):
        raise InvalidArgumentError(argument, key, "a coordinate index or name")
    if isinstance(key, int):
        if key < 0 or (names is not None and key >= len(names)):
            bound = f"0 ≤ index < {len(names)}" if names is not None else "a non-negative index"
            raise InvalidArgumentError(argument, key, bound)
        return key
    if isinstance(key, str):
        if names is None:
            raise InvalidArgumentError(
                argument, key, "an index, or a name together with names=system (or a list of names)"
            )
        if key in names:
            return names.index(key)
        close = difflib.get_close_matches(key, names, n=2, cutoff=0.5)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise InvalidArgumentError(argument, key, f"one of the coordinates {names}{hint}")
    raise InvalidArgumentError(argument, key, "a coordinate index or name")


@dataclass(frozen=True, eq=False)
class HamiltonianSystem:
    """A concrete Hamiltonian system ``dy/dt = J∇H(y)`` with bound parameters.

    Attributes:
        name: registry name (or ``"custom"``).
        dof: degrees of freedom ``n``; states have ``D = 2n`` components ``[q, p]``.
        params: the parameter values (read-only mapping).
        hamiltonian: ``(q, p) -> H``, broadcasting over batch dimensions.
        kinetic, potential: ``T(p)`` and ``V(q)`` when ``H = T(p) + V(q)`` (separable), else ``None``.
        grad_hamiltonian: optional hand-derived ``(q, p) -> (∂H/∂q, ∂H/∂p)``; it makes fields several
            times cheaper than automatic differentiation and is checked against ``torch.func.grad`` in
            the test suite.
        doubling: for the doubled-phase-space form of a damped system, the
            :class:`~symflow.systems.dissipative.Doubling` (``lift``/``project`` to and from the
            physical state, ``physical_energy``); ``None`` for every other system.
        grad_kinetic, grad_potential: hand-derived ``∂T/∂p`` and ``∂V/∂q`` of a separable system; when
            both are given they also define ``grad_hamiltonian``.
        sampler: ``(n, generator, energy) -> (n, D)`` float64 initial conditions on the CPU; ``energy``
            is ``None`` (a typical box) or a float (states with exactly that energy).
        exact_flow: ``(t, y0) -> y(t)`` where known; ``t`` broadcasts against the batch of ``y0``.
        poincare: the customary surface of section, if any.
        invariants: other conserved quantities, ``name -> (q, p) -> value``.
        separability: how ``separable`` was decided, for systems built by
            :func:`~symflow.systems.from_hamiltonian` (e.g. ``"detected: ∂²H/∂q∂p = 0 at 64 sampled
            states"``); shown in the repr. Empty for the catalogue, whose splits are written by hand.
    """

    name: str
    dof: int
    hamiltonian: ScalarFn
    params: Mapping[str, float | int] = field(default_factory=lambda: MappingProxyType({}))
    kinetic: Callable[[Tensor], Tensor] | None = None
    potential: Callable[[Tensor], Tensor] | None = None
    grad_hamiltonian: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None
    grad_kinetic: Callable[[Tensor], Tensor] | None = None
    grad_potential: Callable[[Tensor], Tensor] | None = None
    sampler: Callable[[int, torch.Generator, float | None], Tensor] | None = None
    exact_flow: Callable[[Tensor, Tensor], Tensor] | None = None
    poincare: PoincareSurface | None = None
    invariants: Mapping[str, ScalarFn] = field(default_factory=lambda: MappingProxyType({}))
    coordinate_names: tuple[str, ...] | None = None
    description: str = ""
    reference: str = ""
    separability: str = ""
    doubling: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.dof, int) or self.dof < 1:
            raise InvalidArgumentError("dof", self.dof, "a positive integer number of degrees of freedom")
        if (self.kinetic is None) != (self.potential is None):
            raise InvalidArgumentError(
                "kinetic/potential", (self.kinetic, self.potential), "both given (separable H) or neither"
            )
        if (self.grad_kinetic is None) != (self.grad_potential is None) or (
            self.grad_kinetic is not None and self.kinetic is None
        ):
            raise InvalidArgumentError(
                "grad_kinetic/grad_potential",
                (self.grad_kinetic, self.grad_potential),
                "both given together with kinetic and potential, or neither",
            )
        if self.grad_hamiltonian is None and self.grad_kinetic is not None:
            dT, dV = self.grad_kinetic, self.grad_potential
            object.__setattr__(self, "grad_hamiltonian", lambda q, p: (dV(q), dT(p)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "invariants", MappingProxyType(dict(self.invariants)))
        if self.coordinate_names is None:
            qs = tuple(f"q{i}" for i in range(self.dof)) if self.dof > 1 else ("q",)
            ps = tuple(f"p{i}" for i in range(self.dof)) if self.dof > 1 else ("p",)
            object.__setattr__(self, "coordinate_names", qs + ps)
        elif len(self.coordinate_names) != 2 * self.dof:
            raise InvalidArgumentError("coordinate_names", self.coordinate_names, f"{2 * self.dof} names")

    # -- shapes -------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """State dimension ``D = 2n``."""
        return 2 * self.dof

    @property
    def separable(self) -> bool:
        """True when ``H(q, p) = T(p) + V(q)`` is known in split form (explicit splittings apply)."""
        return self.kinetic is not None

    def split(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``y -> (q, p)`` after checking the last dimension."""
        if not isinstance(y, torch.Tensor):
            raise InvalidArgumentError("y", y, f"a tensor of shape (..., {self.dim})")
        if y.shape[-1:] != (self.dim,):
            raise InvalidArgumentError("y", y, f"a tensor of shape (..., {self.dim}) for {self.name}")
        return y[..., : self.dof], y[..., self.dof :]

    # -- evaluation ---------------------------------------------------------------------------------
    def energy(self, y: Tensor) -> Tensor:
        """``H(y)`` with shape ``y.shape[:-1]``."""
        q, p = self.split(y)
        return self.hamiltonian(q, p)

    H = energy

    def invariant_values(self, y: Tensor) -> dict[str, Tensor]:
        """Energy and every registered invariant at ``y`` (vector invariants keep their last dim)."""
        q, p = self.split(y)
        values = {"energy": self.hamiltonian(q, p)}
        values.update({name: fn(q, p) for name, fn in self.invariants.items()})
        return values

    def sample(
        self,
        n: int,
        *,
        seed: int | torch.Generator | None = 0,
        energy: float | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``n`` initial conditions, shape ``(n, D)``; reproducible from ``seed`` on any device.

        With ``energy=E`` every state has ``H = E`` (to round-off); otherwise states come from a box
        of typical values for the system. Sampling runs in float64 on the CPU and is then cast.
        """
        if self.sampler is None:
            raise CapabilityError(
                f"system {self.name!r} has no initial-condition sampler: give it one with "
                "sampler=(n, generator, energy) -> (n, D) states (from_hamiltonian provides a default "
                "box / energy-shell sampler when sampler= is omitted)"
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError("n", n, "a positive integer number of samples")
        if energy is not None and (isinstance(energy, bool) or not isinstance(energy, (int, float))):
            raise InvalidArgumentError("energy", energy, "a float or None")
        gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed or 0))
        with torch.device("cpu"):  # samplers build their tensors on the host, whatever the default device
            y = self.sampler(n, gen, None if energy is None else float(energy))
        return y.to(dtype=dtype, device=device)

    def flow(self, t: Tensor | float, y0: Tensor) -> Tensor:
        """The exact flow ``φ_t(y0)``, where the system has one."""
        if self.exact_flow is None:
            raise CapabilityError(
                f"system {self.name!r} has no known exact flow; integrate it with symflow.integrators.solve"
            )
        self.split(y0)
        t = torch.as_tensor(t, dtype=y0.dtype, device=y0.device)
        return self.exact_flow(t, y0)

    def surface(
        self,
        coordinate: int | str,
        value: float = 0.0,
        *,
        direction: int = 1,
        plot: tuple[int | str, int | str],
    ) -> PoincareSurface:
        """``PoincareSurface.plane`` with this system's coordinate names, e.g.
        ``system.surface("q1", 0.0, direction=+1, plot=("q2", "p2"))``."""
        return PoincareSurface.plane(
            coordinate, value, direction=direction, plot=plot, names=self.coordinate_names
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        how = f" ({self.separability})" if self.separability else ""
        return f"HamiltonianSystem({self.name}({args}), dof={self.dof}, separable={self.separable}{how})"


@dataclass(frozen=True)
class SystemSpec:
    """A registry entry: a parametrised family of systems.

    ``build(**params)`` receives validated parameter values (every parameter, defaults filled in).
    """

    name: str
    build: Callable[..., HamiltonianSystem]
    parameters: tuple[Parameter, ...] = ()
    summary: str = ""

    def __call__(self, **params: Any) -> HamiltonianSystem:
        return self.build(**self.resolve(params))

    def resolve(self, params: Mapping[str, Any]) -> dict[str, float | int]:
        """Validated parameter values with defaults filled in; unknown names raise with suggestions."""
        known: Registry[Parameter] = Registry(f"parameter of {self.name}")
        for p in self.parameters:
            known.register(p.name, p)
        values = {p.name: p.default for p in self.parameters}
        for key, value in params.items():
            spec = known.get(key)  # raises UnknownNameError with a did-you-mean
            values[spec.name] = value
        return {p.name: p.validate(values[p.name], self.name) for p in self.parameters}
