"""Run directories: config, metrics log, checkpoints and artefacts of one training run.

Layout::

    RUN/config.json        the full configuration (JSON), written when the run starts
    RUN/metrics.jsonl      one JSON object per logged step (appended, flushed each time)
    RUN/summary.json       final metrics, written atomically at the end
    RUN/checkpoints/       manifest.json + checkpoint-<step>.pt (see checkpoint.py)
    RUN/.lock              held (``flock``) by the one process writing the run

**One writer.** The main process holds an exclusive ``flock`` on ``RUN/.lock`` from the moment it
opens the run until it exits (or :meth:`RunDirectory.close`), so a second process opening the same
directory — a second ``symflow train`` with the same ``--out``, even with ``--overwrite`` — is
refused with the first one's process id instead of interleaving checkpoints. The kernel drops the
lock when its holder dies, so a killed run never leaves a stale lock behind. Once the lock is held,
leftovers of an interrupted checkpoint save are removed (:func:`~.checkpoint.clean_leftovers`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any, ClassVar

from symflow.integrators.errors import SymflowError

from .checkpoint import atomic_write_text, clean_leftovers, has_checkpoint, remove_checkpoints

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"


class RunDirectoryError(SymflowError, ValueError):
    """The run directory cannot be used as asked (exists without --resume, missing on resume)."""


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "numel", lambda: 2)() == 1:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class RunDirectory:
    """A training run's directory: ``config.json``, ``metrics.jsonl``, ``checkpoints/`` and ``summary.json``;
    refuses to reuse an existing run unless ``resume`` or ``overwrite``, and only the main rank writes.
    """

    def __init__(
        self, path: str | Path, *, resume: bool = False, overwrite: bool = False, is_main: bool = True
    ):
        self.path = Path(path)
        self.is_main = is_main
        self._lock: _Lock | None = None
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(
                f"{self.path}: exists and is not a directory; a run needs a directory (choose another path)"
            )
        exists = self._has_run()
        if resume and not exists:
            raise RunDirectoryError(
                f"{self.path}: nothing to resume (no checkpoint); drop --resume to start a new run"
            )
        if is_main:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = _Lock.acquire(self.path / LOCK)
            exists = self._has_run()  # again, now that no other process can write here
        try:
            if resume and not exists:
                raise RunDirectoryError(
                    f"{self.path}: nothing to resume (no checkpoint); drop --resume to start a new run"
                )
            if exists and not resume and not overwrite:
                raise RunDirectoryError(
                    f"{self.path}: a run with checkpoints already exists; pass --resume to continue it or "
                    "--overwrite to start again"
                )
            if is_main:
                if overwrite and not resume:
                    remove_checkpoints(self.checkpoints)
                    (self.path / "metrics.jsonl").unlink(missing_ok=True)
                else:
                    clean_leftovers(self.checkpoints)
        except BaseException:
            self.close()
            raise

    def _has_run(self) -> bool:
        return self.checkpoints.is_dir() and has_checkpoint(self.checkpoints)

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the kernel drops the lock anyway
            self.close()

    def close(self) -> None:
        """Release the run's lock (it is also released when the process exits)."""
        lock = getattr(self, "_lock", None)
        if lock is not None:
            self._lock = None
            lock.release()

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def write_json(self, name: str, obj: Any) -> Path:
        target = self.path / name
        if self.is_main:
            atomic_write_text(target, json.dumps(_jsonable(obj), indent=2))
        return target

    def log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with open(self.path / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(_jsonable(record)) + "\n")
            fh.flush()

    def metrics(self) -> list[dict[str, Any]]:
        """The logged records. A last line cut short (what a kill in the middle of a write leaves) is
        dropped; a damaged line before it is a :class:`RunDirectoryError` naming the line."""
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        text = path.read_text(errors="replace")
        lines = text.split("\n")
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                if number == len(lines):  # no newline after it: the write was interrupted
                    continue
                raise RunDirectoryError(f"{path}: line {number} is not a JSON object: {line[:60]!r}")
            records.append(record)
        return records

    def truncate_metrics(self, after_step: int) -> None:
        """Drop log lines past ``after_step`` (a resumed run repeats them, so they are not duplicated)."""
        if not self.is_main:
            return
        kept = [r for r in self.metrics() if _step_of(r) <= after_step]
        atomic_write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))


def _step_of(record: dict[str, Any]) -> float:
    step = record.get("step")
    return step if isinstance(step, (int, float)) and not isinstance(step, bool) else -1


class _Lock:
    """An exclusive ``flock`` on a run's lock file, shared by every :class:`RunDirectory` of one process
    (re-entrant within the process; other processes are refused, naming the holder)."""

    _held: ClassVar[dict[tuple[int, str], _Lock]] = {}

    def __init__(self, key: tuple[int, str], fd: int) -> None:
        self.key, self.fd, self.count = key, fd, 1

    @classmethod
    def acquire(cls, path: Path) -> _Lock | None:
        if fcntl is None:  # pragma: no cover
            return None
        key = (os.getpid(), str(path.resolve()))
        held = cls._held.get(key)
        if held is not None:
            held.count += 1
            return held
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirectoryError(
                f"{path.parent}: in use by process {holder} (it holds {path.name}); wait for it to finish "
                "or choose another run directory"
            ) from None
        except OSError:  # pragma: no cover - a filesystem without locks: carry on unlocked
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        lock = cls(key, fd)
        cls._held[key] = lock
        return lock

    def release(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._held.pop(self.key, None)
            os.close(self.fd)  # closing the descriptor drops the flock
