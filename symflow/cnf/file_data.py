"""Phase-space ensembles read from trajectory files, for ``symflow train cnf --data FILE.h5``.

A trajectory file (``symflow simulate``, any file :func:`symflow.data.open_trajectories` reads, or
the directory of a sharded data set) holds ``y (N, T, D)`` with a valid ``length`` per trajectory.
Its ensemble is the set of valid states of the successful trajectories — at every observation time
(``time_index=None``: a stationary ensemble, e.g. a thermal one, sampled along its flow), or at one
observation index only (``time_index=k``: the ensemble at the ``k``-th observation of every
trajectory long enough to have one). Failed solves (non-zero ``status``) are left out.

Points are split once, by a seeded permutation, into disjoint training and held-out sets (a file is
a finite sample: drawing both from it independently would test on training points).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from symflow.integrators import InvalidArgumentError

Tensor = torch.Tensor

#: Suffixes that make ``--data`` a file rather than a toy data set's name.
FILE_SUFFIXES = (".h5", ".hdf5", ".hdf")


def is_file_data(data: str) -> bool:
    """A path to a trajectory file (by suffix, or an existing file/directory) rather than a toy name."""
    return str(data).lower().endswith(FILE_SUFFIXES) or os.path.sep in str(data) or Path(data).exists()


@dataclass(frozen=True)
class FileEnsemble:
    """The ensemble of phase-space points of a trajectory file (see the module docstring)."""

    path: Path
    points: Tensor = field(repr=False)  # (M, D) float64
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def dim(self) -> int:
        return int(self.points.shape[-1])

    @property
    def bounds(self) -> tuple[float, float]:
        """A square holding the central 99.8 % of every coordinate, with a margin (for plots)."""
        lo = float(torch.quantile(self.points, 0.001, dim=0).min())
        hi = float(torch.quantile(self.points, 0.999, dim=0).max())
        pad = 0.1 * (hi - lo)
        return lo - pad, hi + pad

    def split(self, train_size: int, test_size: int, seed: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Disjoint training and held-out points: a seeded permutation, the held-out part first
        (``min(test_size, 20 %)`` of the points), then up to ``train_size`` training points."""
        m = self.points.shape[0]
        n_test = min(test_size, max(1, m // 5))
        n_train = min(train_size, m - n_test)
        perm = torch.randperm(m, generator=torch.Generator().manual_seed(seed))
        pts = self.points[perm].to(dtype)
        return pts[n_test : n_test + n_train], pts[:n_test]


def load_file_ensemble(path: str | os.PathLike, *, time_index: int | None = None) -> FileEnsemble:
    """Read the ensemble of a trajectory file (validated on opening; see the module docstring)."""
    from symflow.data import open_trajectories
    from symflow.integrators.solution import Status

    if time_index is not None and (
        isinstance(time_index, bool) or not isinstance(time_index, int) or time_index < 0
    ):
        raise InvalidArgumentError("time_index", time_index, "a non-negative observation index, or None")
    with open_trajectories(path) as f:
        rows = np.arange(f.n)
        if f.status is not None:
            rows = rows[f.status == Status.SUCCESS]
        chunks = []
        for s in range(0, f.n, 4096):
            e = min(f.n, s + 4096)
            _, y, length = f.read_block(s, e)
            keep = np.isin(np.arange(s, e), rows)
            if time_index is None:
                mask = np.arange(f.n_times)[None, :] < length[:, None]
                chunks.append(y[keep[:, None] & mask])
            else:
                ok = keep & (length > time_index)
                chunks.append(y[ok, time_index] if time_index < f.n_times else y[:0, 0])
        points = np.concatenate(chunks).astype(np.float64) if chunks else np.zeros((0, f.dim))
        resolved = f.path
        attrs = dict(f.attrs)
    if points.shape[0] < 10:
        where = "" if time_index is None else f" at observation {time_index}"
        raise InvalidArgumentError(
            "data",
            str(path),
            f"a trajectory file with at least 10 valid states{where} (found {points.shape[0]})",
        )
    digest = hashlib.sha256(points.tobytes()).hexdigest()
    params = {
        "path": str(resolved),
        "time_index": time_index,
        "points": int(points.shape[0]),
        "points_sha256": digest,
        "system": attrs.get("system"),
    }
    return FileEnsemble(Path(resolved), torch.from_numpy(points), params)


def file_params(items: dict[str, Any]) -> dict[str, Any]:
    """``--data-param`` values for a file: only ``time_index`` is known."""
    out = {}
    for key, value in items.items():
        if key != "time_index":
            raise InvalidArgumentError(
                "data_params", key, "time_index=K for a trajectory file (the only one)"
            )
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        out[key] = value
    return out


__all__ = ["FileEnsemble", "file_params", "is_file_data", "load_file_ensemble"]
