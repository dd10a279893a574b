"""Damped systems and their doubled phase space, against SciPy, finite differences and the algebra."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import symflow.systems as s
from symflow.integrators import InvalidArgumentError, solve
from symflow.systems.dissipative import DissipativeSystem, Doubling

F64 = torch.float64

# (omega, lam): under-, critically and over-damped, and the undamped limit.
REGIMES = {"under": (1.0, 0.1), "critical": (1.3, 1.3), "over": (1.0, 2.5), "undamped": (2.0, 0.0)}


def scipy_reference(system: DissipativeSystem, x0: torch.Tensor, ts: torch.Tensor) -> np.ndarray:
    sol = solve_ivp(
        lambda t, x: system.field(t, torch.tensor(x, dtype=F64)).numpy(),
        (float(ts[0]), float(ts[-1])),
        x0.numpy(),
        t_eval=ts.numpy(),
        method="DOP853",
        rtol=1e-12,
        atol=1e-14,
    )
    assert sol.success
    return sol.y.T


@pytest.mark.parametrize("regime", list(REGIMES))
def test_damped_oscillator_exact_solution_matches_scipy_in_every_regime(regime):
    omega, lam = REGIMES[regime]
    osc = s.damped_harmonic_oscillator(omega=omega, lam=lam)
    ts = torch.linspace(0.0, 20.0, 41, dtype=F64)
    for x0 in osc.sample(3, seed=1):
        exact = osc.flow(ts, x0).numpy()
        np.testing.assert_allclose(exact, scipy_reference(osc, x0, ts), atol=1e-9)


@pytest.mark.parametrize("regime", list(REGIMES))
def test_damped_oscillator_exact_solution_solves_the_ode_by_finite_differences(regime):
    omega, lam = REGIMES[regime]
    osc = s.damped_harmonic_oscillator(omega=omega, lam=lam)
    x0 = osc.sample(4, seed=2)
    t = torch.tensor(1.7, dtype=F64)
    h = 1e-5
    fd = (osc.flow(t + h, x0) - osc.flow(t - h, x0)) / (2 * h)
    torch.testing.assert_close(fd, osc.field(t, osc.flow(t, x0)), atol=1e-8, rtol=0)
    # and the energy decays at the rate dE/dt = -2 λ |p|²
    de = (osc.energy(osc.flow(t + h, x0)) - osc.energy(osc.flow(t - h, x0))) / (2 * h)
    p = osc.flow(t, x0)[..., 1]
    torch.testing.assert_close(de, -2 * lam * p * p, atol=1e-8, rtol=0)


def test_near_critical_damping_is_continuous_across_the_regimes():
    x0 = torch.tensor([0.7, -0.2], dtype=F64)
    t = torch.tensor(3.0, dtype=F64)
    crit = s.damped_harmonic_oscillator(omega=1.0, lam=1.0).flow(t, x0)
    for lam in (1.0 - 1e-7, 1.0 + 1e-7):
        torch.testing.assert_close(
            s.damped_harmonic_oscillator(omega=1.0, lam=lam).flow(t, x0), crit, atol=1e-6, rtol=0
        )


def test_damped_pendulum_reference_matches_scipy():
    from symflow.diagnostics.dissipative import physical_reference

    system = s.get_system("damped_pendulum", lam=0.1, length=0.8)
    pend = system.doubling.physical
    x0 = pend.sample(3, seed=3)
    ts = torch.linspace(0.0, 15.0, 31, dtype=F64)
    ours = physical_reference(system, x0, ts)
    for i in range(3):
        np.testing.assert_allclose(ours[i].numpy(), scipy_reference(pend, x0[i], ts), atol=1e-8)


@pytest.mark.parametrize("name", ["damped_harmonic_oscillator", "damped_pendulum"])
@pytest.mark.parametrize("lam", [0.0, 0.01, 0.5])
def test_doubled_field_projects_to_the_physical_damped_field_and_keeps_the_limit(name, lam):
    system = s.get_system(name, lam=lam)
    link = system.doubling
    x = link.physical.sample(16, seed=4)
    f = s.vector_field(system)
    t = torch.zeros((), dtype=F64)
    dy = f(t, link.lift(x))
    # P is linear, so d/dt P(y) = P(dy/dt): the projected field is the physical damped field ...
    torch.testing.assert_close(link.project(dy), link.physical.field(t, x), atol=1e-13, rtol=0)
    # ... and the doubled field is tangent to the physical limit there (mirror fixed to the physical state).
    torch.testing.assert_close(link.to_limit(dy), dy, atol=1e-13, rtol=0)
    # H vanishes on the physical limit.
    assert system.energy(link.lift(x)).abs().max() < 1e-14


@pytest.mark.parametrize("name", ["damped_harmonic_oscillator", "damped_pendulum"])
def test_hand_derived_doubled_gradient_matches_autodiff(name):
    system = s.get_system(name, lam=0.3)
    y = torch.randn(8, 4, dtype=F64, generator=torch.Generator().manual_seed(5))
    q, p = system.split(y)
    dq, dp = system.grad_hamiltonian(q, p)
    auto = torch.func.vmap(torch.func.grad(lambda z: system.energy(z)))(y)
    torch.testing.assert_close(torch.cat([dq, dp], -1), auto, atol=1e-13, rtol=0)


@pytest.mark.parametrize("lam", [0.1, 1.0, 3.0])
def test_doubled_exact_flow_matches_integration_of_the_doubled_field_off_the_limit(lam):
    system = s.get_system("damped_harmonic_oscillator", lam=lam, omega=1.2)
    y0 = torch.randn(5, 4, dtype=F64, generator=torch.Generator().manual_seed(6))
    ts = torch.tensor([0.0, 0.4, 1.1], dtype=F64)
    ref = solve(s.vector_field(system), y0, ts, method="dop853", rtol=1e-12, atol=1e-14).ys
    ours = system.flow(ts[None, :], y0[:, None, :])
    torch.testing.assert_close(ours, ref, atol=1e-9 * math.exp(2 * lam * 1.1), rtol=0)


@pytest.mark.parametrize("lam", [0.01, 0.1, 1.0, 3.0])
def test_doubled_exact_flow_from_a_lifted_state_projects_onto_the_physical_solution(lam):
    system = s.get_system("damped_harmonic_oscillator", lam=lam)
    link = system.doubling
    x0 = link.physical.sample(4, seed=7)
    ts = torch.linspace(0.0, 100.0, 101, dtype=F64)
    y = system.flow(ts[None, :], link.lift(x0)[:, None, :])
    torch.testing.assert_close(
        link.project(y), link.physical.flow(ts[None, :], x0[:, None, :]), atol=1e-13, rtol=0
    )
    assert float(link.limit_defect(y).max()) == 0.0  # exactly on the limit, even for λT = 300


def test_symplectic_integration_of_the_doubled_pendulum_projects_onto_the_damped_pendulum():
    system = s.get_system("damped_pendulum", lam=0.05)
    link = system.doubling
    x0 = link.physical.sample(3, seed=8)
    ts = torch.linspace(0.0, 10.0, 11, dtype=F64)
    sol = solve(s.vector_field(system), link.lift(x0), ts, method="gl4", dt=0.01)
    ref = np.stack([scipy_reference(link.physical, x, ts) for x in x0])
    np.testing.assert_allclose(link.project(sol.ys).numpy(), ref, atol=1e-8)


def test_lift_and_project_are_inverse_and_to_limit_is_a_projection():
    link = s.get_system("damped_harmonic_oscillator").doubling
    x = torch.randn(6, 2, dtype=F64)
    torch.testing.assert_close(link.project(link.lift(x)), x)
    y = torch.randn(6, 4, dtype=F64)
    torch.testing.assert_close(link.to_limit(link.to_limit(y)), link.to_limit(y))
    # The lift is what the issue asks: mirror coordinates fixed to the physical ones.
    torch.testing.assert_close(
        link.lift(torch.tensor([0.3, -0.4], dtype=F64)), torch.tensor([0.3, 0.3, -0.4, 0.4], dtype=F64)
    )


def test_samplers_draw_physical_states_on_the_limit_and_honour_the_physical_energy():
    for name in ("damped_harmonic_oscillator", "damped_pendulum"):
        system = s.get_system(name, lam=0.2)
        y = system.sample(32, seed=9, energy=0.3)
        assert float(system.doubling.limit_defect(y).max()) == 0.0
        torch.testing.assert_close(system.doubling.physical_energy(y), torch.full((32,), 0.3, dtype=F64))
    y = s.get_system("damped_harmonic_oscillator").sample(200, seed=0)
    assert float(s.get_system("damped_harmonic_oscillator").doubling.physical_energy(y).max()) <= 0.5


def test_registry_lists_the_damped_systems_with_their_parameters():
    names = s.list_systems()
    assert "damped_harmonic_oscillator" in names and "damped_pendulum" in names
    system = s.get_system("damped_oscillator")  # alias
    assert system.doubling is not None and system.params == {"omega": 1.0, "lam": 0.01}
    assert isinstance(system.doubling, Doubling) and system.dof == 2


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: s.get_system("damped_harmonic_oscillator", lam=-0.1), ["lam", "-0.1"]),
        (lambda: s.damped_harmonic_oscillator(lam=-1.0), ["lam", "-1.0"]),
        (lambda: s.damped_pendulum(length=0.0), ["length", "0.0"]),
        (lambda: s.damped_harmonic_oscillator(lam=math.nan), ["lam"]),
        (
            lambda: s.get_system("damped_harmonic_oscillator").doubling.project(torch.zeros(3, 2)),
            ["y", "(..., 4)"],
        ),
        (
            lambda: s.get_system("damped_harmonic_oscillator").doubling.lift(torch.zeros(3, 4)),
            ["x", "(..., 2)"],
        ),
        (lambda: s.doubled(s.get_system("harmonic_oscillator")), ["system", "DissipativeSystem"]),
        (lambda: s.get_system("damped_pendulum").sample(2, energy=-1.0), ["energy"]),
    ],
)
def test_bad_input_is_refused_with_one_line_naming_the_argument(call, words):
    with pytest.raises(InvalidArgumentError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_pendulum_has_no_closed_form_and_says_so():
    from symflow.integrators import CapabilityError

    system = s.get_system("damped_pendulum")
    with pytest.raises(CapabilityError, match="no closed-form"):
        system.doubling.physical.flow(1.0, torch.zeros(2, dtype=F64))
