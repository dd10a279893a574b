"""Liouville transport of phase-space densities, canonical ensembles and learning their density."""

from __future__ import annotations

import math

import pytest
import torch

import symflow.systems as S
from symflow.cnf import (
    canonical_ensemble,
    density_error,
    fit_phase_space_density,
    flow_log_det,
    gaussian_ensemble,
    liouville_check,
    simulate_thermal_ensemble,
    transport_density,
)
from symflow.integrators import CapabilityError, InvalidArgumentError


@pytest.mark.parametrize("system", ["henon_heiles", "charged_particle"])
def test_hamiltonian_flow_keeps_the_log_density_constant_along_trajectories(system):
    """Hénon–Heiles (separable, chaotic) and a charged particle (non-separable, exact flow)."""
    report = liouville_check(system, samples=16, time=1.0, jacobian_samples=4)
    assert report.log_density_change <= 1e-10
    assert report.log_det_jacobian <= 1e-7  # volume preservation by autodiff through the solver
    assert report.consistency <= 1e-7
    if system == "charged_particle":
        assert report.flow_error < 1e-8
    assert report.transport.log_density.shape == (16, 2)


def test_transported_gaussian_matches_the_analytic_density_of_the_harmonic_oscillator():
    """p_t(x) = N(x; M m, M Σ Mᵀ) with M = exp(tJS), evaluated at arbitrary points by backward transport."""
    ho = S.get_system("harmonic_oscillator", omega=1.3, mass=0.7)
    m = torch.tensor([0.8, -0.3])
    cov = torch.tensor([[0.2, 0.05], [0.05, 0.1]])
    p0 = torch.distributions.MultivariateNormal(m, cov)
    t = 2.0
    basis = torch.eye(2)
    mt = torch.stack([ho.flow(torch.tensor(t), e) for e in basis], -1)  # columns φ_t(e_i)
    pt = torch.distributions.MultivariateNormal(mt @ m, mt @ cov @ mt.T)
    x = mt @ m + 0.5 * torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    back = transport_density(ho, x, torch.zeros(32), torch.tensor([t, 0.0]))
    # log p_t(x) = log p_0(φ_{-t}(x)) − (ℓ(0) − ℓ(t)) with ℓ the integrated −divergence.
    logp = p0.log_prob(back.ys[:, -1]) - back.log_density_change[:, -1]
    assert float((logp - pt.log_prob(x)).abs().max()) < 1e-8


def test_a_damped_field_changes_the_log_density_by_gamma_n_t():
    """The check can fail: friction dp/dt = −∂H/∂q − γp has divergence −γn, so log ρ grows by γnt."""
    hh = S.get_system("henon_heiles")
    f = S.vector_field(hh)
    gamma, t = 0.3, 1.5

    def damped(tt, y):
        out = f(tt, y)
        return torch.cat([out[..., :2], out[..., 2:] - gamma * y[..., 2:]], -1)

    y0, lp0 = gaussian_ensemble(hh.sample(1, seed=0, energy=0.1)[0], 0.02, 8)
    tr = transport_density(damped, y0, lp0, torch.tensor([0.0, t]))
    torch.testing.assert_close(
        tr.log_density_change[:, -1], torch.full((8,), gamma * 2 * t), rtol=0, atol=1e-10
    )
    logdet = flow_log_det(damped, y0[:2], t, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(logdet, torch.full((2,), -gamma * 2 * t), rtol=0, atol=1e-7)


def test_canonical_ensemble_is_gaussian_with_equipartition_and_stationary_under_the_flow():
    temperature = 0.7
    ens = canonical_ensemble("coupled_oscillators", temperature)
    d = ens.system.dim
    y = ens.sample(20_000, seed=1)
    energy = ens.system.energy(y)
    # Equipartition: ⟨H⟩ = (D/2) T for a quadratic Hamiltonian.
    se = float(energy.std()) / math.sqrt(y.shape[0])
    assert abs(float(energy.mean()) - 0.5 * d * temperature) < 3 * se
    # The density is exp(−H/T)/Z: log ρ + H/T is the same constant everywhere.
    offset = ens.log_density(y[:100]) + ens.system.energy(y[:100]) / temperature
    assert float(offset.max() - offset.min()) < 1e-10
    # Evolved by the flow, the snapshots keep the canonical energy distribution.
    states, _ = simulate_thermal_ensemble(
        "coupled_oscillators", 2000, temperature, t_max=3.0, snapshots=2, seed=2
    )
    e_late = ens.system.energy(states[2000:])
    assert abs(float(e_late.mean()) - 0.5 * d * temperature) < 3 * float(e_late.std()) / math.sqrt(2000)


def test_canonical_ensemble_refuses_non_quadratic_or_unbounded_hamiltonians():
    with pytest.raises(CapabilityError, match="non-quadratic"):
        canonical_ensemble("henon_heiles", 0.1)
    with pytest.raises(InvalidArgumentError, match="temperature"):
        canonical_ensemble("harmonic_oscillator", -1.0)


def test_fitted_phase_space_density_approaches_the_canonical_one():
    """A correlated 4-D thermal ensemble (two coupled oscillators), learnt by flow matching."""
    states, ens = simulate_thermal_ensemble("coupled_oscillators", 3000, 0.5, t_max=2.0, snapshots=2, seed=0)
    kl = {}
    for steps in (1, 1500):
        fit = fit_phase_space_density(states, steps=steps, batch_size=512, hidden=(64, 64), progress=False)
        err = density_error(fit.cnf, fit.held_out, ens.log_density)
        kl[steps] = err["kl"]
    assert kl[1] > 0.3  # an untrained flow is far off ...
    assert kl[1500] < 0.1, kl  # ... a trained one is close (KL in nats, on held-out states)
    exact_nll = float(-ens.log_density(fit.held_out.double()).mean())
    assert fit.held_out_nll == pytest.approx(exact_nll + kl[1500], abs=1e-4)


def test_fit_rejects_bad_states():
    with pytest.raises(InvalidArgumentError, match="states"):
        fit_phase_space_density(torch.randn(5, 2), steps=1, progress=False)
    bad = torch.randn(50, 2)
    bad[7, 1] = float("nan")
    with pytest.raises(InvalidArgumentError, match="row 7"):
        fit_phase_space_density(bad, steps=1, progress=False)
