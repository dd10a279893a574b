"""Sources: HDF5 trajectory files, Solutions, integrator/exact/flow-map sources and composition."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
import torch

import symflow.systems as S
from symflow.data import DataFormatError
from symflow.diagnostics import (
    ExactFlowSource,
    FlowMapSource,
    IntegratorSource,
    as_source,
    from_solution,
    load_trajectory_file,
)
from symflow.integrators import CapabilityError, InvalidArgumentError, UnknownNameError, solve

HH = S.get_system("henon_heiles")
OSC = S.get_system("harmonic_oscillator")


def write_file(path, *, n=4, steps=6, complete=True, system="henon_heiles", t=None, length=None, status=None):
    """A schema-conforming file from the data layer's writer (``complete=False`` strips the flag
    afterwards, as an interrupted writer would leave it)."""
    from symflow.data import write_trajectories

    y0 = HH.sample(n, seed=0, energy=1 / 12)
    grid = torch.linspace(0, 1, steps, dtype=torch.float64) if t is None else t
    ys = solve(S.vector_field(HH), y0, grid, "rk4", dt=0.01).ys
    ts = grid.expand(n, steps).clone() if grid.dim() == 1 else grid
    write_trajectories(
        path,
        ts.numpy(),
        ys.numpy(),
        length,
        status=status,
        overwrite=True,
        attrs={"system": system, "system_args": json.dumps({"lam": 1.0})},
    )
    if not complete:
        with h5py.File(path, "r+") as f:
            del f.attrs["complete"]
    return ts, ys


def test_trajectory_file_is_read_with_its_system(tmp_path):
    path = tmp_path / "hh.h5"
    ts, ys = write_file(path, status=np.zeros(4, dtype=np.int8))
    traj = load_trajectory_file(path)
    assert traj.system == "henon_heiles" and dict(traj.system_args) == {"lam": 1.0}
    torch.testing.assert_close(traj.t, ts)
    torch.testing.assert_close(traj.y, ys)
    assert traj.length.tolist() == [6] * 4 and traj.status.tolist() == [0] * 4
    assert traj.mask.all() and traj.origin == "file hh.h5"


def test_padded_trajectories_keep_their_lengths(tmp_path):
    path = tmp_path / "pad.h5"
    t = torch.linspace(0, 1, 6, dtype=torch.float64).expand(4, 6).clone()
    t[2, 4:] = math.nan
    write_file(
        path, t=torch.linspace(0, 1, 6, dtype=torch.float64), length=np.array([6, 6, 4, 6], dtype=np.int32)
    )
    with h5py.File(path, "r+") as f:
        f["t"][...] = t.numpy()
    traj = load_trajectory_file(path)
    assert traj.mask.sum(1).tolist() == [6, 6, 4, 6]


def test_a_file_without_complete_is_refused(tmp_path):
    path = tmp_path / "partial.h5"
    write_file(path, complete=False)
    with pytest.raises(DataFormatError, match="complete"):
        load_trajectory_file(path)


def test_non_increasing_times_name_the_trajectory(tmp_path):
    path = tmp_path / "bad.h5"
    write_file(path)
    with h5py.File(path, "r+") as f:
        t = f["t"][...]
        t[3, 2] = t[3, 1]
        f["t"][...] = t
    with pytest.raises(DataFormatError, match="trajectory 3"):
        load_trajectory_file(path)


def test_missing_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_trajectory_file(tmp_path / "nope.h5")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(DataFormatError, match="HDF5"):
        load_trajectory_file(junk)


def test_from_solution_flattens_the_batch():
    y0 = HH.sample(6, seed=1).reshape(2, 3, 4)
    sol = solve(S.vector_field(HH), y0, torch.linspace(0, 1, 5, dtype=torch.float64), "rk4", dt=0.1)
    traj = from_solution(sol, system=HH)
    assert traj.y.shape == (6, 5, 4) and traj.t.shape == (6, 5) and traj.system == "henon_heiles"


def test_flow_map_composition_is_n_delta_after_n_big_steps():
    # A deliberately inexact map (an Euler step), so the order of composition is visible.
    def phi(t, y):
        return y + t.unsqueeze(-1) * torch.cat([y[..., 1:], -y[..., :1]], -1)

    src = FlowMapSource(phi, max_step=0.25)
    y = OSC.sample(3, seed=2)
    out = src.flow(0.6, y)
    manual = phi(torch.tensor(0.1, dtype=torch.float64), phi(torch.tensor(0.25), phi(torch.tensor(0.25), y)))
    torch.testing.assert_close(out, manual)
    # Per-sample durations: each row composed with its own n and δ.
    durations = torch.tensor([0.1, 0.6, 0.5], dtype=torch.float64)
    rows = src.flow(durations, y)
    for i in range(3):
        torch.testing.assert_close(rows[i], src.flow(float(durations[i]), y[i : i + 1])[0])


def test_flow_map_trajectory_marches_the_skeleton_once_and_matches_flow():
    calls = []

    def phi(t, y):
        calls.append(1)
        return y + t.unsqueeze(-1) * torch.cat([y[..., 1:], -y[..., :1]], -1)

    src = FlowMapSource(phi, max_step=0.25)
    y0 = OSC.sample(3, seed=5)
    ts = torch.tensor([0.0, 0.1, 0.25, 0.3, 0.9, 2.0], dtype=torch.float64)
    traj = src.trajectory(y0, ts)
    assert len(calls) <= 2 * 8 + 1  # skeleton steps plus one batched call per distinct n
    for k, t in enumerate(ts.tolist()):
        torch.testing.assert_close(traj.y[:, k], src.flow(t, y0))


def test_integrator_source_per_sample_durations_match_single_solves():
    src = IntegratorSource.for_system(HH, "dopri5", rtol=1e-10, atol=1e-12)
    y = HH.sample(3, seed=3, energy=1 / 10)
    taus = torch.tensor([0.05, 0.0, 0.7], dtype=torch.float64)
    out = src.flow(taus, y)
    torch.testing.assert_close(out[1], y[1])  # zero duration: the state itself
    for i in (0, 2):
        torch.testing.assert_close(out[i], src.flow(float(taus[i]), y[i : i + 1])[0], atol=1e-12, rtol=0)
    back = src.flow(-0.7, src.flow(0.7, y))
    torch.testing.assert_close(back, y, atol=1e-8, rtol=0)


def test_exact_and_integrated_trajectories_agree():
    y0 = OSC.sample(3, seed=4)
    ts = torch.linspace(0, 5, 11, dtype=torch.float64)
    exact = ExactFlowSource(OSC).trajectory(y0, ts)
    integ = IntegratorSource.for_system(OSC, "gl6", dt=0.05).trajectory(y0, ts, progress=False)
    torch.testing.assert_close(integ.y, exact.y, atol=1e-10, rtol=0)
    assert exact.system == "harmonic_oscillator"


def test_source_construction_errors():
    with pytest.raises(InvalidArgumentError, match="dt"):
        IntegratorSource.for_system(HH, "verlet")
    with pytest.raises(UnknownNameError, match="did you mean 'rtol'"):
        IntegratorSource.for_system(HH, "dopri5", rtoll=1e-8)
    with pytest.raises(InvalidArgumentError, match="events"):
        IntegratorSource.for_system(HH, "dopri5", events=lambda t, y: y[..., 0])
    with pytest.raises(CapabilityError, match="exact flow"):
        ExactFlowSource(HH)
    with pytest.raises(InvalidArgumentError, match="max_step"):
        FlowMapSource(lambda t, y: y, max_step=0.0)
    with pytest.raises(InvalidArgumentError, match="FlowMapSource"):
        as_source(lambda t, y: y)
    assert as_source("henon_heiles").system.name == "henon_heiles"
