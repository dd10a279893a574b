"""Writing, reading and validating trajectory files: round trips, atomic writes, malformed files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from symflow.data import (
    DataFormatError,
    IncompleteFileError,
    OutputExistsError,
    SchemaError,
    TrajectoryError,
    TrajectoryWriter,
    UnreadableFileError,
    open_trajectories,
    validate,
    write_trajectories,
)
from symflow.integrators import InvalidArgumentError, SymflowError

ROOT = Path(__file__).resolve().parents[1]


def make_arrays(n=7, T=6, D=4, seed=0, dtype=np.float64):
    """Irregular grids of varying length with NaN padding, one failed trajectory."""
    rng = np.random.default_rng(seed)
    length = rng.integers(2, T + 1, size=n).astype(np.int32)
    length[0] = T
    t = np.sort(rng.uniform(0, 10, size=(n, T)), axis=1)
    t[:, 0] = 0.0
    y = rng.normal(size=(n, T, D)).astype(dtype)
    inside = np.arange(T)[None, :] < length[:, None]
    t[~inside] = np.nan
    y[~inside] = np.nan
    status = np.zeros(n, dtype=np.int8)
    status[3] = 1  # max_steps: states NaN from the failure on, kept in the file
    y[3, 2:] = np.nan
    energy = np.where(inside, rng.normal(size=(n, T)), np.nan).astype(dtype)
    params = rng.normal(size=(n, 2))
    return t, y, length, status, energy, params


def nan_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


@pytest.fixture
def valid_file(tmp_path):
    t, y, length, status, energy, _ = make_arrays()
    return write_trajectories(
        tmp_path / "ok.h5", t, y, length, status=status, energy=energy, attrs={"system": "x"}
    )


def rewrite(path: Path, edit) -> Path:
    """Apply ``edit(h5py.File)`` to a copy of a valid file opened for writing."""
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


# ---- round trip ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_is_exact(tmp_path, dtype):
    t, y, length, status, energy, params = make_arrays(n=23, dtype=dtype)
    path = write_trajectories(
        tmp_path / "rt.h5",
        t,
        y,
        length,
        status=status,
        energy=energy,
        y_clean=y,
        params=params,
        attrs={"system": "henon_heiles", "system_args": {"lam": 1.0}, "seed": 3},
        chunk_rows=5,  # several chunks, the last one partial
    )
    with open_trajectories(path) as f:
        assert (f.n, f.n_times, f.dim) == y.shape
        rt, ry, rl = f.read_block(0, f.n)
        assert nan_equal(rt, t) and nan_equal(ry, y)
        assert np.array_equal(rl, length) and np.array_equal(f.status, status)
        assert nan_equal(f.read_dataset("energy"), energy)
        assert nan_equal(f.read_dataset("y_clean"), y)
        assert nan_equal(f.read_dataset("params"), params)
        for i in (0, 4, 22):
            ti, yi = f.trajectory(i)
            assert np.array_equal(ti, t[i, : length[i]]) and np.array_equal(
                yi, y[i, : length[i]], equal_nan=True
            )
        assert f.attrs["system_args"] == {"lam": 1.0} and f.attrs["seed"] == 3
        assert f.attrs["complete"] is True and f.attrs["schema_version"] == 1
        ds = f._h5["y"]
        assert ds.fletcher32 and ds.compression == "gzip" and ds.chunks == (5, 6, 4)
        assert np.isnan(ds.fillvalue)
    report = validate(path)
    assert report.ok and report.failed == {"max_steps": 1}


def test_writer_pads_with_nan_whatever_it_was_given(tmp_path):
    t = np.tile(np.arange(5.0), (2, 1))
    y = np.ones((2, 5, 2))
    path = write_trajectories(tmp_path / "p.h5", t, y, [5, 3])
    with open_trajectories(path) as f:
        bt, by, _ = f.read_block(0, 2)
    assert np.isnan(bt[1, 3:]).all() and np.isnan(by[1, 3:]).all() and (bt[1, :3] == [0, 1, 2]).all()


def test_shared_time_grid_is_broadcast(tmp_path):
    path = write_trajectories(tmp_path / "s.h5", np.linspace(0, 1, 4), np.zeros((3, 4, 2)))
    with open_trajectories(path) as f:
        assert np.array_equal(f.read_block(0, 3)[0], np.tile(np.linspace(0, 1, 4), (3, 1)))


# ---- writer: refusals and atomicity ----------------------------------------------------------------
def test_writer_refuses_to_overwrite_unless_asked(valid_file):
    t, y, length, *_ = make_arrays()
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_trajectories(valid_file, t, y, length)
    write_trajectories(valid_file, t[:2], y[:2], length[:2], overwrite=True)
    with open_trajectories(valid_file) as f:
        assert f.n == 2


@pytest.mark.parametrize(
    ("edit", "argument"),
    [
        (lambda t, y, L: t.__setitem__((1, 1), np.nan), "t"),
        (lambda t, y, L: t.__setitem__((2, 1), -1.0), "t"),
        (lambda t, y, L: L.__setitem__(0, 0), "length"),
        (lambda t, y, L: y.__setitem__((4, 0, 0), np.inf), "y"),
    ],
)
def test_writer_refuses_invalid_trajectories_and_leaves_no_file(tmp_path, edit, argument):
    t, y, length, *_ = make_arrays()
    edit(t, y, length)
    out = tmp_path / "bad.h5"
    with pytest.raises(InvalidArgumentError, match=argument):
        write_trajectories(out, t, y, length)
    assert list(tmp_path.iterdir()) == []


def test_exception_inside_the_writer_removes_the_partial_file(tmp_path):
    out = tmp_path / "x.h5"
    t, y, length, *_ = make_arrays()
    with pytest.raises(RuntimeError, match="boom"), TrajectoryWriter(out, 7, 6, 4) as w:
        w.append(t=t[:3], y=y[:3], length=length[:3])
        assert len(list(tmp_path.glob("x.h5.*.partial"))) == 1
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_closing_with_missing_trajectories_discards_the_file(tmp_path):
    out = tmp_path / "x.h5"
    t, y, length, *_ = make_arrays()
    w = TrajectoryWriter(out, 7, 6, 4).open()
    w.append(t=t[:3], y=y[:3], length=length[:3])
    with pytest.raises(SymflowError, match="only 3 of 7"):
        w.close()
    assert list(tmp_path.iterdir()) == []


SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from symflow.data import TrajectoryWriter

    n, T, D = 2000, 50, 4
    with TrajectoryWriter(sys.argv[1], n, T, D, chunk_rows=10) as w:
        for b in range(n // 10):
            w.append(t=np.arange(T, dtype=float), y=np.zeros((10, T, D)))
            w._file.flush()
            print("batch", b, flush=True)
            time.sleep(0.05)
    print("done", flush=True)
    """
)


def test_interrupted_write_leaves_no_final_file(tmp_path):
    """A writer killed with SIGKILL mid-write leaves only its .partial file, never the final name."""
    script = tmp_path / "writer.py"
    script.write_text(SLOW_WRITER)
    out = tmp_path / "data.h5"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        for line in proc.stdout:
            if line.startswith("batch 3"):
                break
        partial = list(tmp_path.glob("data.h5.*.partial"))
        assert len(partial) == 1, "the writer fills a temporary file next to the target"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    # The leftover is recognisably unfinished: readers refuse it.
    with pytest.raises((IncompleteFileError, UnreadableFileError)):
        open_trajectories(partial[0])


def test_ctrl_c_during_simulate_leaves_no_file_at_all(tmp_path):
    out = tmp_path / "hh.h5"
    cmd = [
        sys.executable,
        "-m",
        "symflow.cli.main",
        "simulate",
        "henon_heiles",
        "--n",
        "100000",
        "--t-end",
        "50",
        "--chunk-size",
        "64",
        "--no-progress",
        "-o",
        str(out),
    ]
    # The child gets the default SIGINT disposition (Ctrl-C raises KeyboardInterrupt) even when the tests
    # run as a background job of a non-interactive shell, which starts them with SIGINT ignored.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("hh.h5.*.partial")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # inside the first solves
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert list(tmp_path.iterdir()) == []


# ---- malformed files: each raises its documented error -----------------------------------------------
def test_wrong_schema_version_is_refused(valid_file):
    rewrite(valid_file, lambda f: f.attrs.__setitem__("schema_version", 2))
    with pytest.raises(SchemaError, match="schema_version 2") as err:
        open_trajectories(valid_file)
    assert err.value.expected == "schema_version=1"


def test_foreign_schema_is_refused_with_a_hint_about_plain_layouts(valid_file):
    rewrite(valid_file, lambda f: f.attrs.__delitem__("schema"))
    with pytest.raises(SchemaError, match="y_key"):
        open_trajectories(valid_file)


def test_nan_time_names_the_trajectory(valid_file):
    rewrite(valid_file, lambda f: f["t"].__setitem__((5, 1), np.nan))
    with pytest.raises(TrajectoryError, match="trajectory 5: time t\\[1\\] = nan") as err:
        open_trajectories(valid_file)
    assert err.value.index == 5 and err.value.expected == "finite times"


def test_non_increasing_time_names_the_trajectory(valid_file):
    def edit(f):
        t = f["t"][2]
        t[1] = t[0]
        f["t"][2] = t

    rewrite(valid_file, edit)
    with pytest.raises(TrajectoryError, match=r"trajectory 2: time t\[1\] = 0.0 does not exceed") as err:
        open_trajectories(valid_file)
    assert err.value.index == 2


def test_shape_mismatch_is_refused(valid_file):
    def edit(f):
        del f["t"]
        f.create_dataset("t", data=np.zeros((7, 5)))

    rewrite(valid_file, edit)
    with pytest.raises(SchemaError, match="does not match 'y'"):
        open_trajectories(valid_file)


def test_missing_dataset_is_refused(valid_file):
    rewrite(valid_file, lambda f: f.__delitem__("length"))
    with pytest.raises(SchemaError, match="missing dataset 'length'"):
        open_trajectories(valid_file)


def test_wrong_time_dtype_is_refused(valid_file):
    def edit(f):
        t = f["t"][()]
        del f["t"]
        f.create_dataset("t", data=t.astype(np.float32))

    rewrite(valid_file, edit)
    with pytest.raises(SchemaError, match="dtype float32"):
        open_trajectories(valid_file)


def test_truncated_file_raises_a_clear_error(valid_file):
    size = valid_file.stat().st_size
    with open(valid_file, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(UnreadableFileError, match="truncated or corrupt"):
        open_trajectories(valid_file)
    assert not validate(valid_file).ok


def test_non_hdf5_file_raises_a_clear_error(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("these are not trajectories\n" * 100)
    with pytest.raises(UnreadableFileError, match="not an HDF5 file"):
        open_trajectories(path)


def test_corrupted_chunk_fails_its_checksum(tmp_path):
    t, y, length, status, *_ = make_arrays(n=200, T=20)
    path = write_trajectories(tmp_path / "c.h5", t, y, length, status=status, compression_level=0)
    with h5py.File(path, "r") as f:
        offset = f["y"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 100)
        byte = fh.read(1)
        fh.seek(offset + 100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(UnreadableFileError, match="cannot read"):
        open_trajectories(path)


def test_incomplete_file_is_refused(valid_file):
    rewrite(valid_file, lambda f: f.attrs.__delitem__("complete"))
    with pytest.raises(IncompleteFileError, match="interrupted"):
        open_trajectories(valid_file)


def test_state_nan_is_allowed_only_in_failed_trajectories(valid_file):
    rewrite(valid_file, lambda f: f["y"].__setitem__((1, 0, 2), np.nan))
    with pytest.raises(
        TrajectoryError, match="trajectory 1: state y\\[0\\] is not finite although its status"
    ):
        open_trajectories(valid_file)


def test_validate_lists_every_problem_with_its_trajectory(valid_file):
    def edit(f):
        f["t"][1, 1] = np.nan
        f["t"][4, 0] = 99.0
        f["length"][6] = 9

    rewrite(valid_file, edit)
    report = validate(valid_file)
    assert not report.ok and report.n_problems == 3
    assert [p.index for p in report.problems] == [1, 4, 6]
    assert all(isinstance(p, TrajectoryError) for p in report.problems)
    text = str(report)
    assert "trajectory 6: length 9 out of range; expected 1 ≤ length ≤ 6" in text
    with pytest.raises(TrajectoryError, match="3 problems") as err:
        report.raise_if_invalid()
    assert len(err.value.problems) == 3


def test_errors_are_value_errors_and_symflow_errors(tmp_path):
    path = tmp_path / "x.h5"
    path.write_bytes(b"\0" * 10)
    with pytest.raises(ValueError):
        open_trajectories(path)
    with pytest.raises(DataFormatError):
        open_trajectories(path)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_trajectories(tmp_path / "nope.h5")


# ---- external plain layouts ---------------------------------------------------------------------------
def test_plain_layout_with_shared_times(tmp_path):
    path = tmp_path / "plain.h5"
    y = np.random.default_rng(0).normal(size=(4, 5, 2))
    with h5py.File(path, "w") as f:
        f["states"] = y
        f["times"] = np.linspace(0, 1, 5)
    with pytest.raises(SchemaError):
        open_trajectories(path)  # not the symflow schema without keys
    with open_trajectories(path, y_key="states", t_key="times") as f:
        assert f.layout == "plain" and (f.n, f.n_times, f.dim) == (4, 5, 2)
        t, yy = f.trajectory(2)
        assert np.array_equal(t, np.linspace(0, 1, 5)) and np.array_equal(yy, y[2])


def test_plain_layout_with_a_mask_packs_the_observed_points(tmp_path):
    path = tmp_path / "plain.h5"
    rng = np.random.default_rng(1)
    y = rng.normal(size=(3, 6, 2))
    t = np.tile(np.arange(6.0), (3, 1))
    mask = np.ones((3, 6), dtype=bool)
    mask[1, [1, 4]] = False  # holes in the middle
    mask[2, 3:] = False
    y[1, 1] = np.nan  # unobserved entries may hold anything
    with h5py.File(path, "w") as f:
        f["y"], f["t"], f["m"] = y, t, mask
    with open_trajectories(path, y_key="y", t_key="t", mask_key="m") as f:
        assert list(f.length) == [6, 4, 3]
        t1, y1 = f.trajectory(1)
        assert np.array_equal(t1, [0.0, 2.0, 3.0, 5.0]) and np.array_equal(y1, y[1, [0, 2, 3, 5]])
        bt, by, _bl = f.read_block(0, 3)
        assert np.array_equal(bt[1, :4], t1) and np.isnan(bt[1, 4:]).all() and np.array_equal(by[1, :4], y1)


def test_plain_layout_problems_name_the_trajectory(tmp_path):
    path = tmp_path / "plain.h5"
    t = np.tile(np.arange(4.0), (3, 1))
    t[2, 2] = 0.5
    with h5py.File(path, "w") as f:
        f["y"], f["t"] = np.zeros((3, 4, 2)), t
    with pytest.raises(TrajectoryError, match=r"trajectory 2: time t\[2\] = 0.5 does not exceed"):
        open_trajectories(path, y_key="y", t_key="t")
    with pytest.raises(SchemaError, match="missing dataset 'mask'"):
        open_trajectories(path, y_key="y", t_key="t", mask_key="mask")
    with pytest.raises(InvalidArgumentError, match="both keys"):
        open_trajectories(path, y_key="y")


def test_partial_files_are_named_after_the_target_and_the_process(tmp_path):
    w = TrajectoryWriter(tmp_path / "a.h5", 1, 2, 2)
    assert w._tmp.name == f"a.h5.{os.getpid()}.partial"
