"""Exact flows: linear (quadratic Hamiltonians) and Kepler.

**Quadratic H.** For ``H(y) = ½ yᵀ S y`` the field is linear, ``dy/dt = J S y``, so
``φ_t(y0) = exp(t J S) y0`` (matrix exponential, batched over ``t``).

**Kepler** (``H = |p|²/2 − μ/|q|``, bound orbits). With ``r0 = |q0|``, ``σ0 = q0·p0/√μ``,
``α = 1/a = 2/r0 − |p0|²/μ`` and mean motion ``n = √(μα³)``, the change of eccentric anomaly ``x``
solves Kepler's equation

    n t = x − (1 − r0 α) sin x + σ0 √α (1 − cos x),

and the state follows from the Lagrange coefficients ``f, g, ḟ, ġ`` (Danby, *Fundamentals of
Celestial Mechanics*, 2nd ed., §6.8): ``q = f q0 + g p0``, ``p = ḟ q0 + ġ p0``. Unbound orbits
(``α ≤ 0``) give NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Tensor = torch.Tensor


def _broadcast(t: Tensor, y0: Tensor) -> tuple[Tensor, Tensor]:
    batch = torch.broadcast_shapes(t.shape, y0.shape[:-1])
    return t.expand(batch), y0.expand(*batch, y0.shape[-1])


def linear_flow(hessian: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """Exact flow of ``H = ½ yᵀ S y`` given the (symmetric) Hessian ``S``, shape ``(D, D)``."""
    d = hessian.shape[-1]
    n = d // 2
    j = torch.zeros(d, d, dtype=torch.float64)
    j[:n, n:] = torch.eye(n, dtype=torch.float64)
    j[n:, :n] = -torch.eye(n, dtype=torch.float64)
    generator = j @ hessian.to(torch.float64)

    def flow(t: Tensor, y0: Tensor) -> Tensor:
        t, y0 = _broadcast(t, y0)
        a = generator.to(dtype=y0.dtype, device=y0.device)
        m = torch.linalg.matrix_exp(t[..., None, None] * a)
        return (m @ y0[..., None])[..., 0]

    return flow


def kepler_flow(mu: float, iterations: int = 60) -> Callable[[Tensor, Tensor], Tensor]:
    """Exact flow of the planar Kepler problem with gravitational parameter ``mu`` (bound orbits)."""
    sqrt_mu = math.sqrt(mu)

    def flow(t: Tensor, y0: Tensor) -> Tensor:
        t, y0 = _broadcast(t, y0)
        q0, p0 = y0[..., :2], y0[..., 2:]
        r0 = q0.norm(dim=-1)
        v2 = (p0 * p0).sum(-1)
        sigma0 = (q0 * p0).sum(-1) / sqrt_mu
        alpha = 2.0 / r0 - v2 / mu
        bound = alpha > 0
        alpha = torch.where(bound, alpha, torch.ones_like(alpha))  # keep the math finite, NaN later
        sqrt_a = torch.sqrt(alpha)
        n = sqrt_mu * alpha * sqrt_a
        ecos = 1.0 - r0 * alpha  # e cos E0
        esin = sigma0 * sqrt_a  # e sin E0

        # Solve F(x) = x - ecos sin x + esin (1 - cos x) - M = 0 by safeguarded Newton on detached
        # values (F is increasing: F' = r/a > 0), full periods removed first.
        mean = (n * t).detach()
        turns = torch.floor(mean / (2 * math.pi))
        m = mean - 2 * math.pi * turns
        ec, es = ecos.detach(), esin.detach()
        x = m.clone()
        lo, hi = m - 3.0, m + 3.0
        for _ in range(iterations):
            fx = x - ec * torch.sin(x) + es * (1 - torch.cos(x)) - m
            lo = torch.where(fx < 0, x, lo)
            hi = torch.where(fx >= 0, x, hi)
            step = fx / (1 - ec * torch.cos(x) + es * torch.sin(x))
            x_new = x - step
            x = torch.where((x_new > lo) & (x_new < hi), x_new, 0.5 * (lo + hi))
        x = x + 2 * math.pi * turns
        # One Newton step with the graph attached gives the implicit-function derivative in t, q0, p0.
        fx = x - ecos * torch.sin(x) + esin * (1 - torch.cos(x)) - n * t
        x = x - fx / (1 - ecos * torch.cos(x) + esin * torch.sin(x))

        a = 1.0 / alpha
        c, s = torch.cos(x), torch.sin(x)
        r = a + (r0 - a) * c + sigma0 * torch.sqrt(a) * s
        f = 1 - a / r0 * (1 - c)
        g = t + (s - x) / n
        fdot = -torch.sqrt(mu * a) * s / (r * r0)
        gdot = 1 - a / r * (1 - c)
        q = f[..., None] * q0 + g[..., None] * p0
        p = fdot[..., None] * q0 + gdot[..., None] * p0
        y = torch.cat([q, p], dim=-1)
        return torch.where(bound[..., None], y, torch.full_like(y, float("nan")))

    return flow
