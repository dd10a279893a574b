"""The PID step-size controller: its factor against Söderlind's formula written with powers, and solves
with each kind of controller meeting their tolerance."""

from __future__ import annotations

import math

import pytest
import torch

import symflow.systems as S
from symflow.integrators import INTEGRAL, InvalidArgumentError, PIDController, solve

CONTROLLERS = {
    "pi (Hairer's DOPRI5)": PIDController(),
    "integral": INTEGRAL,
    "pid": PIDController(pcoeff=0.3, icoeff=0.4, dcoeff=0.1, safety=0.85, factor_min=0.3, factor_max=5.0),
}


def soderlind(c: PIDController, err: float, err1: float, err2: float, accept: bool, k: int) -> float:
    """hₙ₊₁/hₙ as written in Söderlind (2003) / the module docstring, with powers."""
    if not accept:
        return min(max(c.safety * err ** (-1.0 / k), c.factor_min), 1.0)
    b1 = (c.pcoeff + c.icoeff + c.dcoeff) / k
    b2 = -(c.pcoeff + 2 * c.dcoeff) / k
    b3 = c.dcoeff / k
    raw = c.safety * err ** (-b1) * err1 ** (-b2) * err2 ** (-b3)
    return min(max(raw, c.factor_min), c.factor_max)


def test_the_default_controller_has_hairers_dopri5_exponents():
    # DOPRI5 (Hairer, Nørsett & Wanner I, §II.4): fac = err^(0.2 − 0.75β) · errold^(−β), β = 0.04.
    b1, b2, b3 = PIDController().exponents(5)
    assert (b1, b2, b3) == pytest.approx((0.2 - 0.75 * 0.04, -0.04, 0.0), abs=1e-15)


@pytest.mark.parametrize("name", CONTROLLERS)
def test_the_factor_follows_soderlinds_formula_for_accepted_and_rejected_steps(name):
    c, k = CONTROLLERS[name], 5
    gen = torch.Generator().manual_seed(0)
    # errors over twelve decades, rejected ones above 1 (that is what rejects them), both sides of the clip
    err = torch.cat(
        [
            10 ** (-10 * torch.rand(200, generator=gen, dtype=torch.float64)),
            1 + 1e3 * torch.rand(100, generator=gen, dtype=torch.float64),
        ]
    )
    err1 = 10 ** (2 - 8 * torch.rand(300, generator=gen, dtype=torch.float64))
    err2 = 10 ** (2 - 8 * torch.rand(300, generator=gen, dtype=torch.float64))
    accept = err <= 1
    want = torch.tensor(
        [soderlind(c, *map(float, (e, e1, e2)), bool(a), k) for e, e1, e2, a in zip(err, err1, err2, accept)],
        dtype=torch.float64,
    )
    torch.testing.assert_close(c.factor(err, err1, err2, accept, k), want, rtol=1e-13, atol=0)
    from_logs = c.factor_from_logs(err.log(), err1.log(), err2.log(), accept, k)
    torch.testing.assert_close(from_logs, want, rtol=1e-13, atol=0)
    assert bool((want[~accept] < 1).all()) and bool((want > c.factor_min).any())


def test_a_non_finite_error_shrinks_the_step_by_factor_min():
    c = PIDController()
    err = torch.tensor([math.inf], dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    reject = torch.tensor([False])
    assert float(c.factor(err, one, one, reject, 5)) == c.factor_min
    assert float(c.factor_from_logs(err.log(), one.log(), one.log(), reject, 5)) == c.factor_min


@pytest.mark.parametrize("name", CONTROLLERS)
def test_every_controller_meets_the_tolerance_on_the_oscillator(name):
    system = S.get_system("harmonic_oscillator")
    y0 = system.sample(8, seed=3)
    ts = torch.linspace(0, 20, 41, dtype=torch.float64)
    sol = solve(S.vector_field(system), y0, ts, "dopri5", rtol=1e-8, atol=1e-10, controller=CONTROLLERS[name])
    exact = system.exact_flow(ts, y0.unsqueeze(1))  # (B, T, D)
    assert sol.ok
    assert float((sol.ys - exact).abs().max()) < 1e-6


def test_a_controller_with_a_factor_range_that_excludes_one_is_refused():
    with pytest.raises(InvalidArgumentError, match="factor_min"):
        PIDController(factor_min=1.2)
