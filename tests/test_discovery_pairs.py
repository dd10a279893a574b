"""The pair objective (one-step error of every consecutive pair of observations), against exact flows."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import symflow.systems as S
from symflow.discovery import AugmentedNeuralODE, HamiltonianNN
from symflow.discovery.pairs import PairObjective, data_rate
from symflow.integrators import solve


class Exact(torch.nn.Module):
    """A registered system's true field as a module."""

    def __init__(self, system) -> None:
        super().__init__()
        self.f = S.vector_field(system)

    def forward(self, t, y):
        return self.f(t, y)


def _irregular(system, n: int, t_end: float, obs: int, seed: int, noise: float = 0.0):
    gen = torch.Generator().manual_seed(seed)
    ts = torch.sort(torch.rand(n, obs, generator=gen, dtype=torch.float64) * t_end, dim=1).values
    ts[:, 0] = 0.0
    y0 = system.sample(n, seed=seed)
    ys = solve(S.vector_field(system), y0, ts, "dopri5", rtol=1e-11, atol=1e-13).ys
    ys = ys + noise * torch.randn(ys.shape, generator=gen, dtype=torch.float64)
    return ts, ys, torch.ones(n, obs, dtype=torch.bool)


def test_hermite_simpson_defect_of_the_exact_flow_is_fifth_order_in_the_gap():
    osc = S.get_system("harmonic_oscillator", n=1, omega=1.0)
    y0 = osc.sample(8, seed=0)
    losses = []
    for h in (0.4, 0.2, 0.1):
        ts = torch.tensor([0.0, h], dtype=torch.float64).expand(8, 2)
        ys = torch.stack([y0, osc.flow(h, y0)], dim=1)  # the exact flow at both times
        obj = PairObjective(Exact(osc), ts, ys, torch.ones(8, 2, dtype=torch.bool), collocation_gap=1.0)
        assert obj.collocation_pairs == 8 and obj.shot_pairs == 0
        losses.append(float(obj()))
    rates = [math.log2(math.sqrt(a / b)) for a, b in itertools.pairwise(losses)]
    assert all(4.8 < r < 5.2 for r in rates), rates  # local error O(h^5)


@pytest.mark.parametrize("gap", [None, 0.0])
def test_the_true_field_on_noisy_data_scores_the_noise_floor(gap):
    """Shots only, or the automatic split: with the true field the residual is the propagated
    noise alone, σ²(1 + ‖∂Φ/∂y‖²/D) ≈ 2σ² per component (the flow map of a Hamiltonian system has
    ‖∂Φ/∂y‖²_F ≈ D for short gaps)."""
    hh = S.get_system("henon_heiles")
    sigma = 1e-3
    ts, ys, mask = _irregular(hh, 24, 10.0, 25, seed=1, noise=sigma)
    obj = PairObjective(Exact(hh), ts, ys, mask, collocation_gap=gap)
    assert obj.pairs == 24 * 24
    assert 1.8 * sigma**2 < float(obj()) < 2.3 * sigma**2
    clean = PairObjective(Exact(hh), *_irregular(hh, 24, 10.0, 25, seed=1)[:3], collocation_gap=gap)
    assert float(clean()) < 1e-2 * sigma**2  # the integration bias is far below the noise


def test_a_time_dependent_field_is_evaluated_at_the_right_times():
    """``dy/dt = (cos t, −sin t)`` has the exact solution ``(sin t, cos t) + c``: any wrong time in the
    collocation nodes, the midpoint or the RK4 stages shows in the residual."""

    class Forced(torch.nn.Module):
        def forward(self, t, y):
            t = torch.as_tensor(t, dtype=y.dtype).expand(y.shape[:-1])
            return torch.stack([torch.cos(t), -torch.sin(t)], dim=-1)

    gen = torch.Generator().manual_seed(2)
    ts = torch.sort(torch.rand(6, 12, generator=gen, dtype=torch.float64) * 8, dim=1).values
    ys = torch.stack([torch.sin(ts), torch.cos(ts)], dim=-1) + torch.randn(6, 1, 2, dtype=torch.float64)
    mask = torch.ones(6, 12, dtype=torch.bool)
    for gap in (0.0, 0.5):  # shots only; Simpson on gaps up to 0.5 (error h⁵/2880), shots above
        obj = PairObjective(Forced(), ts, ys, mask, collocation_gap=gap, shot_dt=0.05)
        assert float(obj()) < 1e-9, gap


def test_padding_is_never_paired_and_the_integration_check_reports_small_changes():
    hh = S.get_system("henon_heiles")
    ts, ys, mask = _irregular(hh, 4, 6.0, 10, seed=3)
    mask[1, 7:] = False
    ts[1, 7:] = math.nan
    ys[1, 7:] = math.nan
    obj = PairObjective(Exact(hh), ts, ys, mask)
    assert obj.pairs == 4 * 9 - 3
    check = obj.integration_check()
    assert math.isfinite(check["loss"]) and check["fine_loss"] < 1e-12
    info = obj.describe()
    assert info["collocation_pairs"] + info["shot_pairs"] == info["pairs"]


def test_data_rate_recovers_the_frequency_of_an_oscillator():
    for omega in (0.5, 2.0, 10.0):
        osc = S.get_system("harmonic_oscillator", n=2, omega=omega)
        gen = torch.Generator().manual_seed(4)
        ts = torch.sort(torch.rand(16, 60, generator=gen, dtype=torch.float64) * 40 / omega, dim=1).values
        y0 = osc.sample(16, seed=4)
        ys = torch.stack([osc.flow(ts[:, j], y0) for j in range(60)], dim=1)
        assert data_rate(ts, ys, torch.ones(16, 60, dtype=torch.bool)) == pytest.approx(omega, rel=0.1)


def test_gradients_reach_every_parameter_and_an_augmented_model_is_shot():
    hh = S.get_system("henon_heiles")
    ts, ys, mask = _irregular(hh, 4, 6.0, 10, seed=5, noise=1e-3)
    torch.manual_seed(0)
    hnn = HamiltonianNN(4, width=8, gradient="explicit").double()
    PairObjective(hnn, ts, ys, mask)().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in hnn.net[:-1].parameters())
    anode = AugmentedNeuralODE(4, 2, width=8, lift="linear", projection="linear").double()
    obj = PairObjective(anode, ts, ys, mask)
    assert obj.collocation_pairs == 0 and obj.shot_pairs == obj.pairs
    obj().backward()
    assert anode.lift_map.weight.grad is not None and anode.project_map.weight.grad is not None
