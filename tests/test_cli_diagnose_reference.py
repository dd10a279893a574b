"""`symflow diagnose` on a trained run: the true system's section beside the learned one, the
trajectory figure to --t-end, and the orbits' energy stated in the terminal and REPORT.md."""

from __future__ import annotations

import json

import pytest
import torch

import symflow.systems as S
from symflow.cli import main
from symflow.diagnostics import IntegratorSource, diagnose, load_report


@pytest.fixture(scope="module")
def node_run(tmp_path_factory):
    """A neural-ODE run trained for a few steps on Hénon–Heiles data (the system named by the file)."""
    root = tmp_path_factory.mktemp("run")
    data, run = root / "hh.h5", root / "node"
    argv = ["simulate", "henon_heiles", "--n", "16", "--t-end", "2", "--n-obs", "11", "--energy", "0.125"]
    assert main([*argv, "--no-progress", "-o", str(data)]) == 0
    train = ["train", "node", "--data", str(data), "--out", str(run), "--steps", "3", "--width", "16"]
    assert main([*train, "--val-every", "1000", "--no-eval", "--quiet"]) == 0
    return run


def test_run_diagnosis_draws_the_reference_section_and_states_the_energy(
    node_run, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("SYMFLOW_PROGRESS", "0")
    out = tmp_path / "report"
    argv = [
        "diagnose",
        str(node_run),
        "--energy",
        "0.125",
        "--orbits",
        "2",
        "--t-end",
        "8",
        "--samples",
        "41",
    ]
    assert main([*argv, "--poincare", "--method", "gl4", "--dt", "0.2", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    report = load_report(out / "report.json")
    poincare = report["poincare"]
    assert poincare["distance"] is not None
    assert poincare["distance"]["reference"].startswith("true henon_heiles, dopri5")
    assert "poincaré reference: true henon_heiles" in printed
    figure = next(f for f in report["figures"] if f["name"] == "poincare_section")
    assert (out / figure["png"]).stat().st_size > 10_000
    # The orbits' energy: sampled on the shell H = 1/8, stated in both places.
    true = report["energy"]["true"]
    assert true["initial_energy_min"] == pytest.approx(0.125, abs=1e-12)
    assert true["initial_energy_max"] == pytest.approx(0.125, abs=1e-12)
    assert "orbits: 2 with true energy H = 0.125 (H of their initial states)" in printed
    md = (out / "REPORT.md").read_text()
    assert "Energy of the orbits (H of their initial states): true H = 0.125; learned H " in md
    traj = next(f for f in report["figures"] if f["name"] == "trajectories")
    assert traj["caption"].endswith("t from 0 to 8")


def test_trajectory_figure_runs_to_t_end_not_to_a_fixed_span(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYMFLOW_PROGRESS", "0")
    argv = ["diagnose", "--system", "pendulum", "--orbits", "3", "--t-end", "50", "--samples", "101"]
    assert main([*argv, "-o", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    traj = next(f for f in report["figures"] if f["name"] == "trajectories")
    assert traj["caption"].endswith("t from 0 to 50")  # it stopped at 30 before
    energies = S.get_system("pendulum").energy(S.get_system("pendulum").sample(3, seed=0))
    true = report["energy"]["true"]
    assert true["initial_energy_min"] == pytest.approx(float(energies.min()))
    assert true["initial_energy_max"] == pytest.approx(float(energies.max()))
    printed = capsys.readouterr().out
    assert (
        f"orbits: 3 with true energy H from {float(energies.min()):.6g} to {float(energies.max()):.6g}"
        in printed
    )


def test_reports_without_the_orbit_energy_keys_still_load(tmp_path):
    hh = S.get_system("henon_heiles")
    result = diagnose(
        tmp_path,
        system=hh,
        source=IntegratorSource.for_system(hh, "verlet", dt=0.1),
        orbits=2,
        t_end=2.0,
        samples=11,
        structure_states=2,
    )
    report = json.loads(result.paths[0].read_text())
    for key in ("initial_energy_min", "initial_energy_median", "initial_energy_max"):
        del report["energy"]["true"][key]
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert load_report(tmp_path / "report.json")["energy"]["true"]["n_samples"] == 2
    assert torch.isfinite(torch.tensor(result.report["energy"]["true"]["initial_energy_median"]))
