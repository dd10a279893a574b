"""``simulate``: sample initial states and observation times, solve in batches, write a trajectory file.

    result = simulate("henon_heiles", 10_000, 100.0, output="hh.h5", sampling="uniform", n_obs=50,
                      rtol=1e-9, seed=0)

Each batch of ``chunk_size`` trajectories is one call of :func:`symflow.integrators.solve` with
per-trajectory time grids ``(B, T)``: every trajectory steps to its own observation times (no
shared dense grid, no interpolation between trajectories). Grids of different lengths are padded
for the solver past their last observation (:func:`~symflow.data.sampling.pad_for_solver`) and
stored NaN-padded with their ``length``. Failed solves are kept with their status, never dropped.

Randomness is reproducible and independent of ``chunk_size``: trajectory ``i`` belongs to block
``k = i // 1024``, and each random stream (initial states, observation times, noise, varying
parameters) of block ``k`` has its own generator seeded by
``numpy.random.SeedSequence(seed, spawn_key=(stream, k))``. The seed, this scheme and every
sampling and noise setting are stored in the file's attributes, so a file can be regenerated from
them.

**Parts (sharded generation).** ``part=(r, K)`` simulates only part ``r`` of ``K`` of the data set:
the batched solves are cut at the same global chunk boundaries as a one-part run (they depend on
``n`` and ``chunk_size`` only), and part ``r`` takes the whole chunks ``⌊rC/K⌉ … ⌊(r+1)C/K⌉ − 1`` of
the ``C`` chunks. Every trajectory is therefore solved in the very same batch, with the same random
draws, whatever ``K`` is: the parts of any ``K`` hold bitwise the trajectories of the one-part file
(an adaptive solve's arithmetic may depend on the batch it runs in, so batches must not move).
:mod:`symflow.data.shards` runs the parts under ``torchrun`` and joins them by an index file.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from symflow.integrators import get_method, solve
from symflow.integrators.errors import CapabilityError, InvalidArgumentError
from symflow.integrators.inputs import positive_float
from symflow.integrators.solution import Status
from symflow.systems import HamiltonianSystem, get_system, parametric_family, vector_field
from symflow.training.checks import check_device
from symflow.training.progress import progress_bar

from .sampling import ObservationTimes, make_sampling, pad_for_solver
from .writer import TrajectoryWriter

Tensor = torch.Tensor
F64 = torch.float64

RNG_BLOCK = 1024
STREAMS = {"initial": 0, "times": 1, "noise": 2, "params": 3}
SEED_SCHEME = (
    "trajectory i is in block k = i // 1024; stream s of block k (0: initial states, 1: observation "
    "times, 2: noise, 3: varying parameters) draws from "
    "torch.Generator().manual_seed(int(numpy.random.SeedSequence(seed, "
    "spawn_key=(s, k)).generate_state(1, numpy.uint64)[0]))"
)


def block_generator(seed: int, stream: str, block: int) -> torch.Generator:
    """The generator of one random stream of one block of :data:`RNG_BLOCK` trajectories."""
    ss = np.random.SeedSequence(seed, spawn_key=(STREAMS[stream], block))
    return torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0]))


@dataclass(frozen=True)
class SimulationResult:
    """Summary of a :func:`simulate` run (the data are in the file)."""

    path: Path
    n: int
    n_times: int  # the padded width T of the file's arrays
    dim: int
    seconds: float
    failed: dict[str, int] = field(default_factory=dict)
    observations: tuple[int, float, int] | None = None  # per trajectory: (min, mean, max)

    @property
    def n_failed(self) -> int:
        return sum(self.failed.values())

    @property
    def throughput(self) -> float:
        """Trajectories per second, solving and writing together."""
        return self.n / self.seconds if self.seconds > 0 else math.inf

    def __str__(self) -> str:
        failed = (
            " (" + ", ".join(f"{v} {k}" for k, v in self.failed.items()) + "; kept, flagged in 'status')"
            if self.failed
            else ""
        )
        lo, mean, hi = self.observations or (self.n_times, float(self.n_times), self.n_times)
        if lo == hi:
            shape = f"{self.n} trajectories × {lo} observations × dim {self.dim}"
        else:
            shape = (
                f"{self.n} trajectories of {lo}–{hi} observations (mean {mean:.1f}; stored padded to "
                f"{self.n_times}) × dim {self.dim}"
            )
        return (
            f"wrote {self.path}: {shape}, {self.n - self.n_failed} succeeded{failed}, in "
            f"{self.seconds:.1f} s ({self.throughput:.0f} trajectories/s)"
        )


class _Blocks:
    """Per-block random draws, cached so that chunks may cut blocks anywhere."""

    def __init__(self, n: int, seed: int, draw) -> None:
        self.n, self.seed, self.draw = n, seed, draw
        self._cache: dict[int, Any] = {}

    def rows(self, start: int, stop: int) -> list[Any]:
        """The draws of every block overlapping ``start:stop``, each sliced to the overlap."""
        parts = []
        for k in range(start // RNG_BLOCK, (stop - 1) // RNG_BLOCK + 1):
            if k not in self._cache:
                self._cache = {k - 1: self._cache[k - 1]} if k - 1 in self._cache else {}
                size = min(RNG_BLOCK, self.n - k * RNG_BLOCK)
                self._cache[k] = self.draw(size, k)
            lo = max(start, k * RNG_BLOCK) - k * RNG_BLOCK
            hi = min(stop, (k + 1) * RNG_BLOCK) - k * RNG_BLOCK
            parts.append(tuple(a[lo:hi] for a in self._cache[k]))
        return [torch.cat(list(col)) for col in zip(*parts)]


def _noise_sigma(noise: Any, dim: int) -> Tensor | None:
    if noise is None:
        return None
    if isinstance(noise, bool):
        raise InvalidArgumentError("noise", noise, "a standard deviation ≥ 0 or one per state component")
    if isinstance(noise, (int, float)):
        values = [float(noise)] * dim
    elif isinstance(noise, (Sequence, Tensor, np.ndarray)) and not isinstance(noise, str):
        values = [float(v) for v in (noise.tolist() if hasattr(noise, "tolist") else noise)]
        if len(values) != dim:
            raise InvalidArgumentError("noise", noise, f"one standard deviation per state component ({dim})")
    else:
        raise InvalidArgumentError("noise", noise, "a standard deviation ≥ 0 or one per state component")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise InvalidArgumentError("noise", noise, "finite standard deviations ≥ 0")
    if all(v == 0 for v in values):
        return None
    return torch.tensor(values, dtype=F64)


def _tolerance(name: str, value: Any) -> float | Tensor:
    """A positive float, or a per-component tensor (checked against ``D`` by the solver)."""
    if isinstance(value, Tensor) and value.numel() > 1:
        if not (value > 0).all() or not torch.isfinite(value).all():
            raise InvalidArgumentError(name, value, "positive finite tolerances")
        return value
    return positive_float(name, value)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(name, value, "a positive integer")
    return int(value)


def simulate(
    system: str | HamiltonianSystem,
    n: int,
    t_end: float,
    *,
    output: str | os.PathLike,
    params: Mapping[str, Any] | None = None,
    param_ranges: Mapping[str, Any] | None = None,
    method: str = "dopri5",
    rtol: float | None = None,
    atol: float | None = None,
    dt: float | None = None,
    max_steps: int | None = None,
    sampling: str | ObservationTimes = "regular",
    n_obs: int = 100,
    min_obs: int | None = None,
    max_obs: int | None = None,
    noise: float | Sequence[float] | None = 0.0,
    energy: float | None = None,
    y0: Tensor | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    chunk_size: int = 4096,
    store_energy: bool = True,
    store_clean: bool | None = None,
    overwrite: bool = False,
    progress: bool = True,
    attrs: Mapping[str, Any] | None = None,
    compression_level: int = 4,
    part: tuple[int, int] | None = None,
) -> SimulationResult:
    """Simulate ``n`` trajectories of a Hamiltonian system over ``[0, t_end]`` into an HDF5 file.

    Args:
        system: a registered name (``"henon_heiles"``) or a :class:`HamiltonianSystem`.
        n: number of trajectories.
        t_end: end of the observation window.
        output: the file to write (refused if it exists, unless ``overwrite=True``).
        params: system parameters, e.g. ``{"lam": 1.0}``.
        param_ranges: parameters that vary per trajectory, ``{"omega": (0.5, 2.0)}`` (``None`` as a
            range: the system's declared one); each trajectory draws its own values uniformly (seeded,
            see the module docstring), stored in the ``params (N, P)`` dataset with the column names in
            the ``param_names`` attribute and the ranges in ``param_ranges``. See
            :func:`symflow.systems.parametric_family`.
        method: integration method; adaptive ones (``dopri5``, ``tsit5``, ``bosh3``; ``dop853``,
            ``vern7``, ``vern9`` for tight tolerances, several times faster at rtol ≤ 1e-9) use ``rtol``
            (default 1e-9), ``atol`` (default 1e-12) and ``max_steps``; fixed-step ones need ``dt``
            (a step of at most ``dt`` in every interval between observations).
        sampling: ``"regular"``, ``"uniform"`` (alias ``"irregular"``) or ``"poisson"``, or an
            :class:`~symflow.data.sampling.ObservationTimes`; see :mod:`symflow.data.sampling`.
        n_obs, min_obs, max_obs: observations per trajectory (the initial state included).
        noise: standard deviation of additive Gaussian observation noise on the stored states (a
            float, or one per state component); the noise-free states go to ``y_clean``.
        energy: draw initial states with exactly this energy (else the system's typical box).
        y0: initial states ``(n, D)`` to use instead of sampling them.
        seed: seed of every random choice (see the module docstring for the scheme).
        device, dtype: where and in which precision to solve (times are stored as float64).
        chunk_size: most trajectories per batched solve (memory ∝ chunk_size × T × D); ``n`` is
            cut into equal chunks.
        store_energy: write ``energy (N, T)``, H of the noise-free states.
        store_clean: write ``y_clean``; default: when there is noise.
        progress: show a progress bar.
        attrs: extra root attributes (e.g. the recipe that produced the file).
        part: ``(r, K)``: write only part ``r`` of ``K`` (whole chunks; see the module docstring),
            rows ``[lo, hi)`` of the ``n``-trajectory data set, recorded in the attribute ``part``.
            A part with no chunk (``K`` above the number of chunks) is an error.

    Returns:
        a :class:`SimulationResult` (path, counts of failed solves, time, throughput).
    """
    # ---- everything is checked before any work --------------------------------------------------
    family = None
    if param_ranges:
        if not isinstance(system, str):
            raise InvalidArgumentError(
                "system", system, "a registered system name when parameters vary (param_ranges)"
            )
        family = parametric_family(system, dict(param_ranges), **(params or {}))
        lo, hi = family.bounds()
        sys_ = family.system((lo + hi) / 2)  # the family's centre: the sampler and the capability checks
    else:
        sys_ = get_system(system, **(params or {}))
    n = _positive_int("n", n)
    chunk_size = _positive_int("chunk_size", chunk_size)
    # Equal chunks of at most chunk_size: the adaptive loop runs as long as its slowest sample
    # and pays a fixed overhead per iteration, so a short last chunk is poor value.
    n_chunks = math.ceil(n / chunk_size)
    bounds = [round(k * n / n_chunks) for k in range(n_chunks + 1)]
    if part is not None:
        bounds = part_chunk_bounds(bounds, part)
    lo, hi = bounds[0], bounds[-1]
    if isinstance(sampling, ObservationTimes):
        if t_end != sampling.t_end:
            raise InvalidArgumentError("t_end", t_end, f"the sampling's t_end ({sampling.t_end})")
        obs = sampling
    else:
        obs = make_sampling(sampling, t_end, n_obs, min_obs=min_obs, max_obs=max_obs)
    spec = get_method(method)
    adaptive = spec.adaptive
    if adaptive:
        if dt is not None:  # options of the other kind are errors, not silently a fixed-step solve
            raise InvalidArgumentError(
                "dt",
                dt,
                f"not set: {spec.name!r} is adaptive and chooses its own steps (rtol/atol); "
                "for fixed steps of size dt pick a fixed-step method (e.g. rk4, gl4, verlet)",
            )
        if max_steps is not None:
            _positive_int("max_steps", max_steps)
        opts: dict[str, Any] = {
            "rtol": _tolerance("rtol", 1e-9 if rtol is None else rtol),
            "atol": _tolerance("atol", 1e-12 if atol is None else atol),
            "max_steps": 100_000 if max_steps is None else max_steps,
        }
    else:
        if dt is None:
            raise InvalidArgumentError(
                "dt",
                dt,
                f"a step size: {spec.name!r} is a fixed-step method (or use an adaptive one, e.g. dopri5)",
            )
        for name, value in (("rtol", rtol), ("atol", atol), ("max_steps", max_steps)):
            if value is not None:
                raise InvalidArgumentError(
                    name, value, "not set: it applies to adaptive solves only (dt is set)"
                )
        dt = positive_float("dt", dt)
        opts = {"dt": dt}
    if spec.needs_separable and not sys_.separable:
        raise CapabilityError(
            f"method {spec.name!r} is an explicit splitting and needs a separable Hamiltonian; "
            f"{sys_.name!r} is not separable (use e.g. 'implicit_midpoint', 'gl4' or 'dopri5')"
        )
    if dtype not in (torch.float32, torch.float64):
        raise InvalidArgumentError("dtype", dtype, "torch.float64 or torch.float32")
    device = check_device(device, "device") if device is not None else torch.device("cpu")
    D = sys_.dim
    sigma = _noise_sigma(noise, D)
    if store_clean is None:
        store_clean = sigma is not None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidArgumentError("seed", seed, "a non-negative integer")
    seed = int(seed)
    if y0 is not None:
        if energy is not None:
            raise InvalidArgumentError("energy", energy, "not set when y0 is given")
        if not isinstance(y0, Tensor) or y0.shape != (n, D) or not y0.is_floating_point():
            raise InvalidArgumentError("y0", y0, f"a floating-point tensor of shape ({n}, {D})")
    elif sys_.sampler is None:
        raise CapabilityError(
            f"system {sys_.name!r} has no initial-state sampler; pass y0=(n, {D}) states, or build the "
            "system with sampler=... (from_hamiltonian gives one by default)"
        )
    elif energy is not None and (isinstance(energy, bool) or not isinstance(energy, (int, float))):
        raise InvalidArgumentError("energy", energy, "a number or None")
    else:
        sys_.sample(1, seed=0, energy=energy)  # an impossible energy fails here, not after the first chunk

    doubling = getattr(sys_, "doubling", None)
    if doubling is not None and y0 is not None:
        defect = float(doubling.limit_defect(y0.to(F64)).max())
        if defect > 1e-12 * max(1.0, float(y0.abs().max())):
            raise InvalidArgumentError(
                "y0",
                f"doubled states {defect:.3g} off the physical limit",
                f"states on the physical limit of {sys_.name} (lift physical ones: system.doubling.lift)",
            )
    T = obs.width
    record = {
        "generator": "symflow.data.simulate",
        "system": sys_.name,
        "system_args": dict(sys_.params) if family is None else dict(family.fixed),
        "integrator": spec.name,
        **{k: v.tolist() if isinstance(v, Tensor) else v for k, v in opts.items()},
        "seed": seed,
        "seed_scheme": SEED_SCHEME,
        "sampling": obs.to_dict(),
        "noise": {
            "kind": "gaussian" if sigma is not None else "none",
            "sigma": sigma.tolist() if sigma is not None else 0.0,
            "applies_to": "y (y_clean and energy are noise-free)",
        },
        "initial": {"source": "given" if y0 is not None else "system.sample", "energy": energy},
        "dtype": str(dtype).replace("torch.", ""),
        "device": device.type,
        "chunk_size": chunk_size,
        **dict(attrs or {}),
    }
    if family is not None:
        record["param_names"] = list(family.names)
        record["param_ranges"] = {k: list(v) for k, v in family.ranges.items()}
    if part is not None:
        record["part"] = {"index": part[0], "count": part[1], "rows": [lo, hi], "n_total": n}
    if doubling is not None:
        # The file stores the doubled state (what the registry system evolves, what SympFlow trains on);
        # `energy` holds the physical energy E of the projected state (H = 0 on the physical limit).
        record.update(state="doubled", energy_kind="physical", doubling=doubling.config())
    writer = TrajectoryWriter(
        output,
        hi - lo,
        T,
        D,
        attrs=record,
        dtype=dtype,
        status=True,
        energy=store_energy,
        clean=store_clean,
        compression_level=compression_level,
        overwrite=overwrite,
        n_params=None if family is None else family.n_params,
    )

    # ---- the work -----------------------------------------------------------------------------------
    init = _Blocks(
        n,
        seed,
        lambda m, k: (sys_.sample(m, seed=block_generator(seed, "initial", k), energy=energy),),
    )
    times = _Blocks(n, seed, lambda m, k: obs.draw(m, block_generator(seed, "times", k)))
    noise_draws = _Blocks(
        n, seed, lambda m, k: (torch.randn(m, T, D, generator=block_generator(seed, "noise", k), dtype=F64),)
    )
    draws = _Blocks(
        n,
        seed,
        lambda m, k: (family.sample(m, seed=block_generator(seed, "params", k)),),
    )
    # Doubled (damped) systems: the doubled field at the projection onto the physical limit, the same
    # trajectories in exact arithmetic, but round-off cannot excite the anti-damped mirror modes.
    if family is not None:
        f = family.augmented_field
    elif doubling is not None:
        f = doubling.limit_field(sys_)
    else:
        f = vector_field(sys_)
    energy_of = sys_.energy if doubling is None else doubling.physical_energy
    failed: dict[str, int] = {}
    counts = [T + 1, 0, 0]  # fewest, total and most observations per trajectory
    cols = torch.arange(T)
    t0 = time.perf_counter()
    desc = f"simulate {sys_.name}" + (f" part {part[0]}/{part[1]}" if part is not None else "")
    bar = progress_bar(total=hi - lo, unit="traj", desc=desc, enabled=progress, leave=True)
    with torch.no_grad(), writer, bar:
        for start, stop in itertools.pairwise(bounds):
            y_init = y0[start:stop].to(F64) if y0 is not None else init.rows(start, stop)[0]
            t_obs, length = times.rows(start, stop)
            if obs.kind == "regular":
                grid = t_obs[0].to(dtype)  # one shared grid: the solver's fast path
                t_used = grid.to(F64).expand(stop - start, -1)
            else:
                grid = pad_for_solver(t_obs, length, dtype)
                t_used = grid.to(F64)
            start_state = y_init
            mu = draws.rows(start, stop)[0] if family is not None else None
            if mu is not None:  # the parameters travel with the state (dμ/dt = 0), see augmented_field
                start_state = torch.cat([y_init, mu], dim=-1)
            sol = solve(
                f, start_state.to(device=device, dtype=dtype), grid.to(device), spec.name, throw=False, **opts
            )
            clean = sol.ys.to("cpu", F64)
            if mu is not None:
                clean = clean[..., :D]
            inside = cols[None, :] < length[:, None]
            clean = torch.where(inside[..., None], clean, torch.full_like(clean, math.nan))
            status = sol.status.cpu()
            observed = clean if sigma is None else clean + sigma * noise_draws.rows(start, stop)[0]
            writer.append(
                t=torch.where(inside, t_used, torch.full_like(t_used, math.nan)),
                y=observed,
                length=length,
                status=status,
                energy=(energy_of(clean) if mu is None else family.energy(clean, mu[:, None, :]))
                if store_energy
                else None,
                y_clean=clean if store_clean else None,
                params=mu,
            )
            counts = [
                min(counts[0], int(length.min())),
                counts[1] + int(length.sum()),
                max(counts[2], int(length.max())),
            ]
            for code in status.unique().tolist():
                if code != Status.SUCCESS:
                    name = Status(code).name.lower()
                    failed[name] = failed.get(name, 0) + int((status == code).sum())
            bar.update(stop - start)
            if failed:
                bar.set_postfix(failed=sum(failed.values()))
        writer.set_attrs(failed=failed)
    observations = (counts[0], counts[1] / (hi - lo), counts[2])
    return SimulationResult(writer.path, hi - lo, T, D, time.perf_counter() - t0, failed, observations)


def part_chunk_bounds(bounds: list[int], part: Any) -> list[int]:
    """The chunk boundaries of part ``(r, K)``: whole chunks ``⌊rC/K⌉ … ⌊(r+1)C/K⌉`` of ``C``."""
    if (
        not isinstance(part, tuple)
        or len(part) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in part)
        or not 0 <= part[0] < part[1]
    ):
        raise InvalidArgumentError("part", part, "a pair (r, K) of integers with 0 ≤ r < K")
    r, k = int(part[0]), int(part[1])
    chunks = len(bounds) - 1
    if k > chunks:
        raise InvalidArgumentError(
            "part",
            part,
            f"at most {chunks} parts: the data set is solved in {chunks} chunks (use a smaller chunk_size "
            "for more parts)",
        )
    first, last = round(r * chunks / k), round((r + 1) * chunks / k)
    return bounds[first : last + 1]
