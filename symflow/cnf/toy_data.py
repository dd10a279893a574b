"""Density-estimation test sets generated in code, with exact log-densities.

* ``two_moons``: two interleaved half circles (the geometry of scikit-learn's ``make_moons``, centred
  and scaled by ``scale``), blurred by isotropic Gaussian noise. The density is a mixture over the
  arc parameter, ``p(x) = ½ Σ_± (1/π) ∫_0^π N(x; c_±(θ), σ² I) dθ``, evaluated by Gauss–Legendre
  quadrature in θ (the integrand is a bump of width ``σ/scale`` rad; the default 256 nodes, spaced
  0.012 rad, give it to about 1e-11).
* ``eight_gaussians``: eight isotropic Gaussians at the vertices of a regular octagon.
* ``gaussian_mixture``: a ``dim``-dimensional mixture of isotropic Gaussians whose means are drawn
  from a fixed ``layout_seed`` (so the *distribution* is fixed while ``seed`` picks samples).

Every data set is a :class:`ToyDataset` with ``sample(n, seed=...)`` and an exact ``log_prob``; the
registry (:func:`get_dataset`, :func:`list_datasets`) gives did-you-mean errors on unknown names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from symflow.integrators import InvalidArgumentError, Registry
from symflow.integrators.inputs import positive_float
from symflow.integrators.reprs import compact_repr

Tensor = torch.Tensor
F64 = torch.float64


@dataclass(frozen=True)
class ToyDataset:
    """A data distribution with a seeded sampler and its exact log-density.

    Attributes:
        name: registry name.
        dim: dimension ``D``.
        params: the parameter values it was built with.
        sampler: ``(n, generator) -> (n, D)`` float64 samples.
        density: ``x (..., D) -> log p(x)`` in float64.
        bounds: a square ``(low, high)`` that holds nearly all the mass (for plots).
    """

    name: str
    dim: int
    params: dict[str, Any]
    sampler: Callable[[int, torch.Generator], Tensor] = field(repr=False)
    density: Callable[[Tensor], Tensor] = field(repr=False)
    bounds: tuple[float, float] = (-4.0, 4.0)

    def sample(
        self,
        n: int,
        *,
        seed: int | torch.Generator = 0,
        dtype: torch.dtype = F64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """``n`` samples ``(n, D)``, reproducible from ``seed`` (drawn in float64 on the CPU, then cast)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError("n", n, "a positive integer number of samples")
        gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
        return self.sampler(n, gen).to(dtype=dtype, device=device)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)``, shape ``x.shape[:-1]`` (computed in float64, returned in ``x``'s dtype)."""
        if not isinstance(x, Tensor) or x.shape[-1:] != (self.dim,):
            raise InvalidArgumentError("x", x, f"a tensor of shape (..., {self.dim})")
        return self.density(x.to(F64)).to(x.dtype)

    def __repr__(self) -> str:
        return compact_repr(self, fields=("name", "dim", "params", "bounds"))


def _gaussian_mixture_log_prob(x: Tensor, means: Tensor, std: float) -> Tensor:
    """``log (1/K) Σ_k N(x; m_k, std² I)``."""
    d = x.shape[-1]
    sq = (x.unsqueeze(-2) - means.to(x)).pow(2).sum(-1)  # (..., K)
    log_norm = -0.5 * d * math.log(2 * math.pi * std**2)
    return torch.logsumexp(-0.5 * sq / std**2, dim=-1) + log_norm - math.log(means.shape[0])


def _mixture_sampler(means: Tensor, std: float) -> Callable[[int, torch.Generator], Tensor]:
    def sample(n: int, gen: torch.Generator) -> Tensor:
        k = torch.randint(0, means.shape[0], (n,), generator=gen)
        return means[k] + std * torch.randn(n, means.shape[1], generator=gen, dtype=F64)

    return sample


# --- two moons ------------------------------------------------------------------------------------


def two_moons(noise: float = 0.1, scale: float = 2.0, nodes: int = 256) -> ToyDataset:
    """Two interleaved moons; ``noise`` is the Gaussian blur in units of the arc radius."""
    noise = positive_float("noise", noise)
    scale = positive_float("scale", scale)
    sigma = noise * scale
    centre = torch.tensor([0.5, 0.25], dtype=F64)

    def arc(theta: Tensor) -> Tensor:  # upper moon; the lower one is its mirror image -arc
        return scale * (torch.stack([torch.cos(theta), torch.sin(theta)], -1) - centre)

    def sample(n: int, gen: torch.Generator) -> Tensor:
        theta = math.pi * torch.rand(n, generator=gen, dtype=F64)
        sign = 1.0 - 2.0 * torch.randint(0, 2, (n,), generator=gen).to(F64)
        return sign[:, None] * arc(theta) + sigma * torch.randn(n, 2, generator=gen, dtype=F64)

    u, w = np.polynomial.legendre.leggauss(nodes)
    theta = torch.as_tensor(0.5 * math.pi * (u + 1), dtype=F64)
    log_w = torch.log(torch.as_tensor(0.5 * w, dtype=F64))  # (1/π)∫_0^π dθ = ½∫_{-1}^{1} du
    points = torch.cat([arc(theta), -arc(theta)])  # (2K, 2)
    log_weights = torch.cat([log_w, log_w]) - math.log(2.0)

    def density(x: Tensor) -> Tensor:
        out = []
        flat = x.reshape(-1, 2)
        for chunk in flat.split(4096):
            sq = (chunk.unsqueeze(-2) - points).pow(2).sum(-1)
            out.append(torch.logsumexp(log_weights - 0.5 * sq / sigma**2, dim=-1))
        log_norm = -math.log(2 * math.pi * sigma**2)
        return torch.cat(out).reshape(x.shape[:-1]) + log_norm

    return ToyDataset(
        "two_moons",
        2,
        {"noise": noise, "scale": scale, "nodes": nodes},
        sample,
        density,
        bounds=(-1.75 * scale, 1.75 * scale),
    )


# --- eight Gaussians ------------------------------------------------------------------------------


def eight_gaussians(radius: float = 2.0, std: float = 0.25) -> ToyDataset:
    """Eight isotropic Gaussians (standard deviation ``std``) on a circle of ``radius``."""
    radius = positive_float("radius", radius)
    std = positive_float("std", std)
    angles = torch.arange(8, dtype=F64) * (2 * math.pi / 8)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], -1)
    return ToyDataset(
        "eight_gaussians",
        2,
        {"radius": radius, "std": std},
        _mixture_sampler(means, std),
        lambda x: _gaussian_mixture_log_prob(x, means, std),
        bounds=(-(radius + 4 * std), radius + 4 * std),
    )


# --- D-dimensional Gaussian mixture -------------------------------------------------------------------


def gaussian_mixture(
    dim: int = 16, components: int = 4, spread: float = 1.0, std: float = 0.5, layout_seed: int = 0
) -> ToyDataset:
    """``components`` isotropic Gaussians in ``dim`` dimensions, means ``~ N(0, spread² I)``.

    The means are drawn once from ``layout_seed``; ``std`` is every component's standard deviation.
    """
    for name, value in (("dim", dim), ("components", components)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(name, value, "a positive integer")
    spread = positive_float("spread", spread, allow_zero=True)
    std = positive_float("std", std)
    gen = torch.Generator().manual_seed(int(layout_seed))
    means = spread * torch.randn(components, dim, generator=gen, dtype=F64)
    reach = float(means.abs().max()) + 4 * std
    return ToyDataset(
        "gaussian_mixture",
        dim,
        {"dim": dim, "components": components, "spread": spread, "std": std, "layout_seed": layout_seed},
        _mixture_sampler(means, std),
        lambda x: _gaussian_mixture_log_prob(x, means, std),
        bounds=(-reach, reach),
    )


DATASETS: Registry[Callable[..., ToyDataset]] = Registry("toy data set")
DATASETS.register("two_moons", two_moons, aliases=("moons",))
DATASETS.register("eight_gaussians", eight_gaussians, aliases=("8gaussians", "8_gaussians"))
DATASETS.register("gaussian_mixture", gaussian_mixture, aliases=("mixture", "gmm"))


def get_dataset(name: str, **params: Any) -> ToyDataset:
    """Build a registered data set: ``get_dataset("two_moons", noise=0.05)``.

    Unknown names and unknown parameters raise with did-you-mean suggestions.
    """
    import inspect

    builder = DATASETS.get(name)
    known: Registry[None] = Registry(f"parameter of {DATASETS.canonical(name)}")
    for pname in inspect.signature(builder).parameters:
        known.register(pname, None)
    for key in params:
        known.get(key)
    return builder(**params)


def list_datasets() -> list[str]:
    """Names of the registered toy data sets (two moons, 8 Gaussians, the 16-D Gaussian mixture, …)."""
    return DATASETS.names()
