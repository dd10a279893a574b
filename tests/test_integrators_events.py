"""Events: batched zero crossings located on the dense output, with direction filters."""

from __future__ import annotations

import math

import pytest
import torch

import symflow.systems as S
from symflow.integrators import Event, solve

OSC = S.get_system("harmonic_oscillator")


@pytest.mark.parametrize(
    ("method", "kw"),
    [
        ("dopri5", {"rtol": 1e-10, "atol": 1e-12}),
        ("tsit5", {"rtol": 1e-10, "atol": 1e-12}),
        ("rk4", {"dt": 0.05}),
        ("verlet", {"dt": 0.01}),
        ("gl4", {"dt": 0.1}),
    ],
)
def test_oscillator_crossings_match_the_analytic_times(method, kw):
    # q(t) = A cos(t - φ): q = 0 going down at t = φ + π/2 + 2πk, going up at φ + 3π/2 + 2πk.
    phases = torch.tensor([0.0, 0.7, 2.0], dtype=torch.float64)
    y0 = torch.stack([torch.cos(-phases), -torch.sin(-phases)], -1)  # q = cos(t-φ), p = -sin(t-φ) at t=0
    ts = torch.tensor([0.0, 20.0], dtype=torch.float64)
    sol = solve(S.vector_field(OSC), y0, ts, method, events=Event(lambda t, y: y[..., 0], direction=+1), **kw)
    ev = sol.events
    tol = {"verlet": 1e-4, "rk4": 1e-5, "gl4": 1e-5}.get(method, 1e-9)  # the methods' own accuracy
    for i, phi in enumerate(phases.tolist()):
        got = ev.for_sample(i).t
        first = (phi + 1.5 * math.pi) % (2 * math.pi)
        expected = torch.arange(first, 20.0, 2 * math.pi, dtype=torch.float64)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=tol, rtol=0)
        assert (ev.for_sample(i).y[:, 0].abs() < tol).all()


def test_direction_filter_and_both_directions():
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    ts = torch.tensor([0.0, 10.0], dtype=torch.float64)
    f = S.vector_field(OSC)
    counts = {
        d: len(solve(f, y0, ts, events=Event(lambda t, y: y[..., 0], direction=d)).events) for d in (-1, 0, 1)
    }
    # zeros of cos t in (0, 10]: π/2, 3π/2, 5π/2 (down, up, down)
    assert counts == {-1: 2, 1: 1, 0: 3}


def test_polished_crossings_are_zeros_of_the_integrators_own_trajectory():
    # One large DP5 step over q = cos t with the crossing inside. Polished: stepping the method
    # itself from t = 0 to the reported time lands on q = 0 to round-off. The interpolant alone
    # (order 4) misses that by its interpolation error.
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    ev = Event(lambda t, y: y[..., 0], direction=-1)
    f = S.vector_field(OSC)
    one_step = {"adaptive": True, "rtol": 1e3, "atol": 1e3}
    miss = {}
    for polish in (False, True):
        sol = solve(
            f,
            y0,
            torch.tensor([0.0, 1.8], dtype=torch.float64),
            "dopri5",
            dt0=1.8,
            events=ev,
            polish_events=polish,
            **one_step,
        )
        assert int(sol.stats["steps"]) == 1 and len(sol.events) == 1
        t_event = sol.events.t.item()
        landed = solve(
            f, y0, torch.tensor([0.0, t_event], dtype=torch.float64), "dopri5", dt0=t_event, **one_step
        )
        miss[polish] = abs(landed.ys[0, -1, 0].item())
    assert miss[True] < 1e-14 and miss[False] > 1e-6, miss


def test_events_in_backward_integration_report_original_times():
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    sol = solve(
        S.vector_field(OSC),
        y0,
        torch.tensor([0.0, -5.0], dtype=torch.float64),
        rtol=1e-10,
        atol=1e-12,
        events=lambda t, y: y[..., 0],
    )
    torch.testing.assert_close(
        sol.events.t, torch.tensor([-math.pi / 2, -3 * math.pi / 2], dtype=torch.float64), atol=1e-9, rtol=0
    )


def test_event_function_with_wrong_shape_is_an_error():
    with pytest.raises(Exception, match="one value per sample"):
        solve(
            S.vector_field(OSC),
            torch.ones(3, 2, dtype=torch.float64),
            torch.tensor([0.0, 1.0]),
            events=lambda t, y: y,
        )
