"""Vector-field models for neural-ODE discovery (all follow ``forward(t, y) -> dy/dt``).

* :class:`MLPVectorField`: an unconstrained ``f_θ(t, y)`` (Chen et al., NeurIPS 2018).
* :class:`HamiltonianNN`: a learned scalar ``H_θ(y)`` with the field ``J∇H_θ`` from
  ``torch.func.grad`` (Greydanus, Dzamba & Yosinski, *Hamiltonian Neural Networks*, NeurIPS
  2019). Its flow conserves ``H_θ`` exactly and is symplectic, so implicit symplectic integrators
  apply to it directly.
* :class:`SeparableHamiltonianNN`: ``H_θ = T_θ(p) + V_θ(q)``; exposes the separable pair as
  ``.split``, so explicit splittings (Verlet, Yoshida) integrate the learned system.
* :class:`AugmentedNeuralODE`: the state ``x ∈ R^d`` is lifted to ``z = (x, 0)`` or ``A x + a`` in
  ``R^{d+p}``, a field ``f_θ(t, z)`` is integrated there and read out by ``B z(t) + b`` (Dupont,
  Doucet & Teh, *Augmented Neural ODEs*, NeurIPS 2019): maps that no flow of ``R^d`` can represent
  (in 1-D, any map that is not increasing, e.g. ``x ↦ −x``) become reachable.

Models are registered by name (``mlp``, ``hnn``, ``separable_hnn``, ``anode``) for the CLI and
checkpoints. :func:`observed_solve` integrates any of them and returns states in the observed space.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from symflow.integrators import Solution, solve
from symflow.integrators.errors import InvalidArgumentError
from symflow.integrators.fields import SplitField
from symflow.integrators.registry import Registry
from symflow.systems.fields import gradient_of, symplectic_gradient

Tensor = torch.Tensor

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}


def mlp(inputs: int, outputs: int, width: int, depth: int, activation: str) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units. Hamiltonians need a smooth activation (their
    field is a gradient, and training differentiates it again). ``tanh`` is the default: on
    Hénon–Heiles trajectories it fitted 25× better than softplus in the same number of steps
    (softplus's sigmoid field struggled to represent the cubic potential even when fitted directly)."""
    if activation not in ACTIVATIONS:
        raise InvalidArgumentError("activation", activation, f"one of {sorted(ACTIVATIONS)}")
    if depth < 1 or width < 1:
        raise InvalidArgumentError("width/depth", (width, depth), "positive integers")
    layers: list[nn.Module] = []
    size = inputs
    for _ in range(depth):
        layers += [nn.Linear(size, width), ACTIVATIONS[activation]()]
        size = width
    layers.append(nn.Linear(size, outputs))
    return nn.Sequential(*layers)


class MLPVectorField(nn.Module):
    """``f_θ(t, y) = MLP([y, t])`` (or ``MLP(y)`` when ``time_dependent=False``)."""

    def __init__(
        self,
        dim: int,
        width: int = 64,
        depth: int = 2,
        activation: str = "tanh",
        time_dependent: bool = False,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.time_dependent = time_dependent
        self.net = mlp(dim + int(time_dependent), dim, width, depth, activation)

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        if self.time_dependent:
            tt = torch.as_tensor(t, dtype=y.dtype, device=y.device).expand(y.shape[:-1]).unsqueeze(-1)
            return self.net(torch.cat([y, tt], dim=-1))
        return self.net(y)


# Derivatives of the activations, for the explicit gradient of an MLP Hamiltonian.
_DERIVATIVES: dict[type, Callable[[Tensor], Tensor]] = {
    nn.Softplus: torch.sigmoid,
    nn.Tanh: lambda z: 1 - torch.tanh(z) ** 2,
    nn.SiLU: lambda z: torch.sigmoid(z) * (1 + z * (1 - torch.sigmoid(z))),
}


def mlp_input_gradient(net: nn.Sequential, y: Tensor) -> Tensor:
    """``∇_y net(y)`` of a scalar MLP by an explicit backward sweep (plain, differentiable ops).

    With ``z_k = W_k a_{k−1} + b_k``, ``a_k = σ(z_k)`` and output ``w·a_L``:
    ``∇_y = W_1ᵀ diag σ'(z_1) ⋯ W_Lᵀ diag σ'(z_L) w``. Same value as ``torch.func.grad`` (tested) at
    a fraction of its cost in eager mode, and differentiable again by any autograd mode.
    """
    layers = list(net)
    linears, acts = layers[0::2], layers[1::2]
    zs = []
    a = y
    for lin, act in zip(linears[:-1], acts):
        z = nn.functional.linear(a, lin.weight, lin.bias)
        zs.append((z, act))
        a = act(z)
    g = linears[-1].weight[0].expand(a.shape)
    for lin, (z, act) in zip(reversed(linears[:-1]), reversed(zs)):
        g = (g * _DERIVATIVES[type(act)](z)) @ lin.weight
    return g


class HamiltonianNN(nn.Module):
    """``dy/dt = J∇H_θ(y)`` with ``H_θ`` an MLP of the state.

    ``gradient="autodiff"`` (default) takes ``∇H_θ`` from ``torch.func.grad``; ``"explicit"`` uses
    :func:`mlp_input_gradient` (same value, cheaper in eager mode; activations softplus, tanh, silu).
    ``input_scale`` ``s`` makes ``H_θ(y) = MLP(s·y)``: states of size ``1/s`` then reach the activations
    at order one, where they are nonlinear (any ``s`` keeps the field Hamiltonian).
    """

    def __init__(
        self,
        dim: int,
        width: int = 64,
        depth: int = 2,
        activation: str = "tanh",
        gradient: str = "autodiff",
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if dim % 2:
            raise InvalidArgumentError("dim", dim, "an even state dimension D = 2n ([q, p])")
        if gradient not in ("autodiff", "explicit"):
            raise InvalidArgumentError("gradient", gradient, "'autodiff' or 'explicit'")
        self.dim = dim
        self.net = mlp(dim, 1, width, depth, activation)
        if gradient == "explicit" and type(self.net[1]) not in _DERIVATIVES:
            raise InvalidArgumentError(
                "activation", activation, "softplus, tanh or silu with gradient='explicit'"
            )
        self.gradient = gradient
        if isinstance(input_scale, bool) or not isinstance(input_scale, (int, float)) or not input_scale > 0:
            raise InvalidArgumentError("input_scale", input_scale, "a positive number")
        self.input_scale = float(input_scale)

    def hamiltonian(self, y: Tensor) -> Tensor:
        return self.net(y * self.input_scale).squeeze(-1)

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        if self.gradient == "explicit":
            g = mlp_input_gradient(self.net, y * self.input_scale) * self.input_scale
            n = self.dim // 2
            return torch.cat([g[..., n:], -g[..., :n]], dim=-1)
        return symplectic_gradient(self.hamiltonian, y)


class SeparableHamiltonianNN(nn.Module):
    """``H_θ(q, p) = T_θ(p) + V_θ(q)``: the field and its separable pair for splitting methods."""

    def __init__(self, dim: int, width: int = 64, depth: int = 2, activation: str = "tanh") -> None:
        super().__init__()
        if dim % 2:
            raise InvalidArgumentError("dim", dim, "an even state dimension D = 2n ([q, p])")
        self.dim = dim
        self.n = dim // 2
        self.kinetic_net = mlp(self.n, 1, width, depth, activation)
        self.potential_net = mlp(self.n, 1, width, depth, activation)

    def kinetic(self, p: Tensor) -> Tensor:
        return self.kinetic_net(p).squeeze(-1)

    def potential(self, q: Tensor) -> Tensor:
        return self.potential_net(q).squeeze(-1)

    def hamiltonian(self, y: Tensor) -> Tensor:
        return self.kinetic(y[..., self.n :]) + self.potential(y[..., : self.n])

    def _drift(self, t: Tensor, p: Tensor) -> Tensor:
        return gradient_of(self.kinetic, p)

    def _kick(self, t: Tensor, q: Tensor) -> Tensor:
        return -gradient_of(self.potential, q)

    @property
    def split(self) -> SplitField:
        return SplitField(drift=self._drift, kick=self._kick, n=self.n)

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return torch.cat([self._drift(t, y[..., self.n :]), self._kick(t, y[..., : self.n])], dim=-1)


class AugmentedNeuralODE(nn.Module):
    """``x(t) = B z(t) + b`` with ``dz/dt = f_θ(t, z)``, ``z(0) = lift(x(0)) ∈ R^{d+p}``.

    Args:
        dim: observed state dimension ``d``.
        augment_dim: extra dimensions ``p ≥ 1``.
        lift: ``"zeros"`` (``z0 = (x0, 0)``, Dupont et al.) or ``"linear"`` (a learned ``A x0 + a``,
            initialised to the zero lift).
        projection: ``"slice"`` (the first ``d`` components of ``z``) or ``"linear"`` (a learned
            ``B z + b``, initialised to the slice).
        width, depth, activation, time_dependent: the field ``f_θ`` (:class:`MLPVectorField`).

    ``forward(t, z)`` is the field on the augmented space, so any integrator solves it; use
    :meth:`lift`, :meth:`project` or :func:`observed_solve` to go between the two spaces.
    """

    def __init__(
        self,
        dim: int,
        augment_dim: int = 1,
        width: int = 64,
        depth: int = 2,
        activation: str = "tanh",
        time_dependent: bool = False,
        lift: str = "zeros",
        projection: str = "slice",
    ) -> None:
        super().__init__()
        if isinstance(augment_dim, bool) or not isinstance(augment_dim, int) or augment_dim < 1:
            raise InvalidArgumentError("augment_dim", augment_dim, "a positive integer (extra dimensions)")
        if lift not in ("zeros", "linear"):
            raise InvalidArgumentError("lift", lift, "'zeros' or 'linear'")
        if projection not in ("slice", "linear"):
            raise InvalidArgumentError("projection", projection, "'slice' or 'linear'")
        self.dim, self.augment_dim = dim, augment_dim
        self.lift_kind, self.projection_kind = lift, projection
        self.field = MLPVectorField(dim + augment_dim, width, depth, activation, time_dependent)
        embed = torch.eye(dim + augment_dim, dim)  # the zero lift x -> (x, 0)
        if lift == "linear":
            self.lift_map = nn.Linear(dim, dim + augment_dim)
            with torch.no_grad():
                self.lift_map.weight.copy_(embed)
                self.lift_map.bias.zero_()
        if projection == "linear":
            self.project_map = nn.Linear(dim + augment_dim, dim)
            with torch.no_grad():
                self.project_map.weight.copy_(embed.T)
                self.project_map.bias.zero_()

    def lift(self, x: Tensor) -> Tensor:
        """``(..., d) → (..., d + p)``."""
        if self.lift_kind == "linear":
            return self.lift_map(x)
        return torch.cat([x, x.new_zeros(*x.shape[:-1], self.augment_dim)], dim=-1)

    def project(self, z: Tensor) -> Tensor:
        """``(..., d + p) → (..., d)``."""
        if self.projection_kind == "linear":
            return self.project_map(z)
        return z[..., : self.dim]

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return self.field(t, z)


def observed_solve(model: nn.Module, y0: Tensor, ts: Any, method: str = "dopri5", **kwargs: Any) -> Solution:
    """:func:`~symflow.integrators.solve` for any discovery model, with ``ys`` in the observed space:
    an augmented model is integrated from ``model.lift(y0)`` and its states are projected back; other
    models are solved as they are. ``kwargs`` go to ``solve`` (tolerances, ``adjoint``, ...)."""
    if isinstance(model, AugmentedNeuralODE):
        sol = solve(model, model.lift(y0), ts, method, **kwargs)
        return dataclasses.replace(sol, ys=model.project(sol.ys))
    return solve(model, y0, ts, method, **kwargs)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., nn.Module]
    hamiltonian: bool
    summary: str


MODELS: Registry[ModelSpec] = Registry("discovery model")
MODELS.register(
    "mlp",
    ModelSpec("mlp", MLPVectorField, False, "unconstrained neural ODE f_θ(t, y)"),
    aliases=("node", "neural_ode"),
)
MODELS.register(
    "hnn", ModelSpec("hnn", HamiltonianNN, True, "Hamiltonian neural network J∇H_θ"), aliases=("hamiltonian",)
)
MODELS.register(
    "separable_hnn",
    ModelSpec("separable_hnn", SeparableHamiltonianNN, True, "separable HNN, H_θ = T_θ(p) + V_θ(q)"),
    aliases=("shnn", "separable"),
)
MODELS.register(
    "anode",
    ModelSpec("anode", AugmentedNeuralODE, False, "augmented neural ODE: lift, f_θ(t, z), project"),
    aliases=("augmented", "augmented_node"),
)


def build_model(name: str, dim: int, **kwargs: Any) -> nn.Module:
    """A model from the registry; ``kwargs`` are the constructor's (width, depth, activation, ...)."""
    return MODELS.get(name).build(dim, **kwargs)
