"""Atomic, verifiable checkpoints (see docs/learners.md for how training runs use them).

A checkpoint directory holds ``checkpoint-<step>.pt`` files written with ``torch.save`` and a
``manifest.json`` naming the current one with its sha256. A save writes the new ``.pt`` to a
temporary name, renames it into place, then atomically replaces the manifest, and only then
removes the previous file — an interrupted save (Ctrl-C, crash, full disk) always leaves the last
good checkpoint loadable. Loading verifies the hash and uses ``torch.load(weights_only=True)``
only, so a checkpoint cannot execute code (torch ≥ 2.10 closed the known ``weights_only``
bypasses). RNG states are stored as tensors, so a resumed CPU run continues bit for bit.

Nothing read from a checkpoint directory is trusted: the manifest must be a JSON object with the
expected fields, the file it names must be a plain name that resolves inside the directory
(absolute paths, ``..`` and symlinks leading out are refused), and a save deletes only files that
follow the checkpoint naming scheme, so a hand-edited or malicious manifest can neither load nor
delete anything outside the run. Leftovers of a save that was killed midway (temporary files,
checkpoints the manifest never named) are removed by :func:`clean_leftovers` when the run opens
again.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import tempfile
import threading
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
# Every file a save creates follows one of these names; nothing else is ever deleted.
CHECKPOINT_NAME = re.compile(r"checkpoint-\d{9}\.pt")
_TEMP_NAME = re.compile(r"\.checkpoint-.+\.pt\.tmp|\." + re.escape(MANIFEST) + r"\..+\.tmp")
_SHA256 = re.compile(r"[0-9a-f]{64}")


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


_UMASK_LOCK = threading.Lock()


def file_mode() -> int:
    """The mode ``open()`` gives a new file under the process umask (``mkstemp`` creates 0600 files,
    which would make atomically written files unreadable to the group unlike everything else)."""
    with _UMASK_LOCK:  # reading the umask means setting it; do it under a lock
        mask = os.umask(0o077)
        os.umask(mask)
    return 0o666 & ~mask


def _temp_file(directory: Path, prefix: str, suffix: str) -> tuple[int, str]:
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        os.fchmod(fd, file_mode())
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, tmp


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace`` (the file
    gets the ordinary mode of new files)."""
    path = Path(path)
    fd, tmp = _temp_file(path.parent, f".{path.name}.", ".tmp")
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
            "internal": torch.tensor(internal, dtype=torch.int64, device="cpu"),  # not the default device
            "gauss_next": gauss_next,
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the torch, NumPy and Python random states saved in a checkpoint (the inverse of
    ``rng_state``). The states are moved to the CPU first: ``torch.set_rng_state``, the CUDA
    generators and NumPy take CPU tensors only, whatever device a checkpoint was loaded to.
    """
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


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
    fd, tmp = _temp_file(directory, ".checkpoint-", ".pt.tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        with open(tmp, "rb+") as fh:  # the bytes reach the disk before the name does
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        previous = read_manifest(directory)
    except CheckpointError:  # a damaged manifest is replaced; what it named is left alone
        previous = None
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "file": final.name,
        "sha256": sha256_of(final),
        "step": int(step),
    }
    atomic_write_text(directory / MANIFEST, json.dumps(manifest, indent=2))
    if previous is not None and previous["file"] != final.name:
        _remove_own(directory, previous["file"])
    return final


def _remove_own(directory: Path, name: str) -> None:
    """Delete ``directory/name`` only if it is a checkpoint file this module wrote there: a regular
    file (not a symlink) named ``checkpoint-<step>.pt`` directly inside ``directory``."""
    if not CHECKPOINT_NAME.fullmatch(name):
        return
    path = directory / name
    if path.is_symlink() or not path.is_file():
        return
    path.unlink(missing_ok=True)


def clean_leftovers(directory: str | Path) -> list[Path]:
    """Remove what interrupted saves leave in a checkpoint directory: temporary files
    (``.checkpoint-*.pt.tmp``, ``.manifest.json.*.tmp``) and checkpoint files the manifest does not
    name (renamed into place by a save killed before it wrote the manifest). Call it only while no
    other process writes to ``directory`` (a run directory holds its lock). Returns what was removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    try:
        current = read_manifest(directory)
    except CheckpointError:
        current = None
    keep = current["file"] if current is not None else None
    manifest_ok = current is not None or not (directory / MANIFEST).exists()
    removed = []
    for path in sorted(directory.iterdir()):
        name = path.name
        if path.is_symlink() or not path.is_file():
            continue
        orphan = CHECKPOINT_NAME.fullmatch(name) and manifest_ok and name != keep
        if _TEMP_NAME.fullmatch(name) or orphan:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def remove_checkpoints(directory: str | Path) -> None:
    """Delete a run's checkpoints (``--overwrite``): the manifest, checkpoint files and leftovers of
    saves; any other file in the folder is not the run's and stays."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        name = path.name
        if path.is_symlink() or not path.is_file():
            continue
        if name == MANIFEST or CHECKPOINT_NAME.fullmatch(name) or _TEMP_NAME.fullmatch(name):
            path.unlink(missing_ok=True)


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The manifest of ``directory`` checked field by field (``None`` when there is none); a manifest
    that is not a JSON object with ``format``, a plain ``file`` name, a ``sha256`` digest and a
    ``step`` raises :class:`CheckpointError`."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: manifest is not valid JSON ({err})") from err
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path}: manifest is a JSON {type(manifest).__name__}, expected a JSON object")
    if manifest.get("format") != FORMAT:
        got = manifest.get("format")
        raise CheckpointError(f"{path}: not a symflow checkpoint manifest (format {got!r})")
    name = manifest.get("file")
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{path}: manifest field 'file' is {name!r}, expected a checkpoint file name")
    digest = manifest.get("sha256")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise CheckpointError(f"{path}: manifest field 'sha256' is {digest!r}, expected 64 hex digits")
    step = manifest.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: manifest field 'step' is {step!r}, expected a step number")
    return manifest


def confined(directory: str | Path, name: str, *, what: str = "file") -> Path:
    """``directory/name`` if ``name`` is a plain file name whose resolved path lies directly inside
    ``directory``; a :class:`CheckpointError` otherwise (absolute paths, ``..``, separators and
    symlinks that lead out of the directory)."""
    directory = Path(directory)
    plain = name not in ("", ".", "..") and "/" not in name and "\\" not in name and "\0" not in name
    if not plain or os.path.isabs(name):
        raise CheckpointError(
            f"{directory / MANIFEST}: {what} {name!r} is not a file name inside {directory}; "
            "refusing to follow a path out of the run directory"
        )
    path = directory / name
    if path.resolve().parent != directory.resolve():
        raise CheckpointError(
            f"{path}: a link to {path.resolve()}, outside {directory}; refusing to follow a path out of "
            "the run directory"
        )
    return path


def has_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` holds a checkpoint manifest (a run that can be resumed)."""
    return (Path(directory) / MANIFEST).exists()


def load_checkpoint(directory: str | Path, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """The current checkpoint of ``directory``, hash-verified and loaded with ``weights_only=True``.

    ``map_location`` places the state's tensors (e.g. on the GPU a resumed run trains on), except the
    RNG states under ``"rng"``, which stay on the CPU: that is the only place they can be restored from.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such run directory")
    manifest = read_manifest(directory)
    if manifest is None:
        raise CheckpointError(
            f"{directory}: no checkpoint here (no {MANIFEST}); train first or check the path"
        )
    path = confined(directory, manifest["file"], what="checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file named in the manifest is missing")
    digest = sha256_of(path)
    if digest != manifest["sha256"]:
        raise CheckpointError(
            f"{path}: sha256 {digest[:12]}… does not match the manifest ({manifest['sha256'][:12]}…); "
            "the file was modified or truncated"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling failure means a corrupt or unsafe checkpoint
        raise CheckpointError(f"{path}: cannot be loaded safely ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a symflow checkpoint")
    state, config, step = payload.get("state"), payload.get("config"), payload.get("step")
    if not isinstance(state, dict) or not isinstance(config, str) or not isinstance(step, int):
        raise CheckpointError(f"{path}: malformed checkpoint payload (expected state, config and step)")
    if step != manifest["step"]:
        raise CheckpointError(f"{path}: holds step {step} but the manifest says step {manifest['step']}")
    try:
        config = json.loads(config)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: the stored config is not valid JSON ({err})") from err
    if str(map_location) != "cpu":
        state = {k: (v if k == "rng" else _to(v, map_location)) for k, v in state.items()}
    return Checkpoint(state=state, config=config, step=step, path=path)


def load_module_state(module: torch.nn.Module, checkpoint: Checkpoint, key: str = "model") -> None:
    """Load ``checkpoint.state[key]`` into ``module``; a missing entry or tensors of other shapes (a
    checkpoint of another model) is a one-line :class:`CheckpointError`, not a multi-line traceback."""
    state = checkpoint.state.get(key)
    if not isinstance(state, dict):
        raise CheckpointError(f"{checkpoint.path}: the checkpoint holds no {key!r} state")
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"{checkpoint.path}: the saved {key!r} state does not fit the model ({one_line(err)})"
        ) from err


def one_line(err: BaseException) -> str:
    """An exception's message on one line (``load_state_dict`` lists mismatches on several)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


def _to(obj: Any, device: str | torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_to(v, device) for v in obj)
    return obj


class GeneratorState:
    """Adapter so a ``torch.Generator`` can sit in ``Trainer(extra_state=...)`` and be checkpointed."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["state"].cpu())  # generator states are CPU tensors
