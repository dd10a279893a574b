"""Poincaré sections: crossings against SciPy DOP853 and analytic times, all sources, distances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import symflow.systems as S
from symflow.diagnostics import (
    ExactFlowSource,
    FlowMapSource,
    IntegratorSource,
    PoincareSection,
    poincare_section,
    section_distance,
)
from symflow.integrators import InvalidArgumentError
from symflow.systems import PoincareSurface

HH = S.get_system("henon_heiles")


def scipy_crossings(y0: torch.Tensor, t_end: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Reference: DOP853 at rtol 1e-12 with SciPy's event location, x = 0 crossed upwards."""

    def rhs(t, s):
        x, y, px, py = s
        return [px, py, -x - 2 * x * y, -y - (x * x - y * y)]

    def event(t, s):
        return s[0]

    event.direction = 1
    out = []
    for row in y0.numpy():
        r = solve_ivp(rhs, (0.0, t_end), row, method="DOP853", rtol=1e-12, atol=1e-14, events=event)
        out.append((r.t_events[0], r.y_events[0]))
    return out


@pytest.mark.parametrize(
    ("method", "options", "locate"),
    [
        ("dopri5", {"rtol": 1e-11, "atol": 1e-13}, "map"),
        ("dopri5", {"rtol": 1e-11, "atol": 1e-13}, "events"),
        ("yoshida6", {"dt": 0.02}, "map"),
    ],
)
def test_henon_heiles_crossings_match_scipy_dop853_to_1e9(method, options, locate):
    y0 = HH.sample(4, seed=3, energy=1 / 12)
    t_end = 50.0
    reference = scipy_crossings(y0, t_end)
    src = IntegratorSource.for_system(HH, method, **options)
    section = poincare_section(src, y0, t_end, locate=locate)
    assert section.n_orbits == 4 and section.description == "x = 0, p_x > 0"
    for i, (t_ref, y_ref) in enumerate(reference):
        mine = section.for_orbit(i)
        assert len(mine) == len(t_ref) >= 6
        np.testing.assert_allclose(mine.y.numpy(), y_ref, atol=1e-9, rtol=0)
        np.testing.assert_allclose(mine.t.numpy(), t_ref, atol=1e-8, rtol=0)
        assert (mine.y[:, 2] > 0).all()  # the direction filter: p_x > 0 at every crossing


def oscillator_case():
    """Two uncoupled unit oscillators; the surface q0 = 0 crossed upwards, at analytic times."""
    osc = S.get_system("harmonic_oscillator", n=2)
    phase = torch.tensor([0.3, 1.1, 2.5], dtype=torch.float64)
    amp = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    # q0(t) = A cos(t − φ) at t = 0 (p = q̇ for unit mass): crosses 0 upwards at t = φ + 3π/2 + 2πk.
    y0 = torch.stack([amp * torch.cos(-phase), 0.2 * amp, -amp * torch.sin(-phase), 0.1 * amp], -1)
    surface = PoincareSurface(lambda y: y[..., 0], 1, (1, 3), ("q1", "p1"), "q0 = 0, q0 increasing")
    return osc, y0, surface, phase, amp


@pytest.mark.parametrize("kind", ["exact", "flow_map", "verlet"])
def test_oscillator_crossings_land_on_the_analytic_times(kind):
    osc, y0, surface, phase, amp = oscillator_case()
    if kind == "exact":
        src = ExactFlowSource(osc)
    elif kind == "flow_map":
        src = FlowMapSource(lambda t, y: osc.flow(t, y), max_step=0.3, system=osc)
    else:
        src = IntegratorSource.for_system(osc, "verlet", dt=0.01)
    t_end = 30.0
    section = poincare_section(src, y0, t_end, surface=surface)
    tol = 3e-4 if kind == "verlet" else 1e-12  # Verlet: phase error t·ω³h²/24 ≈ 1.3e-4 at t = 30
    for i in range(3):
        first = (phase[i].item() + 1.5 * math.pi) % (2 * math.pi)
        expected = torch.arange(first, t_end, 2 * math.pi, dtype=torch.float64)
        got = section.for_orbit(i)
        assert len(got) == len(expected)
        torch.testing.assert_close(got.t, expected, atol=tol, rtol=0)
        torch.testing.assert_close(got.y[:, 2], torch.full_like(got.t, amp[i].item()), atol=tol, rtol=0)
        assert got.y[:, 0].abs().max() < tol


def test_flow_map_without_a_velocity_uses_autograd_and_still_converges():
    # A flow map that hides the field: Newton gets G'(τ) from autograd through the map in τ.
    osc, y0, surface, phase, _ = oscillator_case()
    calls = []

    def phi(t, y):
        calls.append(1)
        return osc.flow(t, y)

    src = FlowMapSource(phi, max_step=0.5, system=osc)
    assert src.velocity(y0) is None
    section = poincare_section(src, y0, 20.0, surface=surface)
    first = (phase[0].item() + 1.5 * math.pi) % (2 * math.pi)
    torch.testing.assert_close(
        section.for_orbit(0).t[0], torch.tensor(first, dtype=torch.float64), atol=1e-12, rtol=0
    )
    assert len(calls) < 40 + 10 * 20  # marching plus a handful of root-finding rounds, not hundreds


def test_direction_filter_counts_up_down_and_both():
    osc, y0, surface, *_ = oscillator_case()
    src = ExactFlowSource(osc)
    counts = {}
    for d in (1, -1, 0):
        surf = PoincareSurface(surface.g, d, surface.coords, surface.labels, "")
        counts[d] = len(poincare_section(src, y0[:1], 20.0, surface=surf))
    assert counts[0] == counts[1] + counts[-1]
    assert abs(counts[1] - counts[-1]) <= 1 and counts[1] >= 3


def test_a_thousand_orbits_in_one_call_are_sorted_by_orbit_then_time():
    src = IntegratorSource.for_system(HH, "verlet", dt=0.05)
    y0 = HH.sample(1000, seed=0, energy=1 / 8)
    section = poincare_section(src, y0, 40.0)
    assert section.n_orbits == 1000
    counts = section.counts()
    assert counts.min() >= 3 and counts.sum() == len(section)
    assert (section.orbit.diff() >= 0).all()
    same = section.orbit[1:] == section.orbit[:-1]
    assert (section.t[1:][same] > section.t[:-1][same]).all()
    assert section.points.shape == (len(section), 2)
    assert section.y[:, 0].abs().max() < 1e-13  # every crossing sits on x = 0
    assert (section.status == 0).all()


def test_orbits_that_blow_up_are_kept_and_flagged():
    src = IntegratorSource.for_system(HH, "rk4", dt=0.1)
    y0 = torch.tensor([[0.0, 0.1, 0.3, 0.0], [0.0, 2.0, 1.0, 1.0]], dtype=torch.float64)  # second escapes
    section = poincare_section(src, y0, 200.0)
    assert section.status.tolist() == [0, 3]
    assert section.counts()[0] > 10


def test_section_distance_is_zero_for_identical_sections_and_measures_offsets():
    pts = torch.tensor(
        [[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64
    )
    base = PoincareSection(torch.arange(3.0), pts, torch.tensor([0, 0, 1]), 3, (1, 3), ("y", "p_y"), "x = 0")
    shifted = PoincareSection(
        base.t, pts + torch.tensor([0.0, 0.3, 0.0, 0.4]), base.orbit, 3, (1, 3), ("y", "p_y"), "x = 0"
    )
    d = section_distance(base, base)
    assert d[0] == 0 and d[1] == 0 and math.isnan(d[2])  # orbit 2 has no crossings in either
    torch.testing.assert_close(
        section_distance(base, shifted), torch.tensor([0.5, 0.5, math.nan]), equal_nan=True
    )
    torch.testing.assert_close(
        section_distance(base, shifted, kind="hausdorff")[:2], torch.tensor([0.5, 0.5])
    )
    one_sided = PoincareSection(base.t[:2], pts[:2], base.orbit[:2], 3, (1, 3), ("y", "p_y"), "x = 0")
    assert math.isinf(section_distance(base, one_sided)[1])


def test_section_distance_separates_a_coarse_integrator_from_the_truth():
    y0 = HH.sample(6, seed=2, energy=1 / 12)
    truth = poincare_section(IntegratorSource.for_system(HH, "yoshida4", dt=0.025), y0, 100.0)
    fine = poincare_section(IntegratorSource.for_system(HH, "verlet", dt=0.025), y0, 100.0)
    coarse = poincare_section(IntegratorSource.for_system(HH, "symplectic_euler", dt=0.2), y0, 100.0)
    assert section_distance(truth, fine).max() < 1e-3
    assert section_distance(truth, coarse).median() > 10 * section_distance(truth, fine).median()


def test_bad_arguments_are_named():
    src = IntegratorSource.for_system(HH, "verlet", dt=0.05)
    y0 = HH.sample(2)
    with pytest.raises(InvalidArgumentError, match="t_end"):
        poincare_section(src, y0, -1.0)
    with pytest.raises(InvalidArgumentError, match="locate"):
        poincare_section(src, y0, 1.0, locate="bisect")
    with pytest.raises(InvalidArgumentError, match="surface"):
        poincare_section(ExactFlowSource("harmonic_oscillator"), torch.ones(1, 2), 1.0)
    with pytest.raises(InvalidArgumentError, match="locate"):
        poincare_section(FlowMapSource(lambda t, y: y, 0.1, system=HH), y0, 1.0, locate="events")
    with pytest.raises(InvalidArgumentError, match="stride"):
        poincare_section(FlowMapSource(lambda t, y: y, 0.1, system=HH), y0, 1.0, stride=0.5)
