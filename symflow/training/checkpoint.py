"""Atomic, verifiable checkpoints (see docs/learners.md for how training runs use them).

A checkpoint directory holds ``checkpoint-<step>.pt`` files written with ``torch.save`` and a
``manifest.json`` naming the current one with its sha256. A save writes the new ``.pt`` to a
temporary name, renames it into place, then atomically replaces the manifest, and only then
removes the previous file — an interrupted save (Ctrl-C, crash, full disk) always leaves the last
good checkpoint loadable. Loading verifies the hash and uses ``torch.load(weights_only=True)``
only, so a checkpoint cannot execute code (torch ≥ 2.10 closed the known ``weights_only``
bypasses). RNG states are stored as tensors, so a resumed CPU run continues bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from symflow.integrators.errors import SymflowError
from symflow.integrators.reprs import compact_repr

MANIFEST = "manifest.json"
FORMAT = "symflow.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(SymflowError, RuntimeError):
    """A checkpoint is missing, corrupt, or does not match its manifest."""


@dataclass(frozen=True)
class Checkpoint:
    state: dict[str, Any]
    config: dict[str, Any]
    step: int
    path: Path

    def __repr__(self) -> str:
        return compact_repr(self)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rng_state() -> dict[str, Any]:
    """Every global RNG state (torch CPU/CUDA, NumPy, Python) as tensors and plain numbers."""
    # The legacy global NumPy RNG is what user code seeded with np.random.seed draws from.
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": version,
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the torch, NumPy and Python random states saved in a checkpoint (the inverse of
    ``rng_state``).
    """
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed torch, NumPy and Python's RNGs (the run's randomness all derives from ``seed``)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    random.seed(seed)


def save_checkpoint(
    directory: str | Path, state: dict[str, Any], *, step: int, config: dict[str, Any]
) -> Path:
    """Save ``state`` (state dicts, tensors, numbers) and ``config`` (JSON) as the current checkpoint."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json.dumps(config)  # fail early (before writing anything) if the config is not JSON
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "step": int(step),
        "config": json.dumps(config),
        "state": state,
    }
    final = directory / f"checkpoint-{int(step):09d}.pt"
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".pt.tmp", dir=directory)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    previous = _manifest(directory)
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "file": final.name,
        "sha256": sha256_of(final),
        "step": int(step),
    }
    atomic_write_text(directory / MANIFEST, json.dumps(manifest, indent=2))
    if previous is not None and previous.get("file") != final.name:
        (directory / previous["file"]).unlink(missing_ok=True)
    return final


def _manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: manifest is not valid JSON ({err})") from err


def has_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` holds a checkpoint manifest (a run that can be resumed)."""
    return (Path(directory) / MANIFEST).exists()


def load_checkpoint(directory: str | Path, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """The current checkpoint of ``directory``, hash-verified and loaded with ``weights_only=True``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such run directory")
    manifest = _manifest(directory)
    if manifest is None:
        raise CheckpointError(
            f"{directory}: no checkpoint here (no {MANIFEST}); train first or check the path"
        )
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{directory / MANIFEST}: not a symflow checkpoint manifest")
    path = directory / manifest["file"]
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file named in the manifest is missing")
    digest = sha256_of(path)
    if digest != manifest["sha256"]:
        raise CheckpointError(
            f"{path}: sha256 {digest[:12]}… does not match the manifest ({manifest['sha256'][:12]}…); "
            "the file was modified or truncated"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # any unpickling failure means a corrupt or unsafe checkpoint
        raise CheckpointError(f"{path}: cannot be loaded safely ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a symflow checkpoint")
    return Checkpoint(
        state=payload["state"], config=json.loads(payload["config"]), step=int(payload["step"]), path=path
    )


class GeneratorState:
    """Adapter so a ``torch.Generator`` can sit in ``Trainer(extra_state=...)`` and be checkpointed."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["state"])
