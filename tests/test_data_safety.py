"""Trajectory files under hostile or damaged input and concurrent writers: bounded readers, declared
sizes checked against the storage, degenerate shapes and wrong dtypes reported, permissions named
as such, one writer per output file, stale partial files of dead writers found."""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from symflow.cli import main
from symflow.data import (
    OutputExistsError,
    SchemaError,
    TrajectoryWriter,
    open_trajectories,
    validate,
    write_trajectories,
)
from symflow.data import writer as W


def schema_file(path, *, n=3, T=4, D=4, edit=None, chunk_rows=None):
    """A symflow-schema file written with h5py directly (so it may break the rules the writer keeps)."""
    with h5py.File(path, "w") as f:
        f.attrs.update({"schema": "symflow.trajectories", "schema_version": 1, "system": "henon_heiles"})
        c = {} if chunk_rows is None else {"chunks": True}
        t = np.broadcast_to(np.arange(T, dtype=float), (n, T))
        f.create_dataset("t", data=t, **c)
        f.create_dataset("y", data=np.zeros((n, T, D)), **c)
        f.create_dataset("length", data=np.full(n, T, dtype=np.int32), **c)
        f.create_dataset("status", data=np.zeros(n, dtype=np.int8), **c)
        if edit is not None:
            edit(f)
        f.attrs["complete"] = True
    return path


def one_line(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err[0] if err else ""


# ---- bounded readers -------------------------------------------------------------------------------
def huge_file(path, n):
    """A few KB that declare ``n`` trajectories: chunked datasets of which one chunk is stored."""
    T, D, rows = 8, 4, 64
    with h5py.File(path, "w") as f:
        f.attrs.update({"schema": "symflow.trajectories", "schema_version": 1, "complete": True})
        kw = {"compression": "gzip", "fillvalue": np.nan}
        f.create_dataset("t", (n, T), dtype="f8", chunks=(rows, T), **kw)[:rows] = np.arange(T)
        f.create_dataset("y", (n, T, D), dtype="f8", chunks=(rows, T, D), **kw)[:rows] = 0.0
        length = f.create_dataset("length", (n,), dtype="i4", chunks=(rows,), compression="gzip")
        length[:rows] = T
    return path


@pytest.mark.parametrize("n", [10**7, 10**9])
def test_a_tiny_file_declaring_huge_sizes_is_refused_at_once_in_bounded_memory(tmp_path, n):
    path = huge_file(tmp_path / "bomb.h5", n)
    assert path.stat().st_size < 64 << 10
    tracemalloc.start()
    started = time.perf_counter()
    try:
        report = validate(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 16 << 20, f"validate allocated {peak / 2**20:.0f} MiB for a {path.stat().st_size} B file"
    assert not report.ok and isinstance(report.problems[0], SchemaError)
    assert "declares" in str(report.problems[0]) and "stores" in str(report.problems[0])


def test_the_cli_refuses_a_huge_declared_shape_in_one_line(tmp_path, capsys):
    path = huge_file(tmp_path / "bomb.h5", 10**9)
    rc = main(["validate", str(path)])
    out = capsys.readouterr().out
    assert rc == 1 and "declares" in out
    rc, err = one_line(capsys, ["diagnose", str(path), "-o", str(tmp_path / "rep"), "--quiet"])
    assert rc == 1 and "declares" in err


def test_datasets_stored_outside_the_file_are_refused(tmp_path):
    raw = tmp_path / "raw.bin"
    np.zeros((3, 4, 4)).tofile(raw)
    path = schema_file(
        tmp_path / "ext.h5",
        edit=lambda f: (f.__delitem__("y"), f.create_dataset("y", (3, 4, 4), "f8", external=[(raw, 0, 384)])),
    )
    report = validate(path)
    assert not report.ok and "outside the file" in str(report.problems[0])


# ---- degenerate shapes and dtypes ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "message"), [((0, 4, 4), "no trajectories"), ((3, 4, 0), "even"), ((3, 4, 3), "even")]
)
def test_degenerate_shapes_are_invalid_everywhere(tmp_path, capsys, shape, message):
    n, T, D = shape
    path = schema_file(tmp_path / "d.h5", n=n, T=T, D=D)
    report = validate(path)
    assert not report.ok and message in str(report.problems[0])
    assert main(["validate", str(path)]) == 1
    capsys.readouterr()
    rc, err = one_line(capsys, ["diagnose", str(path), "-o", str(tmp_path / "rep"), "--quiet"])
    assert rc == 1 and message in err
    rc, err = one_line(capsys, ["train", "node", "--data", str(path), "-o", str(tmp_path / "run"), "--quiet"])
    assert rc == 1 and message in err


@pytest.mark.parametrize("key", ["energy", "y_clean", "params"])
def test_optional_datasets_of_the_wrong_dtype_are_invalid(tmp_path, key):
    shapes = {"energy": (3, 4), "y_clean": (3, 4, 4), "params": (3, 2)}
    data = np.full(shapes[key], "x", dtype="S3")
    path = schema_file(tmp_path / "s.h5", edit=lambda f: f.create_dataset(key, data=data))
    report = validate(path)
    assert not report.ok
    assert key in str(report.problems[0]) and "dtype" in str(report.problems[0])


def test_system_args_that_are_not_json_are_an_error_not_a_silent_default(tmp_path, capsys):
    path = schema_file(tmp_path / "a.h5", edit=lambda f: f.attrs.__setitem__("system_args", "{lam: 2"))
    with open_trajectories(path) as f, pytest.raises(SchemaError, match="system_args"):
        f.system()
    rc, err = one_line(capsys, ["diagnose", str(path), "-o", str(tmp_path / "rep"), "--quiet"])
    assert rc == 1 and "system_args" in err
    assert not (tmp_path / "rep" / "report.json").exists()


def _unprivileged(fn, *args):
    """Run ``fn(*args)`` as a user who may not read root's files (forked, so nothing is re-imported)."""
    if os.geteuid() != 0:
        return fn(*args)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        try:
            os.setgid(65534)
            os.setuid(65534)
            result = fn(*args)
        except BaseException as err:
            result = ("raised", type(err).__name__, str(err))
        os.write(w, json.dumps(result).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as fh:
        text = fh.read()
    os.waitpid(pid, 0)
    return json.loads(text)


def _validate_cli(path):
    sys.stderr = err = io.StringIO()
    sys.stdout = io.StringIO()
    try:
        rc = main(["validate", path])
    finally:
        sys.stderr, sys.stdout = sys.__stderr__, sys.__stdout__
    return [rc, err.getvalue()]


def test_an_unreadable_file_is_reported_as_permission_denied(tmp_path):
    folder = Path(tempfile.mkdtemp(dir=tmp_path if os.geteuid() else "/tmp"))
    try:
        folder.chmod(0o755)
        path = write_trajectories(folder / "ok.h5", np.arange(3.0), np.zeros((2, 3, 2)))
        path.chmod(0)
        rc, err = _unprivileged(_validate_cli, str(path))
        assert rc == 1
        assert "Permission denied" in err and "not an HDF5" not in err
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


# ---- one writer per output file -----------------------------------------------------------------------
def _write(path, marker, gates, outcome):
    """Create a writer, open it, fill it and close it, waiting at each gate for the other writer."""
    try:
        gates[0].wait(30)
        w = TrajectoryWriter(path, 2, 3, 2, attrs={"marker": marker})
        gates[1].wait(30)
        w.open()
        w.append(t=np.arange(3.0), y=np.full((2, 3, 2), float(marker)))
        gates[2].wait(30)
        w.close()
        outcome.put((marker, os.getpid(), "won"))
    except OutputExistsError as err:
        outcome.put((marker, os.getpid(), str(err)))


def test_two_writers_racing_to_one_path_leave_one_complete_file_and_name_the_winner(tmp_path):
    ctx = mp.get_context("fork")
    path = tmp_path / "race.h5"
    gates = [ctx.Barrier(2) for _ in range(3)]
    outcome = ctx.Queue()
    procs = [ctx.Process(target=_write, args=(path, m, gates, outcome)) for m in (1, 2)]
    for p in procs:
        p.start()
    results = [outcome.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    won = [r for r in results if r[2] == "won"]
    lost = [r for r in results if r[2] != "won"]
    assert len(won) == 1 and len(lost) == 1, results
    assert f"process {won[0][1]}" in lost[0][2] and "--overwrite" in lost[0][2]
    with open_trajectories(path) as f:  # the winner's file, whole
        assert f.attrs["marker"] == won[0][0]
        assert np.all(f.read_block(0, 2)[1] == won[0][0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.h5"]


def _hold_writer(path, ready, release):
    w = TrajectoryWriter(path, 1, 2, 2).open()
    ready.set()
    release.wait(30)
    w.abort()


def test_a_writer_refuses_a_target_another_live_process_is_writing(tmp_path):
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_writer, args=(tmp_path / "x.h5", ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(OutputExistsError, match=f"being written by process {holder.pid}"):
            TrajectoryWriter(tmp_path / "x.h5", 1, 2, 2)
        assert W.stale_partials(tmp_path) == [], "a live writer's file is not stale"
    finally:
        release.set()
        holder.join(30)


def test_partial_files_of_dead_writers_are_found_and_the_next_writer_removes_its_own(tmp_path):
    dead = tmp_path / "x.h5.999999999.partial"
    other = tmp_path / "y.h5.999999998.partial"
    for p in (dead, other):
        p.write_bytes(b"half")
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    assert sorted(W.stale_partials(tmp_path)) == [dead, other]
    w = TrajectoryWriter(tmp_path / "x.h5", 1, 2, 2)
    with w:
        w.append(t=np.arange(2.0), y=np.zeros((1, 2, 2)))
    assert w.removed_stale == [dead] and not dead.exists() and other.exists()


def test_stale_partials_are_listed_by_validate_and_removed_by_simulate(tmp_path, capsys):
    good = write_trajectories(tmp_path / "ok.h5", np.arange(3.0), np.zeros((2, 3, 2)))
    stale = tmp_path / "hh.h5.999999999.partial"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert main(["validate", str(good)]) == 0
    assert stale.name in capsys.readouterr().err
    argv = ["simulate", "harmonic_oscillator", "--n", "2", "--t-end", "1", "--n-obs", "3", "--no-progress"]
    assert main([*argv, "-o", str(tmp_path / "hh.h5")]) == 0
    assert f"removed {stale}" in capsys.readouterr().err
    assert not stale.exists()
