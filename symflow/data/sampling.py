"""Observation-time samplers: where along each trajectory the states are recorded.

Every trajectory starts at ``t = 0`` (its initial state is its first observation) and is observed
up to ``t_end``. Kinds:

* ``regular``: ``n_obs`` equally spaced times ``0, Δ, …, t_end`` shared by all trajectories.
* ``uniform`` (alias ``irregular``): ``L − 1`` times drawn independently and uniformly in
  ``(0, t_end]`` and sorted, i.e. the order statistics of a uniform sample; ``L = n_obs``, or
  ``L`` uniform in ``{min_obs, …, n_obs}`` when ``min_obs`` is given (variable counts).
* ``poisson``: a Poisson process of rate ``λ = (n_obs − 1)/t_end`` on ``(0, t_end]`` (exponential
  gaps, so ``n_obs`` observations on average), conditioned on at least ``min_obs`` (default 2)
  observations and truncated to the first ``max_obs`` (default ``n_obs + ⌈6√n_obs⌉``, a cap the
  count exceeds with probability below 10⁻⁸).

Times are drawn in float64 from an explicit ``torch.Generator``. Grids of different lengths are
stored NaN-padded to a common width ``T`` with a per-trajectory ``length``; the solver gets them
through :func:`pad_for_solver`, which continues each grid with a few tiny strictly increasing
steps so that every sample steps only to its own times (no shared dense grid, no interpolation
across samples).

Reference: the uniform order statistics and the Poisson process with exponential gaps are the two
standard models of irregularly sampled time series (e.g. Rubanova, Chen & Duvenaud, *Latent ODEs
for irregularly-sampled time series*, NeurIPS 2019).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from symflow.integrators.errors import InvalidArgumentError
from symflow.integrators.registry import Registry

Tensor = torch.Tensor
F64 = torch.float64

KINDS: Registry[str] = Registry("observation sampling")
KINDS.register("regular", "regular")
KINDS.register("uniform", "uniform", aliases=("irregular", "random"))
KINDS.register("poisson", "poisson")

# Redraws of rows whose sorted uniform times tie exactly (probability ~T²·2⁻⁵³ per row).
_MAX_REDRAWS = 100


@dataclass(frozen=True)
class ObservationTimes:
    """How observation times are drawn; :meth:`draw` makes them, :meth:`to_dict` records them.

    Attributes:
        kind: ``"regular"``, ``"uniform"`` or ``"poisson"``.
        t_end: end of the observation window ``[0, t_end]``.
        n_obs: observations per trajectory (regular, uniform) or their mean (poisson), the
            initial state included.
        min_obs: fewest observations of a trajectory (uniform: variable counts; poisson: the
            conditioning), ``None`` for a fixed count.
        max_obs: poisson only: the cap on the count (the stored width ``T``).
    """

    kind: str
    t_end: float
    n_obs: int
    min_obs: int | None = None
    max_obs: int | None = None

    @property
    def width(self) -> int:
        """The common width ``T`` of the stored time grids."""
        return self.max_obs if self.kind == "poisson" else self.n_obs

    @property
    def rate(self) -> float | None:
        """Poisson rate λ (observations per unit time), else ``None``."""
        return (self.n_obs - 1) / self.t_end if self.kind == "poisson" else None

    @property
    def variable(self) -> bool:
        """True when trajectories may have different numbers of observations."""
        return self.kind == "poisson" or (self.kind == "uniform" and self.min_obs is not None)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        if self.kind == "poisson":
            d["rate"] = self.rate
        return d

    def draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(times (n, T) float64 NaN-padded, length (n,) int64)`` for ``n`` trajectories (on the host,
        with the host generator, whatever the default device)."""
        with torch.device("cpu"):
            return self._draw(n, generator)

    def _draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if self.kind == "regular":
            grid = torch.linspace(0.0, self.t_end, self.n_obs, dtype=F64)
            return grid.expand(n, -1).clone(), torch.full((n,), self.n_obs, dtype=torch.int64)
        if self.kind == "uniform":
            return self._uniform(n, generator)
        return self._poisson(n, generator)

    def _uniform(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        width = self.n_obs
        if self.min_obs is None:
            length = torch.full((n,), width, dtype=torch.int64)
        else:
            length = torch.randint(self.min_obs, width + 1, (n,), generator=gen, dtype=torch.int64)
        times = torch.empty(n, width, dtype=F64)
        times[:, 0] = 0.0
        rows = torch.arange(n)
        for _ in range(_MAX_REDRAWS):
            # 1 − U with U in [0, 1) lies in (0, 1]: no observation coincides with t = 0.
            u = self.t_end * (1.0 - torch.rand(rows.numel(), width - 1, generator=gen, dtype=F64))
            # Slots past a row's length are pushed to +inf before sorting, so the first L − 1 sorted
            # values are a uniform sample of size L − 1.
            slot = torch.arange(1, width).expand(rows.numel(), -1)
            u = torch.where(slot < length[rows, None], u, torch.full_like(u, math.inf))
            times[rows, 1:] = u.sort(dim=-1).values
            rows = rows[_ties(times[rows], length[rows])]
            if rows.numel() == 0:
                break
        else:  # pragma: no cover - needs 100 exact float64 ties in a row
            raise InvalidArgumentError("t_end", self.t_end, "a window wide enough for distinct times")
        return _nan_pad(times, length), length

    def _poisson(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        width = self.width
        rate = self.rate
        times = torch.empty(n, width, dtype=F64)
        length = torch.empty(n, dtype=torch.int64)
        rows = torch.arange(n)
        min_obs = self.min_obs if self.min_obs is not None else 2
        for _ in range(10_000):
            m = rows.numel()
            # Exponential gaps by inversion: −log(1 − U)/λ with U in [0, 1) is finite and ≥ 0; a
            # zero gap (U = 0) is a tie and the row is redrawn.
            gaps = -torch.log1p(-torch.rand(m, width - 1, generator=gen, dtype=F64)) / rate
            t = torch.cat([torch.zeros(m, 1, dtype=F64), gaps.cumsum(-1)], dim=-1)
            count = (t <= self.t_end).sum(-1)
            times[rows] = t
            length[rows] = count
            bad = (count < min_obs) | _ties(t, count)
            rows = rows[bad]
            if rows.numel() == 0:
                break
        else:  # pragma: no cover - guarded by the min_obs check in make_sampling
            raise InvalidArgumentError("min_obs", min_obs, "a count the Poisson process reaches")
        return _nan_pad(times, length), length


def _ties(times: Tensor, length: Tensor) -> Tensor:
    """Rows whose first ``length`` times are not strictly increasing."""
    if times.shape[-1] < 2:
        return torch.zeros(times.shape[0], dtype=torch.bool)
    inside = torch.arange(1, times.shape[-1]) < length[:, None]
    return ((times.diff(dim=-1) <= 0) & inside).any(-1)


def _nan_pad(times: Tensor, length: Tensor) -> Tensor:
    past = torch.arange(times.shape[-1]) >= length[:, None]
    return times.masked_fill(past, math.nan)


def make_sampling(
    kind: str,
    t_end: float,
    n_obs: int,
    *,
    min_obs: int | None = None,
    max_obs: int | None = None,
) -> ObservationTimes:
    """Validated :class:`ObservationTimes` (``kind`` accepts ``"irregular"`` for ``"uniform"``)."""
    if not isinstance(kind, str):
        raise InvalidArgumentError("sampling", kind, "one of " + ", ".join(KINDS.names()))
    kind = KINDS.get(kind)
    if isinstance(t_end, bool) or not isinstance(t_end, (int, float)) or not math.isfinite(t_end):
        raise InvalidArgumentError("t_end", t_end, "a positive finite time")
    if t_end <= 0:
        raise InvalidArgumentError("t_end", t_end, "a positive finite time")
    if isinstance(n_obs, bool) or not isinstance(n_obs, int) or n_obs < 1:
        raise InvalidArgumentError("n_obs", n_obs, "a positive integer number of observations")
    if kind == "regular" and n_obs < 2:
        raise InvalidArgumentError("n_obs", n_obs, "at least 2 for regular sampling (t = 0 and t = t_end)")
    if min_obs is not None:
        if kind == "regular":
            raise InvalidArgumentError(
                "min_obs", min_obs, "not set: regular sampling has a fixed count (use sampling='uniform')"
            )
        if isinstance(min_obs, bool) or not isinstance(min_obs, int) or not 1 <= min_obs <= n_obs:
            raise InvalidArgumentError("min_obs", min_obs, f"an integer in [1, n_obs={n_obs}]")
    if max_obs is not None and kind != "poisson":
        raise InvalidArgumentError("max_obs", max_obs, "not set: only poisson sampling has a cap")
    if kind == "poisson":
        if n_obs < 2:
            raise InvalidArgumentError("n_obs", n_obs, "at least 2 for poisson sampling (a positive rate)")
        if max_obs is None:
            max_obs = n_obs + math.ceil(6 * math.sqrt(n_obs))
        if isinstance(max_obs, bool) or not isinstance(max_obs, int) or max_obs < n_obs:
            raise InvalidArgumentError("max_obs", max_obs, f"an integer >= n_obs={n_obs}")
        lo = min_obs if min_obs is not None else 2
        if lo > n_obs:  # pragma: no cover - excluded by the min_obs check above
            raise InvalidArgumentError("min_obs", min_obs, f"at most n_obs={n_obs}")
    return ObservationTimes(kind, float(t_end), n_obs, min_obs, max_obs)


def pad_for_solver(times: Tensor, length: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Fill each grid's NaN padding with strictly increasing times just past its last observation.

    Position ``j ≥ L_i`` gets ``t_i[L_i − 1] + (j − L_i + 1)·δ_i`` with
    ``δ_i = ε^{3/4}·max(1, |t_i[L_i − 1]|)`` and ``ε`` the machine epsilon of ``dtype`` (default:
    that of ``times``): hundreds of units in the last place, so the grid stays strictly increasing
    after a cast to ``dtype``, yet the solver's extra work past the last observation is negligible.
    The states solved at these times are padding, to be discarded.
    """
    dtype = dtype or times.dtype
    t = times.to(F64)
    last = t.gather(-1, (length - 1).clamp(min=0).unsqueeze(-1).to(t.device))
    delta = torch.finfo(dtype).eps ** 0.75 * last.abs().clamp(min=1.0)
    j = torch.arange(t.shape[-1], device=t.device)
    steps = (j - length.to(t.device).unsqueeze(-1) + 1).clamp(min=0)
    padded = torch.where(j < length.to(t.device).unsqueeze(-1), t, last + steps * delta)
    return padded.to(dtype)
