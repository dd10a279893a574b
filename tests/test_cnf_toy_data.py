"""Toy data sets: exact densities integrate to one, match their samplers and SciPy; registry errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from symflow.cnf import get_dataset, list_datasets
from symflow.integrators import InvalidArgumentError, UnknownNameError


def grid_integral(ds, lo, hi, n=300):
    axis = torch.linspace(lo, hi, n, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")
    p = ds.log_prob(torch.stack([gx, gy], -1)).exp()
    h = float(axis[1] - axis[0])
    return float(p.sum()) * h * h, p, h


@pytest.mark.parametrize("name", ["two_moons", "eight_gaussians"])
def test_two_dimensional_densities_integrate_to_one(name):
    ds = get_dataset(name)
    lo, hi = ds.bounds
    total, _, _ = grid_integral(ds, lo - 1, hi + 1)
    assert total == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("name", ["two_moons", "eight_gaussians"])
def test_sampler_and_density_agree_on_the_entropy(name):
    """−E_samples[log p] equals −∫ p log p on a grid when the sampler draws from that density."""
    ds = get_dataset(name)
    lo, hi = ds.bounds
    _, p, h = grid_integral(ds, lo - 1, hi + 1)
    entropy = -float((p * torch.log(p.clamp_min(1e-300))).sum()) * h * h
    x = ds.sample(20_000, seed=3)
    lp = ds.log_prob(x)
    se = float(lp.std()) / math.sqrt(x.shape[0])
    assert abs(float(-lp.mean()) - entropy) < 3 * se + 1e-3


def test_two_moons_density_is_wrong_if_the_noise_differs_from_the_sampler():
    """The entropy check above can fail: samples with 0.1 noise scored by a 0.05-noise density."""
    x = get_dataset("two_moons", noise=0.1).sample(5000, seed=0)
    sharp = get_dataset("two_moons", noise=0.05)
    _, p, h = grid_integral(sharp, -4.5, 4.5)
    entropy = -float((p * torch.log(p.clamp_min(1e-300))).sum()) * h * h
    assert float(-sharp.log_prob(x).mean()) - entropy > 0.3


def test_gaussian_mixture_log_density_matches_scipy():
    ds = get_dataset("gaussian_mixture", dim=16, components=4)
    x = ds.sample(50, seed=1)
    gen = torch.Generator().manual_seed(ds.params["layout_seed"])
    mu = ds.params["spread"] * torch.randn(4, 16, generator=gen, dtype=torch.float64)
    cov = ds.params["std"] ** 2 * np.eye(16)
    ref = np.log(np.mean([stats.multivariate_normal(m.numpy(), cov).pdf(x.numpy()) for m in mu], axis=0))
    np.testing.assert_allclose(ds.log_prob(x).numpy(), ref, rtol=1e-10, atol=1e-10)


def test_samples_are_reproducible_and_cast():
    ds = get_dataset("two_moons")
    a = ds.sample(100, seed=5)
    assert torch.equal(a, ds.sample(100, seed=5))
    assert not torch.equal(a, ds.sample(100, seed=6))
    assert ds.sample(10, seed=5, dtype=torch.float32).dtype == torch.float32


def test_registry_suggests_names_and_rejects_unknown_parameters():
    assert set(list_datasets()) == {"two_moons", "eight_gaussians", "gaussian_mixture"}
    with pytest.raises(UnknownNameError, match="two_moons"):
        get_dataset("two_moon")
    with pytest.raises(UnknownNameError, match="noise"):
        get_dataset("two_moons", noize=0.1)
    with pytest.raises(InvalidArgumentError, match="noise"):
        get_dataset("two_moons", noise=-1.0)
    assert get_dataset("8gaussians").name == "eight_gaussians"
