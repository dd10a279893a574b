"""PyTorch access to trajectory files: :class:`TrajectoryDataset`, :func:`collate_trajectories`,
random sub-windows and :func:`split_by_trajectory`.

    ds = TrajectoryDataset("hh.h5", window=16, seed=0)
    train, val = ds.split(val_fraction=0.2, seed=0)
    loader = DataLoader(train, batch_size=64, shuffle=True, num_workers=2,
                        collate_fn=collate_trajectories)
    for epoch in range(E):
        train.set_epoch(epoch)                 # new windows each epoch
        for batch in loader:                   # batch.ts (B, T), batch.ys (B, T, D), batch.mask (B, T)
            ...

The dataset is lazy: the HDF5 file is opened in the process that reads it, on first use (so each
``DataLoader`` worker has its own handle; an open handle is never pickled or shared across a
fork). Small files are loaded into memory once per process (``in_memory``).

**Windows.** With ``window=W``, item ``i`` is ``W`` consecutive observations of trajectory ``i``
starting at a random offset. The offset is a pure function of ``(seed, epoch, trajectory)``
(SplitMix64 hashing, Steele, Lea & Flood, OOPSLA 2014), not of a generator consumed in order, so
batches are the same with any number of workers and in any order, and resuming from
:meth:`state_dict` reproduces them bit for bit. The epoch lives in shared memory, so
:meth:`set_epoch` reaches persistent workers too. Trajectories shorter than ``W`` are returned
whole (the collate function pads them and masks the padding).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from symflow.integrators.errors import InvalidArgumentError
from symflow.integrators.reprs import compact_repr
from symflow.integrators.solution import Status

from .reader import TrajectoryFile, open_trajectories
from .sampling import pad_for_solver

Tensor = torch.Tensor

# Files whose selected states take at most this many bytes are read into memory once per process.
IN_MEMORY_BYTES = 64 << 20
_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def window_start(seed: int, epoch: int, trajectory: int, length: int, window: int) -> int:
    """Offset of the window of ``trajectory`` in ``epoch``: uniform in ``[0, length − window]``."""
    if length <= window:
        return 0
    h = _splitmix64(_splitmix64(_splitmix64(seed & _M64) ^ (epoch & _M64)) ^ (trajectory & _M64))
    return h % (length - window + 1)


@dataclass
class TrajectoryBatch:
    """A padded batch of trajectories.

    Attributes:
        ts: ``(B, T)`` observation times, NaN where ``mask`` is false.
        ys: ``(B, T, D)`` observed states, NaN where ``mask`` is false.
        mask: ``(B, T)`` bool, true on real observations (a prefix of each row).
        length: ``(B,)`` observations per row.
        index: ``(B,)`` the trajectories' rows in the file.
        params: ``(B, P)`` the trajectories' system parameters when the file has a ``params``
            dataset (columns named by the dataset's ``param_names``), else ``None``.
    """

    ts: Tensor
    ys: Tensor
    mask: Tensor
    length: Tensor
    index: Tensor
    params: Tensor | None = None

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> TrajectoryBatch:
        """Move to ``device``; ``dtype`` casts times and states."""
        return TrajectoryBatch(
            self.ts.to(device=device, dtype=dtype),
            self.ys.to(device=device, dtype=dtype),
            self.mask.to(device),
            self.length.to(device),
            self.index.to(device),
            None if self.params is None else self.params.to(device=device, dtype=dtype),
        )

    def pin_memory(self) -> TrajectoryBatch:  # called by DataLoader(pin_memory=True)
        return TrajectoryBatch(
            *(x.pin_memory() for x in (self.ts, self.ys, self.mask, self.length, self.index)),
            None if self.params is None else self.params.pin_memory(),
        )

    def solver_times(self) -> Tensor:
        """``ts`` with the padding replaced by strictly increasing times past each row's last
        observation, ready for :func:`symflow.integrators.solve` (outputs there are padding)."""
        return pad_for_solver(self.ts, self.length, self.ts.dtype)

    def __repr__(self) -> str:
        return compact_repr(self)


def collate_trajectories(items: Sequence[dict[str, Any]]) -> TrajectoryBatch:
    """Pad items ``{"t": (L,), "y": (L, D), "index": int}`` to the longest ``L`` of the batch; items
    with ``"params": (P,)`` (files with a ``params`` dataset) give ``batch.params (B, P)``."""
    if not items:
        raise InvalidArgumentError("items", items, "a non-empty list of dataset items")
    b = len(items)
    width = max(int(it["t"].shape[0]) for it in items)
    first = items[0]
    dim = int(first["y"].shape[-1])
    host = first["t"].device  # batches are built where the items are (the host), not on the default device
    ts = torch.full((b, width), math.nan, dtype=first["t"].dtype, device=host)
    ys = torch.full((b, width, dim), math.nan, dtype=first["y"].dtype, device=host)
    mask = torch.zeros(b, width, dtype=torch.bool, device=host)
    length = torch.empty(b, dtype=torch.int64, device=host)
    index = torch.empty(b, dtype=torch.int64, device=host)
    for r, it in enumerate(items):
        L = int(it["t"].shape[0])
        ts[r, :L] = it["t"]
        ys[r, :L] = it["y"]
        mask[r, :L] = True
        length[r] = L
        index[r] = int(it["index"])
    with_params = ["params" in it for it in items]
    if any(with_params) and not all(with_params):
        raise InvalidArgumentError("items", "a mix", "items all with or all without 'params'")
    params = torch.stack([it["params"] for it in items]) if all(with_params) else None
    return TrajectoryBatch(ts, ys, mask, length, index, params)


def split_by_trajectory(
    trajectories: int | Sequence[int] | np.ndarray, val_fraction: float = 0.2, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split trajectory indices into ``(train, val)``, each sorted, by a seeded permutation.

    ``trajectories`` is a count ``N`` (indices ``0..N-1``) or the indices themselves. Whole
    trajectories go to one side, so no observation of a validation trajectory is seen in training.
    With at least two trajectories and ``0 < val_fraction < 1``, both sides are non-empty.
    """
    if isinstance(trajectories, (int, np.integer)) and not isinstance(trajectories, bool):
        idx = np.arange(int(trajectories))
    else:
        idx = np.asarray(trajectories, dtype=np.int64).reshape(-1)
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, (int, float))
        or not 0 <= val_fraction <= 1
    ):
        raise InvalidArgumentError("val_fraction", val_fraction, "a fraction in [0, 1]")
    n = idx.size
    n_val = round(val_fraction * n)
    if n >= 2 and 0 < val_fraction < 1:
        n_val = min(max(n_val, 1), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)), device="cpu").numpy()
    val = np.sort(idx[perm[:n_val]])
    train = np.sort(idx[perm[n_val:]])
    return train, val


class TrajectoryDataset(Dataset):
    """Trajectories of a file as a map-style dataset (one item per trajectory).

    Args:
        path: a trajectory file (symflow layout, or a plain layout with ``t_key``/``y_key``/``mask_key``).
        indices: rows to use (default: all; failed solves excluded unless ``include_failed``).
        window: observations per item (random sub-window), ``None`` for whole trajectories.
        seed: seed of the windows (see the module docstring).
        include_failed: keep trajectories whose solve failed (their states end in NaN).
        dtype: cast times and states (default: as stored).
        in_memory: read the selected data into memory once per process (default: when the states
            take at most 64 MiB).
        check: validate the whole file when the dataset is created.

    Items are ``{"t": (L,), "y": (L, D), "index": row}``, plus ``"params": (P,)`` when the file has
    per-trajectory parameters (:attr:`param_names` names them); use :func:`collate_trajectories`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        indices: Sequence[int] | np.ndarray | None = None,
        window: int | None = None,
        seed: int = 0,
        include_failed: bool = False,
        dtype: torch.dtype | None = None,
        in_memory: bool | None = None,
        t_key: str | None = None,
        y_key: str | None = None,
        mask_key: str | None = None,
        check: bool = True,
    ) -> None:
        self.path = Path(path)
        self.keys = {"t_key": t_key, "y_key": y_key, "mask_key": mask_key}
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise InvalidArgumentError("window", window, "a positive number of observations, or None")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InvalidArgumentError("seed", seed, "an integer")
        if dtype is not None and dtype not in (torch.float32, torch.float64):
            raise InvalidArgumentError("dtype", dtype, "torch.float32, torch.float64 or None")
        self.window, self.seed, self.dtype = window, int(seed), dtype
        self.include_failed = include_failed
        with open_trajectories(self.path, check=check, **self.keys) as f:
            self.n_file, self.n_times, self.dim = f.n, f.n_times, f.dim
            self.attrs = dict(f.attrs)
            self.param_names: tuple[str, ...] = f.param_names
            all_params = f.params()
            lengths = f.length.copy()
            usable = np.ones(f.n, dtype=bool)
            if f.status is not None and not include_failed:
                usable = f.status == Status.SUCCESS
            itemsize = f._y.dtype.itemsize
        if indices is None:
            sel = np.nonzero(usable)[0]
        else:
            sel = np.asarray(indices, dtype=np.int64).reshape(-1)
            if sel.size and (sel.min() < 0 or sel.max() >= self.n_file):
                raise InvalidArgumentError("indices", indices, f"trajectory rows in [0, {self.n_file})")
            if not include_failed and not usable[sel].all():
                row = int(sel[~usable[sel]][0])
                raise InvalidArgumentError(
                    "indices", f"row {row}", "rows of successful solves (or include_failed=True)"
                )
        self.indices = sel
        self.lengths = lengths[sel]
        # (n, P) float64, small: read once (N × P numbers), so items never touch the file for them
        self.params = None if all_params is None else torch.from_numpy(all_params[sel].copy())
        if in_memory is None:
            in_memory = self.indices.size * self.n_times * self.dim * itemsize <= IN_MEMORY_BYTES
        self.in_memory = bool(in_memory)
        try:
            self._epoch = torch.zeros((), dtype=torch.int64, device="cpu").share_memory_()
        except RuntimeError:  # pragma: no cover - no shared memory: persistent workers miss set_epoch
            self._epoch = torch.zeros((), dtype=torch.int64, device="cpu")
        self._file: TrajectoryFile | None = None
        self._pid: int | None = None
        self._memory: tuple[np.ndarray, np.ndarray] | None = None

    # -- per-process file handle --------------------------------------------------------------------
    def _handle(self) -> TrajectoryFile:
        if self._file is None or self._pid != os.getpid():
            # A handle inherited through fork belongs to the parent: never reuse it.
            self._file = TrajectoryFile(self.path, **self.keys)
            self._pid = os.getpid()
        return self._file

    def _load_memory(self) -> tuple[np.ndarray, np.ndarray]:
        if self._memory is None:  # arrays inherited through fork stay valid (copy-on-write)
            f = self._handle()
            T = self.n_times
            t = np.full((self.indices.size, T), np.nan)
            y = np.full((self.indices.size, T, self.dim), np.nan, dtype=f._y.dtype)
            if self.indices.size:
                order = np.argsort(self.indices)
                rows = self.indices[order]
                lo, hi = int(rows[0]), int(rows[-1]) + 1
                step = 8192
                for s in range(lo, hi, step):
                    e = min(hi, s + step)
                    pick = (rows >= s) & (rows < e)
                    if not pick.any():
                        continue
                    bt, by, _ = f.read_block(s, e)
                    t[order[pick]] = bt[rows[pick] - s]
                    y[order[pick]] = by[rows[pick] - s]
            self._memory = (t, y)
        return self._memory

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        state["_memory"] = None
        return state

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._memory = None

    # -- items --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise InvalidArgumentError("index", i, "an integer item index")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"item {i} out of range for a dataset of {n} trajectories")
        i = int(i) % n
        row = int(self.indices[i])
        L = int(self.lengths[i])
        start, stop = 0, L
        if self.window is not None and self.window < L:
            start = window_start(self.seed, int(self._epoch), row, L, self.window)
            stop = start + self.window
        if self.in_memory:
            t_all, y_all = self._load_memory()
            t, y = t_all[i, start:stop], y_all[i, start:stop]
        else:
            t, y = self._handle().trajectory(row)
            t, y = t[start:stop], y[start:stop]
        t = torch.from_numpy(np.ascontiguousarray(t))
        y = torch.from_numpy(np.ascontiguousarray(y))
        if self.dtype is not None:
            t, y = t.to(self.dtype), y.to(self.dtype)
        item = {"t": t, "y": y, "index": row}
        if self.params is not None:
            p = self.params[i]
            item["params"] = p.to(self.dtype) if self.dtype is not None else p
        return item

    # -- epochs, state, splits ----------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the windows of ``epoch`` (seen by every worker, persistent ones included)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise InvalidArgumentError("epoch", epoch, "a non-negative integer")
        self._epoch.fill_(int(epoch))

    def state_dict(self) -> dict[str, int]:
        """What determines the windows: restore it with :meth:`load_state_dict` to resume exactly."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or set(state) != {"seed", "epoch"}:
            raise InvalidArgumentError(
                "state", state, "a dict with keys 'seed' and 'epoch' (from state_dict)"
            )
        self.seed = int(state["seed"])
        self.set_epoch(int(state["epoch"]))

    def subset(self, indices: Sequence[int] | np.ndarray) -> TrajectoryDataset:
        """A dataset over some of this one's file rows, with the same settings (no re-validation)."""
        return TrajectoryDataset(
            self.path,
            indices=indices,
            window=self.window,
            seed=self.seed,
            include_failed=self.include_failed,
            dtype=self.dtype,
            in_memory=self.in_memory,
            check=False,
            **self.keys,
        )

    def split(
        self, val_fraction: float = 0.2, *, seed: int = 0
    ) -> tuple[TrajectoryDataset, TrajectoryDataset]:
        """``(train, val)`` datasets over a seeded split of this dataset's trajectories."""
        train, val = split_by_trajectory(self.indices, val_fraction, seed=seed)
        return self.subset(train), self.subset(val)

    def __repr__(self) -> str:
        win = f", window={self.window}" if self.window is not None else ""
        return f"TrajectoryDataset({str(self.path)!r}, {len(self)} trajectories{win})"
