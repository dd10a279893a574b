"""Geometric properties: symplecticity of one step, energy behaviour over long runs."""

from __future__ import annotations

import pytest
import torch
from torch.func import jacrev, vmap

import symflow.systems as S
from symflow.integrators import get_method, list_methods, solve

SYMPLECTIC = [m for m in list_methods() if get_method(m).symplectic]


def j_matrix(d: int) -> torch.Tensor:
    j = torch.zeros(d, d, dtype=torch.float64)
    j[: d // 2, d // 2 :] = torch.eye(d // 2)
    j[d // 2 :, : d // 2] = -torch.eye(d // 2)
    return j


def step_defect(system, method: str, h: float) -> float:
    """max over samples of ‖MᵀJM − J‖_F for the one-step map's Jacobian M."""
    f = S.vector_field(system)
    ts = torch.tensor([0.0, h], dtype=torch.float64)

    def step(y0):
        return solve(f, y0, ts, method, dt=h, throw=False).ys[-1]

    y0 = system.sample(4, seed=2)
    m = vmap(jacrev(step))(y0)
    j = j_matrix(system.dim)
    return (m.transpose(-1, -2) @ j @ m - j).norm(dim=(-2, -1)).max().item()


@pytest.mark.parametrize("method", SYMPLECTIC)
def test_symplectic_methods_have_round_off_symplecticity_defect(method):
    # Nonlinear systems and a large step: the defect must still be round-off.
    hh = S.get_system("henon_heiles")
    assert step_defect(hh, method, 0.3) <= 1e-12
    if not get_method(method).needs_separable:
        assert step_defect(S.get_system("double_pendulum"), method, 0.2) <= 1e-12


@pytest.mark.parametrize("method", ["rk4", "dopri5", "euler"])
def test_non_symplectic_methods_show_a_visible_defect(method):
    assert step_defect(S.get_system("henon_heiles"), method, 0.3) > 1e-6


def relative_energy_error(method: str, h: float, n_steps: int, **kw) -> torch.Tensor:
    osc = S.get_system("harmonic_oscillator")
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    ts = torch.linspace(0, h * n_steps, n_steps + 1, dtype=torch.float64)
    ys = solve(S.vector_field(osc), y0, ts, method, **kw).ys[0]
    e = osc.energy(ys)
    return ((e - e[0]) / e[0]).abs()


def test_verlet_energy_error_is_bounded_at_h_squared_over_four():
    h = 0.1
    err = relative_energy_error("verlet", h, 100_000)
    peak_early, peak_late = err[:10_000].max().item(), err[-10_000:].max().item()
    assert 0.8 * h**2 / 4 <= peak_late <= 1.2 * h**2 / 4
    assert abs(peak_late - peak_early) <= 0.05 * peak_early  # no secular drift


def test_rk4_energy_drifts_on_the_same_problem():
    err = relative_energy_error("rk4", 0.1, 20_000)
    assert err[-1] > 50 * err[200]  # grows linearly with time (numerical damping)


def test_implicit_midpoint_conserves_quadratic_energy_to_round_off():
    err = relative_energy_error("implicit_midpoint", 0.1, 5_000)
    assert err.max() < 1e-13


@pytest.mark.slow
def test_implicit_midpoint_and_gl4_round_off_over_a_hundred_thousand_steps():
    assert relative_energy_error("implicit_midpoint", 0.1, 100_000).max() < 1e-12
    assert relative_energy_error("gl4", 0.1, 100_000).max() < 1e-12


def test_compensated_summation_reduces_round_off_drift():
    plain = relative_energy_error("gl4", 0.05, 5_000, compensated=False).max()
    comp = relative_energy_error("gl4", 0.05, 5_000, compensated=True).max()
    assert comp <= plain
    assert comp < 1e-13
