"""Writing trajectory files: chunked, compressed, checksummed, in batches, atomically.

:class:`TrajectoryWriter` creates every dataset of the schema up front (chunked along the
trajectory axis, gzip + shuffle, ``fletcher32`` checksums, NaN fill value) in a temporary file
next to the target, and appends trajectories batch by batch, so a file of 10⁶ trajectories never
sits in memory. Closing it writes ``complete=True`` last, flushes the file to disk and renames it
onto the target (atomic on POSIX). An exception or Ctrl-C removes the temporary file; a hard kill
leaves only ``<name>.<pid>.partial``, never a half-written file under the final name, and readers
refuse a file without ``complete=True`` anyway.

**One writer per file.** Without ``overwrite``, the final step is a hard link of the finished
temporary file to the target, which the kernel refuses if the target exists — so a file that
appeared while this writer was working (another process writing the same path) is never replaced;
the writer discards its copy and names the process that won (the ``writer_pid`` attribute). A
writer also refuses at once to start on a target whose temporary file belongs to a live process.
A temporary file is *live* while its writer holds it open (HDF5 keeps an exclusive ``flock`` on
files open for writing), so partial files of writers that died are recognised as *stale*
(:func:`stale_partials`); a writer removes the stale partial files of its own target when it starts.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from symflow.integrators.errors import InvalidArgumentError, SymflowError

from . import schema as S

# Target size of one chunk of `y` (uncompressed, 256 KiB): large enough for good compression and
# few chunk lookups, small enough that reading one trajectory at random decompresses little.
CHUNK_BYTES = 1 << 18


try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

# A partial file untouched for this long whose writer holds no lock on it is stale even if a process
# with its pid exists (the pid may have been reused, or belong to another machine).
STALE_AFTER_S = 60.0
_PARTIAL = re.compile(r"(?P<target>.+)\.(?P<pid>\d+)\.partial")


class OutputExistsError(SymflowError, FileExistsError):
    """The output file exists (or another process is writing it) and ``overwrite=True`` was not given."""


def partial_path(path: Path) -> Path:
    """The temporary file a writer fills before renaming it to ``path`` (same folder, same disk)."""
    return path.with_name(f"{path.name}.{os.getpid()}.partial")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    return True


def _in_use(partial: Path, pid: int) -> bool:
    """Whether the writer of ``partial`` is still at work: it holds the file locked (HDF5 locks files
    open for writing), or, where locks tell nothing, its process is alive and the file is recent."""
    try:
        fd = os.open(partial, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            except OSError:  # no locks on this filesystem: fall back to the pid and the age
                pass
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
        age = time.time() - os.fstat(fd).st_mtime
        return _pid_alive(pid) and age < STALE_AFTER_S
    finally:
        os.close(fd)


def _partials(folder: Path, target: str | None = None) -> list[tuple[Path, int]]:
    pattern = f"{glob.escape(target)}.*.partial" if target else "*.partial"
    out = []
    for path in sorted(folder.glob(pattern)):
        m = _PARTIAL.fullmatch(path.name)
        if m and (target is None or m["target"] == target) and path.is_file() and not path.is_symlink():
            out.append((path, int(m["pid"])))
    return out


def stale_partials(folder: str | os.PathLike, target: str | None = None) -> list[Path]:
    """Temporary ``<name>.<pid>.partial`` files in ``folder`` left by writers that died (killed,
    crashed, machine lost): files no live writer holds. ``target`` limits them to one file name."""
    folder = Path(folder)
    return [p for p, pid in _partials(folder, target) if pid != os.getpid() and not _in_use(p, pid)]


def _as_numpy(name: str, value: Any, dtype: np.dtype | type | None = None) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(name, value, "an array (numpy or torch)") from err
    return arr


def _attr_value(key: str, value: Any) -> Any:
    """HDF5-storable attribute: numbers and strings as they are, containers as JSON text."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value)
        except TypeError as err:
            raise InvalidArgumentError(f"attrs[{key!r}]", value, "JSON-serialisable values") from err
    raise InvalidArgumentError(
        f"attrs[{key!r}]", value, "a number, a string, or a JSON-serialisable container"
    )


class TrajectoryWriter:
    """Append-only writer of one trajectory file.

    Example::

        with TrajectoryWriter("data.h5", n=N, n_times=T, dim=D, attrs={"system": "pendulum"}) as w:
            for batch in batches:
                w.append(t=batch_t, y=batch_y, length=batch_len, status=batch_status)

    Args:
        path: the final file name.
        n, n_times, dim: ``N``, ``T``, ``D``.
        attrs: root attributes (dicts and lists are stored as JSON text; ``None`` values skipped).
        dtype: dtype of ``y`` (and ``energy``, ``y_clean``): ``float64`` or ``float32``.
        status: write the ``status`` dataset.
        energy, clean: write the optional ``energy`` and ``y_clean`` datasets.
        n_params: width ``P`` of an optional ``params`` dataset (``None``: none).
        chunk_rows: trajectories per chunk (default: about 256 KiB of ``y`` per chunk).
        compression_level: gzip level 0–9 (0 disables compression).
        overwrite: replace an existing file at ``path`` (only once the new file is complete).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n: int,
        n_times: int,
        dim: int,
        *,
        attrs: Mapping[str, Any] | None = None,
        dtype: torch.dtype | np.dtype | str = "float64",
        status: bool = True,
        energy: bool = False,
        clean: bool = False,
        n_params: int | None = None,
        chunk_rows: int | None = None,
        compression_level: int = 4,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        for name, value in (("n", n), ("n_times", n_times), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(name, value, "a positive integer")
        self.n, self.n_times, self.dim = n, n_times, dim
        self.dtype = _float_dtype(dtype)
        if not isinstance(compression_level, int) or not 0 <= compression_level <= 9:
            raise InvalidArgumentError("compression_level", compression_level, "an integer in [0, 9]")
        if self.path.is_dir():
            raise InvalidArgumentError("path", str(self.path), "a file name, not a folder")
        if not self.path.parent.is_dir():
            raise InvalidArgumentError("path", str(self.path), "a file in an existing folder")
        if self.path.exists() and not overwrite:
            writer = _writer_of(self.path)
            by = f" (written by {writer})" if writer else ""
            raise OutputExistsError(
                f"{self.path} exists{by}; pass overwrite=True (--overwrite) to replace it"
            )
        if not overwrite:
            for other, pid in _partials(self.path.parent, self.path.name):
                if pid != os.getpid() and _in_use(other, pid):
                    raise OutputExistsError(
                        f"{self.path} is being written by process {pid} (its temporary file {other.name}); "
                        "wait for it to finish, write elsewhere, or pass overwrite=True (--overwrite)"
                    )
        self.overwrite = bool(overwrite)
        self.removed_stale: list[Path] = []
        if chunk_rows is None:
            chunk_rows = max(1, CHUNK_BYTES // (n_times * dim * self.dtype.itemsize))
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise InvalidArgumentError("chunk_rows", chunk_rows, "a positive integer")
        self.chunk_rows = min(chunk_rows, n)
        self.extras = {S.STATUS: status, S.ENERGY: energy, S.Y_CLEAN: clean}
        self.n_params = n_params
        self._attrs = {k: _attr_value(k, v) for k, v in (attrs or {}).items() if v is not None}
        self._level = compression_level
        self._file: h5py.File | None = None
        self._tmp = partial_path(self.path)
        self._hold: int | None = None
        self.written = 0
        self.closed = False

    # -- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> TrajectoryWriter:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> TrajectoryWriter:
        if self._file is not None or self.closed:
            raise SymflowError("TrajectoryWriter.open: the writer is already open or closed")
        from symflow import __version__

        for stale in stale_partials(self.path.parent, self.path.name):
            stale.unlink(missing_ok=True)
            self.removed_stale.append(stale)
        self._file = h5py.File(self._tmp, "w")
        self._hold = _hold_lock(self._tmp)
        try:
            self._create_datasets()
            attrs = self._file.attrs
            attrs[S.ATTR_SCHEMA] = S.SCHEMA
            attrs[S.ATTR_VERSION] = S.SCHEMA_VERSION
            attrs[S.ATTR_SYMFLOW_VERSION] = __version__
            attrs[S.ATTR_CREATED] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            attrs[S.ATTR_WRITER_PID] = os.getpid()
            for key, value in self._attrs.items():
                attrs[key] = value
        except BaseException:
            self.abort()
            raise
        return self

    def _create_datasets(self) -> None:
        n, T, D, c = self.n, self.n_times, self.dim, self.chunk_rows
        comp = (
            {"compression": "gzip", "compression_opts": self._level, "shuffle": True} if self._level else {}
        )
        opts = {"fletcher32": True, **comp}
        f = self._file
        f.create_dataset(S.T, (n, T), dtype="f8", chunks=(c, T), fillvalue=np.nan, **opts)
        f.create_dataset(S.Y, (n, T, D), dtype=self.dtype, chunks=(c, T, D), fillvalue=np.nan, **opts)
        rows = min(n, max(c, 1 << 16))
        f.create_dataset(S.LENGTH, (n,), dtype="i4", chunks=(rows,), fillvalue=S.LENGTH_UNWRITTEN, **opts)
        if self.extras[S.STATUS]:
            f.create_dataset(S.STATUS, (n,), dtype="i1", chunks=(rows,), fillvalue=S.STATUS_UNWRITTEN, **opts)
        if self.extras[S.ENERGY]:
            f.create_dataset(S.ENERGY, (n, T), dtype=self.dtype, chunks=(c, T), fillvalue=np.nan, **opts)
        if self.extras[S.Y_CLEAN]:
            f.create_dataset(
                S.Y_CLEAN, (n, T, D), dtype=self.dtype, chunks=(c, T, D), fillvalue=np.nan, **opts
            )
        if self.n_params is not None:
            P = self.n_params
            f.create_dataset(S.PARAMS, (n, P), dtype="f8", chunks=(c, P), fillvalue=np.nan, **opts)

    def append(
        self,
        *,
        t: Any,
        y: Any,
        length: Any = None,
        status: Any = None,
        energy: Any = None,
        y_clean: Any = None,
        params: Any = None,
    ) -> None:
        """Write the next ``B`` trajectories.

        ``t`` is ``(B, T)`` (or ``(T,)``, shared), ``y`` ``(B, T, D)``, ``length`` ``(B,)`` (default
        ``T``). Entries past a row's length are stored as NaN whatever was passed. Times within the
        length must be finite and strictly increasing; states may be non-finite only in rows whose
        ``status`` is not success (failed solves are kept, flagged, never dropped).
        """
        if self._file is None:
            raise SymflowError("TrajectoryWriter.append: open the writer first (use it in a `with` block)")
        T, D = self.n_times, self.dim
        y = _as_numpy("y", y, self.dtype)
        if y.ndim != 3 or y.shape[1:] != (T, D):
            raise InvalidArgumentError("y", y, f"an array of shape (B, {T}, {D})")
        b = y.shape[0]
        if self.written + b > self.n:
            raise InvalidArgumentError(
                "y", y, f"at most {self.n - self.written} more trajectories (the file holds n={self.n})"
            )
        t = _as_numpy("t", t, np.float64)
        if t.shape == (T,):
            t = np.broadcast_to(t, (b, T))
        if t.shape != (b, T):
            raise InvalidArgumentError("t", t, f"an array of shape ({b}, {T}) or ({T},)")
        if length is None:
            length = np.full(b, T, dtype=np.int32)
        length = _as_numpy("length", length)
        if length.shape != (b,) or not np.issubdtype(length.dtype, np.integer):
            raise InvalidArgumentError("length", length, f"integers of shape ({b},)")
        start = self.written
        bad = np.nonzero((length < 1) | (length > T))[0]
        if bad.size:
            raise InvalidArgumentError(
                "length", f"{int(length[bad[0]])} in trajectory {start + int(bad[0])}", f"in [1, {T}]"
            )
        inside = np.arange(T)[None, :] < length[:, None]
        t = np.where(inside, t, np.nan)
        _check_times(t, length, inside, start)
        y = np.where(inside[..., None], y, np.nan).astype(self.dtype, copy=False)
        if status is not None:
            status = _as_numpy("status", status)
            if status.shape != (b,):
                raise InvalidArgumentError("status", status, f"an array of shape ({b},)")
            status = status.astype(np.int8)
        ok = status == 0 if status is not None else np.ones(b, dtype=bool)
        nonfinite = ok & ~np.isfinite(np.where(inside[..., None], y, 0.0)).all(axis=(1, 2))
        if nonfinite.any():
            row = int(np.nonzero(nonfinite)[0][0])
            raise InvalidArgumentError(
                "y",
                f"non-finite state in trajectory {start + row}",
                "finite states within length (or a failure status for that trajectory)",
            )
        f = self._file
        sl = slice(start, start + b)
        f[S.T][sl] = t
        f[S.Y][sl] = y
        f[S.LENGTH][sl] = length.astype(np.int32)
        if self.extras[S.STATUS]:
            f[S.STATUS][sl] = status if status is not None else np.zeros(b, dtype=np.int8)
        elif status is not None:
            raise InvalidArgumentError("status", "given", "status=True when the writer was created")
        for key, value in ((S.ENERGY, energy), (S.Y_CLEAN, y_clean)):
            if value is None:
                continue
            if not self.extras[key]:
                raise InvalidArgumentError(key, "given", f"{key}=True when the writer was created")
            arr = _as_numpy(key, value, self.dtype)
            shape = (b, T) if key == S.ENERGY else (b, T, D)
            if arr.shape != shape:
                raise InvalidArgumentError(key, arr, f"an array of shape {shape}")
            mask = inside if key == S.ENERGY else inside[..., None]
            f[key][sl] = np.where(mask, arr, np.nan)
        if params is not None:
            if self.n_params is None:
                raise InvalidArgumentError("params", "given", "n_params=P when the writer was created")
            arr = _as_numpy("params", params, np.float64)
            if arr.shape != (b, self.n_params):
                raise InvalidArgumentError("params", arr, f"an array of shape ({b}, {self.n_params})")
            f[S.PARAMS][sl] = arr
        self.written += b

    def set_attrs(self, **attrs: Any) -> None:
        """Add root attributes known only at the end (e.g. counts of failed solves)."""
        if self._file is None:
            raise SymflowError("TrajectoryWriter.set_attrs: the writer is not open")
        reserved = {S.ATTR_SCHEMA, S.ATTR_VERSION, S.ATTR_COMPLETE}
        for key, value in attrs.items():
            if key in reserved:
                raise InvalidArgumentError("attrs", key, f"a key other than {sorted(reserved)}")
            if value is not None:
                self._file.attrs[key] = _attr_value(key, value)

    def close(self) -> Path:
        """Mark the file complete and move it into place; refuses if rows are missing."""
        if self.closed:
            return self.path
        if self._file is None:
            raise SymflowError("TrajectoryWriter.close: the writer was never opened")
        if self.written != self.n:
            missing = self.n - self.written
            self.abort()
            raise SymflowError(
                f"{self.path}: only {self.n - missing} of {self.n} trajectories were written; "
                "the file was discarded (append every trajectory before closing)"
            )
        try:
            self._file.attrs[S.ATTR_COMPLETE] = True  # last: its presence certifies the content
            self._file.flush()
            self._file.close()
            self._file = None
            with open(self._tmp, "rb+") as fh:  # the data reach the disk before the name does
                os.fsync(fh.fileno())
            if self.overwrite:
                os.replace(self._tmp, self.path)
            else:
                self._link_into_place()
        except BaseException:
            self.abort()
            raise
        self._release()
        self.closed = True
        return self.path

    def _release(self) -> None:
        if self._hold is not None:
            os.close(self._hold)
            self._hold = None

    def _link_into_place(self) -> None:
        """Give the finished file its name unless that name appeared meanwhile (never replace it)."""
        try:
            os.link(self._tmp, self.path)
        except FileExistsError:
            winner = _writer_of(self.path) or "another process"
            raise OutputExistsError(
                f"{self.path} appeared while this process was writing it: {winner} finished "
                "first and its file was kept; this process discarded its own copy (pass overwrite=True "
                "(--overwrite) to replace the file instead)"
            ) from None
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            # A filesystem without hard links: check and rename (a narrow race remains there).
            if self.path.exists():
                raise OutputExistsError(
                    f"{self.path} appeared while this process was writing it "
                    f"({_writer_of(self.path) or 'another process'}); "
                    "this process discarded its copy (pass overwrite=True (--overwrite) to replace it)"
                ) from None
            os.replace(self._tmp, self.path)
            return
        self._tmp.unlink()

    def abort(self) -> None:
        """Close and delete the temporary file (the target is left untouched)."""
        if self._file is not None:
            # Closing a broken file may fail; removing it is what matters.
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)
        self._release()
        self.closed = True


def _hold_lock(path: Path) -> int | None:
    """A shared ``flock`` on the temporary file, so other processes see it in use, where HDF5 does not
    lock it itself (``HDF5_USE_FILE_LOCKING=FALSE``); ``None`` when HDF5 already holds it."""
    if fcntl is None:  # pragma: no cover
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:  # HDF5's exclusive lock is in place (or no locks here)
        os.close(fd)
        return None
    return fd


def _writer_of(path: Path) -> str | None:
    """``"process <pid>"`` from the file's ``writer_pid`` attribute (``None`` when it has none)."""
    try:
        with h5py.File(path, "r") as f:
            pid = f.attrs.get(S.ATTR_WRITER_PID)
    except Exception:  # unreadable or still being written: say what we know
        pid = None
    return f"process {int(pid)}" if pid is not None else None


def _float_dtype(dtype: Any) -> np.dtype:
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).replace("torch.", "")
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise InvalidArgumentError("dtype", dtype, "float64 or float32") from err
    if dt not in (np.float64, np.float32):
        raise InvalidArgumentError("dtype", dtype, "float64 or float32")
    return dt


def _check_times(t: np.ndarray, length: np.ndarray, inside: np.ndarray, start: int) -> None:
    finite = np.isfinite(t) | ~inside
    if not finite.all():
        row = int(np.nonzero(~finite.all(-1))[0][0])
        raise InvalidArgumentError("t", f"non-finite time in trajectory {start + row}", "finite times")
    if t.shape[1] > 1:
        inc = (np.diff(t, axis=-1) > 0) | ~inside[:, 1:]
        if not inc.all():
            row = int(np.nonzero(~inc.all(-1))[0][0])
            pos = int(np.nonzero(~inc[row])[0][0]) + 1
            raise InvalidArgumentError(
                "t",
                f"t[{pos}] = {float(t[row, pos])!r} <= t[{pos - 1}] = {float(t[row, pos - 1])!r} "
                f"in trajectory {start + row}",
                "strictly increasing times",
            )


def write_trajectories(
    path: str | os.PathLike,
    t: Any,
    y: Any,
    length: Any = None,
    *,
    status: Any = None,
    energy: Any = None,
    y_clean: Any = None,
    params: Any = None,
    param_names: Sequence[str] | None = None,
    attrs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    chunk_rows: int | None = None,
    compression_level: int = 4,
) -> Path:
    """Write in-memory arrays as a trajectory file (batch by batch through :class:`TrajectoryWriter`).

    ``t`` is ``(N, T)`` or ``(T,)``, ``y`` ``(N, T, D)``; the optional arrays as in the schema.
    ``param_names`` names the columns of ``params`` (the ``param_names`` attribute; learners
    conditioned on parameters need it).
    """
    if param_names is not None:
        if params is None:
            raise InvalidArgumentError("param_names", param_names, "params=(N, P) values they name")
        names = [str(v) for v in param_names]
        width = int(_as_numpy("params", params).shape[-1])
        if len(names) != width or len(set(names)) != width:
            raise InvalidArgumentError("param_names", param_names, f"{width} distinct names, one per column")
        attrs = {**dict(attrs or {}), "param_names": names}
    y_arr = y if isinstance(y, (np.ndarray, torch.Tensor)) else _as_numpy("y", y)
    if y_arr.ndim != 3:
        raise InvalidArgumentError("y", y_arr, "an array of shape (N, T, D)")
    n, T, D = (int(s) for s in y_arr.shape)
    dtype = "float32" if str(y_arr.dtype).replace("torch.", "") == "float32" else "float64"
    n_params = None if params is None else int(_as_numpy("params", params).shape[-1])
    writer = TrajectoryWriter(
        path,
        n,
        T,
        D,
        attrs=attrs,
        dtype=dtype,
        status=status is not None,
        energy=energy is not None,
        clean=y_clean is not None,
        n_params=n_params,
        chunk_rows=chunk_rows,
        compression_level=compression_level,
        overwrite=overwrite,
    )
    step = writer.chunk_rows * max(1, math.ceil(4096 / writer.chunk_rows))
    shared_t = _as_numpy("t", t, np.float64)
    with writer:
        for s in range(0, n, step):
            sl = slice(s, min(n, s + step))

            def part(a, sl=sl):
                return None if a is None else a[sl]

            writer.append(
                t=shared_t if shared_t.ndim == 1 else shared_t[sl],
                y=y_arr[sl],
                length=part(length),
                status=part(status),
                energy=part(energy),
                y_clean=part(y_clean),
                params=part(params),
            )
    return writer.path
