"""Energy error, its summaries, and the drift estimator that separates bounded error from drift."""

from __future__ import annotations

import math

import pytest
import torch

import symflow.systems as S
from symflow.diagnostics import IntegratorSource, drift_exponent, energy_error, energy_errors, from_solution
from symflow.integrators import InvalidArgumentError, solve

OSC = S.get_system("harmonic_oscillator")
HH = S.get_system("henon_heiles")


def test_relative_error_max_and_rms_on_a_known_trajectory():
    # H = ½(q² + p²); scaling the state by (1 + εt)^{1/2} makes H(t) = H(0)(1 + εt) exactly.
    t = torch.linspace(0.0, 10.0, 11, dtype=torch.float64)
    eps = 1e-3
    base = torch.tensor([0.6, 0.8], dtype=torch.float64)  # H(0) = 0.5
    y = (base * (1 + eps * t).sqrt().unsqueeze(-1)).unsqueeze(0)  # (1, T, 2)
    rep = energy_error((t, y), OSC)
    torch.testing.assert_close(rep.error[0], eps * t, atol=1e-15, rtol=1e-12)
    assert bool(rep.relative[0])
    torch.testing.assert_close(rep.max, torch.tensor([eps * 10.0], dtype=torch.float64))
    torch.testing.assert_close(rep.rms, (eps * t).pow(2).mean().sqrt().unsqueeze(0))


def test_absolute_error_when_the_initial_energy_is_zero():
    t = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)
    y = torch.zeros(1, 5, 2, dtype=torch.float64)
    y[0, 1:, 0] = 1e-3  # H = 5e-7 after t = 0, H(0) = 0
    rep = energy_error((t, y), OSC)
    assert not bool(rep.relative[0])
    torch.testing.assert_close(rep.max, torch.tensor([5e-7], dtype=torch.float64))


def test_drift_exponent_separates_bounded_verlet_from_drifting_rk4():
    y0 = OSC.sample(4, seed=0)
    ts = torch.linspace(0.0, 1000.0, 2001, dtype=torch.float64)
    verlet = energy_error(IntegratorSource.for_system(OSC, "verlet", dt=0.1).trajectory(y0, ts), OSC)
    rk4 = energy_error(IntegratorSource.for_system(OSC, "rk4", dt=0.1).trajectory(y0, ts), OSC)
    assert verlet.drift_exponent.abs().max() < 0.1 and not verlet.drifting.any()
    assert (rk4.drift_exponent - 1).abs().max() < 0.1 and rk4.drifting.all()
    assert (rk4.drift_rate > 0).all()
    assert verlet.max.min() > rk4.max.max()  # Verlet's bounded error is *larger* here, yet bounded


def test_drift_exponent_of_synthetic_power_laws():
    t = torch.linspace(0.0, 1000.0, 20001, dtype=torch.float64).expand(3, -1)
    osc = 1e-3 * (1 + torch.sin(3.0 * t[0])) ** 2
    err = torch.stack([osc, 1e-9 * t[1], 1e-9 * t[2].sqrt() * (1.5 + torch.sin(t[2]))])
    alpha, _ = drift_exponent(t, err)
    torch.testing.assert_close(alpha, torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64), atol=0.06, rtol=0)
    short = drift_exponent(t[:, :3], err[:, :3])[0]  # too few windows with points: undefined
    assert torch.isnan(short).all()


def test_learned_and_true_hamiltonians_are_reported_side_by_side():
    y0 = HH.sample(3, seed=1, energy=1 / 12)
    sol = solve(S.vector_field(HH), y0, torch.linspace(0, 20, 41, dtype=torch.float64), "rk4", dt=0.1)
    reports = energy_errors(
        sol, {"true": HH, "learned": lambda y: 1.01 * HH.energy(y) + 0.1 * y[..., 0] ** 2}
    )
    assert set(reports) == {"true", "learned"}
    assert reports["learned"].max.min() > 100 * reports["true"].max.max()
    summary = reports["true"].summary()
    assert summary["n_samples"] == 3 and summary["name"] == "true" and summary["max_error"] > 0


def test_padded_file_style_trajectories_ignore_invalid_points():
    y0 = HH.sample(2, seed=2, energy=1 / 10)
    traj = from_solution(solve(S.vector_field(HH), y0, torch.linspace(0, 10, 21, dtype=torch.float64)))
    t, y, length = traj.t.clone(), traj.y.clone(), traj.length.clone()
    length[1] = 10
    t[1, 10:] = math.nan
    y[1, 10:] = math.nan
    padded = type(traj)(t, y, length)
    rep = energy_error(padded, HH)
    assert torch.isfinite(rep.max).all() and torch.isnan(rep.error[1, 10:]).all()


def test_bad_inputs_are_named():
    with pytest.raises(InvalidArgumentError, match="hamiltonian"):
        energy_error((torch.zeros(3), torch.zeros(1, 3, 2)), lambda y: y)
    with pytest.raises(InvalidArgumentError, match="data"):
        energy_error([1, 2], OSC)
    with pytest.raises(InvalidArgumentError, match="windows"):
        energy_error((torch.zeros(3), torch.zeros(1, 3, 2)), OSC, windows=1)
