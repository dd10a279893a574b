"""Failures are data: per-sample status, isolation of bad samples, clear errors at the boundary."""

from __future__ import annotations

import pytest
import torch

import symflow.systems as S
from symflow.integrators import (
    CapabilityError,
    IntegrationError,
    InvalidArgumentError,
    Status,
    UnknownNameError,
    list_methods,
    solve,
)
from symflow.integrators.callbacks import StepCallbacks

HH = S.get_system("henon_heiles")
F = S.vector_field(HH)


def blowup(t, y):
    """dy/dt = y², singular at t = 1/y0."""
    return y * y


@pytest.mark.parametrize("method", ["dopri5", "rk4", "gl4", "verlet"])
def test_one_nan_sample_does_not_change_the_others(method):
    y0 = HH.sample(6, seed=0)
    ts = torch.linspace(0, 5, 11)
    kw = {"rtol": 1e-9, "atol": 1e-11} if method == "dopri5" else {"dt": 0.05}
    clean = solve(F, y0, ts, method, **kw)
    bad = y0.clone()
    bad[2, 1] = float("nan")
    dirty = solve(F, bad, ts, method, throw=False, **kw)
    keep = [0, 1, 3, 4, 5]
    assert torch.equal(dirty.ys[keep], clean.ys[keep])
    assert dirty.status[2] == Status.NONFINITE
    assert (dirty.status[keep] == Status.SUCCESS).all()
    for key in ("steps", "nfev"):
        assert torch.equal(dirty.stats[key][keep], clean.stats[key][keep])


EMBEDDED = list_methods("embedded")


@pytest.mark.parametrize("method", EMBEDDED)
def test_a_slope_that_turns_nonfinite_mid_solve_fails_that_sample_alone(method):
    """A sample whose field turns NaN mid-solve fails alone: the others are bitwise those of a clean
    solve, and no step past the poison is accepted."""

    def poisoned(t, y):  # NaN after t = 1.5, which only sample 2 reaches
        return torch.where((t > 1.5).unsqueeze(-1), float("nan"), F(t, y))

    y0 = HH.sample(4, seed=1)
    ts = torch.linspace(0, 1, 7, dtype=torch.float64).repeat(4, 1)
    ts[2] *= 3
    ends = []  # where the accepted steps end: none past t = 1.5, where the slope is NaN
    cbs = StepCallbacks(accept=lambda t0, y, dt: ends.append(float((t0 + dt).max())))
    clean = solve(F, y0, ts, method, rtol=1e-6, atol=1e-8)
    dirty = solve(poisoned, y0, ts, method, rtol=1e-6, atol=1e-8, throw=False, callbacks=cbs)
    assert dirty.status.tolist() == [Status.SUCCESS, Status.SUCCESS, Status.NONFINITE, Status.SUCCESS]
    assert torch.equal(dirty.ys[[0, 1, 3]], clean.ys[[0, 1, 3]])
    assert max(ends) <= 1.5
    assert torch.isnan(dirty.ys[2, -1]).all()


@pytest.mark.parametrize("method", EMBEDDED)
def test_a_state_that_overflows_under_finite_slopes_is_nonfinite(method):
    """y' = 10³⁰⁶ passes float64's largest value near t = 180 while every slope stays finite: only the
    state's part of the finiteness test can see it (the scaled error is 0 there)."""

    def huge(t, y):
        return torch.full_like(y, 1e306)

    y0 = torch.zeros(2, 1, dtype=torch.float64)
    ts = torch.tensor([[0.0, 100.0], [0.0, 400.0]], dtype=torch.float64)
    sol = solve(huge, y0, ts, method, throw=False)
    assert sol.status.tolist() == [Status.SUCCESS, Status.NONFINITE]
    torch.testing.assert_close(sol.ys[0, -1, 0], torch.tensor(1e308, dtype=torch.float64))


def test_blow_up_is_reported_as_step_underflow_for_that_sample_only():
    y0 = torch.tensor([[0.5], [1.0], [0.2]], dtype=torch.float64)  # singular at t = 2, 1, 5
    sol = solve(blowup, y0, torch.tensor([0.0, 1.5], dtype=torch.float64), "dopri5", throw=False)
    assert sol.status.tolist() == [Status.SUCCESS, Status.DT_MIN, Status.SUCCESS]
    exact = y0[[0, 2], 0] / (1 - 1.5 * y0[[0, 2], 0])
    torch.testing.assert_close(sol.ys[[0, 2], -1, 0], exact, rtol=1e-5, atol=0)
    assert torch.isnan(sol.ys[1, -1]).all()  # never a stale value that looks like data


def test_max_steps_marks_only_the_samples_that_ran_out():
    y0 = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    ts = torch.tensor([[0.0, 1.0], [0.0, 1000.0]], dtype=torch.float64)  # the second needs many steps
    f = S.vector_field(S.get_system("harmonic_oscillator"))
    sol = solve(f, y0, ts, "dopri5", max_steps=40, throw=False)
    assert sol.status.tolist() == [Status.SUCCESS, Status.MAX_STEPS]
    assert sol.stats["steps"][1] == 40


def test_newton_failure_is_not_converged():
    # Implicit midpoint on y' = y² with h = 2 has no real stage solution for y0 = 1.
    y0 = torch.tensor([[1.0], [0.01]], dtype=torch.float64)
    sol = solve(blowup, y0, torch.tensor([0.0, 2.0], dtype=torch.float64), "implicit_midpoint", throw=False)
    assert sol.status[0] == Status.NOT_CONVERGED
    assert sol.status[1] == Status.SUCCESS


def test_throw_raises_one_error_naming_failed_samples_status_and_remedy():
    y0 = torch.tensor([[0.5], [1.0], [2.0]], dtype=torch.float64)
    with pytest.raises(IntegrationError) as info:
        solve(blowup, y0, torch.tensor([0.0, 1.5], dtype=torch.float64), "dopri5")
    msg = str(info.value)
    assert "1/3 samples succeeded" in msg and "dt_min: samples [1, 2]" in msg and "implicit method" in msg
    assert info.value.solution.status[0] == Status.SUCCESS  # the partial result travels with the error


def test_fixed_step_nonfinite_is_reported():
    sol = solve(
        blowup,
        torch.tensor([[1.0], [0.1]], dtype=torch.float64),
        torch.tensor([0.0, 3.0], dtype=torch.float64),
        "rk4",
        dt=0.1,
        throw=False,
    )
    assert sol.status.tolist() == [Status.NONFINITE, Status.SUCCESS]


# --- input errors, raised before any work ----------------------------------------------------------

TS = torch.linspace(0, 1, 5, dtype=torch.float64)
Y0 = torch.zeros(3, 4, dtype=torch.float64)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"ts": torch.tensor([0.0, 1.0, 1.0])}, InvalidArgumentError, "strictly"),
        ({"ts": torch.tensor([0.0, 2.0, 1.0])}, InvalidArgumentError, "strictly"),
        ({"ts": torch.tensor([0.0, float("nan")])}, InvalidArgumentError, "finite"),
        ({"ts": torch.zeros(2, 5)}, InvalidArgumentError, "batch"),
        ({"y0": torch.zeros(3, 4, dtype=torch.int64)}, InvalidArgumentError, "floating"),
        ({"y0": [0.0, 1.0]}, InvalidArgumentError, "torch.Tensor"),
        ({"f": 3}, InvalidArgumentError, "callable"),
        ({"method": "dopri"}, UnknownNameError, "did you mean 'dopri5'"),
        ({"method": "rk4", "dt": -0.1}, InvalidArgumentError, "dt"),
        ({"method": "rk4", "dt": 0.1, "rtol": 1e-3}, InvalidArgumentError, "adaptive"),
        ({"method": "rk4", "newton_tol": 1e-3}, InvalidArgumentError, "implicit"),
        ({"method": "rk4", "adaptive": True}, Exception, "cannot step adaptively"),
        ({"rtoll": 1e-3}, UnknownNameError, "did you mean 'rtol'"),
        ({"max_steps": 0}, InvalidArgumentError, "max_steps"),
        ({"atol": torch.ones(3)}, InvalidArgumentError, "atol"),
    ],
)
def test_bad_inputs_raise_typed_errors_before_any_work(kwargs, exc, match):
    calls = []

    def f(t, y):
        calls.append(1)
        return F(t, y)

    args = {"f": f, "y0": Y0, "ts": TS, **kwargs}
    with pytest.raises(exc, match=match):
        solve(args.pop("f"), args.pop("y0"), args.pop("ts"), **args)
    assert calls == []


def test_splitting_on_a_non_separable_field_names_the_methods_that_apply():
    dp = S.get_system("double_pendulum")
    with pytest.raises(CapabilityError, match="gl4") as info:
        solve(S.vector_field(dp), dp.sample(2), TS, "verlet", dt=0.1)
    assert "separable" in str(info.value)
    with pytest.raises(CapabilityError, match="separable"):
        solve(lambda t, y: -y, Y0, TS, "yoshida4", dt=0.1)  # a plain callable carries no split


@pytest.mark.parametrize("method", ["dopri5", "dop853"])
def test_per_component_tolerances_equal_to_a_float_give_the_same_solve_and_a_tighter_one_helps(method):
    y0 = HH.sample(8, seed=2)
    ts = torch.linspace(0, 10, 11, dtype=torch.float64)
    f64 = {"dtype": torch.float64}
    ref = solve(F, y0, ts, "dop853", rtol=1e-13, atol=1e-15)
    plain = solve(F, y0, ts, method, rtol=1e-6, atol=1e-8)
    same = solve(F, y0, ts, method, rtol=torch.full((4,), 1e-6, **f64), atol=torch.full((4,), 1e-8, **f64))
    assert torch.equal(same.ys, plain.ys) and torch.equal(same.stats["steps"], plain.stats["steps"])
    # p_y held 10⁴ times tighter: the sample's steps follow its tightest component
    rtol = torch.tensor([1e-6, 1e-6, 1e-6, 1e-10], **f64)
    tight = solve(F, y0, ts, method, rtol=rtol, atol=torch.tensor([1e-8, 1e-8, 1e-8, 1e-12], **f64))
    err_plain = float((plain.ys - ref.ys)[..., 3].abs().max())
    err_tight = float((tight.ys - ref.ys)[..., 3].abs().max())
    assert err_tight < err_plain / 100
    with pytest.raises(InvalidArgumentError, match="rtol"):
        solve(F, y0, ts, method, rtol=torch.full((3,), 1e-6))
