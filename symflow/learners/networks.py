"""Small tanh networks used by the learners.

:class:`MLP` is a plain multilayer perceptron (the PINN's ``Ñ``). :class:`IncrementMLP` evaluates
the *time increment* of a network potential,

    ΔU(t, x) = U(t, x) − U(0, x),    U = ℓ_{m+1} ∘ σ ∘ ℓ_m ∘ … ∘ σ ∘ ℓ_1([x; t]),

which is what a SympFlow block needs (``∇_p K(t, p) − ∇_p K(0, p)``, Canizares et al. 2024). It
carries the ``t = 0`` activations and the increments side by side: every layer is evaluated as
``z_t = z_0 + W (h_t − h_0)``, so at ``t = 0`` the increments are exact zeros, ``ΔU(0, x)`` and its
``x``-gradient are exactly ``0`` in floating point, and a SympFlow is *exactly* the identity at
``t = 0``. (Evaluating ``U(t, x)`` and ``U(0, x)`` separately does not achieve that: BLAS kernels
round differently depending on memory alignment, so two evaluations of the same row can differ in
the last bit.) The output bias of ``ℓ_{m+1}`` cancels in the difference and is omitted.

:meth:`IncrementMLP.gradient_and_tangent` is a hand-derived forward-mode evaluation of
``∇_x ΔU`` and of its total time derivative along a path ``(t, x(t))``; the test suite checks it
against ``torch.func.grad`` and ``torch.func.jvp``.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad

from symflow.integrators.errors import InvalidArgumentError

Tensor = torch.Tensor


def _check_layout(width: int, hidden_layers: int) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise InvalidArgumentError("width", width, "a positive integer number of hidden units")
    if isinstance(hidden_layers, bool) or not isinstance(hidden_layers, int) or hidden_layers < 1:
        raise InvalidArgumentError("hidden_layers", hidden_layers, "a positive integer")


class MLP(nn.Module):
    """``ℓ_{m+1} ∘ tanh ∘ ℓ_m ∘ … ∘ tanh ∘ ℓ_1`` with ``m = hidden_layers`` hidden layers of ``width``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        width: int,
        hidden_layers: int = 2,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        _check_layout(width, hidden_layers)
        kw = {"dtype": dtype, "device": device}
        sizes = [in_features] + [width] * hidden_layers
        self.hidden = nn.ModuleList(nn.Linear(a, b, **kw) for a, b in itertools.pairwise(sizes))
        self.out = nn.Linear(width, out_features, **kw)

    def forward(self, z: Tensor) -> Tensor:
        for layer in self.hidden:
            z = torch.tanh(layer(z))
        return self.out(z)


class IncrementMLP(nn.Module):
    """``ΔU(t, x) = U(t, x) − U(0, x)`` for a tanh MLP ``U`` of ``[x; t]``, exact zero at ``t = 0``.

    Args:
        in_features: dimension of ``x`` (the network input is ``[x; t]``, one more).
        out_features: ``1`` for a scalar potential (``forward`` then returns shape ``(...)``), or the
            dimension of a vector output (shape ``(..., out_features)``).
        width, hidden_layers: the hidden layers ``ℓ_1 … ℓ_m`` (the slides' SympFlow potentials use
            two hidden layers).

    ``t`` is a tensor broadcastable to the batch shape ``x.shape[:-1]`` (a scalar, or one time per
    sample).

    With ``conditions=c > 0`` the network is ``U(t, x; μ)`` of ``[x; μ; t]`` with ``c`` parameters
    ``μ`` (shape ``(..., c)``, passed as ``mu=``): a parametric potential. Gradients are taken with
    respect to ``x`` only, so for every fixed ``μ`` the SympFlow shears built from it stay exactly
    symplectic in ``x``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int = 1,
        *,
        width: int,
        hidden_layers: int = 2,
        conditions: int = 0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        _check_layout(width, hidden_layers)
        if isinstance(conditions, bool) or not isinstance(conditions, int) or conditions < 0:
            raise InvalidArgumentError("conditions", conditions, "a non-negative number of parameters")
        kw = {"dtype": dtype, "device": device}
        self.in_features = in_features
        self.out_features = out_features
        self.conditions = conditions
        # input [x; μ; t]: the first in_features columns multiply x, the next `conditions` μ, the last t
        self.first = nn.Linear(in_features + conditions + 1, width, **kw)
        self.hidden = nn.ModuleList(nn.Linear(width, width, **kw) for _ in range(hidden_layers - 1))
        bound = 1.0 / math.sqrt(width)  # nn.Linear's default initialisation of the output layer
        self.out_weight = nn.Parameter(torch.empty(out_features, width, **kw).uniform_(-bound, bound))

    # -- evaluation ---------------------------------------------------------------------------------
    def _pre(self, t: Tensor, x: Tensor, mu: Tensor | None = None) -> tuple[Tensor, Tensor]:
        w = self.first.weight
        z0 = F.linear(x, w[:, : self.in_features], self.first.bias)
        if self.conditions:
            if mu is None:
                raise InvalidArgumentError(
                    "mu", None, f"{self.conditions} parameters for a parametric potential"
                )
            z0 = z0 + F.linear(mu, w[:, self.in_features : -1])
        zt = z0 + t.unsqueeze(-1) * w[:, -1]
        return z0, zt

    def forward(self, t: Tensor, x: Tensor, mu: Tensor | None = None) -> Tensor:
        z0, zt = self._pre(t, x, mu)
        h0, ht = torch.tanh(z0), torch.tanh(zt)
        for layer in self.hidden:
            z0 = layer(h0)
            zt = z0 + F.linear(ht - h0, layer.weight)
            h0, ht = torch.tanh(z0), torch.tanh(zt)
        out = F.linear(ht - h0, self.out_weight)
        return out.squeeze(-1) if self.out_features == 1 else out

    def gradient(self, t: Tensor, x: Tensor, mu: Tensor | None = None) -> Tensor:
        """``∇_x ΔU(t, x)`` with ``torch.func.grad`` (samples are independent: grad of the sum)."""
        self._require_scalar()
        return grad(lambda u: self(t, u, mu).sum())(x)

    def gradient_autograd(self, t: Tensor, x: Tensor, mu: Tensor | None = None) -> Tensor:
        """``∇_x ΔU(t, x)`` with ``torch.autograd.grad(create_graph=True)`` (the classic PINN way)."""
        self._require_scalar()
        with torch.enable_grad():
            u = x if x.requires_grad else x.detach().requires_grad_()
            (g,) = torch.autograd.grad(self(t, u, mu).sum(), u, create_graph=True)
        return g

    def closed_form_gradient(self, t: Tensor, x: Tensor, mu: Tensor | None = None) -> Tensor:
        """``∇_x ΔU(t, x)`` by hand-written back-propagation in increment form (exact zero at t = 0)."""
        self._require_scalar()
        z0, zt = self._pre(t, x, mu)
        h0, ht = torch.tanh(z0), torch.tanh(zt)
        slopes = [(1 - h0 * h0, 1 - ht * ht)]
        for layer in self.hidden:
            z0 = layer(h0)
            zt = z0 + F.linear(ht - h0, layer.weight)
            h0, ht = torch.tanh(z0), torch.tanh(zt)
            slopes.append((1 - h0 * h0, 1 - ht * ht))
        rho0 = rhot = self.out_weight[0]
        for k in range(len(slopes) - 1, 0, -1):
            s0, st = slopes[k]
            d0, d1 = s0 * rho0, st * rhot
            W = self.hidden[k - 1].weight
            rho0 = d0 @ W
            rhot = rho0 + (d1 - d0) @ W
        s0, st = slopes[0]
        return (st * rhot - s0 * rho0) @ self.first.weight[:, : self.in_features]

    def time_partial(self, t: Tensor, x: Tensor, mu: Tensor | None = None) -> Tensor:
        """``∂_t ΔU(t, x) = ∂_t U(t, x)`` in closed form (forward mode in ``t`` with ``x`` fixed)."""
        _, zt = self._pre(t, x, mu)
        ht = torch.tanh(zt)
        hdot = (1 - ht * ht) * self.first.weight[:, -1]
        for layer in self.hidden:
            zt = layer(ht)
            ht = torch.tanh(zt)
            hdot = (1 - ht * ht) * F.linear(hdot, layer.weight)
        out = F.linear(hdot, self.out_weight)
        return out.squeeze(-1) if self.out_features == 1 else out

    def gradient_and_tangent(
        self, t: Tensor, x: Tensor, x_dot: Tensor | None, mu: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``g = ∇_x ΔU(t, x)`` and ``ġ = d/dt g(t, x(t))`` for ``dx/dt = x_dot``, in closed form.

        Forward mode by hand through the tanh network (``σ' = 1 − h²``, ``(σ')˙ = −2 h σ' ż``):
        every layer carries the ``t = 0`` branch, the time branch as an increment, and their time
        tangents; the gradient is back-propagated in the same increment form, so ``g`` is an exact
        zero at ``t = 0`` (``ġ`` is not: it is ``∂_t ∇_x U(0, x)`` plus the Hessian term).
        ``x_dot=None`` means ``x`` does not depend on ``t``; the parameters ``mu`` do not.
        """
        self._require_scalar()
        w1 = self.first.weight
        wx, wt = w1[:, : self.in_features], w1[:, -1]
        z0, zt = self._pre(t, x, mu)
        if x_dot is None:
            z0d = torch.zeros_like(z0)
        else:
            z0d = F.linear(x_dot, wx)
        ztd = z0d + wt
        h0, ht = torch.tanh(z0), torch.tanh(zt)
        s0, st = 1 - h0 * h0, 1 - ht * ht
        layers = [(h0, ht, s0, st, z0d, ztd)]
        for layer in self.hidden:
            W = layer.weight
            h0d, htd = s0 * z0d, st * ztd
            z0 = layer(h0)
            zt = z0 + F.linear(ht - h0, W)
            z0d = F.linear(h0d, W)
            ztd = z0d + F.linear(htd - h0d, W)
            h0, ht = torch.tanh(z0), torch.tanh(zt)
            s0, st = 1 - h0 * h0, 1 - ht * ht
            layers.append((h0, ht, s0, st, z0d, ztd))
        # Back-propagate ρ (gradient w.r.t. a layer's output activations), base + increment form.
        rho0 = rhot = self.out_weight[0]
        rho0d = rhotd = None  # the output weights do not depend on t
        weights = [layer.weight for layer in self.hidden]
        for k in range(len(layers) - 1, -1, -1):
            h0, ht, s0, st, z0d, ztd = layers[k]
            d0, d1 = s0 * rho0, st * rhot
            d0d = -2 * h0 * s0 * z0d * rho0
            d1d = -2 * ht * st * ztd * rhot
            if rho0d is not None:
                d0d = d0d + s0 * rho0d
                d1d = d1d + st * rhotd
            if k == 0:
                return (d1 - d0) @ wx, (d1d - d0d) @ wx
            W = weights[k - 1]
            rho0, rho0d = d0 @ W, d0d @ W
            rhot, rhotd = rho0 + (d1 - d0) @ W, rho0d + (d1d - d0d) @ W
        raise AssertionError("unreachable")  # pragma: no cover

    def _require_scalar(self) -> None:
        if self.out_features != 1:
            raise InvalidArgumentError(
                "out_features", self.out_features, "1 (gradients are defined for scalar potentials)"
            )
