"""Damped (dissipative) systems and their Hamiltonian form on a doubled phase space.

**Physical systems.** A :class:`DissipativeSystem` is a unit-mass mechanical system with linear
(Rayleigh) friction,

    q̇ = p,    ṗ = −∇V(q) − 2λ p,      E(q, p) = ½|p|² + V(q),    dE/dt = −2λ|p|² ≤ 0,

so it is *not* Hamiltonian: its flow contracts phase-space volume by ``e^{−2nλt}``. The catalogue has
the damped harmonic oscillator (``V = ½ω²|q|²``, exact solution in all three regimes) and the damped
pendulum (``V = ω²(1 − cos q)``, ``ω² = g/l``, no closed form).

**Doubled phase space** (Galley, "Classical mechanics of nonconservative systems", Phys. Rev. Lett.
110, 174301 (2013); the dual-oscillator idea goes back to Bateman, Phys. Rev. 38, 815 (1931)). Take two
copies ``(q₁, p₁)``, ``(q₂, p₂)`` of the state and the Hamiltonian

    H(q₁, q₂, p₁, p₂) = ½|p₁|² − ½|p₂|² + V(q₁) − V(q₂) + λ (q₁ − q₂)·(p₁ − p₂)

on ``R^{4n}`` with the canonical ``J`` (state ``y = [q₁, q₂, p₁, p₂]``). In the Galley variables
``q₊ = (q₁ + q₂)/2``, ``p₊ = (p₁ − p₂)/2``, ``q₋ = q₁ − q₂``, ``p₋ = p₁ + p₂`` Hamilton's equations
read ``q̇₊ = p₊``, ``ṗ₊ = −½(∇V(q₁) + ∇V(q₂)) − 2λ p₊``, ``q̇₋ = p₋ + 2λ q₋``, ``ṗ₋ = ∇V(q₂) − ∇V(q₁)``.
The *physical limit* ``q₋ = p₋ = 0`` (mirror coordinates fixed to the physical ones: ``q₂ = q₁``,
``p₂ = −p₁``) is invariant, and on it ``(q₊, p₊)`` follows the damped equations exactly. This is the
construction the SympFlow paper uses for the damped oscillator (Canizares, Murari, Schönlieb, Sherry &
Shumaylov, arXiv:2412.16787, 2024). :class:`Doubling` holds the two linear maps between the spaces:

* ``lift(x) = (q, q, p, −p)`` — a physical state on the physical limit;
* ``project(y) = ((q₁ + q₂)/2, (p₁ − p₂)/2)`` — the physical state ``(q₊, p₊)``;

``project(lift(x)) = x``, and ``lift ∘ project`` is the (linear) projection onto the physical limit.
``H`` vanishes on the physical limit, so the energy that carries meaning is the *physical* ``E`` of
the projected state (:meth:`Doubling.physical_energy`). The mirror pair ``(q₋, p₋)`` is anti-damped
(it grows like ``e^{2λt}``), so round-off off the limit grows; :meth:`Doubling.limit_field` is the
doubled field evaluated at the projection onto the limit, which equals ``J∇H`` on the limit and keeps
integrations there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch

from symflow.integrators.errors import CapabilityError, InvalidArgumentError

from .registry import register_system
from .sampling import uniform
from .spec import HamiltonianSystem, Parameter, SystemSpec

Tensor = torch.Tensor

GALLEY = "Galley, Phys. Rev. Lett. 110, 174301 (2013); Bateman, Phys. Rev. 38, 815 (1931)"


@dataclass(frozen=True, eq=False)
class DissipativeSystem:
    """A unit-mass system with linear friction: ``q̇ = p``, ``ṗ = −∇V(q) − 2λp`` (not Hamiltonian).

    Attributes:
        name: registry name of its doubled form (e.g. ``"damped_harmonic_oscillator"``).
        dof: degrees of freedom ``n``; physical states are ``x = [q, p]`` of size ``2n``.
        lam: the damping rate ``λ ≥ 0`` (the friction force is ``−2λp``).
        potential, grad_potential: ``V(q) -> (...)`` and ``∇V(q) -> (..., n)``.
        params: parameter values (read-only).
        sampler: ``(n, generator, energy) -> (n, 2n)`` float64 physical states; ``energy`` is the
            physical ``E`` or ``None`` (a typical set).
        exact_flow: ``(t, x0) -> x(t)`` where known.
        linear: ``V`` is quadratic (then the doubled system's exact flow is a matrix exponential).
    """

    name: str
    dof: int
    lam: float
    potential: Callable[[Tensor], Tensor]
    grad_potential: Callable[[Tensor], Tensor]
    params: Mapping[str, float | int] = field(default_factory=lambda: MappingProxyType({}))
    sampler: Callable[[int, torch.Generator, float | None], Tensor] | None = None
    exact_flow: Callable[[Tensor, Tensor], Tensor] | None = None
    coordinate_names: tuple[str, ...] = ("q", "p")
    description: str = ""
    reference: str = ""
    linear: bool = False

    def __post_init__(self) -> None:
        if (
            isinstance(self.lam, bool)
            or not isinstance(self.lam, (int, float))
            or not math.isfinite(self.lam)
        ):
            raise InvalidArgumentError("lam", self.lam, "a finite damping rate λ >= 0")
        if self.lam < 0:
            raise InvalidArgumentError("lam", self.lam, "a damping rate λ >= 0 (λ < 0 would pump energy in)")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def dim(self) -> int:
        """Physical state dimension ``2n``."""
        return 2 * self.dof

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not isinstance(x, Tensor) or x.ndim < 1 or x.shape[-1] != self.dim:
            raise InvalidArgumentError(
                "x", x, f"a physical state tensor of shape (..., {self.dim}) for {self.name}"
            )
        return x[..., : self.dof], x[..., self.dof :]

    def energy(self, x: Tensor) -> Tensor:
        """The physical (mechanical) energy ``E = ½|p|² + V(q)``, shape ``x.shape[:-1]``."""
        q, p = self.split(x)
        return 0.5 * (p * p).sum(-1) + self.potential(q)

    def field(self, t: Tensor, x: Tensor) -> Tensor:
        """The damped field ``(p, −∇V(q) − 2λp)``; ``f(t, x)`` for :func:`symflow.integrators.solve`."""
        q, p = self.split(x)
        return torch.cat([p, -self.grad_potential(q) - 2.0 * self.lam * p], dim=-1)

    def vector_field(self) -> Callable[[Tensor, Tensor], Tensor]:
        """``f(t, x)`` of the physical (dissipative) dynamics."""
        return self.field

    def flow(self, t: Tensor | float, x0: Tensor) -> Tensor:
        """The exact solution ``x(t)`` from ``x0`` where known; ``t`` broadcasts against the batch."""
        if self.exact_flow is None:
            raise CapabilityError(
                f"system {self.name!r} has no closed-form solution; integrate system.field with "
                "symflow.integrators.solve"
            )
        self.split(x0)
        return self.exact_flow(torch.as_tensor(t, dtype=x0.dtype, device=x0.device), x0)

    def sample(
        self, n: int, *, seed: int | torch.Generator | None = 0, energy: float | None = None
    ) -> Tensor:
        """``n`` physical initial states (float64, CPU), reproducible from ``seed``."""
        if self.sampler is None:
            raise CapabilityError(f"system {self.name!r} has no initial-condition sampler")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError("n", n, "a positive integer number of samples")
        gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed or 0))
        return self.sampler(n, gen, None if energy is None else float(energy))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"DissipativeSystem({self.name}({args}), dof={self.dof}, λ={self.lam})"


@dataclass(frozen=True, eq=False)
class Doubling:
    """The link between a :class:`DissipativeSystem` and its doubled Hamiltonian form.

    ``lift``: physical ``(..., 2n)`` → doubled ``(..., 4n)`` on the physical limit ``(q, q, p, −p)``;
    ``project``: doubled → physical ``((q₁ + q₂)/2, (p₁ − p₂)/2)``. Both are linear and check the last
    dimension (a state of the wrong size is refused with one line).
    """

    physical: DissipativeSystem

    @property
    def physical_dim(self) -> int:
        return self.physical.dim

    @property
    def dim(self) -> int:
        return 2 * self.physical.dim

    def lift(self, x: Tensor) -> Tensor:
        """``(q, p) -> (q, q, p, −p)``: the doubled state with the mirror fixed to the physical one."""
        if not isinstance(x, Tensor) or x.ndim < 1 or x.shape[-1] != self.physical_dim:
            raise InvalidArgumentError(
                "x",
                x,
                f"a physical state of shape (..., {self.physical_dim}) to lift for {self.physical.name}",
            )
        n = self.physical.dof
        q, p = x[..., :n], x[..., n:]
        return torch.cat([q, q, p, -p], dim=-1)

    def project(self, y: Tensor) -> Tensor:
        """``(q₁, q₂, p₁, p₂) -> ((q₁ + q₂)/2, (p₁ − p₂)/2)``: the physical state of a doubled one."""
        if not isinstance(y, Tensor) or y.ndim < 1 or y.shape[-1] != self.dim:
            raise InvalidArgumentError(
                "y", y, f"a doubled state of shape (..., {self.dim}) to project for {self.physical.name}"
            )
        n = self.physical.dof
        q1, q2, p1, p2 = y[..., :n], y[..., n : 2 * n], y[..., 2 * n : 3 * n], y[..., 3 * n :]
        return torch.cat([0.5 * (q1 + q2), 0.5 * (p1 - p2)], dim=-1)

    def to_limit(self, y: Tensor) -> Tensor:
        """``lift(project(y))``: the nearest point of the physical limit (orthogonal projection)."""
        return self.lift(self.project(y))

    def limit_defect(self, y: Tensor) -> Tensor:
        """``|y − lift(project(y))|``: how far a doubled state is from the physical limit."""
        return (y - self.to_limit(y)).norm(dim=-1)

    def physical_energy(self, y: Tensor) -> Tensor:
        """The physical energy ``E`` of the projected state of a doubled ``y``."""
        return self.physical.energy(self.project(y))

    def limit_field(self, system: HamiltonianSystem) -> Callable[[Tensor, Tensor], Tensor]:
        """``f(t, y) = J∇H(lift(project(y)))``: the doubled field on the physical limit, constant
        across it. Equal to ``J∇H`` on the limit (tested), so trajectories started there are the same
        in exact arithmetic, but round-off cannot excite the anti-damped mirror modes."""
        from .fields import vector_field

        f = vector_field(system)
        return lambda t, y: f(t, self.to_limit(y))

    def config(self) -> dict[str, object]:
        """JSON description (stored in trajectory files' attributes)."""
        return {
            "construction": "galley",
            "physical_system": self.physical.name,
            "physical_dim": self.physical_dim,
            "lift": "(q, p) -> (q, q, p, -p)",
            "project": "(q1, q2, p1, p2) -> ((q1 + q2)/2, (p1 - p2)/2)",
        }

    def __repr__(self) -> str:
        return f"Doubling({self.physical!r}: {self.physical_dim} -> {self.dim})"


def doubled(system: DissipativeSystem) -> HamiltonianSystem:
    """The Hamiltonian system on the doubled phase space of a damped system (Galley's construction).

    ``H = ½|p₁|² − ½|p₂|² + V(q₁) − V(q₂) + λ(q₁ − q₂)·(p₁ − p₂)`` with ``2n`` degrees of freedom; the
    returned system's ``doubling`` attribute (a :class:`Doubling`) lifts physical states onto the
    physical limit and projects doubled states back. Its sampler draws physical states and lifts
    them (``energy=`` means the *physical* energy, since ``H = 0`` on the physical limit); its exact
    flow is the matrix exponential when ``V`` is quadratic (the oscillator), else absent.

    Example::

        osc = damped_harmonic_oscillator(omega=1.0, lam=0.1)
        sys2 = doubled(osc)                          # HamiltonianSystem, dof = 2
        y0 = sys2.doubling.lift(torch.tensor([1.0, 0.0], dtype=torch.float64))
        x_t = sys2.doubling.project(sys2.flow(5.0, y0))   # == osc.flow(5.0, x0)
    """
    if not isinstance(system, DissipativeSystem):
        raise InvalidArgumentError(
            "system", system, "a DissipativeSystem (e.g. damped_harmonic_oscillator())"
        )
    n, lam = system.dof, float(system.lam)
    V, dV = system.potential, system.grad_potential
    link = Doubling(system)

    def parts(q: Tensor, p: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return q[..., :n], q[..., n:], p[..., :n], p[..., n:]

    def h(q: Tensor, p: Tensor) -> Tensor:
        q1, q2, p1, p2 = parts(q, p)
        return (
            0.5 * (p1 * p1).sum(-1)
            - 0.5 * (p2 * p2).sum(-1)
            + V(q1)
            - V(q2)
            + lam * ((q1 - q2) * (p1 - p2)).sum(-1)
        )

    def grad_h(q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        q1, q2, p1, p2 = parts(q, p)
        dp, dq = p1 - p2, q1 - q2
        return (
            torch.cat([dV(q1) + lam * dp, -dV(q2) - lam * dp], dim=-1),
            torch.cat([p1 + lam * dq, -p2 - lam * dq], dim=-1),
        )

    sampler = None
    if system.sampler is not None:
        physical_sampler = system.sampler

        def sampler(m: int, gen: torch.Generator, energy: float | None) -> Tensor:
            return link.lift(physical_sampler(m, gen, energy))

    exact = None
    if system.linear:
        exact = _doubled_linear_flow(link, float(system.params["omega"]), lam)
    qn, pn = system.coordinate_names[:n], system.coordinate_names[n:]
    names = (*qn, *(f"{c}_mirror" for c in qn), *pn, *(f"{c}_mirror" for c in pn))
    return HamiltonianSystem(
        name=system.name,
        dof=2 * n,
        params=dict(system.params),
        hamiltonian=h,
        grad_hamiltonian=grad_h,
        sampler=sampler,
        exact_flow=exact,
        coordinate_names=names,
        description=f"{system.description} Doubled phase space (Galley): project with system.doubling.",
        reference=f"{system.reference}; {GALLEY}",
        doubling=link,
    )


# --- the catalogue ---------------------------------------------------------------------------------


def _damped_oscillator_flow(omega: float, lam: float) -> Callable[[Tensor, Tensor], Tensor]:
    """Exact solution of ``q̈ + 2λq̇ + ω²q = 0`` (componentwise), with ``c``/``s`` per regime:

    ``x(t) = e^{−λt} [q₀ c + (p₀ + λq₀) s,  p₀ c − (λp₀ + ω²q₀) s]`` where, with ``w = √|ω² − λ²|``,
    under-damped ``c = cos wt, s = sin(wt)/w``; critical ``c = 1, s = t``; over-damped
    ``c = cosh wt, s = sinh(wt)/w``.
    """
    disc = omega * omega - lam * lam
    w = math.sqrt(abs(disc))
    critical = w <= 1e-12 * omega

    def flow(t: Tensor, x0: Tensor) -> Tensor:
        batch = torch.broadcast_shapes(t.shape, x0.shape[:-1])
        x0 = x0.expand(*batch, x0.shape[-1])
        t = t.expand(batch)[..., None]
        n = x0.shape[-1] // 2
        q0, p0 = x0[..., :n], x0[..., n:]
        if critical:
            c, s = torch.ones_like(t), t
        elif disc > 0:
            c, s = torch.cos(w * t), torch.sin(w * t) / w
        else:
            c, s = torch.cosh(w * t), torch.sinh(w * t) / w
        decay = torch.exp(-lam * t)
        q = decay * (q0 * c + (p0 + lam * q0) * s)
        p = decay * (p0 * c - (lam * p0 + omega * omega * q0) * s)
        return torch.cat([q, p], dim=-1)

    return flow


def _doubled_linear_flow(link: Doubling, omega: float, lam: float) -> Callable[[Tensor, Tensor], Tensor]:
    """Exact flow of the doubled oscillator in Galley's variables: ``(q₊, p₊)`` follows the damped
    oscillator, ``(q₋, v₋ = p₋ + 2λq₋)`` the anti-damped one (``λ → −λ``). Unlike ``exp(tJS)``, this
    keeps states on the physical limit exactly there (no round-off amplified by ``e^{2λt}``)."""
    plus = _damped_oscillator_flow(omega, lam)
    minus = _damped_oscillator_flow(omega, -lam)
    n = link.physical.dof

    def flow(t: Tensor, y0: Tensor) -> Tensor:
        q1, q2, p1, p2 = y0[..., :n], y0[..., n : 2 * n], y0[..., 2 * n : 3 * n], y0[..., 3 * n :]
        qm = q1 - q2
        x_plus = plus(t, torch.cat([0.5 * (q1 + q2), 0.5 * (p1 - p2)], dim=-1))
        x_minus = minus(t, torch.cat([qm, p1 + p2 + 2 * lam * qm], dim=-1))
        qp, pp = x_plus[..., :n], x_plus[..., n:]
        qm, pm = x_minus[..., :n], x_minus[..., n:] - 2 * lam * x_minus[..., :n]
        return torch.cat([qp + 0.5 * qm, qp - 0.5 * qm, pp + 0.5 * pm, 0.5 * pm - pp], dim=-1)

    return flow


def _disc_sampler(omega: float, dof: int):
    """Default states of a damped one-dof system: uniform (by area) in the ellipse ``{E ≤ ½}``
    (``ω²q² + p² ≤ 1``, forward invariant under damping); with ``energy``: on the ellipse ``E = energy``.
    Several dofs: the box ``[−1, 1]^{2n}``. (A log-uniform radius, where decaying trajectories spend
    their time, trained worse: see ``benchmarks/bench_damped.py``.)"""

    def sample(m: int, gen: torch.Generator, energy: float | None) -> Tensor:
        if energy is not None and energy < 0:
            raise InvalidArgumentError("energy", energy, "a physical energy >= 0")
        if dof > 1:
            if energy is not None:
                raise CapabilityError("energy-shell sampling of the damped oscillator needs n = 1")
            return uniform(m, -1.0, 1.0, 2 * dof, gen)
        u = torch.rand(m, 2, generator=gen, dtype=torch.float64)
        if energy is None:
            r = u[:, 0].sqrt()
        else:
            r = torch.full((m,), math.sqrt(2 * energy), dtype=torch.float64)
        theta = 2 * math.pi * u[:, 1]
        return torch.stack([r * torch.cos(theta) / omega, r * torch.sin(theta)], dim=-1)

    return sample


def damped_harmonic_oscillator(omega: float = 1.0, lam: float = 0.01, n: int = 1) -> DissipativeSystem:
    """``q̈ = −ω²q − 2λq̇`` (unit mass, ``p = q̇``); exact solution under-, critically and over-damped."""
    if isinstance(omega, bool) or not isinstance(omega, (int, float)) or not omega > 0:
        raise InvalidArgumentError("omega", omega, "an angular frequency ω > 0")
    w2 = float(omega) ** 2
    return DissipativeSystem(
        name="damped_harmonic_oscillator",
        dof=n,
        lam=lam,
        potential=lambda q: 0.5 * w2 * (q * q).sum(-1),
        grad_potential=lambda q: w2 * q,
        params={"omega": float(omega), "lam": float(lam)},
        sampler=_disc_sampler(float(omega), n),
        exact_flow=_damped_oscillator_flow(float(omega), float(lam)),
        coordinate_names=("q", "p")
        if n == 1
        else (*(f"q{i}" for i in range(n)), *(f"p{i}" for i in range(n))),
        description="Damped harmonic oscillator q'' = -w^2 q - 2 lam q'.",
        reference="Goldstein, Classical Mechanics (3rd ed.), §2.7; Galley (2013)",
        linear=True,
    )


def damped_pendulum(g: float = 1.0, length: float = 1.0, lam: float = 0.01) -> DissipativeSystem:
    """``θ̈ = −(g/l) sin θ − 2λθ̇`` (``p = θ̇``, ``E = ½p² + (g/l)(1 − cos θ)``); no closed form."""
    for name, value in (("g", g), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InvalidArgumentError(name, value, "a positive number")
    w2 = float(g) / float(length)
    small = _disc_sampler(math.sqrt(w2), 1)

    def sample(m: int, gen: torch.Generator, energy: float | None) -> Tensor:
        if energy is None:  # librations: uniform in {E ≤ ½} as for the oscillator
            return small(m, gen, None)
        if energy < 0:
            raise InvalidArgumentError("energy", energy, "a physical energy >= 0")
        # θ uniform where V(θ) ≤ E, then |p| from E, random sign.
        limit = math.pi if energy >= 2 * w2 else math.acos(1 - energy / w2)
        u = torch.rand(m, 2, generator=gen, dtype=torch.float64)
        theta = (2 * u[:, 0] - 1) * limit
        speed = (2 * (energy - w2 * (1 - torch.cos(theta)))).clamp_min(0).sqrt()
        return torch.stack([theta, torch.where(u[:, 1] < 0.5, speed, -speed)], dim=-1)

    return DissipativeSystem(
        name="damped_pendulum",
        dof=1,
        lam=lam,
        potential=lambda q: w2 * (1 - torch.cos(q)).sum(-1),
        grad_potential=lambda q: w2 * torch.sin(q),
        params={"g": float(g), "length": float(length), "lam": float(lam)},
        sampler=sample,
        coordinate_names=("theta", "p_theta"),
        description="Damped pendulum theta'' = -(g/l) sin theta - 2 lam theta'.",
        reference="Strogatz, Nonlinear Dynamics and Chaos (2nd ed.), §6.7; Galley (2013)",
    )


_LAM = Parameter("lam", 0.01, "damping rate λ (friction force −2λp)", minimum=0.0)

register_system(
    SystemSpec(
        name="damped_harmonic_oscillator",
        build=lambda omega, lam: doubled(damped_harmonic_oscillator(omega=omega, lam=lam)),
        parameters=(Parameter("omega", 1.0, "angular frequency ω", minimum=0.0, strict=True), _LAM),
        summary="damped oscillator on the doubled phase space (Galley), exact flow",
    ),
    aliases=("damped_oscillator",),
)

register_system(
    SystemSpec(
        name="damped_pendulum",
        build=lambda g, length, lam: doubled(damped_pendulum(g=g, length=length, lam=lam)),
        parameters=(
            Parameter("g", 1.0, "gravitational acceleration g", minimum=0.0, strict=True),
            Parameter("length", 1.0, "rod length l", minimum=0.0, strict=True),
            _LAM,
        ),
        summary="damped pendulum on the doubled phase space (Galley)",
    ),
)
