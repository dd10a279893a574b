"""Sharded data generation: parts written by several processes, joined by an index file.

    torchrun --nproc_per_node=4 $(which symflow) simulate henon_heiles -n 100000 -o hh/

Each of the ``K`` ranks simulates its own part (``simulate(..., part=(rank, K))``: whole solver
chunks of the global data set, with the global random streams, so the trajectories are bitwise
those of a one-process run) into its own file ``part-0000r-of-0000K.h5``, written atomically like
every trajectory file. When all parts are written, rank 0 writes the **index**
``trajectories.h5``: an ordinary symflow trajectory file whose datasets are HDF5 *virtual datasets*
mapping rows ``[lo, hi)`` to the part that holds them (relative file names, so the directory can be
moved or copied as a whole). Readers (:func:`~symflow.data.open_trajectories`,
:func:`~symflow.data.validate`, :class:`~symflow.data.TrajectoryDataset`, ``symflow train ...
--data``) take the index file — or the directory — as one data set.

Virtual datasets are followed only into sibling part files of the index that exist, are complete
and hold every mapped row, and only when the parts cover every row (see
:func:`symflow.data.reader.check_virtual`): a missing part is an error, never rows of NaN.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from symflow.integrators.errors import InvalidArgumentError

from . import schema as S
from .schema import SchemaError
from .writer import OutputExistsError

#: The index file of a sharded data set (inside its directory).
INDEX_NAME = "trajectories.h5"
PART_PATTERN = re.compile(r"^part-(\d{5})-of-(\d{5})\.h5$")
# Attributes allowed to differ between parts (everything else must agree).
_PER_PART = {"part", "writer_pid", "created", "failed", S.ATTR_COMPLETE}


def part_name(index: int, count: int) -> str:
    """``part-0000r-of-0000K.h5``."""
    return f"part-{index:05d}-of-{count:05d}.h5"


def index_path(path: str | os.PathLike) -> Path:
    """``path`` itself, or the index file when ``path`` is the directory of a sharded data set."""
    p = Path(path)
    if p.is_dir() and (p / INDEX_NAME).is_file():
        return p / INDEX_NAME
    return p


def check_directory(directory: Path, count: int, *, overwrite: bool) -> None:
    """Refuse a directory that already holds another data set (an index, or parts of another count)."""
    if directory.exists() and not directory.is_dir():
        raise InvalidArgumentError("output", str(directory), "a directory for the parts and their index")
    if not directory.exists():
        return
    others = sorted(
        p.name for p in directory.iterdir() if (m := PART_PATTERN.match(p.name)) and int(m.group(2)) != count
    )
    if others:
        raise OutputExistsError(
            f"{directory} holds parts of another sharded run ({', '.join(others[:3])}"
            f"{', …' if len(others) > 3 else ''}); remove them or choose another directory"
        )
    if (directory / INDEX_NAME).exists() and not overwrite:
        raise OutputExistsError(f"{directory / INDEX_NAME} exists; pass --overwrite to replace the data set")


@dataclass(frozen=True)
class IndexResult:
    path: Path
    n: int
    parts: tuple[Path, ...]


def _attrs(f: h5py.File) -> dict[str, Any]:
    out = {}
    for k, v in f.attrs.items():
        out[k] = v.tolist() if isinstance(v, np.ndarray) else v.item() if isinstance(v, np.generic) else v
    return out


def write_index(directory: str | os.PathLike, parts: Sequence[str | os.PathLike]) -> IndexResult:
    """Join the part files (in row order) into ``directory/trajectories.h5`` of virtual datasets.

    Every part must be a complete symflow trajectory file in ``directory`` with the same datasets,
    widths, dtypes and generating attributes, and their recorded rows must follow each other from 0
    to the total. Written to a temporary file, ``complete=True`` last, and renamed into place.
    """
    directory = Path(directory)
    paths = [Path(p) for p in parts]
    if not paths:
        raise InvalidArgumentError("parts", parts, "at least one part file")
    for p in paths:
        if p.parent.resolve() != directory.resolve():
            raise InvalidArgumentError("parts", str(p), f"part files inside {directory}")
    infos = []
    for p in paths:
        with h5py.File(p, "r") as f:
            attrs = _attrs(f)
            if attrs.get(S.ATTR_COMPLETE) is not True or attrs.get(S.ATTR_SCHEMA) != S.SCHEMA:
                raise SchemaError(
                    "not a complete symflow trajectory file", path=p, expected="a finished part"
                )
            sets = {k: (f[k].shape, f[k].dtype, f[k].fillvalue) for k in f if isinstance(f[k], h5py.Dataset)}
        infos.append((p, attrs, sets))
    first_attrs, first_sets = infos[0][1], infos[0][2]
    rows = []
    expected_lo = 0
    for p, attrs, sets in infos:
        diff = sorted(
            k
            for k in set(attrs) | set(first_attrs)
            if k not in _PER_PART
            and json.dumps(attrs.get(k), default=str) != json.dumps(first_attrs.get(k), default=str)
        )
        if diff:
            raise SchemaError(f"attributes {', '.join(diff)} differ from the first part's", path=p)
        if set(sets) != set(first_sets) or any(
            sets[k][0][1:] != first_sets[k][0][1:] or sets[k][1] != first_sets[k][1] for k in sets
        ):
            raise SchemaError("datasets, widths or dtypes differ from the first part's", path=p)
        part = attrs.get("part")
        part = json.loads(part) if isinstance(part, (str, bytes)) else part
        n_rows = int(sets[S.Y][0][0])
        lo, hi = (int(part["rows"][0]), int(part["rows"][1])) if part else (expected_lo, expected_lo + n_rows)
        if lo != expected_lo or hi - lo != n_rows:
            raise SchemaError(
                f"holds rows {lo}–{hi - 1} ({n_rows} trajectories); rows from {expected_lo} were expected",
                path=p,
                expected="parts that follow each other in row order",
            )
        rows.append((lo, hi))
        expected_lo = hi
    n = expected_lo
    part0 = first_attrs.get("part")
    part0 = json.loads(part0) if isinstance(part0, (str, bytes)) else part0
    if part0 and int(part0["n_total"]) != n:
        raise SchemaError(
            f"the parts hold {n} of the {part0['n_total']} trajectories of the data set",
            path=directory,
            expected="every part of the run",
        )
    failed: dict[str, int] = {}
    for _, attrs, _ in infos:
        fa = attrs.get("failed")
        fa = json.loads(fa) if isinstance(fa, (str, bytes)) and fa else (fa or {})
        for k, v in dict(fa).items():
            failed[k] = failed.get(k, 0) + int(v)

    target = directory / INDEX_NAME
    tmp = directory / f".{INDEX_NAME}.{os.getpid()}.partial"
    try:
        with h5py.File(tmp, "w") as f:
            for key, (shape, dtype, fill) in first_sets.items():
                layout = h5py.VirtualLayout(shape=(n, *shape[1:]), dtype=dtype)
                for (p, _, sets), (lo, hi) in zip(infos, rows):
                    # Relative names: HDF5 looks them up next to the index file.
                    layout[lo:hi] = h5py.VirtualSource(p.name, key, shape=sets[key][0])
                f.create_virtual_dataset(key, layout, fillvalue=fill)
            for k, v in first_attrs.items():
                if k not in _PER_PART:
                    f.attrs[k] = v
            f.attrs["failed"] = json.dumps(failed)
            f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            f.attrs["parts"] = json.dumps(
                [{"file": p.name, "rows": [lo, hi]} for (p, _, _), (lo, hi) in zip(infos, rows)]
            )
            f.attrs[S.ATTR_COMPLETE] = True  # last
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return IndexResult(target, n, tuple(paths))


# --------------------------------------------------------------------------------------------------
# Running the parts under torchrun
# --------------------------------------------------------------------------------------------------

#: How long ranks wait for each other (the slowest part) before the process group gives up.
GROUP_TIMEOUT = datetime.timedelta(hours=24)


@dataclass(frozen=True)
class ShardedSimulation:
    """What a sharded :func:`simulate_parts` wrote (the same on every rank)."""

    index: Path
    n: int
    parts: tuple[Path, ...]
    seconds: float  # wall time, slowest rank, index included
    rank_seconds: tuple[float, ...]
    rank_rows: tuple[int, ...]
    failed: dict[str, int]

    @property
    def throughput(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf")

    def __str__(self) -> str:
        k = len(self.parts)
        failed = ", ".join(f"{v} {s}" for s, v in self.failed.items())
        return (
            f"wrote {self.index}: {self.n} trajectories in {k} part{'s' if k != 1 else ''} "
            f"({', '.join(p.name for p in self.parts[:4])}{', …' if k > 4 else ''})"
            + (f", failed solves kept and flagged: {failed}" if failed else "")
            + f", in {self.seconds:.1f} s ({self.throughput:.0f} trajectories/s over {k} rank"
            + ("s)" if k != 1 else ")")
        )


def rank_and_world() -> tuple[int, int]:
    """``(RANK, WORLD_SIZE)`` set by torchrun, else ``(0, 1)``."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def simulate_parts(run_part, directory: str | os.PathLike, *, overwrite: bool = False) -> ShardedSimulation:
    """Run this rank's part and, on rank 0 once every part is written, the index.

    ``run_part(path, (rank, K))`` writes one part file (normally ``simulate(..., output=path,
    part=(rank, K))``) and returns its :class:`~symflow.data.SimulationResult`. Under torchrun the
    ranks join a ``gloo`` process group (CPU, whatever device the solves use) to wait for each other;
    a rank that fails makes every rank fail, and no index is written.
    """
    import time

    import torch
    import torch.distributed as dist

    rank, world = rank_and_world()
    directory = Path(directory)
    started = time.perf_counter()
    joined = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=GROUP_TIMEOUT)
        joined = True
    try:
        directory.mkdir(parents=True, exist_ok=True)
        check_directory(directory, world, overwrite=overwrite)
        error: BaseException | None = None
        rows, seconds = 0, 0.0
        try:
            result = run_part(directory / part_name(rank, world), (rank, world))
            rows, seconds = result.n, result.seconds
        except Exception as err:  # reported to the other ranks before it is raised here
            error = err
        stats = torch.zeros(world, 3, dtype=torch.float64)
        stats[rank] = torch.tensor([0.0 if error else 1.0, rows, seconds], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(stats)
        if error is not None:
            raise error
        if not bool((stats[:, 0] == 1).all()):
            bad = [int(r) for r in torch.nonzero(stats[:, 0] != 1).flatten()]
            raise SchemaError(
                f"rank(s) {', '.join(map(str, bad))} failed to write their part; no index was written",
                path=directory,
            )
        parts = tuple(directory / part_name(r, world) for r in range(world))
        if rank == 0:
            write_index(directory, parts)
        if world > 1:
            dist.barrier()  # the index exists when any rank returns
        with h5py.File(directory / INDEX_NAME, "r") as f:
            failed = json.loads(f.attrs.get("failed", "{}") or "{}")
            n = int(f[S.Y].shape[0])
    finally:
        if joined:
            dist.destroy_process_group()
    return ShardedSimulation(
        directory / INDEX_NAME,
        n,
        parts,
        time.perf_counter() - started,
        tuple(float(s) for s in stats[:, 2]),
        tuple(int(r) for r in stats[:, 1]),
        failed,
    )
