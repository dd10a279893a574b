"""The time-dependent Hamiltonian whose exact flow a SympFlow is.

Each block of a SympFlow is the exact time-``t`` flow (from time 0) of a time-dependent
Hamiltonian (seed 004, "Properties of SympFlow"):

    φ^i_{q,t} = flow of  H_{2i−1}(t, q, p) = ∂_t K^i(t, p),
    φ^i_{p,t} = flow of  H_{2i}(t, q, p)   = ∂_t V^i(t, q),

since ``d/dt [∇_p K(t, p) − ∇_p K(0, p)] = ∇_p ∂_t K(t, p)`` with ``p`` constant (and likewise
for ``V``). For a composition ``N_t = ψ_m,t ∘ … ∘ ψ_1,t`` of such flows,

    d/dt N_t(x0) = Σ_k Dψ_m,t ⋯ Dψ_{k+1},t · X_{H_k}(t, ψ_k,t ∘ … ∘ ψ_1,t(x0)),

and a symplectic map ``S`` pushes a Hamiltonian field forward to the Hamiltonian field of the
transported Hamiltonian, ``S_* X_H = X_{H ∘ S^{-1}}`` (because ``DS J DSᵀ = J``; Hairer, Lubich &
Wanner, *Geometric Numerical Integration*, 2nd ed. (2006), §VI.2). Hence ``N_t`` is the exact flow of

    H̃(t, y) = Σ_{k=1}^{m} H_k(t, ψ_{k+1,t}^{-1} ∘ … ∘ ψ_{m,t}^{-1}(y)),

evaluated by walking the blocks backwards from ``y``: add the last block's Hamiltonian at the
current point, undo that block (each shear inverts explicitly), and repeat. ``H̃`` is defined up to
an additive function of ``t`` only. The test suite integrates ``dy/dt = J∇_y H̃(t, y)`` with a
tight-tolerance :func:`~symflow.integrators.solve` and recovers ``N(t, x0)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import grad, jvp

from symflow.integrators.errors import InvalidArgumentError

from .networks import IncrementMLP
from .sympflow import SympFlow

Tensor = torch.Tensor


def _time_partial(net: IncrementMLP, t: Tensor, x: Tensor, how: str) -> Tensor:
    """``∂_t U(t, x) = ∂_t ΔU(t, x)`` per sample: ``torch.func.jvp`` in ``t``, or the closed form."""
    if how == "func":
        return jvp(lambda s: net(s, x), (t,), (torch.ones_like(t),))[1]
    return net.time_partial(t, x)


def _gradient(net: IncrementMLP, t: Tensor, x: Tensor, how: str) -> Tensor:
    return net.gradient(t, x) if how == "func" else net.closed_form_gradient(t, x)


def recovered_hamiltonian(model: SympFlow, t: Tensor | float, y: Tensor) -> Tensor:
    """``H̃(t, y)`` for a :class:`SympFlow`, shape ``broadcast(t.shape, y.shape[:-1])``.

    Derivatives of the potentials follow ``model.derivatives``: ``torch.func`` for ``"func"``, the
    closed forms otherwise (``"autograd"`` has no advantage here; both are checked in the tests).
    """
    if not isinstance(model, SympFlow):
        raise InvalidArgumentError("model", model, "a SympFlow (only it is an exact Hamiltonian flow)")
    y = model._check_state(y, "y")
    t, y = model._broadcast_time(t, y)
    n = model.dof
    q, p = y[..., :n], y[..., n:]
    how = "func" if model.derivatives == "func" else "closed_form"
    total = torch.zeros_like(t)
    for K, V in zip(reversed(model.kinetic), reversed(model.potential)):
        total = total + _time_partial(V, t, q, how)
        p = p + _gradient(V, t, q, how)  # undo φ_p
        total = total + _time_partial(K, t, p, how)
        q = q - _gradient(K, t, p, how)  # undo φ_q
    return total


def recovered_vector_field(model: SympFlow):
    """``f(t, y) = J∇_y H̃(t, y)``, a time-dependent field in the integrators' ``f(t, y)`` convention."""

    def field(t: Tensor, y: Tensor) -> Tensor:
        g = grad(lambda z: recovered_hamiltonian(model, t, z).sum())(y)
        n = model.dof
        return torch.cat([g[..., n:], -g[..., :n]], dim=-1)

    return field


def gauss_legendre(nodes: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Nodes and weights of the ``nodes``-point Gauss–Legendre rule on ``[0, 1]`` (order ``2·nodes``)."""
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise InvalidArgumentError("nodes", nodes, "a positive integer")
    x, w = np.polynomial.legendre.leggauss(nodes)
    return (  # host constants (callers move them)
        torch.as_tensor((x + 1) / 2, dtype=dtype, device="cpu"),
        torch.as_tensor(w / 2, dtype=dtype, device="cpu"),
    )


def time_averaged_hamiltonian(model: SympFlow, y: Tensor, *, nodes: int = 8) -> Tensor:
    """``(1/Δt) ∫_0^Δt H̃(s, y) ds`` by Gauss–Legendre quadrature, shape ``y.shape[:-1]``."""
    c, w = gauss_legendre(nodes, y.dtype)
    total = torch.zeros(y.shape[:-1], dtype=y.dtype, device=y.device)
    for ci, wi in zip(c.tolist(), w.tolist()):
        total = total + wi * recovered_hamiltonian(model, ci * model.dt, y)
    return total
