"""Adapters that turn anything mapping states forward into what the diagnostics measure.

Two kinds of input reach the diagnostics:

* **Trajectories** — states already computed on a time grid: a :class:`~symflow.integrators.Solution`
  (:func:`from_solution`) or an HDF5 trajectory file (:func:`load_trajectory_file`). They carry times
  ``t (N, T)``, states ``y (N, T, D)`` and a per-sample valid ``length``; energy errors and trajectory
  plots need nothing more.
* **Flow sources** (:class:`FlowSource`) — maps ``y ↦ Φ_t(y)`` that can be evaluated anywhere, which the
  symplecticity defect (Jacobians of ``Φ_t``), reversibility and Poincaré sections need:

  - :class:`IntegratorSource`: a vector field ``f(t, y)`` integrated by
    :func:`~symflow.integrators.solve` (any method; a fixed ``dt`` turns it into an *integrator step*
    map, adaptive methods use ``rtol``/``atol``);
  - :class:`ExactFlowSource`: a :class:`~symflow.systems.HamiltonianSystem`'s exact flow;
  - :class:`FlowMapSource`: a flow-map callable ``phi(t, y0) -> y(t)`` valid for ``0 ≤ t ≤ Δt`` (how
    SympFlow/PINN models plug in: ``FlowMapSource.from_model(model)``, i.e. ``model(t, x0)`` with
    ``Δt = model.dt``). Longer times are the composition ``Φ_t = N(δ) ∘ N(Δt)ⁿ`` with
    ``n = ⌊t/Δt⌋`` and ``δ = t − nΔt``.

All sources are autonomous maps: ``flow(t, y)`` is the state a *duration* ``t`` after ``y`` (the
Hamiltonian systems in the registry and learned flow maps are autonomous). ``t`` is a float or a tensor
broadcastable against the batch (``(B,)``: every sample its own duration), as for vector fields.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from symflow.integrators import CapabilityError, InvalidArgumentError, Registry, Solution, get_method, solve
from symflow.integrators.reprs import compact_repr, short
from symflow.systems import HamiltonianSystem, get_system, vector_field

Tensor = torch.Tensor


# --------------------------------------------------------------------------------------------------
# Trajectories on a grid
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trajectories:
    """States on per-sample time grids, batch first.

    Attributes:
        t: ``(N, T)`` times; entries past ``length`` are NaN.
        y: ``(N, T, D)`` states (NaN past ``length``).
        length: ``(N,)`` number of valid time points per sample.
        status: ``(N,)`` int8 :class:`~symflow.integrators.Status` codes, or ``None`` when unknown.
        system: registry name of the system that generated them (``None``: unknown).
        system_args: its parameters.
        origin: a short human description (``"file data.h5"``, ``"dopri5 solve"``).
    """

    t: Tensor
    y: Tensor
    length: Tensor
    status: Tensor | None = None
    system: str | None = None
    system_args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    origin: str = ""

    def __post_init__(self) -> None:
        if self.y.dim() != 3:
            raise InvalidArgumentError("y", self.y, "states of shape (N, T, D)")
        n, steps, _ = self.y.shape
        if tuple(self.t.shape) != (n, steps):
            raise InvalidArgumentError("t", self.t, f"times of shape ({n}, {steps}) matching y")
        if tuple(self.length.shape) != (n,):
            raise InvalidArgumentError("length", self.length, f"lengths of shape ({n},)")
        object.__setattr__(self, "system_args", MappingProxyType(dict(self.system_args)))

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def dim(self) -> int:
        return int(self.y.shape[-1])

    @property
    def mask(self) -> Tensor:
        """``(N, T)`` True where the time point is valid (inside ``length``, finite time)."""
        idx = torch.arange(self.t.shape[1], device=self.t.device)
        return (idx < self.length.unsqueeze(1)) & torch.isfinite(self.t)

    @property
    def y0(self) -> Tensor:
        """``(N, D)`` initial states."""
        return self.y[:, 0]

    def select(self, index: Tensor | slice | list[int]) -> Trajectories:
        """A subset of the samples (same metadata)."""
        return Trajectories(
            self.t[index],
            self.y[index],
            self.length[index],
            None if self.status is None else self.status[index],
            self.system,
            self.system_args,
            self.origin,
        )

    def __repr__(self) -> str:
        failed = 0 if self.status is None else int((self.status != 0).sum())
        return compact_repr(
            self,
            fields=("system", "origin"),
            n=self.n,
            times=self.t.shape[1],
            dim=self.dim,
            failed=failed,
            y=short(self.y),
        )


def from_solution(sol: Solution, *, system: str | HamiltonianSystem | None = None) -> Trajectories:
    """Trajectories of a :class:`~symflow.integrators.Solution` (batch flattened to ``N``)."""
    if not isinstance(sol, Solution):
        raise InvalidArgumentError("sol", sol, "a symflow.integrators.Solution")
    d = sol.ys.shape[-1]
    steps = sol.ys.shape[-2]
    y = sol.ys.reshape(-1, steps, d)
    n = y.shape[0]
    t = sol.ts.to(y.dtype)
    t = t.expand(n, steps) if t.dim() == 1 else t.reshape(n, steps)
    length = torch.full((n,), steps, dtype=torch.long, device=y.device)
    name, args = _system_name(system)
    return Trajectories(
        t.clone(), y, length, sol.status.reshape(n), name, args, origin=f"{sol.method or 'solve'} solution"
    )


def load_trajectory_file(path: str | Path, **keys: Any) -> Trajectories:
    """Read a trajectory file through :func:`symflow.data.open_trajectories` (which validates it:
    schema, completeness, finite strictly increasing times, finite states; errors name the file and
    the trajectory). ``keys`` (``t_key``, ``y_key``, ``mask_key``) read plain-layout files.
    Failed trajectories are kept with their status (diagnostics skip them)."""
    from symflow.data import open_trajectories
    from symflow.data.reader import BLOCK_ROWS as _BLOCK_ROWS
    from symflow.data.reader import system_args as _system_args

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    with open_trajectories(path, **keys) as f:
        system = f.attrs.get("system")
        system_args = _system_args(f.attrs, path)  # bad text is an error, never the default parameters
        # Block by block into arrays of the (storage-checked) declared size.
        t = torch.empty(f.n, f.n_times, dtype=torch.float64)
        y = torch.empty(f.n, f.n_times, f.dim, dtype=torch.float64)
        for s in range(0, f.n, _BLOCK_ROWS):
            bt, by, _ = f.read_block(s, s + _BLOCK_ROWS)
            t[s : s + len(bt)] = torch.from_numpy(bt)
            y[s : s + len(by)] = torch.from_numpy(by)
        length = torch.from_numpy(f.length.copy()).long()
        status = None if f.status is None else torch.from_numpy(f.status.astype("int8"))
    return Trajectories(
        t,
        y,
        length,
        status,
        None if system in (None, "", "unknown") else str(system),
        system_args,
        origin=f"file {path.name}",
    )


def _validate(traj: Trajectories, where: str) -> None:
    """Finite, strictly increasing times and finite states inside each trajectory's length."""
    idx = torch.arange(traj.t.shape[1])
    inside = idx < traj.length.unsqueeze(1)
    bad_t = inside & ~torch.isfinite(traj.t)
    pairs = inside[:, 1:] & ~(traj.t.diff(dim=1) > 0)
    ok = traj.status == 0 if traj.status is not None else torch.ones(traj.n, dtype=torch.bool)
    bad_y = inside & ok.unsqueeze(1) & ~torch.isfinite(traj.y).all(-1)
    for name, mask, expected in (
        ("t", bad_t, "finite times inside each trajectory's length"),
        ("t", pairs, "strictly increasing times inside each trajectory's length"),
        ("y", bad_y, "finite states inside the length of every successful trajectory"),
    ):
        if bool(mask.any()):
            row = int(mask.any(1).nonzero()[0, 0])
            col = int(mask[row].nonzero()[0, 0])
            raise InvalidArgumentError(
                f"{where}: dataset {name}", f"trajectory {row} at index {col}", expected
            )


def _system_name(system: str | HamiltonianSystem | None) -> tuple[str | None, dict[str, Any]]:
    if system is None:
        return None, {}
    built = get_system(system)
    return built.name, dict(built.params)


# --------------------------------------------------------------------------------------------------
# Flow sources
# --------------------------------------------------------------------------------------------------


class FlowSource(ABC):
    """A map ``y ↦ Φ_t(y)`` that moves states forward (and, where it can, backward) in time.

    Subclasses implement :meth:`flow`; :meth:`march` and :meth:`trajectory` have generic versions
    built on it, which integrator sources replace by a single solve.

    Attributes:
        name: a short description used in reports.
        system: the Hamiltonian system behind the map, when known (true energy, default section).
        max_step: the longest duration one call of the underlying map may cover (``inf``: any).
        functorch: whether :meth:`flow` runs under ``torch.func`` transforms (``vmap``/``jacrev``).
        backward: whether :meth:`flow` accepts negative durations (the reversibility check needs it).
    """

    name: str = "flow"
    system: HamiltonianSystem | None = None
    max_step: float = math.inf
    functorch: bool = True
    backward: bool = True

    @abstractmethod
    def flow(self, t: float | Tensor, y: Tensor) -> Tensor:
        """``Φ_t(y)`` for states ``(..., D)``; ``t`` a float or broadcastable against the batch."""

    def velocity(self, y: Tensor) -> Tensor | None:
        """``dΦ_t(y)/dt`` at ``t = 0`` where known (the vector field), else ``None``."""
        return None

    @property
    def default_stride(self) -> float:
        """Grid spacing used to bracket Poincaré crossings when none is given."""
        return min(self.max_step, 0.1)

    def march(self, y: Tensor, durations: list[float]) -> tuple[Tensor, Tensor | None]:
        """States after each of the consecutive ``durations``, ``(B, K + 1, D)`` including ``y``, and
        the per-sample :class:`~symflow.integrators.Status` of the propagation where known (else
        ``None``; a failed map shows as non-finite states)."""
        out = [y]
        for d in durations:
            y = self.flow(d, y)
            out.append(y)
        return torch.stack(out, dim=1), None

    def trajectory(self, y0: Tensor, ts: Tensor, *, progress: bool = False) -> Trajectories:
        """States at the times ``ts`` (shared ``(T,)``), starting at ``y0`` at ``ts[0]``.

        Each output is ``Φ_{t − t₀}(y0)`` computed from ``y0`` (for a flow map: ``N(δ)∘N(Δt)ⁿ``).
        """
        y0, ts = _check_y0_ts(y0, ts)
        with _bar(len(ts), progress, "trajectories") as bar:
            ys = []
            for t in ts:
                ys.append(self.flow(float(t - ts[0]), y0))
                bar.update(1)
        return _as_trajectories(torch.stack(ys, dim=1), ts, self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class IntegratorSource(FlowSource):
    """A vector field ``f(t, y)`` integrated by :func:`~symflow.integrators.solve`.

    With a fixed ``dt`` the map is the method's own step composed ``⌈t/dt⌉`` times (an *integrator
    step*); without, an adaptive method runs with ``rtol``/``atol``. Every extra keyword goes to
    ``solve`` unchanged (and unknown ones are errors there).

    Args:
        f: the vector field (``symflow.systems.vector_field(system)`` for a registered system).
        method: registry name of the method.
        dt: step size of fixed-step methods (required for them).
        system: the Hamiltonian system behind ``f``, if any.
    """

    def __init__(
        self,
        f: Callable[[Tensor, Tensor], Tensor],
        method: str = "dopri5",
        *,
        dt: float | None = None,
        system: HamiltonianSystem | str | None = None,
        **solve_options: Any,
    ) -> None:
        if not callable(f):
            raise InvalidArgumentError("f", f, "a vector field f(t, y)")
        spec = get_method(method)
        _check_solve_options(solve_options)
        adaptive = solve_options.get("adaptive", spec.adaptive and dt is None)
        if not adaptive and dt is None:
            raise InvalidArgumentError("dt", dt, f"a step size for the fixed-step method {spec.name!r}")
        if dt is not None and (isinstance(dt, bool) or not isinstance(dt, (int, float)) or not dt > 0):
            raise InvalidArgumentError("dt", dt, "a positive step size")
        self.f = f
        self.method = spec.name
        self.dt = None if dt is None else float(dt)
        self.adaptive = bool(adaptive)
        self.options = dict(solve_options)
        if self.dt is not None:
            self.options["dt"] = self.dt
        self.system = None if system is None else get_system(system)
        self.functorch = not self.adaptive
        how = f"dt={self.dt:g}" if self.dt is not None else _tolerances(self.options)
        self.name = f"{self.method} ({how})"

    @classmethod
    def for_system(
        cls, system: HamiltonianSystem | str, method: str = "dopri5", **kwargs: Any
    ) -> IntegratorSource:
        """The system's field ``J∇H`` integrated by ``method``."""
        built = get_system(system)
        return cls(vector_field(built), method, system=built, **kwargs)

    @property
    def default_stride(self) -> float:
        # Fixed-step: the grid is the steps themselves, so root finding works on single real steps.
        return self.dt if self.dt is not None else 0.1

    def velocity(self, y: Tensor) -> Tensor:
        return self.f(torch.zeros((), dtype=y.dtype, device=y.device), y)

    def flow(self, t: float | Tensor, y: Tensor) -> Tensor:
        if not isinstance(t, Tensor) or t.dim() == 0:
            t = float(t)
            if t == 0.0:
                return y
            ts = torch.tensor([0.0, t], dtype=y.dtype, device=y.device)
            return self._solve(y, ts)[..., -1, :]
        # Per-sample durations: per-sample grids [0, t_b]. A zero duration is solved over a dummy
        # interval of the same sign as the others and replaced by y (grids must all run one way).
        t = t.to(dtype=y.dtype, device=y.device).expand(y.shape[:-1])
        sign = 1.0 if bool((t >= 0).all()) else -1.0
        if sign < 0 and bool((t > 0).any()):
            raise InvalidArgumentError("t", t, "durations of one sign in a batched flow call")
        zero = t == 0
        span = torch.where(zero, torch.full_like(t, sign), t)
        ts = torch.stack([torch.zeros_like(span), span], dim=-1)
        out = self._solve(y, ts)[..., -1, :]
        return torch.where(zero.unsqueeze(-1), y, out)

    def march(self, y: Tensor, durations: list[float]) -> tuple[Tensor, Tensor | None]:
        times = [0.0]
        for d in durations:
            times.append(times[-1] + d)
        grid = torch.tensor(times, dtype=y.dtype, device=y.device)
        sol = solve(self.f, y, grid, self.method, throw=False, **self.options)
        return sol.ys, sol.status

    def trajectory(self, y0: Tensor, ts: Tensor, *, progress: bool = False) -> Trajectories:
        y0, ts = _check_y0_ts(y0, ts)
        # Segments of the grid only serve the progress bar; each restarts from the last state.
        n_seg = min(20, len(ts) - 1) if progress and len(ts) > 2 else 1
        cuts = torch.linspace(0, len(ts) - 1, n_seg + 1).round().long().tolist()
        parts, status, y = [y0.unsqueeze(1)], None, y0
        with _bar(n_seg, progress, "trajectories") as bar:
            for a, b in itertools.pairwise(cuts):
                sol = solve(self.f, y, ts[a : b + 1], self.method, throw=False, **self.options)
                parts.append(sol.ys[:, 1:])
                status = sol.status if status is None else torch.where(status == 0, sol.status, status)
                y = sol.ys[:, -1]
                bar.update(1)
        traj = _as_trajectories(torch.cat(parts, dim=1), ts, self)
        return Trajectories(traj.t, traj.y, traj.length, status, traj.system, traj.system_args, self.name)

    def _solve(self, y: Tensor, ts: Tensor) -> Tensor:
        # Failed samples come back as NaN states with a status: the diagnostics treat them as data.
        return solve(self.f, y, ts, self.method, throw=False, **self.options).ys


class ExactFlowSource(FlowSource):
    """The exact flow of a system that has one (``HamiltonianSystem.flow``)."""

    def __init__(self, system: HamiltonianSystem | str) -> None:
        self.system = get_system(system)
        if self.system.exact_flow is None:
            raise CapabilityError(
                f"system {self.system.name!r} has no exact flow; use IntegratorSource.for_system instead"
            )
        self._field = vector_field(self.system)
        self.name = f"exact flow of {self.system.name}"

    def flow(self, t: float | Tensor, y: Tensor) -> Tensor:
        return self.system.flow(t, y)

    def velocity(self, y: Tensor) -> Tensor:
        return self._field(torch.zeros((), dtype=y.dtype, device=y.device), y)

    def trajectory(self, y0: Tensor, ts: Tensor, *, progress: bool = False) -> Trajectories:
        y0, ts = _check_y0_ts(y0, ts)
        ys = self.system.flow((ts - ts[0]).unsqueeze(0), y0.unsqueeze(1))  # (B, T, D) in one call
        return _as_trajectories(ys, ts, self)


class FlowMapSource(FlowSource):
    """A flow-map callable ``phi(t, y0) -> y(t)``, valid for ``0 ≤ t ≤ max_step``.

    This is how learned flow maps (SympFlow, PINNs) plug in: ``FlowMapSource.from_model(model)``, or
    ``FlowMapSource(model, max_step=model.dt, hamiltonian=model.hamiltonian)``.
    ``t`` reaches ``phi`` as a tensor broadcastable against the batch (a 0-d tensor, or ``(B,)`` when
    samples need different durations). Durations longer than ``max_step`` are compositions
    ``N(δ) ∘ N(Δt)ⁿ`` (``n = ⌊|t|/Δt⌋``, ``δ = |t| − nΔt``, signs kept); negative durations are passed
    through only when ``backward=True`` (a model trained on ``[0, Δt]`` says nothing about
    ``t < 0``, so by default no reversibility is measured for it). :meth:`from_model` wraps a learner
    that exposes ``model(t, x0)`` on ``[0, model.dt]`` and, optionally, ``model.hamiltonian(y)``.

    Args:
        phi: the flow map.
        max_step: ``Δt``, the longest duration one call may cover (``inf`` for global maps).
        system: the system it approximates (true energy, default Poincaré surface).
        hamiltonian: the learned ``H(y)`` if the model has one (reported next to the true energy).
        name: description for reports.
        functorch: set ``False`` if ``phi`` cannot run under ``torch.func`` transforms.
        backward: set ``True`` if ``phi`` is meaningful for negative durations (reversibility).
    """

    def __init__(
        self,
        phi: Callable[[Tensor, Tensor], Tensor],
        max_step: float = math.inf,
        *,
        system: HamiltonianSystem | str | None = None,
        hamiltonian: Callable[[Tensor], Tensor] | None = None,
        name: str = "flow map",
        functorch: bool = True,
        backward: bool = False,
    ) -> None:
        if not callable(phi):
            raise InvalidArgumentError("phi", phi, "a flow map phi(t, y0) -> y(t)")
        if isinstance(max_step, bool) or not isinstance(max_step, (int, float)) or not max_step > 0:
            raise InvalidArgumentError("max_step", max_step, "a positive duration (or math.inf)")
        if hamiltonian is not None and not callable(hamiltonian):
            raise InvalidArgumentError("hamiltonian", hamiltonian, "a callable H(y) -> (...)")
        self.phi = phi
        self.max_step = float(max_step)
        self.system = None if system is None else get_system(system)
        self.hamiltonian = hamiltonian
        self.name = name
        self.functorch = bool(functorch)
        self.backward = bool(backward)

    @classmethod
    def from_model(
        cls, model: Any, *, system: HamiltonianSystem | str | None = None, name: str | None = None
    ) -> FlowMapSource:
        """A learned flow map: ``model(t, x0)`` valid on ``[0, model.dt]``; ``model.hamiltonian(y)`` (if
        the model has one) is reported as the learned energy. Long times are composed here."""
        dt = getattr(model, "dt", None)
        if not callable(model) or isinstance(dt, bool) or not isinstance(dt, (int, float)) or not dt > 0:
            raise InvalidArgumentError(
                "model", model, "a flow-map model called as model(t, x0) with a positive step model.dt"
            )
        hamiltonian = getattr(model, "hamiltonian", None)
        return cls(
            model,
            float(dt),
            system=system,
            hamiltonian=hamiltonian if callable(hamiltonian) else None,
            name=name or f"{type(model).__name__} (Δt = {float(dt):g})",
        )

    @property
    def default_stride(self) -> float:
        # The long-time map is N(δ)∘N(Δt)^n: marching must use the model's own Δt.
        return self.max_step if math.isfinite(self.max_step) else 0.1

    def _call(self, t: float | Tensor, y: Tensor) -> Tensor:
        tt = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        out = self.phi(tt, y)
        if not isinstance(out, Tensor) or out.shape != y.shape:
            raise InvalidArgumentError(
                f"flow map {self.name!r}", out, f"a tensor of the input's shape {tuple(y.shape)}"
            )
        return out

    def flow(self, t: float | Tensor, y: Tensor) -> Tensor:
        if not math.isfinite(self.max_step):
            return self._call(t, y)
        big = self.max_step
        if not isinstance(t, Tensor) or t.dim() == 0:
            t = float(t)
            sign = 1.0 if t >= 0 else -1.0
            n = math.floor(abs(t) / big * (1 + 1e-12))
            rest = abs(t) - n * big
            for _ in range(n):
                y = self._call(sign * big, y)
            return self._call(sign * rest, y) if rest > 0 else y
        t = t.to(dtype=y.dtype, device=y.device).expand(y.shape[:-1])
        n = torch.floor(t.abs() / big * (1 + 1e-12))
        rest = t - torch.sign(t) * n * big
        for k in range(int(n.max()) if n.numel() else 0):
            moved = self._call(torch.sign(t) * big, y)
            y = torch.where((n > k).unsqueeze(-1), moved, y)
        return self._call(rest, y)

    def trajectory(self, y0: Tensor, ts: Tensor, *, progress: bool = False) -> Trajectories:
        """``N(t − nΔt) ∘ N(Δt)ⁿ (y0)`` at every time, marching the skeleton ``N(Δt)ⁿ`` once.

        Outputs that share ``n`` are evaluated in one batched call of the map.
        """
        y0, ts = _check_y0_ts(y0, ts)
        if not math.isfinite(self.max_step):
            return super().trajectory(y0, ts, progress=progress)
        b, d = y0.shape
        offsets = ts - ts[0]
        n_k = torch.floor(offsets / self.max_step * (1 + 1e-12)).long()
        rest = (offsets - n_k * self.max_step).clamp(min=0.0)
        out = y0.new_empty(b, ts.shape[0], d)
        y = y0
        last = int(n_k.max())
        with torch.no_grad(), _bar(last + 1, progress, "trajectories") as bar:
            for n in range(last + 1):
                idx = (n_k == n).nonzero().flatten()
                if idx.numel():
                    taus = rest[idx].repeat_interleave(b)  # (len(idx)·B,): output-major
                    states = y.repeat(idx.numel(), 1)
                    moved = self._call(taus, states)
                    moved = torch.where((taus == 0).unsqueeze(-1), states, moved)
                    out[:, idx] = moved.reshape(idx.numel(), b, d).transpose(0, 1)
                if n < last:
                    y = self._call(self.max_step, y)
                bar.update(1)
        return _as_trajectories(out, ts, self)


def _check_solve_options(options: Mapping[str, Any]) -> None:
    """Unknown ``solve`` options are errors at construction, before any work (did-you-mean)."""
    import inspect

    known = [
        name
        for name, p in inspect.signature(solve).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in _OWN_OPTIONS
    ]
    for name in options:
        if name in _OWN_OPTIONS:
            raise InvalidArgumentError(name, options[name], "no value: the diagnostics set it themselves")
        if name not in known:
            registry: Registry[None] = Registry("solve option")
            for option in known:
                registry.register(option, None)
            registry.get(name)  # raises UnknownNameError with suggestions


_OWN_OPTIONS = ("dt", "events", "throw")


def as_source(obj: Any, **kwargs: Any) -> FlowSource:
    """A :class:`FlowSource` from a source, a system (integrated), or a registered system name.

    Vector fields and flow maps share the signature ``(t, y)``, so plain callables are not guessed:
    wrap them in :class:`IntegratorSource` or :class:`FlowMapSource`.
    """
    if isinstance(obj, FlowSource):
        if kwargs:
            raise InvalidArgumentError("options", kwargs, "no options when passing a FlowSource")
        return obj
    if isinstance(obj, (HamiltonianSystem, str)):
        return IntegratorSource.for_system(obj, **kwargs)
    raise InvalidArgumentError(
        "source",
        obj,
        "a FlowSource, a HamiltonianSystem or a system name (wrap a vector field in IntegratorSource(f, "
        "method) and a flow map in FlowMapSource(phi, max_step=Δt))",
    )


def _bar(total: int, enabled: bool, what: str):
    from symflow.training.progress import progress_bar  # honours SYMFLOW_PROGRESS=0

    return progress_bar(total=total, enabled=enabled, desc=what)


def _tolerances(options: Mapping[str, Any]) -> str:
    return f"rtol={options.get('rtol', 1e-6):g}, atol={options.get('atol', 1e-9):g}"


def _check_y0_ts(y0: Any, ts: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(y0, Tensor) or y0.dim() != 2 or not y0.is_floating_point():
        raise InvalidArgumentError("y0", y0, "initial states of shape (B, D)")
    ts = torch.as_tensor(ts, dtype=y0.dtype, device=y0.device)
    if ts.dim() != 1 or ts.shape[0] < 1 or not bool(torch.isfinite(ts).all()):
        raise InvalidArgumentError("ts", ts, "a shared grid of finite times, shape (T,)")
    if ts.shape[0] > 1 and not bool((ts.diff() > 0).all()):
        raise InvalidArgumentError("ts", ts, "strictly increasing times")
    return y0, ts


def _as_trajectories(ys: Tensor, ts: Tensor, source: FlowSource) -> Trajectories:
    n, steps = ys.shape[0], ys.shape[1]
    name, args = _system_name(source.system)
    return Trajectories(
        ts.expand(n, steps).clone(),
        ys,
        torch.full((n,), steps, dtype=torch.long, device=ys.device),
        None,
        name,
        args,
        source.name,
    )
