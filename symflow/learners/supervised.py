"""Trajectory data for the flow-map learners: loading, the trajectory-level split, training pairs.

A flow map ``N(t, x0) ≈ φ_t(x0)`` learns from pairs of observations of one trajectory: for
observations ``y_j`` at ``t_j`` and ``y_k`` at ``t_k > t_j``, the target is ``N(t_k − t_j, y_j) ≈ y_k``
(gaps beyond ``Δt`` are predicted by composition, :meth:`~symflow.learners.FlowMap.flow`).

* **Sources** (:func:`load_trajectory_data`): a trajectory file (symflow schema, or a plain layout by
  key names), a :class:`~symflow.data.TrajectoryDataset`, or tensors ``(ts, ys[, mask])`` in the data
  layer's batch layout (``ts (B, T)`` or ``(T,)``, ``ys (B, T, D)``, ``mask (B, T)``, NaN padding).
* **Split** (:func:`split_trajectories`): whole trajectories go to the training, validation or test
  side, by one seeded permutation — the test set is its first ``⌈test_fraction·N⌉`` entries, the
  validation set the next ones. The data layer's :func:`~symflow.data.split_by_trajectory` (which
  ``symflow train node`` uses) takes its validation set from the front of the *same* permutation, so
  with the same seed and ``test_fraction ≤`` the node run's ``val_fraction`` the flow map's test
  trajectories are trajectories that an HNN trained on the same file never saw either.
* **Pairs** (``pairs=``): ``"all"`` — every ordered pair of observations of a trajectory at most
  ``pair_horizon`` apart (default ``Δt``): many pairs per trajectory, every observation used as a start;
  ``"first"`` — only pairs from each trajectory's first observation (the published SympFlow code's
  supervised setting, Canizares et al. 2024: ``x0 → x(t_j)``, ``t_j ∈ [0, Δt]``). With noisy
  observations ``"all"`` also puts noise on the starts, which averages out over many pairs; ``"first"``
  needs trajectories that start at their initial state.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from symflow.integrators.errors import InvalidArgumentError, SymflowError
from symflow.integrators.reprs import compact_repr

Tensor = torch.Tensor


class UnusableDataError(SymflowError, ValueError):
    """The trajectories cannot be split or paired as asked; the message names the numbers."""


@dataclass
class TrajectoryData:
    """Observed trajectories in the batch layout, float64.

    Attributes:
        ts: ``(B, T)`` observation times, NaN where ``mask`` is false.
        ys: ``(B, T, D)`` observed states, NaN where ``mask`` is false.
        mask: ``(B, T)`` bool, true on observations.
        rows: ``(B,)`` the trajectories' rows in the source (file rows, or ``0..B-1``).
        attrs: the file's attributes (``{}`` for tensors).
        source: how the data were given (``{"kind": "file", "path": ...}`` or ``{"kind": "tensors"}``).
        params: ``(B, P)`` per-trajectory system parameters (files with a ``params`` dataset), else
            ``None``; ``param_names`` names the columns.
    """

    ts: Tensor
    ys: Tensor
    mask: Tensor
    rows: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    params: Tensor | None = None
    param_names: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return compact_repr(self, fields=("n", "dim", "param_names", "source"))

    @property
    def n(self) -> int:
        return int(self.ys.shape[0])

    @property
    def dim(self) -> int:
        return int(self.ys.shape[-1])

    @property
    def counts(self) -> Tensor:
        """``(B,)`` observations per trajectory."""
        return self.mask.sum(-1)

    def fingerprint(self) -> str:
        """sha256 of the observed times, states and mask (what a resumed run must train on again)."""
        h = hashlib.sha256()
        zero = torch.zeros((), dtype=self.ys.dtype)
        h.update(torch.where(self.mask, self.ts, zero).numpy().tobytes())
        h.update(torch.where(self.mask[..., None], self.ys, zero).numpy().tobytes())
        h.update(self.mask.numpy().tobytes())
        return h.hexdigest()

    def select(self, index: np.ndarray | Tensor) -> TrajectoryData:
        """The trajectories at positions ``index`` (not file rows)."""
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return TrajectoryData(
            self.ts[idx],
            self.ys[idx],
            self.mask[idx],
            self.rows[idx.numpy()],
            self.attrs,
            self.source,
            None if self.params is None else self.params[idx],
            self.param_names,
        )

    def first_states(self) -> tuple[Tensor, Tensor]:
        """``(t0, y0)``: each trajectory's first observed time ``(B,)`` and state ``(B, D)``."""
        first = self.mask.to(torch.int8).argmax(-1)
        b = torch.arange(self.n)
        return self.ts[b, first], self.ys[b, first]

    def describe(self) -> dict[str, Any]:
        """For ``config.json``: source, sizes and fingerprint."""
        counts = self.counts
        return {
            **self.source,
            "trajectories": self.n,
            "dim": self.dim,
            "observations": int(counts.sum()),
            "observations_per_trajectory": [int(counts.min()), int(counts.max())] if self.n else [0, 0],
            "fingerprint": self.fingerprint(),
            **({"param_names": list(self.param_names)} if self.param_names else {}),
        }


def load_trajectory_data(
    data: Any, *, t_key: str | None = None, y_key: str | None = None, mask_key: str | None = None
) -> TrajectoryData:
    """Trajectories from a file path, a :class:`~symflow.data.TrajectoryDataset` or tensors.

    Files are validated by the data layer (strictly increasing finite times, finite states; failed
    solves excluded); tensors are checked here the same way, naming the offending trajectory.
    """
    from symflow.data import TrajectoryDataset, collate_trajectories

    if isinstance(data, (str, os.PathLike)):
        if not os.path.exists(data):
            raise FileNotFoundError(2, "no such trajectory file", str(data))
        keys = {"t_key": t_key, "y_key": y_key, "mask_key": mask_key}
        ds = TrajectoryDataset(data, window=None, dtype=torch.float64, **keys)
        source = {"kind": "file", "path": str(data)}
    elif isinstance(data, TrajectoryDataset):
        ds = TrajectoryDataset(
            data.path,
            indices=data.indices,
            window=None,
            dtype=torch.float64,
            include_failed=data.include_failed,
            check=False,
            **data.keys,
        )
        source = {"kind": "file", "path": str(data.path)}
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3):
        return _from_tensors(*data)
    else:
        raise InvalidArgumentError(
            "data", data, "a trajectory file path, a TrajectoryDataset, or tensors (ts, ys[, mask])"
        )
    if len(ds) == 0:
        raise UnusableDataError(f"{source['path']}: no usable trajectory (every solve in it failed?)")
    batch = collate_trajectories([ds[i] for i in range(len(ds))])
    ds.close()
    return TrajectoryData(
        batch.ts,
        batch.ys,
        batch.mask,
        batch.index.numpy().copy(),
        dict(ds.attrs),
        source,
        batch.params,
        ds.param_names,
    )


def data_param_ranges(data: TrajectoryData, train: TrajectoryData) -> dict[str, list[float]] | None:
    """The ranges a flow map trained on ``data`` is conditioned over: the file's recorded family
    (``param_ranges`` attribute), else the span of the training trajectories' values; ``None`` without
    parameters."""
    if data.params is None:
        return None
    if not data.param_names:
        raise UnusableDataError(
            f"{data.source.get('path', 'the data')}: its params dataset has no param_names attribute; a "
            "model conditioned on parameters needs their names (write the file with param_names=...)"
        )
    recorded = data.attrs.get("param_ranges")
    if isinstance(recorded, dict) and set(recorded) == set(data.param_names):
        return {k: [float(v) for v in recorded[k]] for k in data.param_names}
    values = train.params if train.n else data.params
    out = {}
    for j, k in enumerate(data.param_names):
        lo, hi = float(values[:, j].min()), float(values[:, j].max())
        if hi <= lo:  # every training trajectory has the same value: a range around it
            lo, hi = lo - 0.5 * max(abs(lo), 1e-3), hi + 0.5 * max(abs(hi), 1e-3)
        out[k] = [lo, hi]
    return out


def data_family(data: TrajectoryData, ranges: dict[str, list[float]]) -> Any:
    """The registered family the file's trajectories come from (its ``system`` with the varying
    ``param_names``), for true energies and references; ``None`` when the file names none."""
    from symflow.data.reader import system_args
    from symflow.systems import parametric_family

    name = data.attrs.get("system")
    try:
        fixed = {k: v for k, v in system_args(data.attrs).items() if k not in ranges}
        return parametric_family(name, {k: tuple(v) for k, v in ranges.items()}, **fixed)
    except (SymflowError, TypeError, KeyError):
        return None


def _from_tensors(ts: Any, ys: Any, mask: Any = None) -> TrajectoryData:
    if not isinstance(ys, Tensor) or ys.ndim != 3 or not ys.is_floating_point():
        raise InvalidArgumentError("ys", ys, "a floating-point tensor of shape (B, T, D)")
    b, t, _ = ys.shape
    if not isinstance(ts, Tensor) or tuple(ts.shape) not in ((t,), (b, t)):
        raise InvalidArgumentError("ts", ts, f"a tensor of shape ({t},) or ({b}, {t}) matching ys")
    if mask is None:
        mask = torch.ones(b, t, dtype=torch.bool)
    if not isinstance(mask, Tensor) or tuple(mask.shape) != (b, t) or mask.dtype != torch.bool:
        raise InvalidArgumentError("mask", mask, f"a bool tensor of shape ({b}, {t})")
    ts = ts.detach().to("cpu", torch.float64).expand(b, t).clone()
    ys = ys.detach().to("cpu", torch.float64).clone()
    mask = mask.detach().cpu().clone()
    bad_t = mask & ~torch.isfinite(ts)
    bad_y = mask & ~torch.isfinite(ys).all(-1)
    for what, bad in (("ts", bad_t), ("ys", bad_y)):
        if bad.any():
            row = int(bad.any(-1).nonzero()[0])
            raise InvalidArgumentError(what, f"trajectory {row}", "finite values at every observation")
    nan = torch.tensor(math.nan, dtype=torch.float64)
    ts = torch.where(mask, ts, nan)
    ys = torch.where(mask[..., None], ys, nan)
    # Observed times strictly increasing within each trajectory (padding skipped).
    filled = torch.where(mask, ts, torch.tensor(-math.inf, dtype=torch.float64)).cummax(-1).values
    previous = torch.cat([torch.full((b, 1), -math.inf, dtype=torch.float64), filled[:, :-1]], dim=1)
    bad = mask & (ts <= previous)
    if bad.any():
        row = int(bad.any(-1).nonzero()[0])
        raise InvalidArgumentError("ts", f"trajectory {row}", "strictly increasing observed times")
    return TrajectoryData(ts, ys, mask, np.arange(b), {}, {"kind": "tensors"})


@dataclass(frozen=True)
class DataSplit:
    """Positions (into :class:`TrajectoryData`) of the training, validation and test trajectories."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def to_dict(self, rows: np.ndarray) -> dict[str, list[int]]:
        """The split as source rows, for ``config.json``."""
        return {k: rows[getattr(self, k)].tolist() for k in ("train", "val", "test")}


def split_trajectories(
    data: TrajectoryData, *, val_fraction: float, test_fraction: float, seed: int
) -> DataSplit:
    """Seeded trajectory-level split of the trajectories with at least two observations.

    Raises :class:`UnusableDataError` (one line naming the numbers) when there are too few of them.
    """
    counts = data.counts
    usable = (counts >= 2).nonzero().flatten().numpy()
    wanted = {"training": 1, "validation": int(val_fraction > 0), "test": int(test_fraction > 0)}
    need = sum(wanted.values())
    where = data.source.get("path", "data")
    if usable.size < need:
        single = int((counts == 1).sum())
        sides = " + ".join(f"{v} {k}" for k, v in wanted.items() if v)
        raise UnusableDataError(
            f"{where}: {usable.size} of {data.n} trajectories have at least two observations "
            f"({single} have only one); a flow map learns from pairs of observations of one trajectory, "
            f"and a split with val_fraction={val_fraction:g}, test_fraction={test_fraction:g} needs at "
            f"least {need} ({sides})"
        )
    n = usable.size
    n_test = min(max(round(test_fraction * n), wanted["test"]), n - need + wanted["test"])
    n_val = min(max(round(val_fraction * n), wanted["validation"]), n - n_test - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).numpy()
    test = np.sort(usable[perm[:n_test]])
    val = np.sort(usable[perm[n_test : n_test + n_val]])
    train = np.sort(usable[perm[n_test + n_val :]])
    return DataSplit(train, val, test)


class PairBatches:
    """Minibatches of training pairs, epoch by epoch: each epoch visits every pair once in an order
    that is a pure function of ``(seed, epoch)``, so a resumed run draws exactly the batches of an
    uninterrupted one without storing any state."""

    def __init__(self, n_pairs: int, batch_size: int, seed: int) -> None:
        self.n = int(n_pairs)
        self.batch_size = min(int(batch_size), self.n)
        self.per_epoch = math.ceil(self.n / self.batch_size)
        self.seed = int(seed)
        self._epoch: int | None = None
        self._order = torch.empty(0, dtype=torch.int64)

    def __call__(self, step: int) -> Tensor:
        """Indices of the pairs of Adam step ``step`` (0-based)."""
        epoch, pos = divmod(int(step), self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % (2**63))
            self._order = torch.randperm(self.n, generator=gen)
            self._epoch = epoch
        return self._order[pos * self.batch_size : (pos + 1) * self.batch_size]


def named_system(attrs: dict[str, Any]) -> tuple[Any, str | None]:
    """The registered system a file's attributes name, or ``(None, why not)``."""
    from symflow.systems import get_system

    name = attrs.get("system")
    if not isinstance(name, str) or name in ("", "unknown"):
        return None, "the data name no system (no 'system' attribute, or 'unknown')"
    args = attrs.get("system_args") or {}
    if isinstance(args, str):
        import json

        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None, f"the data's system_args attribute is not JSON ({args[:60]!r})"
    try:
        return get_system(name, **dict(args)), None
    except SymflowError as err:
        return None, f"the data name the system {name!r}, which symflow cannot build: {err}"
