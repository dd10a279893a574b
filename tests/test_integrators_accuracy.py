"""Integrator accuracy against exact flows and SciPy: convergence orders, adaptive agreement,
per-sample grids, dense output, backward integration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import symflow.systems as S
from symflow.integrators import get_method, list_methods, solve

KEPLER = S.get_system("kepler")
# An e ≈ 0.3 orbit: nonlinear, separable, with an exact flow, no special structure to exploit.
Y0_KEPLER = torch.tensor([[0.7, 0.0, 0.0, math.sqrt(1.3 / 0.7)]], dtype=torch.float64)

# Step sizes per order so that errors stay between round-off and the asymptotic regime.
DTS = {
    1: [0.02, 0.01, 0.005, 0.0025],
    2: [0.04, 0.02, 0.01, 0.005],
    3: [0.08, 0.04, 0.02, 0.01],
    4: [0.1, 0.05, 0.025, 0.0125],
    5: [0.05, 0.025, 0.0125, 0.00625],
    6: [0.2, 0.1, 0.05, 0.025],
    7: [0.5, 0.25, 0.125, 0.0625],
    8: [1 / 4, 1 / 6, 1 / 8, 1 / 10],
    9: [1 / 4, 1 / 6, 1 / 8, 1 / 10],
}


def observed_order(method: str) -> float:
    spec = get_method(method)
    f = S.vector_field(KEPLER)
    ts = torch.tensor([0.0, 1.0])
    exact = KEPLER.flow(1.0, Y0_KEPLER)
    errs, dts = [], DTS[spec.order]
    for dt in dts:
        kw = {"adaptive": False} if spec.adaptive else {}
        ys = solve(f, Y0_KEPLER, ts, method, dt=dt, **kw).ys[:, -1]
        errs.append((ys - exact).abs().max().item())
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    return slope


@pytest.mark.parametrize("method", list_methods())
def test_convergence_order_matches_the_declared_order(method):
    slope = observed_order(method)
    order = get_method(method).order
    # Orders ≥ 7 run from coarse steps to round-off within two decades of dt, where the leading error
    # term is not yet alone: a wider band, still far from the next order down or up.
    assert abs(slope - order) <= (0.3 if order <= 6 else 0.75), slope


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "bosh3", "vern7", "dop853", "vern9"])
def test_adaptive_solution_agrees_with_scipy_dop853_at_tight_tolerance(method):
    from scipy.integrate import solve_ivp

    hh = S.get_system("henon_heiles")
    y0 = hh.sample(4, seed=3, energy=0.1)
    ts = torch.linspace(0, 20, 41)
    rtol = {"bosh3": 1e-9}.get(method, 1e-12)  # 3rd order: 1e-9 already takes ~10⁴ steps
    sol = solve(S.vector_field(hh), y0, ts, method, rtol=rtol, atol=1e-14, max_steps=200_000)
    f = S.vector_field(hh)
    for i in range(4):
        ref = solve_ivp(
            lambda t, y: f(torch.tensor(t), torch.from_numpy(y)).numpy(),
            (0, 20),
            y0[i].numpy(),
            method="DOP853",
            t_eval=ts.numpy(),
            rtol=1e-13,
            atol=1e-15,
        )
        err = np.abs(sol.ys[i].numpy() - ref.y.T).max()
        assert err < {"bosh3": 1e-6}.get(method, 1e-9), err


def test_adaptive_error_tracks_the_tolerance():
    f = S.vector_field(KEPLER)
    ts = torch.linspace(0, 10, 11)
    exact = KEPLER.flow(ts[None], Y0_KEPLER[:, None])
    errs = []
    for rtol in (1e-6, 1e-8, 1e-10):
        sol = solve(f, Y0_KEPLER, ts, "dopri5", rtol=rtol, atol=rtol * 1e-2)
        errs.append((sol.ys - exact).abs().max().item())
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-8


@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_dense_output_error_is_fourth_order_in_the_step(method):
    # Interpolated outputs inside one step: error should drop ~32x when h halves.
    osc = S.get_system("harmonic_oscillator")
    f = S.vector_field(osc)
    y0 = torch.tensor([[1.0, 0.0]])
    errs = []
    for h in (0.4, 0.2, 0.1):
        ts = torch.tensor([0.0, 0.37 * h, h])
        sol = solve(f, y0, ts, method, adaptive=True, dt0=h, rtol=1e3, atol=1e3)  # one step, no rejection
        assert int(sol.stats["steps"]) == 1
        errs.append((sol.ys[0, 1] - osc.flow(0.37 * h, y0[0])).abs().max().item())
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(r > 4.5 for r in rates), rates


@pytest.mark.parametrize(("method", "order"), [("dop853", 7), ("vern7", 6), ("vern9", 9)])
def test_high_order_dense_output_keeps_its_order_inside_a_step(method, order):
    # One step of a nonlinear orbit, interpolated at θ = 0.37: the interpolant's local error is
    # O(h^(q+1)), so halving h divides it by ≥ 2^(q+1) (up to pre-asymptotic noise).
    f = S.vector_field(KEPLER)
    errs = []
    for h in (0.8, 0.4, 0.2):
        ts = torch.tensor([0.0, 0.37 * h, h])
        sol = solve(f, Y0_KEPLER, ts, method, adaptive=True, dt0=h, rtol=1e3, atol=1e3)
        assert int(sol.stats["steps"]) == 1
        errs.append((sol.ys[0, 1] - KEPLER.flow(0.37 * h, Y0_KEPLER[0])).abs().max().item())
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(r > order + 0.5 for r in rates), (rates, errs)


def test_high_order_pairs_need_far_fewer_evaluations_than_dopri5_on_an_eccentric_orbit():
    # Kepler, e = 0.9, one period at rtol 1e-12: the 8th/9th-order pairs reach the same accuracy
    # with at least 3x fewer evaluations of f (benchmarks/bench_simulate.py runs ten periods).
    e = 0.9
    y0 = torch.tensor([[1 - e, 0.0, 0.0, math.sqrt((1 + e) / (1 - e))]], dtype=torch.float64)
    ts = torch.tensor([0.0, 2 * math.pi], dtype=torch.float64)
    exact = KEPLER.flow(2 * math.pi, y0)
    f = S.vector_field(KEPLER)
    runs = {}
    for method in ("dopri5", "dop853", "vern9"):
        sol = solve(f, y0, ts, method, rtol=1e-12, atol=1e-14)
        runs[method] = (int(sol.stats["nfev"]), (sol.ys[:, -1] - exact).norm().item() / exact.norm().item())
    nfev5, err5 = runs["dopri5"]
    for method in ("dop853", "vern9"):
        nfev, err = runs[method]
        assert nfev * 3 <= nfev5, runs
        assert err <= 3 * err5, runs


def test_compensated_adaptive_solves_keep_increments_below_half_an_ulp():
    # y' = 1e-17: every increment is below half an ulp of y = 1, so plain y + δ never moves; the
    # compensated sum carries the lost bits and arrives at 1 + 1000·1e-17.
    def tiny(t, y):
        return torch.full_like(y, 1e-17)

    y0, ts = torch.ones(1, 1), torch.tensor([0.0, 1000.0])
    kw = {"rtol": 1e-12, "atol": 1e-14, "dt0": 1.0, "dt_max": 1.0}
    plain = solve(tiny, y0, ts, "dop853", **kw).ys[0, -1, 0].item()
    kahan = solve(tiny, y0, ts, "dop853", compensated=True, **kw).ys[0, -1, 0].item()
    assert plain == 1.0
    assert kahan == pytest.approx(1.0 + 1e-14, abs=2e-16)


@pytest.mark.parametrize("method", ["rk4", "dopri5", "gl4", "verlet"])
def test_per_sample_irregular_grids_equal_a_loop_of_single_solves(method):
    hh = S.get_system("henon_heiles")
    f = S.vector_field(hh)
    y0 = hh.sample(5, seed=1)
    g = torch.Generator().manual_seed(0)
    ts = torch.sort(torch.rand(5, 7, generator=g) * 6, dim=1).values
    ts[:, 0] = torch.rand(5, generator=g) * 0.1  # each sample starts at its own time too
    kw = {"rtol": 1e-10, "atol": 1e-12} if get_method(method).adaptive else {"dt": 0.05}
    batched = solve(f, y0, ts, method, **kw)
    for i in range(5):
        single = solve(f, y0[i], ts[i], method, **kw)
        torch.testing.assert_close(batched.ys[i], single.ys, atol=1e-12, rtol=0)
        assert batched.stats["steps"][i] == single.stats["steps"]


def test_fixed_step_divides_each_interval_exactly():
    f = S.vector_field(S.get_system("harmonic_oscillator"))
    ts = torch.tensor([0.0, 1.0, 1.25, 3.0])
    sol = solve(f, torch.tensor([[1.0, 0.0]]), ts, "rk4", dt=0.1)
    assert int(sol.stats["steps"]) == 10 + 3 + 18


def test_backward_integration_inverts_the_forward_flow():
    f = S.vector_field(KEPLER)
    fwd = solve(f, Y0_KEPLER, torch.tensor([0.0, 2.0]), "dopri5", rtol=1e-11, atol=1e-13)
    back = solve(f, fwd.ys[:, -1], torch.tensor([2.0, 0.0]), "dopri5", rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(back.ys[:, -1], Y0_KEPLER, atol=1e-9, rtol=0)
    torch.testing.assert_close(back.ys[:, 0], fwd.ys[:, -1])
    vb = solve(f, fwd.ys[:, -1], torch.tensor([2.0, 0.0]), "verlet", dt=1e-3)
    torch.testing.assert_close(vb.ys[:, -1], Y0_KEPLER, atol=1e-5, rtol=0)


def test_batch_shapes_and_unbatched_inputs():
    f = S.vector_field(S.get_system("harmonic_oscillator"))
    ts = torch.linspace(0, 1, 5)
    assert solve(f, torch.tensor([1.0, 0.0]), ts, "rk4", dt=0.1).ys.shape == (5, 2)
    sol = solve(f, torch.ones(2, 3, 2), ts, "dopri5")
    assert sol.ys.shape == (2, 3, 5, 2) and sol.status.shape == (2, 3) and sol.stats["nfev"].shape == (2, 3)
    per = solve(f, torch.ones(2, 3, 2), ts.expand(2, 3, 5), "rk4", dt=0.1)
    torch.testing.assert_close(per.ys[1, 2], solve(f, torch.ones(2), ts, "rk4", dt=0.1).ys)


def test_float32_solves_keep_float32():
    f = S.vector_field(S.get_system("pendulum"))
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float32)
    for method in ("rk4", "dopri5", "gl4", "verlet"):
        kw = {"dt": 0.1} if not get_method(method).adaptive else {"rtol": 1e-5, "atol": 1e-7}
        sol = solve(f, y0, torch.linspace(0, 1, 3), method, **kw)
        assert sol.ys.dtype == torch.float32
