"""Run directories: config, metrics log, checkpoints and artefacts of one training run.

Layout::

    RUN/config.json        the full configuration (JSON), written when the run starts
    RUN/metrics.jsonl      one JSON object per logged step (appended, flushed each time)
    RUN/summary.json       final metrics, written atomically at the end
    RUN/checkpoints/       manifest.json + checkpoint-<step>.pt (see checkpoint.py)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from symflow.integrators.errors import SymflowError

from .checkpoint import atomic_write_text, has_checkpoint


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
        exists = self.checkpoints.exists() and has_checkpoint(self.checkpoints)
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
            self.path.mkdir(parents=True, exist_ok=True)
            if overwrite and not resume:
                for old in self.checkpoints.glob("*"):
                    old.unlink()
                (self.path / "metrics.jsonl").unlink(missing_ok=True)

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
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, after_step: int) -> None:
        """Drop log lines past ``after_step`` (a resumed run repeats them, so they are not duplicated)."""
        if not self.is_main:
            return
        kept = [r for r in self.metrics() if r.get("step", -1) <= after_step]
        atomic_write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
