"""Physics-informed neural networks for ``dx/dt = F(x)`` with the initial condition imposed exactly.

Seed 004, slides "Physics-informed neural networks" and "Imposing the initial condition" (after
Lagaris, Likas & Fotiadis, IEEE Trans. Neural Netw. 9 (1998) and Raissi, Perdikaris & Karniadakis,
J. Comput. Phys. 378 (2019)). Two ways to make ``N(0) = x0`` hold for every set of weights:

* ``constraint="linear"``: ``N(t) = x0 + t · Ñ(t)``;
* ``constraint="tfc"``: ``N(t) = Ñ(t) + (x0 − Ñ(0))``, the simplest instance of the Theory of
  Functional Connections (Mortari, "The Theory of Connections: Connecting Points", Mathematics 5
  (2017)); ``Ñ(t) − Ñ(0)`` is evaluated in increment form so ``N(0) = x0`` holds exactly.

The alternative the seed states first (slide "PINN"): no constraint, ``constraint="soft"``:
``N(t) = x0 + Ñ(t)`` with ``Ñ`` free, so ``N(0) = x0`` holds only as well as the loss term
``γ ‖N(0) − x0‖²`` makes it (:func:`~symflow.learners.losses.ivp_loss`,
:func:`~symflow.learners.losses.hamiltonian_matching_loss` with ``ic_weight=γ``).

:class:`IVPPINN` solves one initial value problem on ``[0, T]`` (``Ñ`` a tanh MLP of ``t``).
:class:`FlowMapPINN` learns the flow map ``N(t, x0)`` on ``Ω × [0, Δt]`` (``Ñ`` an MLP of
``[x0; t]``) with the same residual as SympFlow and composes like it — the unconstrained baseline
that shows what exact symplecticity buys.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import jvp

from symflow.integrators.errors import InvalidArgumentError

from .flowmap import FlowMap, positive_int, positive_time
from .networks import MLP, IncrementMLP

Tensor = torch.Tensor

CONSTRAINTS = ("linear", "tfc", "soft")


def _constraint(value: str) -> str:
    if value not in CONSTRAINTS:
        raise InvalidArgumentError("constraint", value, f"one of {', '.join(CONSTRAINTS)}")
    return value


class FlowMapPINN(FlowMap):
    """Unconstrained flow map ``N(t, x0) = x0 + t·Ñ(t, x0)`` (or the TFC form) of a tanh MLP.

    Args:
        dim: state dimension ``D``.
        dt: the time ``Δt`` it is trained for; longer times by composition (:meth:`flow`).
        width, hidden_layers: the MLP ``Ñ : R^{D+1} → R^D`` (default 30 × 2 ≈ the parameter count
            of the default SympFlow for D = 4).
        constraint: ``"linear"``, ``"tfc"`` (exact ``N(0) = x0``) or ``"soft"`` (imposed by the loss;
            see the module docstring).
        derivatives: ``"func"`` (``torch.func.jvp``) or ``"autograd"`` (loop over components).
        param_ranges: ``{name: (lo, hi)}`` for a parametric map ``N(t, x0; μ)`` (``μ`` an extra input
            of ``Ñ``).
    """

    learner = "pinn"
    supported_derivatives = ("func", "autograd")

    def __init__(
        self,
        dim: int,
        *,
        dt: float,
        width: int = 30,
        hidden_layers: int = 2,
        constraint: str = "linear",
        derivatives: str = "func",
        param_ranges: dict[str, Any] | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(dim, dt, derivatives, param_ranges)
        self.width = width
        self.hidden_layers = hidden_layers
        self.constraint = _constraint(constraint)
        kw = {"width": width, "hidden_layers": hidden_layers, "dtype": dtype, "device": device}
        if constraint in ("linear", "soft"):  # input [x0; μ; t]
            self.net: nn.Module = MLP(dim + self.n_params + 1, dim, **kw)
        else:
            self.net = IncrementMLP(dim, dim, conditions=self.n_params, **kw)

    def config(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "dt": self.dt,
            "width": self.width,
            "hidden_layers": self.hidden_layers,
            "constraint": self.constraint,
            "derivatives": self.derivatives,
            **self._param_config(),
        }

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, dt={self.dt}, width={self.width}, hidden_layers={self.hidden_layers}, "
            f"constraint={self.constraint!r}, parameters={self.num_parameters()}"
        )

    def forward(self, t: Tensor | float, x0: Tensor, mu: Any = None) -> Tensor:
        x0 = self._check_state(x0)
        t, x0, mu = self._broadcast(t, x0, self._check_params(mu))
        extra = () if mu is None else (self._scaled(mu),)  # subclasses may define the hook without mu
        return self._forward_with(t, x0, self.derivatives, *extra)

    def _forward_with(self, t: Tensor, x0: Tensor, how: str, mu: Tensor | None = None) -> Tensor:
        if self.constraint == "linear":
            inputs = [x0] if mu is None else [x0, mu]
            return x0 + t.unsqueeze(-1) * self.net(torch.cat([*inputs, t.unsqueeze(-1)], dim=-1))
        if self.constraint == "soft":  # nothing ties N(0) to x0 but the loss
            inputs = [x0] if mu is None else [x0, mu]
            return x0 + self.net(torch.cat([*inputs, t.unsqueeze(-1)], dim=-1))
        return x0 + self.net(t, x0, mu)


class IVPPINN(nn.Module):
    """``N(t) ≈ x(t)`` for one initial value problem on ``[0, T]``, with ``N(0) = x0`` exactly.

    The network sees the rescaled time ``t / T``. ``forward(t)`` accepts any shape of ``t`` and
    returns ``(*t.shape, D)``.
    """

    learner = "pinn_ivp"

    def __init__(
        self,
        x0: Tensor,
        *,
        t_end: float,
        width: int = 32,
        hidden_layers: int = 2,
        constraint: str = "linear",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        x0 = torch.as_tensor(x0, dtype=dtype if dtype is not None else torch.get_default_dtype())
        if x0.ndim != 1 or not torch.isfinite(x0).all():
            raise InvalidArgumentError("x0", x0, "one finite initial state of shape (D,)")
        self.dim = positive_int("dim", int(x0.shape[0]))
        self.t_end = positive_time("t_end", t_end)
        self.width = width
        self.hidden_layers = hidden_layers
        self.constraint = _constraint(constraint)
        self.register_buffer("x0", x0.to(device=device))
        kw = {"width": width, "hidden_layers": hidden_layers, "dtype": x0.dtype, "device": device}
        if constraint in ("linear", "soft"):
            self.net: nn.Module = MLP(1, self.dim, **kw)
        else:
            self.net = IncrementMLP(0, self.dim, **kw)

    @property
    def dt(self) -> float:
        """The interval the network covers (``T``), the ``Δt`` of the a-posteriori estimate."""
        return self.t_end

    def config(self) -> dict[str, Any]:
        return {
            "x0": self.x0.tolist(),
            "t_end": self.t_end,
            "width": self.width,
            "hidden_layers": self.hidden_layers,
            "constraint": self.constraint,
        }

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, t: Tensor | float) -> Tensor:
        t = torch.as_tensor(t, dtype=self.x0.dtype, device=self.x0.device)
        s = t / self.t_end
        if self.constraint == "linear":
            return self.x0 + t.unsqueeze(-1) * self.net(s.unsqueeze(-1))
        if self.constraint == "soft":  # nothing ties N(0) to x0 but the loss
            return self.x0 + self.net(s.unsqueeze(-1))
        return self.x0 + self.net(s, s.new_zeros(*s.shape, 0))

    def time_derivative(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """``(N(t), dN/dt(t))`` with ``torch.func.jvp``; differentiable w.r.t. the weights."""
        t = torch.as_tensor(t, dtype=self.x0.dtype, device=self.x0.device)
        return jvp(self, (t,), (torch.ones_like(t),))
