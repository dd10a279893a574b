"""Sharded simulate: parts of any count hold bitwise the one-process trajectories, and the index
reads as one data set everywhere (validate, open_trajectories, TrajectoryDataset, train node)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from symflow.cli.main import main
from symflow.data import TrajectoryDataset, open_trajectories, simulate, validate
from symflow.data.schema import DataFormatError, IncompleteFileError, SchemaError
from symflow.data.shards import INDEX_NAME, part_name, write_index
from symflow.data.writer import OutputExistsError
from symflow.integrators import InvalidArgumentError

# Adaptive steps, irregular per-trajectory grids and noise: every random stream and the batch-
# sensitive adaptive loop take part. 5 chunks of 24 trajectories.
SETTINGS = dict(n=120, t_end=3.0, sampling="uniform", n_obs=12, noise=0.01, chunk_size=24, progress=False)


def _same_file_contents(a: Path, b: Path) -> None:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert set(fa) == set(fb)
        for key in fa:
            x, y = fa[key][()], fb[key][()]
            assert x.dtype == y.dtype and x.shape == y.shape, key
            assert x.tobytes() == y.tobytes(), f"{key} differs"  # bitwise, NaN padding included


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "one.h5"
    simulate("henon_heiles", output=path, **SETTINGS)
    return path


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_parts_of_any_count_hold_bitwise_the_one_process_trajectories(reference, tmp_path, count):
    parts = []
    for r in range(count):
        parts.append(tmp_path / part_name(r, count))
        simulate("henon_heiles", output=parts[-1], part=(r, count), **SETTINGS)
    index = write_index(tmp_path, parts)
    assert index.n == 120
    _same_file_contents(reference, index.path)
    report = validate(tmp_path)  # the directory reads through its index
    assert report.ok, str(report)
    with open_trajectories(index.path) as f:
        assert f.n == 120 and len(f.attrs["parts"]) == count


def test_a_part_beyond_the_chunks_or_a_bad_part_is_refused_before_any_work(tmp_path):
    with pytest.raises(InvalidArgumentError, match="at most 5 parts"):
        simulate("henon_heiles", output=tmp_path / "x.h5", part=(0, 6), **SETTINGS)
    for bad in [(2, 2), (-1, 2), (0, 0), "0/2", (0.0, 2)]:
        with pytest.raises(InvalidArgumentError, match="part"):
            simulate("henon_heiles", output=tmp_path / "x.h5", part=bad, **SETTINGS)
    assert not list(tmp_path.iterdir())


@pytest.fixture
def sharded(tmp_path):
    d = tmp_path / "set"
    d.mkdir()
    parts = [d / part_name(r, 2) for r in range(2)]
    for r, p in enumerate(parts):
        simulate("henon_heiles", output=p, part=(r, 2), **SETTINGS)
    write_index(d, parts)
    return d


def test_a_missing_or_unfinished_part_makes_the_index_unreadable_never_nan_rows(sharded):
    part = sharded / part_name(1, 2)
    moved = sharded.parent / "elsewhere.h5"
    shutil.move(part, moved)
    with pytest.raises(SchemaError, match="missing"):
        open_trajectories(sharded / INDEX_NAME)
    assert not validate(sharded / INDEX_NAME).ok
    shutil.move(moved, part)
    assert validate(sharded).ok
    with h5py.File(part, "r+") as f:
        f.attrs["complete"] = False
    with pytest.raises(IncompleteFileError):
        open_trajectories(sharded)


def test_an_index_pointing_outside_its_directory_or_with_holes_is_refused(sharded, tmp_path):
    with h5py.File(sharded / part_name(0, 2), "r") as f0, h5py.File(sharded / part_name(1, 2), "r") as f1:
        s0, s1 = f0["y"].shape, f1["y"].shape
    n0, width = s0[0], s0[1:]
    # A crafted index: its rows live in a file of another directory.
    outside = tmp_path / "evil.h5"
    shutil.copy(sharded / INDEX_NAME, outside)
    with h5py.File(outside, "r+") as f:
        del f["y"]
        layout = h5py.VirtualLayout(shape=(120, *width), dtype="f8")
        layout[:n0] = h5py.VirtualSource(f"set/{part_name(0, 2)}", "y", shape=s0)
        layout[n0:] = h5py.VirtualSource(f"set/{part_name(1, 2)}", "y", shape=s1)
        f.create_virtual_dataset("y", layout, fillvalue=np.nan)
    with pytest.raises(SchemaError, match="outside"):
        open_trajectories(outside)
    # An index whose parts leave rows unmapped (they would read as the fill value).
    holes = sharded / "holes.h5"
    shutil.copy(sharded / INDEX_NAME, holes)
    with h5py.File(holes, "r+") as f:
        del f["y"]
        layout = h5py.VirtualLayout(shape=(120, *width), dtype="f8")
        layout[:n0] = h5py.VirtualSource(part_name(0, 2), "y", shape=s0)
        f.create_virtual_dataset("y", layout, fillvalue=np.nan)
    with pytest.raises(SchemaError, match="not each row once"):
        open_trajectories(holes)


def test_write_index_refuses_parts_that_do_not_belong_together(tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    simulate("henon_heiles", output=d / part_name(0, 2), part=(0, 2), **SETTINGS)
    simulate("henon_heiles", output=d / part_name(1, 2), part=(1, 2), **{**SETTINGS, "noise": 0.02})
    with pytest.raises(SchemaError, match="noise"):
        write_index(d, [d / part_name(0, 2), d / part_name(1, 2)])
    with pytest.raises(SchemaError, match="rows"):  # out of order
        write_index(d, [d / part_name(1, 2), d / part_name(0, 2)])
    with pytest.raises(SchemaError, match="48 of the 120"):  # a part left out
        write_index(d, [d / part_name(0, 2)])
    assert not (d / INDEX_NAME).exists()


def test_cli_simulate_into_a_directory_refuses_parts_of_another_run(tmp_path, capsys):
    d = tmp_path / "ds"
    args = ["simulate", "harmonic_oscillator", "-n", "8", "--t-end", "1", "--n-obs", "5", "--no-progress"]
    assert main([*args, "-o", f"{d}/"]) == 0
    assert "1 part" in capsys.readouterr().out
    assert validate(d / INDEX_NAME).ok
    assert main([*args, "-o", f"{d}/"]) == 1  # the index exists
    assert "exists" in capsys.readouterr().err
    (d / part_name(0, 3)).write_bytes(b"")
    with pytest.raises(OutputExistsError, match="another sharded run"):
        from symflow.data.shards import check_directory

        check_directory(d, 1, overwrite=True)


def test_two_gloo_ranks_under_torchrun_write_the_same_data_set_and_training_reads_it(reference, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    symflow = Path(sys.executable).with_name("symflow")
    out = tmp_path / "two"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", str(symflow), "simulate", "henon_heiles",
           "-n", "120", "--t-end", "3", "--sampling", "uniform", "--n-obs", "12", "--noise", "0.01",
           "--chunk-size", "24", "--no-progress", "--json", "-o", f"{out}/"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["ranks"] == 2 and summary["n"] == 120 and summary["rank_trajectories"] == [48, 72]
    assert sorted(p.name for p in out.iterdir()) == sorted([INDEX_NAME, part_name(0, 2), part_name(1, 2)])
    _same_file_contents(reference, out / INDEX_NAME)
    assert main(["validate", str(out / INDEX_NAME)]) == 0
    ds = TrajectoryDataset(out)
    assert len(ds) == 120
    run = tmp_path / "run"
    assert main(["train", "node", "--data", str(out / INDEX_NAME), "--out", str(run), "--steps", "1",
                 "--width", "8", "--batch-size", "4", "--window", "3", "--quiet"]) == 0  # fmt: skip
    config = json.loads((run / "config.json").read_text())
    assert config["data_attrs"]["system"] == "henon_heiles"


def test_a_directory_that_is_not_a_data_set_is_still_an_error(tmp_path):
    with pytest.raises((IsADirectoryError, DataFormatError)):
        open_trajectories(tmp_path)
