"""Parametric families: one registered system whose parameters ``μ`` vary within declared ranges.

A parametric ODE ``dy/dt = f(t, y; μ)`` (seed 004: "learn how the solution depends on the ODE's
parameters") is, for a Hamiltonian system, the family ``H(q, p; μ)`` with ``μ`` in a box
``[lo_1, hi_1] × … × [lo_P, hi_P]``. A system declares which of its parameters may vary, and their
default range, with one argument of :class:`~symflow.systems.Parameter`::

    Parameter("omega", 1.0, "angular frequency ω", minimum=0.0, strict=True, family_range=(0.5, 2.0))

and :func:`parametric_family` builds the family::

    fam = parametric_family("harmonic_oscillator", {"omega": (0.5, 2.0)})
    mu = fam.sample(64, seed=0)              # (64, 1) parameters, uniform in the range
    f = fam.field(t, y, mu)                  # J∇H(y; μ) with one μ per sample
    fam.system(omega=1.3)                    # the HamiltonianSystem at one point of the family

Every use checks ``μ`` against the family's range and refuses a value outside it, naming the range:
a learner trained on ``ω ∈ [0.5, 2]`` has no business being evaluated at ``ω = 3`` silently.

The batched field evaluates the system's own ``build`` function under ``torch.func.vmap`` with the
varying parameters as (batched) tensors, so every registered system whose ``build`` is written with
arithmetic on its parameters (no ``float(...)`` or branching on their values) is a family without
further code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch.func import vmap

from symflow.integrators.errors import CapabilityError, InvalidArgumentError

from .registry import get_spec
from .spec import HamiltonianSystem, SystemSpec

Tensor = torch.Tensor
F64 = torch.float64


def _range_text(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g}]"


def parse_range(text: str) -> tuple[str, tuple[float, float] | None]:
    """``"omega=0.5:2"`` → ``("omega", (0.5, 2.0))``; a bare ``"omega"`` → ``("omega", None)`` (the
    system's declared range). The command-line spelling of a range."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError("--param-range", text, "NAME=LO:HI (e.g. omega=0.5:2) or NAME")
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep:
        return name, None
    lo, colon, hi = rest.partition(":")
    try:
        if not colon:
            raise ValueError
        bounds = (float(lo), float(hi))
    except ValueError:
        raise InvalidArgumentError(
            "--param-range", text, "NAME=LO:HI with two numbers, e.g. omega=0.5:2"
        ) from None
    return name, bounds


@dataclass(frozen=True, eq=False)
class ParametricFamily:
    """A registered system with some parameters varying in a box (see the module docstring).

    Attributes:
        name: the system's registry name.
        ranges: ``name → (lo, hi)`` of the varying parameters, in a fixed order (the columns of
            ``μ``: ``params[..., k]`` is ``names[k]``).
        fixed: the values of every other parameter.
    """

    name: str
    ranges: Mapping[str, tuple[float, float]]
    fixed: Mapping[str, float | int]
    spec: SystemSpec = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ranges", MappingProxyType(dict(self.ranges)))
        object.__setattr__(self, "fixed", MappingProxyType(dict(self.fixed)))

    # -- shapes and ranges ----------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """The varying parameters, in column order."""
        return tuple(self.ranges)

    @property
    def n_params(self) -> int:
        return len(self.ranges)

    def bounds(self, dtype: torch.dtype = F64, device: Any = None) -> tuple[Tensor, Tensor]:
        lo = torch.tensor([r[0] for r in self.ranges.values()], dtype=dtype, device=device)
        hi = torch.tensor([r[1] for r in self.ranges.values()], dtype=dtype, device=device)
        return lo, hi

    def describe(self) -> str:
        """e.g. ``"harmonic_oscillator with omega ∈ [0.5, 2]"``."""
        parts = ", ".join(f"{k} ∈ {_range_text(*v)}" for k, v in self.ranges.items())
        return f"{self.name} with {parts}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (what run directories and files record)."""
        return {
            "system": self.name,
            "ranges": {k: [float(lo), float(hi)] for k, (lo, hi) in self.ranges.items()},
            "fixed": dict(self.fixed),
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ParametricFamily:
        ranges = {k: tuple(v) for k, v in values["ranges"].items()}
        return parametric_family(values["system"], ranges, **dict(values.get("fixed", {})))

    # -- checks ---------------------------------------------------------------------------------------
    def params(
        self, mu: Any, *, argument: str = "params", dtype: torch.dtype = F64, device: Any = None
    ) -> Tensor:
        """``μ`` as a tensor ``(..., P)`` after checking it lies in the family's range.

        ``mu`` is a tensor or array ``(..., P)`` (columns in :attr:`names` order), or a mapping
        ``name → value`` (numbers or tensors of one batch shape) with exactly the family's names.
        Values outside the range (or not finite) raise :class:`InvalidArgumentError` naming the
        parameter, the value and the range.
        """
        if isinstance(mu, Mapping):
            given = tuple(mu)
            if set(given) != set(self.names):
                raise InvalidArgumentError(
                    argument,
                    dict(mu),
                    f"values for exactly the family's parameters {list(self.names)} (got {list(given)})",
                )
            cols = [torch.as_tensor(mu[k], dtype=dtype, device=device) for k in self.names]
            try:
                cols = torch.broadcast_tensors(*cols)
            except RuntimeError as err:
                raise InvalidArgumentError(argument, dict(mu), "values of one batch shape") from err
            mu = torch.stack(cols, dim=-1)
        elif not isinstance(mu, Tensor):
            try:
                mu = torch.as_tensor(mu, dtype=dtype, device=device)
            except (TypeError, ValueError, RuntimeError) as err:
                raise InvalidArgumentError(argument, mu, f"numbers of shape (..., {self.n_params})") from err
        if mu.ndim == 0 or mu.shape[-1] != self.n_params or not mu.is_floating_point():
            raise InvalidArgumentError(
                argument, mu, f"floating-point values of shape (..., {self.n_params}) for {list(self.names)}"
            )
        mu = mu.to(dtype=dtype, device=device) if device is not None or mu.dtype != dtype else mu
        self.check_range(mu, argument=argument)
        return mu

    def check_range(self, mu: Tensor, *, argument: str = "params") -> None:
        """Raise when any entry of ``μ (..., P)`` is not finite or outside its range (with the range)."""
        flat = mu.detach().reshape(-1, self.n_params).to("cpu", F64)
        for k, (name, (lo, hi)) in enumerate(self.ranges.items()):
            col = flat[:, k]
            # the round-off of a bound stored in float32 is not "outside"
            tol = (1e-6 if mu.dtype == torch.float32 else 1e-12) * max(1.0, abs(lo), abs(hi))
            bad = ~torch.isfinite(col) | (col < lo - tol) | (col > hi + tol)
            if bool(bad.any()):
                value = float(col[bad][0])
                raise InvalidArgumentError(
                    f"{argument}[{name!r}]",
                    value,
                    f"a value in the family's range {name} ∈ {_range_text(lo, hi)} ({self.name})",
                )

    # -- sampling -------------------------------------------------------------------------------------
    def sample(
        self,
        n: int,
        *,
        seed: int | torch.Generator | None = 0,
        dtype: torch.dtype = F64,
        device: Any = None,
    ) -> Tensor:
        """``n`` parameter vectors ``(n, P)``, uniform in the box; drawn in float64 on the CPU from
        ``seed`` (an int or a ``torch.Generator``), then cast."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError("n", n, "a positive integer number of parameter vectors")
        gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed or 0))
        lo, hi = self.bounds()
        u = torch.rand(n, self.n_params, generator=gen, dtype=F64)
        return (lo + (hi - lo) * u).to(dtype=dtype, device=device)

    # -- the systems ----------------------------------------------------------------------------------
    def system(self, mu: Any = None, **values: Any) -> HamiltonianSystem:
        """The :class:`HamiltonianSystem` at one point of the family: ``fam.system(omega=1.3)`` or
        ``fam.system([1.3])``; checked against the range."""
        if mu is None:
            mu = values
        elif values:
            raise InvalidArgumentError("values", values, "either mu or keyword values, not both")
        row = self.params(mu).reshape(-1, self.n_params)
        if row.shape[0] != 1:
            raise InvalidArgumentError("mu", mu, f"one parameter vector of {self.n_params} values")
        given = {k: float(v) for k, v in zip(self.names, row[0].tolist())}
        return self.spec(**self.fixed, **given)

    def _bound(self, mu_row: Tensor) -> HamiltonianSystem:
        """The system built with the varying parameters as (possibly vmapped) 0-d tensors; no checks
        (they need Python values), which :meth:`params` did on the whole batch."""
        values = dict(self._resolved)
        values.update({k: mu_row[i] for i, k in enumerate(self.names)})
        return self.spec.build(**values)

    @property
    def _resolved(self) -> dict[str, Any]:
        return self.spec.resolve(self.fixed)

    def _batched(self, fn, y: Tensor, mu: Tensor, extra: Tensor | None = None) -> Tensor:
        """``fn(system(μ_i), y_i[, extra_i])`` for every sample, with ``y (..., D)``, ``μ (..., P)``."""
        batch = torch.broadcast_shapes(y.shape[:-1], mu.shape[:-1])
        ys = y.expand(*batch, y.shape[-1]).reshape(-1, y.shape[-1])
        ms = mu.to(y.dtype).expand(*batch, mu.shape[-1]).reshape(-1, mu.shape[-1])
        if extra is None:
            out = vmap(lambda yi, mi: fn(self._bound(mi), yi))(ys, ms)
        else:
            es = extra.to(y.dtype).expand(batch).reshape(-1)
            out = vmap(lambda yi, mi, ei: fn(self._bound(mi), yi, ei))(ys, ms, es)
        return out.reshape(*batch, *out.shape[1:])

    def field(self, t: Tensor | float, y: Tensor, mu: Tensor) -> Tensor:
        """``J∇H(y; μ)`` with one ``μ`` per sample (``mu (..., P)`` broadcast against ``y (..., D)``).

        No range check here (it would synchronise in every solver stage): check ``μ`` once with
        :meth:`params` before a solve or a training loop.
        """

        def one(system: HamiltonianSystem, yi: Tensor) -> Tensor:
            q, p = yi[: system.dof], yi[system.dof :]
            if system.grad_hamiltonian is not None:
                dq, dp = system.grad_hamiltonian(q, p)
            else:
                g = torch.func.grad(lambda z: system.energy(z))(yi)
                dq, dp = g[: system.dof], g[system.dof :]
            return torch.cat([dp, -dq], dim=-1)

        return self._batched(one, y, mu)

    def energy(self, y: Tensor, mu: Tensor) -> Tensor:
        """``H(y; μ)``, shape ``broadcast(y.shape[:-1], mu.shape[:-1])``."""
        return self._batched(lambda system, yi: system.energy(yi), y, mu)

    def augmented_field(self, t: Tensor | float, z: Tensor) -> Tensor:
        """The family as one autonomous system on ``z = [y, μ]`` (shape ``(..., D + P)``):
        ``dy/dt = J∇H(y; μ)``, ``dμ/dt = 0``.

        This is how a solver integrates many members of the family in one batch: adaptive solvers
        drop finished samples from the batch, so the parameters must travel with the state. The
        ``μ`` components stay exactly constant (their stages are exact zeros). Check ``μ`` with
        :meth:`params` first.
        """
        P = self.n_params
        y, mu = z[..., :-P], z[..., -P:]
        return torch.cat([self.field(t, y, mu), torch.zeros_like(mu)], dim=-1)

    def solve(self, y0: Tensor, mu: Any, ts: Tensor, method: str = "dop853", **options: Any) -> Tensor:
        """States ``(B, T, D)`` of the members ``μ (B, P)`` from ``y0 (B, D)`` at the times ``ts``, by
        :func:`symflow.integrators.solve` on the augmented state (:meth:`augmented_field`);
        ``options`` go to the solver (default tolerances there). Failures raise."""
        from symflow.integrators import solve

        mu = self.params(mu, dtype=y0.dtype, device=y0.device)
        mu = mu.expand(*y0.shape[:-1], self.n_params)
        sol = solve(self.augmented_field, torch.cat([y0, mu], dim=-1), ts, method, **options)
        return sol.ys[..., : -self.n_params]

    @property
    def has_exact_flow(self) -> bool:
        return self.spec(**self.fixed).exact_flow is not None

    def flow(self, t: Tensor | float, y0: Tensor, mu: Tensor) -> Tensor:
        """The exact flow ``φ_t(y0; μ)`` where the system has one (``t`` broadcastable to the batch)."""
        if not self.has_exact_flow:
            raise CapabilityError(
                f"system {self.name!r} has no known exact flow; integrate the family's field"
            )
        mu = self.params(mu, dtype=y0.dtype, device=y0.device)
        t = torch.as_tensor(t, dtype=y0.dtype, device=y0.device)
        batch = torch.broadcast_shapes(y0.shape[:-1], mu.shape[:-1], t.shape)
        return self._batched(
            lambda system, yi, ti: system.exact_flow(ti, yi),
            y0.expand(*batch, y0.shape[-1]),
            mu,
            t.expand(batch),
        )

    def __repr__(self) -> str:
        fixed = ", ".join(f"{k}={v}" for k, v in self.fixed.items())
        return f"ParametricFamily({self.describe()}{'; ' + fixed if fixed else ''})"


def declared_ranges(system: str | SystemSpec) -> dict[str, tuple[float, float]]:
    """The parameters a registered system declares as varying, with their default ranges."""
    spec = system if isinstance(system, SystemSpec) else get_spec(system)
    return {p.name: tuple(p.family_range) for p in spec.parameters if p.family_range is not None}


def parametric_family(
    system: str | SystemSpec,
    ranges: Mapping[str, Sequence[float] | None] | Sequence[str] | None = None,
    **fixed: Any,
) -> ParametricFamily:
    """The family of ``system`` with the parameters in ``ranges`` varying.

    Args:
        system: a registered system name (or its :class:`SystemSpec`).
        ranges: ``name → (lo, hi)``; ``name → None`` (or a list of names) takes the system's declared
            range; ``None`` makes every declared parameter vary over its declared range. Only
            parameters the system declares with ``family_range`` may vary; the bounds must be valid
            values of the parameter and ``lo < hi``.
        fixed: values of the other parameters (defaults for the rest).
    """
    spec = system if isinstance(system, SystemSpec) else get_spec(system)
    declared = declared_ranges(spec)
    if ranges is None:
        ranges = dict.fromkeys(declared)
    elif not isinstance(ranges, Mapping):
        if isinstance(ranges, str):
            raise InvalidArgumentError("ranges", ranges, "a mapping name → (lo, hi), or a list of names")
        ranges = dict.fromkeys(ranges)
    if not ranges:
        raise InvalidArgumentError(
            "ranges", dict(ranges), f"at least one varying parameter of {spec.name} ({_may_vary(declared)})"
        )
    known = {p.name: p for p in spec.parameters}
    for name in ranges:
        if name not in known:
            spec.resolve({name: 0.0})  # raises UnknownNameError with a did-you-mean
    spec.resolve(fixed)
    out: dict[str, tuple[float, float]] = {}
    for name, bounds in ranges.items():
        if name not in declared:
            raise InvalidArgumentError(
                "ranges", name, f"a parameter of {spec.name} that may vary: {_may_vary(declared)}"
            )
        if name in fixed:
            raise InvalidArgumentError(
                name, fixed[name], f"either a fixed value or a range for {name}, not both"
            )
        if bounds is None:
            bounds = declared[name]
        if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence) or len(bounds) != 2:
            raise InvalidArgumentError(f"ranges[{name!r}]", bounds, "two numbers (lo, hi)")
        lo, hi = (known[name].validate(v, spec.name) for v in bounds)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InvalidArgumentError(f"ranges[{name!r}]", bounds, "lo < hi")
        out[name] = (float(lo), float(hi))
    return ParametricFamily(spec.name, out, dict(fixed), spec)


def _may_vary(declared: Mapping[str, tuple[float, float]]) -> str:
    if not declared:
        return "none (no parameter declares a family_range)"
    return ", ".join(f"{k} (default range {lo:g}:{hi:g})" for k, (lo, hi) in declared.items())
