"""Damped systems through the command line: systems, simulate (doubled states), diagnose (physical energy)."""

from __future__ import annotations

import json

import h5py
import pytest
import torch

import symflow.systems as S
from symflow.cli import main
from symflow.data import simulate
from symflow.diagnostics import load_report
from symflow.diagnostics.dissipative import physical_energy_report
from symflow.integrators import InvalidArgumentError

F64 = torch.float64


@pytest.fixture(scope="module")
def damped_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "damped.h5"
    code = main(
        ["simulate", "damped_harmonic_oscillator", "--param", "lam=0.5", "--n", "6", "--t-end", "40",
         "--n-obs", "41", "-o", str(path), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    return path


def test_systems_lists_the_damped_systems(capsys):
    assert main(["systems", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["damped_harmonic_oscillator"]["doubled"] and rows["damped_pendulum"]["doubled"]
    assert rows["damped_harmonic_oscillator"]["dof"] == 2 and rows["damped_harmonic_oscillator"]["exact_flow"]
    assert set(rows["damped_pendulum"]["parameters"]) == {"g", "length", "lam"}


def test_simulate_stores_doubled_states_on_the_limit_with_the_physical_energy(damped_file):
    system = S.get_system("damped_harmonic_oscillator", lam=0.5)
    with h5py.File(damped_file) as f:
        assert f.attrs["state"] == "doubled" and f.attrs["energy_kind"] == "physical"
        assert json.loads(f.attrs["doubling"])["physical_dim"] == 2
        t = torch.from_numpy(f["t"][...])
        y = torch.from_numpy(f["y"][...])
        energy = torch.from_numpy(f["energy"][...])
    assert y.shape == (6, 41, 4)
    assert float(system.doubling.limit_defect(y).max()) < 1e-14  # λT = 20: no mirror growth
    torch.testing.assert_close(energy, system.doubling.physical_energy(y))
    x = system.doubling.project(y)
    exact = system.doubling.physical.flow(t, x[:, :1, :])
    torch.testing.assert_close(x, exact, atol=1e-7, rtol=0)


def test_simulate_refuses_initial_states_off_the_physical_limit(tmp_path):
    y0 = torch.tensor([[1.0, 0.5, 0.0, 0.0]], dtype=F64)
    with pytest.raises(InvalidArgumentError, match="physical limit"):
        simulate("damped_harmonic_oscillator", 1, 1.0, output=tmp_path / "x.h5", y0=y0, progress=False)


def test_diagnose_reports_the_physical_energy_next_to_the_doubled_h(damped_file, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["diagnose", str(damped_file), "-o", str(out), "--quiet"]) == 0
    report = load_report(out / "report.json")
    pe = report["physical_energy"]
    assert pe["physical_energy_relative_error_max"] < 1e-6  # dopri5 at rtol 1e-9 vs the exact E(t)
    assert pe["physical_energy_final_over_initial_median"] < 1e-6  # e^{-2λT} with λ = 0.5, T = 40
    assert pe["doubled_hamiltonian_change_max"] < 1e-12
    assert "Physical energy" in (out / "REPORT.md").read_text()


def test_physical_energy_report_catches_a_wrong_decay_rate():
    system = S.get_system("damped_harmonic_oscillator", lam=0.1)
    wrong = S.get_system("damped_harmonic_oscillator", lam=0.12)
    x0 = system.doubling.physical.sample(3, seed=0, energy=0.4)
    ts = torch.linspace(0.0, 20.0, 41, dtype=F64)
    y = wrong.flow(ts[None, :], wrong.doubling.lift(x0)[:, None, :])
    rep = physical_energy_report((ts, y), system)
    # E decays like e^{-2λt}: a 20% error in λ is a relative error of about 1 - e^{-0.04 t} at t = 20
    assert rep.summary()["physical_energy_relative_error_max"] > 0.3
    with pytest.raises(InvalidArgumentError, match="doubled"):
        physical_energy_report((ts, y), S.get_system("harmonic_oscillator"))
    with pytest.raises(InvalidArgumentError, match="size 4"):
        physical_energy_report((ts, y[..., :2]), system)


def test_train_then_diagnose_a_sympflow_run_on_the_doubled_space(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(
        ["train", "sympflow", "--system", "damped_harmonic_oscillator", "--param", "lam=0.1", "--dt", "1",
         "--layers", "2", "--width", "6", "--steps", "20", "--collocation", "64", "--horizon", "5",
         "--energy-horizon", "5", "--eval-samples", "2", "--no-plots", "--out", str(run), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["physical_energy_relative_error_max"] >= 0 and summary["physical_error_max"] >= 0
    out = tmp_path / "report"
    assert main(["diagnose", str(run), "-o", str(out), "--orbits", "3", "--t-end", "30", "--quiet"]) == 0
    report = load_report(out / "report.json")
    assert "projected onto the physical limit" in report["settings"]["source"]
    assert report["physical_energy"]["limit_defect_max"] < 1e-12  # projected every step
