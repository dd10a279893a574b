"""Sets ``Ω`` of initial states the flow-map learners are trained on.

Seed 004 ("Forward invariant subset of the phase space"): a flow map learned on ``Ω × [0, Δt]``
composes to any time only if trajectories starting in ``Ω`` stay in ``Ω``. Energy sublevel sets
``{x : H(x) ≤ E}`` (the bounded component) are forward invariant for every Hamiltonian system,
which makes :class:`EnergySublevel` the natural choice; boxes are not invariant in general.

Every domain draws ``n`` states with an explicit ``torch.Generator`` (CPU, float64, then cast), so a
training run's collocation points are reproducible and resumable bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from symflow.integrators.errors import InvalidArgumentError
from symflow.systems import HamiltonianSystem

Tensor = torch.Tensor
F64 = torch.float64


class Domain(Protocol):
    """A set Ω of initial states that collocation points are drawn from (``sample``) and that describes
    itself for ``config.json`` (``config``).
    """

    dim: int

    def sample(
        self, n: int, generator: torch.Generator, *, dtype: torch.dtype = F64, device: Any = None
    ) -> Tensor: ...

    def config(self) -> dict[str, Any]: ...


def _count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidArgumentError("n", n, "a positive integer number of states")
    return n


class SystemDomain:
    """The system's own sampler: its typical box, or the shell ``H = energy`` when given."""

    def __init__(self, system: HamiltonianSystem, energy: float | None = None) -> None:
        self.system = system
        self.energy = energy
        self.dim = system.dim

    def sample(self, n: int, generator: torch.Generator, *, dtype=F64, device=None) -> Tensor:
        return self.system.sample(_count(n), seed=generator, energy=self.energy, dtype=dtype, device=device)

    def config(self) -> dict[str, Any]:
        return {"kind": "system", "energy": self.energy}


class Box:
    """Uniform samples in ``[low, high]`` (per-component bounds)."""

    def __init__(self, low: Sequence[float] | Tensor, high: Sequence[float] | Tensor) -> None:
        self.low = torch.as_tensor(low, dtype=F64, device="cpu").flatten()  # sampled on the host
        self.high = torch.as_tensor(high, dtype=F64, device="cpu").flatten()
        if self.low.shape != self.high.shape or not (self.high > self.low).all():
            raise InvalidArgumentError("high", high, f"bounds of the same length, each above low={low}")
        if not (torch.isfinite(self.low).all() and torch.isfinite(self.high).all()):
            raise InvalidArgumentError("low/high", (low, high), "finite bounds")
        self.dim = int(self.low.shape[0])

    def sample(self, n: int, generator: torch.Generator, *, dtype=F64, device=None) -> Tensor:
        u = torch.rand(_count(n), self.dim, generator=generator, dtype=F64, device="cpu")
        return (self.low + (self.high - self.low) * u).to(dtype=dtype, device=device)

    def config(self) -> dict[str, Any]:
        return {"kind": "box", "low": self.low.tolist(), "high": self.high.tolist()}


class EnergySublevel:
    """Uniform samples of ``{x : energy_min ≤ H(x) ≤ energy_max}`` inside a bounding box.

    Rejection sampling from the box. Without an explicit box, it is the bounding box of 4096 states
    the system's sampler puts on the shell ``H = energy_max``, widened by 10% on each side: the
    extremes of a coordinate over a compact sublevel set lie on its boundary shell, so that box
    contains the set's bounded component and, for the catalogue's systems, none of the unbounded
    ones (Hénon–Heiles below the escape energy 1/6). Pass ``low``/``high`` to choose it yourself.
    """

    def __init__(
        self,
        system: HamiltonianSystem,
        energy_max: float,
        *,
        energy_min: float | None = None,
        low: Sequence[float] | Tensor | None = None,
        high: Sequence[float] | Tensor | None = None,
    ) -> None:
        if isinstance(energy_max, bool) or not isinstance(energy_max, (int, float)):
            raise InvalidArgumentError("energy_max", energy_max, "a number")
        if energy_min is not None and (
            isinstance(energy_min, bool)
            or not isinstance(energy_min, (int, float))
            or energy_min >= energy_max
        ):
            raise InvalidArgumentError("energy_min", energy_min, f"a number below energy_max={energy_max}")
        self.system = system
        self.dim = system.dim
        self.energy_max = float(energy_max)
        self.energy_min = None if energy_min is None else float(energy_min)
        if (low is None) != (high is None):
            raise InvalidArgumentError("low/high", (low, high), "both bounds or neither")
        if low is None:
            shell = system.sample(4096, seed=20240917, energy=self.energy_max)
            lo, hi = shell.min(dim=0).values, shell.max(dim=0).values
            pad = 0.1 * (hi - lo)
            low, high = lo - pad, hi + pad
        self.box = Box(low, high)
        if self.box.dim != self.dim:
            raise InvalidArgumentError("low", low, f"{self.dim} bounds for {system.name}")
        # Acceptance rate, for sizing the rejection rounds (and to fail early on an empty set).
        probe = self.box.sample(4096, torch.Generator().manual_seed(0))
        self.acceptance = float(self._accept(probe).double().mean())
        if self.acceptance == 0.0:
            raise InvalidArgumentError(
                "energy_max", energy_max, f"a level whose sublevel set meets the box {self.box.config()}"
            )

    def _accept(self, x: Tensor) -> Tensor:
        h = self.system.energy(x)
        ok = h <= self.energy_max
        if self.energy_min is not None:
            ok = ok & (h >= self.energy_min)
        return ok

    def sample(self, n: int, generator: torch.Generator, *, dtype=F64, device=None) -> Tensor:
        n = _count(n)
        chunks, have = [], 0
        batch = max(64, math.ceil(1.3 * n / self.acceptance))
        for _ in range(1000):
            cand = self.box.sample(batch, generator)
            cand = cand[self._accept(cand)]
            chunks.append(cand)
            have += cand.shape[0]
            if have >= n:
                return torch.cat(chunks)[:n].to(dtype=dtype, device=device)
        raise InvalidArgumentError(
            "energy_max", self.energy_max, "a sublevel set that rejection sampling can fill"
        )

    def config(self) -> dict[str, Any]:
        return {
            "kind": "sublevel",
            "energy_max": self.energy_max,
            "energy_min": self.energy_min,
            "low": self.box.low.tolist(),
            "high": self.box.high.tolist(),
        }


def make_domain(system: HamiltonianSystem, spec: dict[str, Any] | None) -> Domain:
    """A domain from its ``config()`` dict (``None``: the system's sampler)."""
    if spec is None:
        return SystemDomain(system)
    if not isinstance(spec, dict) or "kind" not in spec:
        raise InvalidArgumentError("domain", spec, "a dict with a 'kind' (system, box or sublevel)")
    kind = spec["kind"]
    args = {k: v for k, v in spec.items() if k != "kind"}
    try:
        if kind == "system":
            return SystemDomain(system, **args)
        if kind == "box":
            return Box(**args)
        if kind == "sublevel":
            return EnergySublevel(system, **args)
    except TypeError as err:
        raise InvalidArgumentError("domain", spec, f"valid options for a {kind!r} domain ({err})") from err
    raise InvalidArgumentError("domain", spec, "kind 'system', 'box' or 'sublevel'")
