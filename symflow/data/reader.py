"""Reading and validating trajectory files: :func:`open_trajectories` and :func:`validate`.

Two layouts are read:

* **symflow** (the schema of :mod:`symflow.data.schema`): ``t (N, T)``, ``y (N, T, D)``,
  ``length (N,)`` and the optional datasets; the file must carry ``schema``, a supported
  ``schema_version`` and ``complete=True``.
* **plain** (files written by other tools), selected by naming the keys: ``y_key`` names
  ``y (N, T, D)``, ``t_key`` names ``t (T,)`` (shared) or ``(N, T)``, and ``mask_key`` optionally
  names a boolean ``(N, T)`` mask of observed entries. A trajectory's observations are its masked
  entries, in order (holes in the mask are allowed: the observed points are packed to the front).

Validation checks the structure (schema name and version, datasets present with consistent shapes
and dtypes) and then every trajectory: ``1 ≤ length ≤ T``, finite and strictly increasing times
within the length, NaN padding past it, finite states (failed solves, flagged by a non-zero
``status``, may hold NaN after their failure), known status codes. Every problem names the
trajectory and what was expected. Files that are not HDF5, are truncated or fail their checksums
raise :class:`~symflow.data.schema.UnreadableFileError`, never a raw h5py error.

**Bounded reading.** Declared sizes are never trusted: before anything is read, every dataset's
declared shape is compared with the storage the file really holds (all chunks of a chunked
dataset, all bytes of a contiguous one), so a few kilobytes cannot declare 10⁹ trajectories and
make a reader allocate gigabytes; datasets stored outside the file are refused (external storage
always; virtual datasets unless they are the index of a sharded data set, see :func:`check_virtual`);
``length`` and ``status`` are read in blocks of :data:`BLOCK_ROWS` rows.

**Sharded data sets** (:mod:`symflow.data.shards`): the index file ``trajectories.h5`` — or the
directory holding it — reads as one file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from symflow.integrators.errors import CapabilityError, InvalidArgumentError
from symflow.integrators.solution import Status

from . import schema as S
from .schema import (
    DataFormatError,
    IncompleteFileError,
    SchemaError,
    TrajectoryError,
    UnreadableFileError,
    summarize,
)

# Rows checked per block during validation (bounded memory for files of any size).
BLOCK_ROWS = 8192
# HDF5 chunk cache per dataset when reading: holds several chunks for random access.
CACHE_BYTES = 32 << 20
CACHE_SLOTS = 10007  # a prime well above the number of cached chunks (HDF5 guidance)

_STATUS_CODES = {int(s) for s in Status}


def _python(value: Any) -> Any:
    """HDF5 attribute → plain Python (JSON text of containers decoded)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _open_h5(path: Path) -> h5py.File:
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    with open(path, "rb"):  # an unreadable file is a PermissionError, not "not an HDF5 file"
        pass
    try:
        is_h5 = h5py.is_hdf5(path)
    except OSError:  # pragma: no cover - unreadable bytes
        is_h5 = False
    if not is_h5:
        raise UnreadableFileError(
            "not an HDF5 file (no HDF5 signature)", path=path, expected="an HDF5 trajectory file"
        )
    try:
        return h5py.File(path, "r", rdcc_nbytes=CACHE_BYTES, rdcc_nslots=CACHE_SLOTS)
    except OSError as err:
        raise UnreadableFileError(
            "cannot be opened as HDF5: the file is truncated or corrupt",
            path=path,
            got=_first_line(err),
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


@dataclass
class ValidationReport:
    """What :func:`validate` found.

    Attributes:
        path: the file.
        layout: ``"symflow"`` or ``"plain"`` (``None`` when the file could not be read).
        n_trajectories, n_times, dim: ``N``, ``T``, ``D`` (``None`` when unknown).
        problems: the problems found (at most ``max_problems``), each a :class:`DataFormatError`
            naming the trajectory where there is one.
        n_problems: how many problems in all (may exceed ``len(problems)``).
        failed: count of trajectories per failure status (failed solves are valid data, flagged).
    """

    path: str
    layout: str | None = None
    n_trajectories: int | None = None
    n_times: int | None = None
    dim: int | None = None
    problems: list[DataFormatError] = field(default_factory=list)
    n_problems: int = 0
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.n_problems == 0

    @property
    def n_failed(self) -> int:
        return sum(self.failed.values())

    def error(self) -> DataFormatError:
        """One error summing up the problems (the first problem's type)."""
        if self.ok:
            raise InvalidArgumentError("report", "a valid file", "a report with problems")
        err = summarize(self.path, self.problems)
        if self.n_problems > len(self.problems) and len(self.problems) > 1:
            err = type(err)(
                f"{err.what} (+{self.n_problems - len(self.problems)} more not listed)",
                path=self.path,
                problems=self.problems,
            )
        return err

    def raise_if_invalid(self) -> ValidationReport:
        if not self.ok:
            raise self.error()
        return self

    def __str__(self) -> str:
        shape = (
            f"{self.n_trajectories} trajectories × {self.n_times} times × dim {self.dim}"
            if self.n_trajectories is not None
            else "unreadable"
        )
        failed = ""
        if self.failed:
            failed = " (failed solves kept: " + ", ".join(f"{k} {v}" for k, v in self.failed.items()) + ")"
        if self.ok:
            return f"OK {self.path}: {self.layout} layout, {shape}{failed}"
        lines = [f"INVALID {self.path}: {self.n_problems} problem(s); {shape}{failed}"]
        lines += [f"  - {p.detail}" for p in self.problems]
        if self.n_problems > len(self.problems):
            lines.append(f"  … {self.n_problems - len(self.problems)} more")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ValidationReport({str(self).splitlines()[0][:120]!r}, problems={self.n_problems})"


class TrajectoryFile:
    """An open trajectory file (either layout), read lazily.

    ``length`` and ``status`` (``N`` small integers each) are loaded on opening; times and states
    are read on demand, row by row or in blocks. Use it as a context manager or call
    :meth:`close`. Opening checks the structure and raises :class:`DataFormatError` subclasses;
    :func:`open_trajectories` also checks every trajectory's values.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        t_key: str | None = None,
        y_key: str | None = None,
        mask_key: str | None = None,
    ) -> None:
        from .shards import index_path

        self.path = index_path(path)  # a sharded data set's directory reads through its index
        self._h5 = _open_h5(self.path)
        try:
            self._setup(t_key, y_key, mask_key)
        except BaseException:
            self._h5.close()
            raise

    # -- structure ----------------------------------------------------------------------------------
    def _setup(self, t_key: str | None, y_key: str | None, mask_key: str | None) -> None:
        f = self._h5
        with self._guard("the root attributes"):
            self.attrs: dict[str, Any] = {k: _python(v) for k, v in f.attrs.items()}
        plain = any(k is not None for k in (t_key, y_key, mask_key))
        if plain:
            if y_key is None or t_key is None:
                raise InvalidArgumentError(
                    "y_key/t_key", (y_key, t_key), "both keys for a plain layout (and optionally mask_key)"
                )
            self.layout = "plain"
            self.t_key, self.y_key, self.mask_key = t_key, y_key, mask_key
        else:
            self.layout = "symflow"
            self.t_key, self.y_key, self.mask_key = S.T, S.Y, None
            self._check_attrs()
        y = self._dataset(self.y_key, "(N, T, D)")
        if y.ndim != 3:
            raise SchemaError(
                f"dataset {self.y_key!r} has shape {y.shape}", path=self.path, expected="(N, T, D)"
            )
        self.n, self.n_times, self.dim = (int(s) for s in y.shape)
        N, T = self.n, self.n_times
        if N == 0:
            raise SchemaError(
                f"dataset {self.y_key!r} holds no trajectories (shape {y.shape})",
                path=self.path,
                expected="N ≥ 1 trajectories",
            )
        if T == 0:
            raise SchemaError(
                f"dataset {self.y_key!r} holds no observation times (shape {y.shape})",
                path=self.path,
                expected="T ≥ 1 observations",
            )
        if self.dim == 0 or self.dim % 2:
            raise SchemaError(
                f"dataset {self.y_key!r} has state dimension D = {self.dim} (shape {y.shape})",
                path=self.path,
                expected="an even state dimension D = 2n ≥ 2 (positions q, then momenta p)",
            )
        if y.dtype not in (np.float32, np.float64):
            raise SchemaError(
                f"dataset {self.y_key!r} has dtype {y.dtype}", path=self.path, expected="float32 or float64"
            )
        t = self._dataset(self.t_key, f"({N}, {T})" + (f" or ({T},)" if plain else ""))
        shapes = [(N, T), (T,)] if plain else [(N, T)]
        if t.shape not in shapes:
            raise SchemaError(
                f"dataset {self.t_key!r} has shape {t.shape}, which does not match {self.y_key!r} {y.shape}",
                path=self.path,
                expected=" or ".join(str(s) for s in shapes),
            )
        if (plain and t.dtype.kind != "f") or (not plain and t.dtype != np.float64):
            raise SchemaError(
                f"dataset {self.t_key!r} has dtype {t.dtype}",
                path=self.path,
                expected="floating-point times" if plain else "float64",
            )
        self._check_storage(self.y_key, y)
        self._check_storage(self.t_key, t)
        self._t, self._y = t, y
        self.param_names: tuple[str, ...] = ()  # columns of the optional `params` dataset
        self._params: h5py.Dataset | None = None
        self._shared_t: np.ndarray | None = None
        self.status: np.ndarray | None = None
        if plain:
            self._mask = None
            if mask_key is not None:
                m = self._dataset(mask_key, f"({N}, {T})")
                if m.shape != (N, T):
                    raise SchemaError(
                        f"dataset {mask_key!r} has shape {m.shape}", path=self.path, expected=f"({N}, {T})"
                    )
                if m.dtype.kind not in "bui":
                    raise SchemaError(
                        f"dataset {mask_key!r} has dtype {m.dtype}", path=self.path, expected="a boolean mask"
                    )
                self._check_storage(mask_key, m)
                self._mask = m
                self.length = np.empty(N, dtype=np.int64)
                for s, e in self._blocks():
                    with self._guard(f"dataset {mask_key!r}", s, e):
                        self.length[s:e] = (m[s:e] != 0).sum(-1)
            else:
                self.length = np.full(N, T, dtype=np.int64)
            if t.ndim == 1:
                with self._guard(f"dataset {t_key!r}"):
                    self._shared_t = t[()]  # T values, checked against the storage above
            return
        length = self._dataset(S.LENGTH, f"({N},)")
        if length.shape != (N,) or length.dtype.kind not in "iu":
            raise SchemaError(
                f"dataset 'length' has shape {length.shape} and dtype {length.dtype}",
                path=self.path,
                expected=f"integers of shape ({N},)",
            )
        self._check_storage(S.LENGTH, length)
        self.length = self._read_rows(S.LENGTH, length, np.int64)
        if S.STATUS in f:
            st = self._dataset(S.STATUS, f"({N},)")
            if st.shape != (N,) or st.dtype.kind not in "iu":
                raise SchemaError(
                    f"dataset 'status' has shape {st.shape} and dtype {st.dtype}",
                    path=self.path,
                    expected=f"int8 codes of shape ({N},)",
                )
            self._check_storage(S.STATUS, st)
            status = self._read_rows(S.STATUS, st, np.int64)
            # Codes outside int8 would wrap around into valid ones: keep them recognisably invalid.
            self.status = np.where((status < -128) | (status > 127), S.STATUS_UNWRITTEN, status).astype(
                np.int8
            )
        expected_shapes = {S.ENERGY: (N, T), S.Y_CLEAN: (N, T, self.dim)}
        for key, shape in expected_shapes.items():
            if key in f:
                ds = self._dataset(key, str(shape))
                if ds.shape != shape:
                    raise SchemaError(
                        f"dataset {key!r} has shape {ds.shape}", path=self.path, expected=str(shape)
                    )
                if ds.dtype.kind != "f":
                    raise SchemaError(
                        f"dataset {key!r} has dtype {ds.dtype}", path=self.path, expected="float32 or float64"
                    )
                # No storage check: the shape is tied to y's, which was checked, and unwritten rows of
                # these optional datasets read as NaN ("not recorded"), which is what they mean. An
                # index's virtual datasets are still followed only into complete sibling parts.
                if ds.is_virtual:
                    self._check_storage(key, ds)
        if S.PARAMS in f:
            p = self._dataset(S.PARAMS, f"({N}, P)")
            if p.ndim != 2 or p.shape[0] != N:
                raise SchemaError(
                    f"dataset 'params' has shape {p.shape}", path=self.path, expected=f"({N}, P)"
                )
            if p.dtype.kind != "f":
                raise SchemaError(
                    f"dataset 'params' has dtype {p.dtype}",
                    path=self.path,
                    expected="floating-point parameters",
                )
            self._check_storage(S.PARAMS, p)
            self.param_names = self._check_param_names(int(p.shape[1]))
            self._params = p

    def _check_param_names(self, P: int) -> tuple[str, ...]:
        """The names of the ``params`` columns: the ``param_names`` attribute, ``P`` parameter names of
        the file's system (when it names a registered one). Raises :class:`SchemaError` naming both
        lists when they do not match; ``()`` when the file does not name them (files written before
        the attribute existed, or by ``write_trajectories`` without ``param_names``)."""
        names = self.attrs.get(S.ATTR_PARAM_NAMES)
        system = self.attrs.get("system")
        if names is None:  # unnamed columns: readable, but nothing can be conditioned on them
            return ()
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise SchemaError(
                f"attribute {S.ATTR_PARAM_NAMES} is {str(names)[:80]!r}",
                path=self.path,
                expected=f"a JSON list of {P} parameter names",
            )
        if len(names) != P or len(set(names)) != len(names):
            raise SchemaError(
                f"attribute {S.ATTR_PARAM_NAMES} lists {names} for the {P} columns of dataset 'params'",
                path=self.path,
                expected=f"{P} distinct names, one per column",
            )
        if isinstance(system, str) and system not in ("", "unknown"):
            from symflow.systems import SYSTEMS

            if system in SYSTEMS:
                known = [q.name for q in SYSTEMS.get(system).parameters]
                if not set(names) <= set(known):
                    raise SchemaError(
                        f"dataset 'params' columns {names} do not match the parameters of system "
                        f"{system!r}: {known}",
                        path=self.path,
                        expected=f"column names among {known}",
                    )
        return tuple(names)

    def _check_storage(self, key: str, ds: h5py.Dataset) -> None:
        """Refuse a dataset whose declared size the file does not really hold (never trust a header)."""
        _check_storage(self.path, key, ds)

    def _read_rows(self, key: str, ds: h5py.Dataset, dtype: type) -> np.ndarray:
        """A ``(N,)`` dataset read block by block (bounded temporary memory)."""
        out = np.empty(self.n, dtype=dtype)
        for s, e in self._blocks():
            with self._guard(f"dataset {key!r}", s, e):
                out[s:e] = ds[s:e]
        return out

    def _check_attrs(self) -> None:
        a = self.attrs
        if a.get(S.ATTR_SCHEMA) != S.SCHEMA:
            got = a.get(S.ATTR_SCHEMA)
            raise SchemaError(
                "not a symflow trajectory file"
                + (" (no 'schema' attribute)" if got is None else "")
                + "; for another layout name its datasets (y_key=..., t_key=..., mask_key=...)",
                path=self.path,
                expected=f"attribute schema={S.SCHEMA!r}",
                got=None if got is None else repr(got),
            )
        version = a.get(S.ATTR_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version != S.SCHEMA_VERSION:
            raise SchemaError(
                f"unsupported schema_version {version!r} (this symflow reads version {S.SCHEMA_VERSION})",
                path=self.path,
                expected=f"schema_version={S.SCHEMA_VERSION}",
                got=repr(version),
            )
        if a.get(S.ATTR_COMPLETE) is not True:
            raise IncompleteFileError(
                "the file is incomplete: its writer was interrupted before it finished (no complete=True)",
                path=self.path,
                expected="complete=True, written last by the writer; regenerate the file",
            )

    def _dataset(self, key: str, shape: str) -> h5py.Dataset:
        if key not in self._h5:
            raise SchemaError(
                f"missing dataset {key!r}",
                path=self.path,
                expected=f"a dataset {key!r} of shape {shape}",
                got="datasets " + (", ".join(repr(k) for k in self._h5) or "none"),
            )
        obj = self._h5[key]
        if not isinstance(obj, h5py.Dataset):
            raise SchemaError(f"{key!r} is a group, not a dataset", path=self.path, expected=f"shape {shape}")
        return obj

    @contextlib.contextmanager
    def _guard(self, what: str, start: int | None = None, stop: int | None = None) -> Iterator[None]:
        """Turn h5py read failures (checksum, truncation) into :class:`UnreadableFileError`."""
        try:
            yield
        except OSError as err:
            rows = f" (trajectories {start}–{stop - 1})" if start is not None and stop is not None else ""
            raise UnreadableFileError(
                f"cannot read {what}{rows}: the file is corrupt or truncated",
                path=self.path,
                got=_first_line(err),
            ) from None

    def _blocks(self, rows: int = BLOCK_ROWS) -> Iterator[tuple[int, int]]:
        for s in range(0, self.n, rows):
            yield s, min(self.n, s + rows)

    # -- reading ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n

    @property
    def has_status(self) -> bool:
        return self.status is not None

    @property
    def dataset_names(self) -> list[str]:
        return list(self._h5.keys())

    def read_block(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(t (B, T), y (B, T, D), length (B,))`` of rows ``start:stop``, observations packed to the
        front and NaN past each length (for both layouts)."""
        start, stop = max(0, start), min(self.n, stop)
        with self._guard(f"datasets {self.t_key!r}/{self.y_key!r}", start, stop):
            y = self._y[start:stop]
            t = (
                np.broadcast_to(self._shared_t, (stop - start, self.n_times)).copy()
                if self._shared_t is not None
                else self._t[start:stop]
            )
            mask = None if self.layout == "symflow" or self._mask is None else self._mask[start:stop] != 0
        length = self.length[start:stop]
        if mask is not None and not mask.all():
            t, y = _pack(t, y, mask)
        elif self.layout == "plain":
            t = t.astype(np.float64, copy=False)
        return t, y, length

    def trajectory(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(t (L,), y (L, D))`` of one trajectory (its observations only)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.n:
            raise InvalidArgumentError("index", index, f"a trajectory index in [0, {self.n})")
        i = int(index)
        L = int(self.length[i])
        with self._guard(f"trajectory {i}", i, i + 1):
            if self.layout == "plain" and self._mask is not None:
                m = self._mask[i] != 0
                y = self._y[i][m]
                t = (self._shared_t if self._shared_t is not None else self._t[i])[m]
            else:
                y = self._y[i, :L]
                t = self._shared_t[:L] if self._shared_t is not None else self._t[i, :L]
        return np.asarray(t, dtype=np.float64), y

    def params(self, start: int = 0, stop: int | None = None) -> np.ndarray | None:
        """Rows ``start:stop`` of the per-trajectory parameters ``(B, P)`` (float64; columns
        :attr:`param_names`), or ``None`` when the file has none."""
        if self._params is None:
            return None
        stop = self.n if stop is None else stop
        with self._guard("dataset 'params'", start, stop):
            return np.asarray(self._params[start:stop], dtype=np.float64)

    def read_dataset(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of any dataset (e.g. ``"energy"``, ``"y_clean"``)."""
        stop = self.n if stop is None else stop
        ds = self._dataset(key, "(N, ...)")
        with self._guard(f"dataset {key!r}", start, stop):
            return ds[start:stop]

    def system(self):
        """The :class:`~symflow.systems.HamiltonianSystem` named in the attributes."""
        from symflow.systems import SYSTEMS, get_system

        name = self.attrs.get("system")
        if not isinstance(name, str) or name not in SYSTEMS:
            raise CapabilityError(f"{self.path}: the file names no registered system (system={name!r})")
        return get_system(name, **system_args(self.attrs, self.path))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._h5.close()

    def __enter__(self) -> TrajectoryFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"TrajectoryFile({str(self.path)!r}, layout={self.layout!r}, n={self.n}, "
            f"T={self.n_times}, D={self.dim})"
        )

    # -- validation ---------------------------------------------------------------------------------
    def check_values(self, max_problems: int = 50) -> tuple[list[DataFormatError], int, dict[str, int]]:
        """Check every trajectory; ``(problems (at most max_problems), total count, failures by status)``."""
        problems: list[DataFormatError] = []
        total = 0
        failed: dict[str, int] = {}
        T = self.n_times
        cols = np.arange(T)
        for s, e in self._blocks():
            found: list[tuple[int, int, str, str]] = []  # (row, check, what, expected)
            length = self.length[s:e]
            status = self.status[s:e] if self.status is not None else None
            if status is not None:
                for code in np.unique(status):
                    if int(code) in _STATUS_CODES and code != Status.SUCCESS:
                        name = Status(int(code)).name.lower()
                        failed[name] = failed.get(name, 0) + int((status == code).sum())
                for r in np.nonzero(~np.isin(status, list(_STATUS_CODES)))[0]:
                    code = int(status[r])
                    what = (
                        "status was never written" if code == S.STATUS_UNWRITTEN else f"unknown status {code}"
                    )
                    found.append((r, 0, what, "a Status code 0–4"))
            bad_len = (length < 1) | (length > T)
            for r in np.nonzero(bad_len)[0]:
                found.append((r, 1, f"length {int(length[r])} out of range", f"1 ≤ length ≤ {T}"))
            t, y, _ = self.read_block(s, e)
            # A row with an impossible length gets no further checks: they would only echo it.
            inside = (cols[None, :] < length[:, None]) & ~bad_len[:, None]
            bad_t = inside & ~np.isfinite(t)
            for r in np.nonzero(bad_t.any(-1))[0]:
                j = int(np.argmax(bad_t[r]))
                found.append((r, 2, f"time t[{j}] = {float(t[r, j])!r}", "finite times"))
            if T > 1:
                with np.errstate(invalid="ignore"):
                    not_inc = inside[:, 1:] & ~bad_t[:, 1:] & ~bad_t[:, :-1] & ~(np.diff(t, axis=-1) > 0)
                for r in np.nonzero(not_inc.any(-1))[0]:
                    j = int(np.argmax(not_inc[r])) + 1
                    now, before = float(t[r, j]), float(t[r, j - 1])
                    what = f"time t[{j}] = {now!r} does not exceed t[{j - 1}] = {before!r}"
                    found.append((r, 3, what, "strictly increasing times"))
            if self.layout == "symflow":
                bad_pad = ~inside & ~np.isnan(t) & ~bad_len[:, None]
                for r in np.nonzero(bad_pad.any(-1))[0]:
                    j = int(np.argmax(bad_pad[r]))
                    what = f"padding t[{j}] = {float(t[r, j])!r} past length {int(length[r])}"
                    found.append((r, 4, what, "NaN past the length"))
            ok_rows = status == Status.SUCCESS if status is not None else np.ones(e - s, dtype=bool)
            bad_y = inside[..., None] & ~np.isfinite(y)
            why = " although its status is success" if status is not None else ""
            for r in np.nonzero(ok_rows & bad_y.any(axis=(1, 2)))[0]:
                j = int(np.argmax(bad_y[r].any(-1)))
                found.append((r, 5, f"state y[{j}] is not finite{why}", "finite states"))
            if self._params is not None:
                params = self.params(s, e)
                for r in np.nonzero(~np.isfinite(params).all(-1))[0]:
                    found.append(
                        (r, 6, f"parameters {params[r].tolist()} are not finite", "finite parameters")
                    )
            found.sort(key=lambda x: (x[0], x[1]))
            total += len(found)
            for r, _, what, expected in found[: max(0, max_problems - len(problems))]:
                problems.append(TrajectoryError(what, path=self.path, index=s + int(r), expected=expected))
        return problems, total, failed


def system_args(attrs: dict[str, Any], path: Any = None) -> dict[str, Any]:
    """The ``system_args`` attribute as a dict (``{}`` when absent); text that is not a JSON object is a
    :class:`SchemaError` — never silently the system's default parameters."""
    raw = attrs.get("system_args")
    if raw is None or raw == "":
        return {}
    value = raw
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    if not isinstance(value, dict):
        raise SchemaError(
            f"attribute system_args is {str(raw)[:80]!r}",
            path=path,
            expected='a JSON object of parameters, e.g. {"lam": 1.0}',
        )
    return dict(value)


def _check_storage(path: Path, key: str, ds: h5py.Dataset) -> None:
    declared = int(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize if ds.shape else 0
    if declared == 0:
        return
    if ds.is_virtual:
        check_virtual(path, key, ds)
        return
    if ds.external:
        kind = "external"
        raise SchemaError(
            f"dataset {key!r} is stored outside the file ({kind} storage)",
            path=path,
            expected="data stored in the file itself",
        )
    layout = ds.id.get_create_plist().get_layout()
    if layout == h5py.h5d.CHUNKED:
        per_axis = [-(-size // chunk) for size, chunk in zip(ds.shape, ds.chunks)]
        expected = int(np.prod(per_axis, dtype=np.float64))
        stored = ds.id.get_num_chunks()
        if stored < expected:
            raise SchemaError(
                f"dataset {key!r} declares shape {ds.shape} ({_size(declared)}) but stores only {stored} "
                f"of its {expected} chunks; the rest was never written",
                path=path,
                expected="a file whose datasets hold every declared row",
            )
    elif layout == h5py.h5d.CONTIGUOUS:
        stored = ds.id.get_storage_size()
        if stored < declared:
            raise SchemaError(
                f"dataset {key!r} declares shape {ds.shape} ({_size(declared)}) but stores {_size(stored)}",
                path=path,
                expected="a file whose datasets hold every declared row",
            )


def check_virtual(path: Path, key: str, ds: h5py.Dataset) -> None:
    """Accept a virtual dataset only as the index of a sharded data set (:mod:`symflow.data.shards`).

    Every source must be a file *next to* the index (a bare relative name: no directories, no
    absolute paths, not the index itself) that exists, is a complete symflow trajectory file, and
    holds the mapped dataset — stored in the file itself, with all its declared rows — in the shape
    the mapping expects; and the sources must cover every row of the virtual dataset, so that no row
    silently reads as the fill value.
    """
    refuse = "an index of part files in its own directory (symflow.data.shards)"
    spans: list[tuple[int, int]] = []
    for src in ds.virtual_sources():
        name = src.file_name
        if (
            name in ("", ".")
            or "/" in name
            or "\\" in name
            or name.startswith("..")
            or Path(name).is_absolute()
        ):
            raise SchemaError(
                f"dataset {key!r} is virtual with its data in {name!r}, outside the index's directory",
                path=path,
                expected=refuse,
            )
        part = path.parent / name
        if part.resolve() == path.resolve():
            raise SchemaError(f"dataset {key!r} maps onto its own file", path=path, expected=refuse)
        if not part.is_file():
            raise SchemaError(
                f"dataset {key!r}: the part file {name} is missing",
                path=path,
                expected="every part file of the sharded data set next to its index",
            )
        (v_lo, v_hi) = src.vspace.get_select_bounds()
        rows = int(v_hi[0]) - int(v_lo[0]) + 1
        try:
            with h5py.File(part, "r") as f:
                if (
                    _python(f.attrs.get(S.ATTR_COMPLETE)) is not True
                    or _python(f.attrs.get(S.ATTR_SCHEMA)) != S.SCHEMA
                ):
                    raise IncompleteFileError(
                        "is not a complete symflow trajectory file (its writer did not finish)",
                        path=part,
                        expected="a finished part of the sharded data set",
                    )
                if src.dset_name not in f or not isinstance(f[src.dset_name], h5py.Dataset):
                    raise SchemaError(
                        f"part {name} has no dataset {src.dset_name!r}", path=path, expected=refuse
                    )
                target = f[src.dset_name]
                if target.is_virtual:
                    raise SchemaError(
                        f"part {name}: {src.dset_name!r} is virtual too", path=path, expected=refuse
                    )
                if target.shape[0] != rows or tuple(target.shape[1:]) != tuple(ds.shape[1:]):
                    raise SchemaError(
                        f"part {name} holds {src.dset_name!r} of shape {target.shape}, the index maps "
                        f"{rows} rows of width {tuple(ds.shape[1:])}",
                        path=path,
                        expected="parts matching their index",
                    )
                _check_storage(part, src.dset_name, target)
        except OSError as err:
            raise UnreadableFileError(
                f"cannot read the part file {name}", path=path, got=_first_line(err)
            ) from None
        spans.append((int(v_lo[0]), int(v_hi[0]) + 1))
    ends = [0] + [hi for _, hi in sorted(spans)]
    if [lo for lo, _ in sorted(spans)] != ends[:-1] or ends[-1] != ds.shape[0]:
        covered = sum(hi - lo for lo, hi in spans)
        raise SchemaError(
            f"dataset {key!r}: its parts map rows {sorted(spans)} ({covered} rows) of its {ds.shape[0]}, "
            "not each row once",
            path=path,
            expected="parts covering every row of the index",
        )


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""  # pragma: no cover


def _pack(t: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each row's masked entries to the front (stable), NaN after them."""
    order = np.argsort(~mask, axis=-1, kind="stable")
    t = np.take_along_axis(t.astype(np.float64), order, axis=-1)
    y = np.take_along_axis(y, order[..., None], axis=1)
    keep = np.take_along_axis(mask, order, axis=-1)
    t = np.where(keep, t, np.nan)
    y = np.where(keep[..., None], y, np.nan)
    return t, y


def validate(
    path: str | os.PathLike,
    *,
    t_key: str | None = None,
    y_key: str | None = None,
    mask_key: str | None = None,
    max_problems: int = 50,
) -> ValidationReport:
    """Check a trajectory file completely and report every problem (never raises for bad content).

    Returns a :class:`ValidationReport`; ``report.ok`` is true for a valid file and
    ``report.raise_if_invalid()`` raises the documented :class:`DataFormatError` subclass.
    A missing path raises :class:`FileNotFoundError`.
    """
    report = ValidationReport(path=str(path))
    try:
        f = TrajectoryFile(path, t_key=t_key, y_key=y_key, mask_key=mask_key)
    except DataFormatError as err:
        report.problems = list(err.problems)
        report.n_problems = len(err.problems)
        return report
    with f:
        report.layout = f.layout
        report.n_trajectories, report.n_times, report.dim = f.n, f.n_times, f.dim
        try:
            report.problems, report.n_problems, report.failed = f.check_values(max_problems)
        except UnreadableFileError as err:
            report.problems, report.n_problems = [err], 1
    return report


def open_trajectories(
    path: str | os.PathLike,
    *,
    t_key: str | None = None,
    y_key: str | None = None,
    mask_key: str | None = None,
    check: bool = True,
) -> TrajectoryFile:
    """Open a trajectory file for reading, after validating it (``check=False`` skips the value
    checks, not the structural ones).

    Raises :class:`~symflow.data.schema.UnreadableFileError` (not HDF5, truncated, corrupt),
    :class:`~symflow.data.schema.IncompleteFileError` (interrupted writer),
    :class:`~symflow.data.schema.SchemaError` (schema name or version, missing or mis-shaped
    dataset) or :class:`~symflow.data.schema.TrajectoryError` (a trajectory's values), each naming
    the file, the trajectory where there is one, and what was expected.
    """
    f = TrajectoryFile(path, t_key=t_key, y_key=y_key, mask_key=mask_key)
    if check:
        try:
            problems, total, _ = f.check_values()
        except BaseException:
            f.close()
            raise
        if problems:
            f.close()
            report = ValidationReport(str(path), f.layout, f.n, f.n_times, f.dim, problems, total)
            raise report.error()
    return f
